"""What train, evaluate and register put into a model version for serving and for people: the
ONNX twin only when it is verified (and the verdict in lineage either way), the permutation
importance, the model card and the explainer file. Steps on temporary paths, without kfp."""

from __future__ import annotations

import importlib.util
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import numpy_helper

from kfops import tracking, training
from kfops.cli.run import format_summary
from kfops.coercion import Coercion
from kfops.contract_model import Contract
from kfops.datasets import default_data_path
from kfops.explain.contributions import EXPLAINER_FILE, make_explainer, read_explainer_file
from kfops.explain.importance import Importance
from kfops.explain.model_card import MODEL_CARD_FILE
from kfops.features import feature_frame
from kfops.io import read_json
from kfops.local_runner import summarize
from kfops.registry import ModelVersion, Registry
from kfops.steps._run import RunContext
from kfops.twin import TWIN_FILE, TwinRuntime
from tests.conftest import require
from tests.unit.test_steps import MODEL, train_once

if importlib.util.find_spec("shap") is not None:
    # Imported while pytest collects (see tests/unit/test_explain_contributions.py: numba
    # refuses to import once kfp.local has swapped builtins.print in this process).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        import shap  # noqa: F401

BASE = {"MODEL_CARD.md", "contract.json", "explainer.json", "lineage.json", "metrics.json"}
BASE |= {"model.joblib", "reference_profile.json"}


def registered(tmp_path: Path, **kwargs: Any) -> ModelVersion:
    root = tmp_path / "registry"
    _, decision, version = train_once(
        str(default_data_path()), tmp_path / "work", RunContext.of(root, "run-1"), **kwargs
    )
    assert decision.blessed and version == "v1"
    return Registry(root).verify(MODEL, "v1")


def run_summary(tmp_path: Path) -> str:
    return format_summary(summarize(tmp_path / "registry", "run-1", MODEL))


# -- the ONNX twin --------------------------------------------------------------------------------


def test_a_verified_twin_is_registered_with_its_verdict(tmp_path: Path) -> None:
    mv = registered(tmp_path)
    assert set(mv.files) == BASE | {TWIN_FILE}
    twin = mv.lineage["twin"]
    assert twin["status"] == "verified" and twin["file"] == TWIN_FILE and twin["reason"] == ""
    test = pd.read_parquet(tmp_path / "work" / "test")
    verdict = twin["verdict"]
    assert verdict["passed"] is True and verdict["rows"] == len(test)  # the whole split
    assert verdict["compared"] == "probabilities" and verdict["label_mismatches"] == 0
    assert verdict["tolerance"] == {"atol": 1e-5, "rtol": 1e-5}
    assert twin["conversion"]["convertible"] is True
    # The registered file is the twin that was verified: it answers as the pipeline does.
    contract = Contract.load(mv.file("contract.json"))
    X = feature_frame(test, contract)
    labels, proba = TwinRuntime.load(mv.file(TWIN_FILE)).predict(
        Coercion.from_contract(contract).coerce(dict(X.items()))
    )
    pipeline = training.load_model(mv.file("model.joblib"))
    assert labels == list(pipeline.predict(X))
    assert np.allclose(proba, pipeline.predict_proba(X), rtol=1e-5, atol=1e-5)
    # The run records train's conversion and register's verdict; the summary shows the verdict.
    steps = tracking.load_run(tmp_path / "registry", "run-1").steps
    assert steps["train"]["twin"]["status"] == "converted"
    assert steps["register"]["twin"] == twin
    assert f"onnx twin     verified on {len(test)} held-out rows" in run_summary(tmp_path)


def _negate_coefficients(paths: dict[str, Path]) -> None:
    """A twin that loads and runs but answers differently: its coefficients negated."""
    model = onnx.load_from_string(paths["twin"].read_bytes())
    (coef,) = [init for init in model.graph.initializer if init.name == "coef"]
    coef.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(coef), "coef"))
    paths["twin"].write_bytes(model.SerializeToString())


def _truncate(paths: dict[str, Path]) -> None:
    paths["twin"].write_bytes(paths["twin"].read_bytes()[:200])


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (_negate_coefficients, r"labels differ \(first at row \d+: twin '\w+', sklearn '\w+'\)"),
        (_truncate, r"^ONNX twin \S+/work/twin cannot be loaded by onnxruntime: "),
    ],
    ids=["wrong-answers", "truncated-file"],
)
def test_a_twin_that_fails_verification_is_not_registered(
    tmp_path: Path, tamper: Callable[[dict[str, Path]], None], reason: str
) -> None:
    mv = registered(tmp_path, before_register=tamper)
    # The model is still registered (the sklearn pipeline is good); its twin is not.
    assert set(mv.files) == BASE and not (mv.path / TWIN_FILE).exists()
    twin = mv.lineage["twin"]
    assert twin["status"] == "failed" and twin["file"] is None
    assert re.search(reason, twin["reason"]), twin["reason"]
    assert "onnx twin     not used: verification failed (" in run_summary(tmp_path)
    assert "ONNX twin: not used: verification failed" in mv.file(MODEL_CARD_FILE).read_text()


def test_a_model_without_a_twin_says_why(tmp_path: Path) -> None:
    # HistGradientBoosting with a Poisson loss predicts exp(score); skl2onnx 1.20 drops the exp.
    mv = registered(
        tmp_path,
        target="body_mass_g",
        task="regression",
        estimator="gradient_boosting",
        params={"loss": "poisson", "max_iter": 20},
    )
    assert (tmp_path / "work" / "twin").read_bytes() == b""  # train wrote no graph
    assert set(mv.files) == BASE
    twin = mv.lineage["twin"]
    assert twin["status"] == "not_convertible" and twin["file"] is None
    assert twin["verdict"] is None and "poisson" in twin["reason"]
    assert twin["conversion"] == {
        "convertible": False,
        "estimator": "HistGradientBoostingRegressor",
        "reason": twin["reason"],
    }
    assert "onnx twin     none: not convertible (loss='poisson'" in run_summary(tmp_path)
    # A tree model's explainer needs no background.
    assert read_explainer_file(mv.file(EXPLAINER_FILE)) is None


# -- importance, model card, explainer ---------------------------------------------------------


def test_importance_is_computed_on_the_held_out_split_and_kept_in_the_lineage(
    tmp_path: Path,
) -> None:
    mv = registered(tmp_path)
    contract = Contract.load(mv.file("contract.json"))
    importance = Importance.from_dict(mv.lineage["importance"])
    assert sorted(importance.ranked()) == sorted(contract.feature_names)
    assert importance.metric == "f1_macro"
    assert importance.n_rows == len(pd.read_parquet(tmp_path / "work" / "test"))
    assert sum(importance.shares().values()) == pytest.approx(1.0)
    # The bill length tells the species apart (with the island or the bill depth); sex does not.
    assert importance.ranked()[0] == "bill_length_mm", importance.shares()
    assert importance.shares()["bill_length_mm"] > 10 * importance.shares()["sex"]
    # The same result in the evaluate step's record, its artifact and the run summary.
    record = tracking.load_run(tmp_path / "registry", "run-1").steps["evaluate"]
    assert record["importance"] == mv.lineage["importance"]
    assert read_json(tmp_path / "work" / "importance") == mv.lineage["importance"]
    top = importance.features[0]
    assert f"importance    {top.feature} {top.share:.0%}" in run_summary(tmp_path)


def test_model_card_is_in_the_version_and_names_what_matters(tmp_path: Path) -> None:
    mv = registered(tmp_path)
    assert MODEL_CARD_FILE in mv.files  # hashed (and signed) with the rest
    card = mv.file(MODEL_CARD_FILE).read_text()
    importance = Importance.from_dict(mv.lineage["importance"])
    assert card.startswith(f"# Model card: {MODEL}\n")
    assert "- run: `run-1`" in card
    assert f"fingerprint: `{mv.lineage['data_fingerprint']}`" in card
    assert f"| 1 | {importance.features[0].feature} |" in card
    assert "- ONNX twin: verified on" in card
    assert "| island | categorical | no | `Biscoe`, `Dream`, `Torgersen` |" in card
    assert "| accuracy |" in card


def test_explainer_file_lets_a_server_explain_without_training_data(tmp_path: Path) -> None:
    require(importlib.util.find_spec("shap") is not None, "shap is not installed")
    mv = registered(tmp_path)  # logistic regression: a linear model needs its background
    pipeline = training.load_model(mv.file("model.joblib"))
    background = read_explainer_file(mv.file(EXPLAINER_FILE))
    assert background is not None
    assert len(background.means) == pipeline.named_steps["model"].n_features_in_
    assert background.n_rows == len(pd.read_parquet(tmp_path / "work" / "train"))
    # Only the version's files: the explanation adds up to the model's margin on every row.
    test = pd.read_parquet(tmp_path / "work" / "test")
    explained = make_explainer(pipeline, background).explain(test)
    margin = pipeline.decision_function(test)
    for i, row in enumerate(explained.rows):
        k = list(pipeline.classes_).index(row.prediction)
        total = row.base_value + sum(row.contributions.values())
        assert total == pytest.approx(margin[i, k], abs=1e-6)
