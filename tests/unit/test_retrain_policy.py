"""Alert-started retrains are held to the champion's blessing bar, and bad model names are
refused before any task runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from kfops.blessing import bless, parse_policy, policy_of_lineage
from kfops.cli import main
from kfops.errors import RegistryError
from kfops.evaluation import Evaluation
from kfops.local_runner import TrainingParams, preflight
from kfops.params import default_thresholds
from kfops.registry import Registry
from kfops.steps.retrain import training_params
from kfops.submit import check_arguments
from kfops.trigger import KubeflowLauncher, RetrainRequest
from tests.unit.test_serving_fixtures import MODEL, artifacts


def _register(root: Path, lineage: dict) -> None:
    Registry(root).register(MODEL, artifacts(), lineage, aliases=("champion",))


def test_the_decision_records_the_policy_it_was_judged_by() -> None:
    policy = parse_policy({"accuracy": 0.9}, 0.02, "classification")
    challenger = Evaluation.from_dict(
        {"task": "classification", "metrics": {"accuracy": 0.95, "f1_macro": 0.9}, "n_rows": 10}
    )
    decision = bless(challenger, None, policy).to_dict()
    assert decision["policy"] == {
        "thresholds": {"accuracy": 0.9},
        "max_regression": 0.02,
        "primary_metric": None,
    }
    assert policy_of_lineage({"blessing": decision}, "classification") == policy


def test_retrain_uses_the_champions_thresholds(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    policy = {"thresholds": {"accuracy": 0.93}, "max_regression": 0.005, "primary_metric": None}
    _register(root, {"blessing": {"blessed": True, "policy": policy}, "estimator": "random_forest"})
    params = training_params(root, MODEL, "data.csv")
    assert params.thresholds == {"accuracy": 0.93} and params.max_regression == 0.005
    assert params.pipeline_arguments("r")["thresholds_json"] == '{"accuracy": 0.93}'
    assert params.estimator == "random_forest"


def test_a_champion_without_a_recorded_policy_gets_the_default_bar(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    _register(root, {"test": True})
    params = training_params(root, MODEL, "data.csv")
    assert params.thresholds == default_thresholds("classification")


def test_kubeflow_retrains_with_explicit_target_use_the_champions_bar_too(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    policy = {"thresholds": {"f1_macro": 0.8}, "max_regression": 0.0, "primary_metric": None}
    _register(root, {"blessing": {"policy": policy}})
    launcher = KubeflowLauncher(
        None, "s3://b/data.csv", root, training_target="species", task="classification"
    )
    params = launcher._params(RetrainRequest(MODEL, ("KfopsFeatureDrift",), "run-1"))
    assert params.thresholds == {"f1_macro": 0.8} and params.max_regression == 0.0
    fresh = launcher._params(RetrainRequest("newcomer", ("KfopsFeatureDrift",), "run-2"))
    assert fresh.thresholds == default_thresholds("classification")


@pytest.mark.parametrize("name", ["../evil", "Evil", "a/b", "x" * 64, ""])
def test_bad_model_names_are_refused_before_any_task(name: str, tmp_path: Path) -> None:
    params = TrainingParams(
        data_uri="d.csv", target="t", model_name=name, registry_root=str(tmp_path)
    )
    with pytest.raises(RegistryError, match="model name"):
        preflight(params)
    spec = {
        "pipelineInfo": {"name": "kfops-training"},
        "root": {"inputDefinitions": {"parameters": {"model_name": {"parameterType": "STRING"}}}},
    }
    with pytest.raises(RegistryError, match="model name"):
        check_arguments(spec, {"model_name": name})


def test_kfops_run_refuses_a_bad_name_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "registry"
    assert main(["run", "--model", "../evil", "--registry", str(root)]) == 2
    assert "model name '../evil' is invalid" in capsys.readouterr().err
    assert not root.exists()  # nothing ran, nothing was created
