"""Every KFP component's body, called in-process with `component.python_func(...)`.

The second tier of the KFP components testing pattern (steps -> component functions -> local
pipeline runs -> compile): each component's edge work, decoding string parameters and writing
artifacts and their metadata, on temporary paths, without a runner. The components are chained
as the training pipeline wires them, so an output one task writes is the input the next reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kfp import dsl

from kfops.components import _decode
from kfops.components.bless import bless
from kfops.components.deploy import deploy
from kfops.components.evaluate import evaluate
from kfops.components.extract import extract
from kfops.components.monitor import monitor
from kfops.components.prepare import prepare
from kfops.components.register import register
from kfops.components.train import train
from kfops.components.tune import (
    no_tuning,
    tune_ask,
    tune_init,
    tune_report,
    tune_trial,
    untuned_params,
)
from kfops.components.validate import validate
from kfops.datasets import default_data_path
from kfops.errors import ConfigError
from kfops.io import read_json
from kfops.registry import CHALLENGER, CHAMPION, Registry
from kfops.twin import TwinRuntime

MODEL = "penguins"


def art(kind: type[dsl.Artifact], work: Path, name: str) -> Any:
    """An artifact as a task sees it: its path is a local file under the pipeline root."""
    return kind(name=name, uri=str(work / name))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The training pipeline's components, chained as pipelines/training.py wires them."""
    work = tmp_path_factory.mktemp("components")
    ids = {"registry_root": str(work / "registry"), "run_id": "run-1", "job_id": ""}
    # extract, validate and prepare may be cached by KFP: they take cache keys, not the job id.
    cached = {"registry_root": ids["registry_root"], "run_id": "run-1"}
    a: dict[str, Any] = {}
    a["snapshot"] = art(dsl.Dataset, work, "snapshot")
    extracted = extract.python_func(
        data_uri=str(default_data_path()), data_key="k", snapshot=a["snapshot"], **cached
    )
    a["contract"] = art(dsl.Artifact, work, "contract")
    a["statistics"] = art(dsl.Markdown, work, "statistics")
    a["validation"] = art(dsl.Markdown, work, "validation")
    champion = validate.python_func(
        snapshot=a["snapshot"], target="species", task="classification", model_name=MODEL,
        drop_columns=" year, ", contract=a["contract"], statistics=a["statistics"],
        validation_report=a["validation"], champion_key="", **cached,
    )  # fmt: skip
    a["train"], a["test"] = art(dsl.Dataset, work, "train"), art(dsl.Dataset, work, "test")
    prepare.python_func(
        snapshot=a["snapshot"], contract=a["contract"], test_size=0.25, seed=3,
        train=a["train"], test=a["test"], **cached,
    )  # fmt: skip
    given = untuned_params.python_func(params_json='{"C": 2}')
    a["model"], a["profile"] = art(dsl.Model, work, "model"), art(dsl.Artifact, work, "profile")
    a["twin"], a["explainer"] = art(dsl.Model, work, "twin"), art(dsl.Artifact, work, "explainer")
    trained = train.python_func(
        train=a["train"], contract=a["contract"], estimator="logistic_regression",
        params_json=given, seed=3, model=a["model"], reference_profile=a["profile"],
        twin=a["twin"], explainer=a["explainer"], **ids,
    )  # fmt: skip
    a["evaluation"] = art(dsl.Artifact, work, "evaluation")
    a["importance"] = art(dsl.Artifact, work, "importance")
    a["metrics"] = art(dsl.Metrics, work, "metrics")
    a["curves"] = art(dsl.ClassificationMetrics, work, "curves")
    a["report"] = art(dsl.HTML, work, "report")
    evaluate.python_func(
        model=a["model"], test=a["test"], contract=a["contract"], seed=3,
        evaluation=a["evaluation"], importance=a["importance"], metrics=a["metrics"],
        classification_metrics=a["curves"], report=a["report"], **ids,
    )  # fmt: skip
    a["decision"] = art(dsl.Artifact, work, "decision")
    a["decision_report"] = art(dsl.Markdown, work, "decision_report")
    blessed = bless.python_func(
        evaluation=a["evaluation"], test=a["test"], model_name=MODEL,
        thresholds_json='{"f1_macro": 0.5}', max_regression=0.01, decision=a["decision"],
        decision_report=a["decision_report"], **ids,
    )  # fmt: skip
    a["model_card"] = art(dsl.Markdown, work, "model_card")
    version = register.python_func(
        model_name=MODEL, model=a["model"], contract=a["contract"],
        reference_profile=a["profile"], evaluation=a["evaluation"],
        importance=a["importance"], test=a["test"], twin=a["twin"],
        twin_json=trained.twin_json, explainer=a["explainer"], snapshot=a["snapshot"],
        data_uri=str(default_data_path()), fingerprint=extracted.fingerprint,
        estimator="logistic_regression", params_json=trained.params_json, seed=3,
        test_size=0.25, decision=a["decision"], tuning_json=no_tuning.python_func(),
        model_card=a["model_card"], **ids,
    )  # fmt: skip
    summary = deploy.python_func(
        model_name=MODEL, version=version, registry_root=ids["registry_root"], run_id="run-1"
    )
    return {
        "work": work,
        "root": Path(ids["registry_root"]),
        "artifacts": a,
        "extracted": extracted,
        "champion": champion,
        "trained": trained,
        "blessed": blessed,
        "version": version,
        "summary": summary,
    }


def test_extract_writes_the_snapshot_and_its_fingerprint(run: dict[str, Any]) -> None:
    snapshot = run["artifacts"]["snapshot"]
    assert Path(snapshot.path).is_file()
    assert snapshot.metadata["fingerprint"] == run["extracted"].fingerprint
    assert snapshot.metadata["rows"] == run["extracted"].rows == 344


def test_validate_decodes_drop_columns_and_writes_its_reports(run: dict[str, Any]) -> None:
    a = run["artifacts"]
    contract = read_json(Path(a["contract"].path))
    assert "year" not in [f["name"] for f in contract["features"]]
    assert a["contract"].metadata["features"] == len(contract["features"]) == 6
    assert run["champion"] == ""  # no champion yet
    assert Path(a["statistics"].path).read_text().startswith("## Data statistics")
    assert "No champion yet" in Path(a["validation"].path).read_text()


def test_prepare_splits_and_counts_rows(run: dict[str, Any]) -> None:
    a = run["artifacts"]
    assert a["train"].metadata["rows"] + a["test"].metadata["rows"] == 344
    assert a["test"].metadata["rows"] == 86


def test_train_decodes_params_and_returns_them_for_the_lineage(run: dict[str, Any]) -> None:
    a = run["artifacts"]
    assert json.loads(run["trained"].params_json) == {"C": 2}
    assert a["model"].metadata == {"estimator": "logistic_regression", "framework": "scikit-learn"}
    assert Path(a["profile"].path).is_file()
    # The twin travels to register as a file and its record (JSON text at the KFP edge).
    assert json.loads(run["trained"].twin_json)["status"] == "converted"
    assert a["twin"].metadata == {"framework": "onnx", "status": "converted"}
    assert TwinRuntime.load(a["twin"].path).classes == ["Adelie", "Chinstrap", "Gentoo"]
    assert read_json(Path(a["explainer"].path))["background"]["n_rows"] == 258


def test_evaluate_logs_metrics_curves_and_an_html_report(run: dict[str, Any]) -> None:
    a = run["artifacts"]
    assert set(a["metrics"].metadata) >= {"accuracy", "f1_macro", "log_loss"}
    matrix = a["curves"].metadata["confusionMatrix"]
    assert [c for c in matrix["annotationSpecs"]] == [
        {"displayName": name} for name in ("Adelie", "Chinstrap", "Gentoo")
    ]
    page = Path(a["report"].path).read_text()
    assert page.lower().startswith("<!doctype html>")
    # Permutation importance: one metric per feature the model takes, a chart and a table.
    features = [f["name"] for f in read_json(Path(a["contract"].path))["features"]]
    importance = read_json(Path(a["importance"].path))
    shares = {f["feature"]: f["share"] for f in importance["features"]}
    assert sorted(shares) == sorted(features)
    assert {k: v for k, v in a["metrics"].metadata.items() if k.startswith("importance_")} == {
        f"importance_{name}": share for name, share in shares.items()
    }
    assert a["importance"].metadata == {"metric": "f1_macro"}
    section = page[page.index("<h2>Feature importance</h2>") :]
    assert section.index('<img alt="Permutation importance" src="data:image/png;base64,') < (
        section.index("<td>bill_length_mm</td>")
    )


def test_bless_decodes_thresholds_and_returns_the_verdict(run: dict[str, Any]) -> None:
    a = run["artifacts"]
    assert run["blessed"] is True and a["decision"].metadata["blessed"] is True
    reasons = read_json(Path(a["decision"].path))["reasons"]
    assert [r for r in reasons if r.startswith("f1_macro") and "0.5" in r], reasons
    assert "BLESSED" in Path(a["decision_report"].path).read_text()


def test_register_records_decoded_lineage(run: dict[str, Any]) -> None:
    mv = Registry(run["root"]).verify(MODEL, run["version"])
    assert run["version"] == "v1"
    assert mv.lineage["params"] == {"C": 2} and mv.lineage["tuning"] == {}
    assert mv.lineage["blessing"]["blessed"] is True
    assert mv.lineage["data_fingerprint"] == run["extracted"].fingerprint
    assert mv.lineage["run_id"] == "run-1"
    assert mv.lineage["twin"]["status"] == "verified" and "model.onnx" in mv.files
    assert mv.lineage["importance"] == read_json(Path(run["artifacts"]["importance"].path))


def test_register_shows_the_versions_model_card(run: dict[str, Any]) -> None:
    mv = Registry(run["root"]).verify(MODEL, run["version"])
    card = Path(run["artifacts"]["model_card"].path).read_text()
    assert card == mv.file("MODEL_CARD.md").read_text()
    assert card.startswith("# Model card: penguins") and "## Feature importance" in card


def test_deploy_moves_the_champion_and_records_the_step(run: dict[str, Any]) -> None:
    registry = Registry(run["root"])
    assert run["summary"] == "local: penguins champion -> v1"
    assert registry.get_alias(MODEL, CHAMPION) == registry.get_alias(MODEL, CHALLENGER) == "v1"
    record = json.loads((run["root"] / "runs" / "run-1" / "deploy.json").read_text())
    assert record["summary"] == run["summary"]


def test_component_defaults_are_the_library_defaults() -> None:
    # Component sources are copied into tasks, so their defaults are literals: keep them equal.
    import inspect

    from kfops.defaults import DEPLOY_NAMESPACE

    defaults = inspect.signature(deploy.python_func).parameters
    assert defaults["namespace"].default == DEPLOY_NAMESPACE


def test_a_bad_parameter_fails_the_task_with_one_line_and_a_record(
    run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = run["artifacts"]
    with pytest.raises(SystemExit) as info:
        bless.python_func(
            evaluation=a["evaluation"], test=a["test"], model_name=MODEL,
            thresholds_json="{f1_macro: 0.5}", max_regression=0.01,
            decision=art(dsl.Artifact, tmp_path, "d"),
            decision_report=art(dsl.Markdown, tmp_path, "r"),
            registry_root=str(run["root"]), run_id="run-bad", job_id="",
        )  # fmt: skip
    assert info.value.code == 2
    assert "error: bless: blessing thresholds are not valid JSON" in capsys.readouterr().err
    failed = json.loads((run["root"] / "runs" / "run-bad" / "failed.json").read_text())
    assert failed["step"] == "bless"


def test_tune_components_run_a_study_round_by_round(run: dict[str, Any], tmp_path: Path) -> None:
    a = run["artifacts"]
    study0 = art(dsl.Artifact, tmp_path, "study0")
    trials = tune_init.python_func(
        task="classification", estimator="decision_tree", params_json='{"criterion": "gini"}',
        search_space="max_depth: {low: 2, high: 4}", seed=1, n_rounds=2, trials_per_round=2,
        max_trials=0, timeout_s=0.0, cv_folds=3, max_rounds=2, study=study0,
    )  # fmt: skip
    assert study0.metadata == {"estimator": "decision_tree", "round": 0} and len(trials) == 2

    def trial(study: Any, payload: str) -> str:
        return tune_trial.python_func(
            train=a["train"], contract=a["contract"], study=study, trial=payload
        )

    study1 = art(dsl.Artifact, tmp_path, "study1")
    asked = tune_ask.python_func(
        study_in=study0, results=[trial(study0, t) for t in trials], round_index=1, n_rounds=2,
        trials_per_round=2, study=study1,
    )  # fmt: skip
    assert [json.loads(t)["number"] for t in asked] == [2, 3]
    final, report, metrics = (
        art(dsl.Artifact, tmp_path, "study2"),
        art(dsl.Markdown, tmp_path, "tune-report"),
        art(dsl.Metrics, tmp_path, "tune-metrics"),
    )
    out = tune_report.python_func(
        study_in=study1, results=[trial(study1, t) for t in asked], study=final, report=report,
        metrics=metrics,
    )  # fmt: skip
    best = json.loads(out.best_params)
    assert best["criterion"] == "gini" and 2 <= best["max_depth"] <= 4
    assert json.loads(out.summary)["complete"] == 4
    assert metrics.metadata["tune_trials"] == 4.0 and "tune_best_cv_f1_macro" in metrics.metadata
    assert final.metadata["best_params"] == out.best_params
    assert "# Tuning: decision_tree" in Path(report.path).read_text()
    assert untuned_params.python_func(params_json="{}") == "{}"


def test_monitor_component_writes_reports_and_returns_the_plan(tmp_path: Path) -> None:
    from kfops.datasets import make_synthetic
    from tests.unit.test_monitoring import MODEL as SYNTH
    from tests.unit.test_monitoring import T0, make_registry, write_capture

    registry = make_registry(tmp_path)
    write_capture(
        tmp_path / "capture",
        make_synthetic(600, n_numeric=4, n_categorical=2, seed=6, drift={"num_01": 1.5}),
    )
    html, md = art(dsl.HTML, tmp_path, "report"), art(dsl.Markdown, tmp_path, "summary")
    result, metrics = art(dsl.Artifact, tmp_path, "result"), art(dsl.Metrics, tmp_path, "m")
    plan = monitor.python_func(
        model_name=SYNTH, registry_root=str(registry.root), capture_uri=str(tmp_path / "capture"),
        labels_uri="", window_hours=1.0, window_end=str(T0 + 3600),
        policy_json='{"min_rows": 50}', pushgateway="", push_job="kfops-monitoring",
        retrain_data_uri="/data/fresh.parquet", report=html, summary=md, result=result,
        metrics=metrics,
    )  # fmt: skip
    assert plan.retrain is True and plan.data_uri == "/data/fresh.parquet"
    assert (plan.target, plan.task, plan.estimator) == (
        "target", "classification", "logistic_regression",
    )  # fmt: skip
    assert json.loads(plan.params_json) == {} and plan.run_id
    assert metrics.metadata["rows"] == 600 and metrics.metadata["retrain"] == 1
    assert metrics.metadata["psi_num_01"] > 0.2
    assert read_json(Path(result.path))["drift"]["drifted"] == ["num_01"]
    assert Path(html.path).read_text().startswith("<!doctype html>")
    with pytest.raises(ConfigError, match="monitoring policy settings must be a JSON object"):
        monitor.python_func(
            model_name=SYNTH, registry_root=str(registry.root),
            capture_uri=str(tmp_path / "capture"), labels_uri="", window_hours=1.0,
            window_end="", policy_json="[1]", pushgateway="", push_job="j",
            retrain_data_uri="", report=html, summary=md, result=result, metrics=metrics,
        )  # fmt: skip


# -- the decoders of the KFP edge -----------------------------------------------------------------


def test_json_parameters_decode_with_one_clear_error() -> None:
    assert _decode.params('{"C": 0.5, "max_iter": 200}') == {"C": 0.5, "max_iter": 200}
    assert _decode.params("") == {}
    assert _decode.params("  ") == {}
    with pytest.raises(ConfigError, match="not valid JSON"):
        _decode.params("{C: 1}")
    with pytest.raises(ConfigError, match="JSON object"):
        _decode.params("[1, 2]")
    with pytest.raises(ConfigError, match="blessing thresholds are not valid JSON"):
        _decode.thresholds("{f1: ")


def test_column_lists_decode_without_blanks() -> None:
    assert _decode.columns(" a, b ,,c ") == ("a", "b", "c")
    assert _decode.columns("") == ()
