"""The lifecycle steps (kfops.steps) on temporary paths, without kfp.

The first tier of the KFP components testing pattern: the step functions the components call,
chained in the pipeline's order on a temporary registry, so a step that stops handing the next
one what it needs fails here in seconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from kfops import tracking
from kfops.blessing import BlessingDecision
from kfops.contract_model import Contract
from kfops.datasets import default_data_path, make_synthetic
from kfops.errors import ConfigError, ContractError, DataError
from kfops.features import drop_null_target
from kfops.io import read_json
from kfops.monitoring import MonitoringPolicy
from kfops.registry import CHALLENGER, CHAMPION, Registry
from kfops.reports.validation import validation_markdown
from kfops.steps import (
    bless,
    deploy,
    evaluate,
    extract,
    monitor,
    prepare,
    register,
    retrain,
    train,
    validate,
)
from kfops.steps._run import RunContext

MODEL = "penguins"


def train_once(
    data_uri: str,
    work: Path,
    ctx: RunContext,
    thresholds: dict[str, float] | None = None,
    *,
    target: str = "species",
    task: str = "classification",
    estimator: str = "logistic_regression",
    params: dict[str, Any] | None = None,
    before_register: Callable[[dict[str, Path]], None] | None = None,
) -> tuple[validate.ValidateResult, BlessingDecision, str | None]:
    """extract -> validate -> prepare -> train -> evaluate -> bless -> register, as the pipeline
    runs them; returns what validate and bless decided and the registered version (if any).
    ``before_register`` may tamper with the artifacts (paths by name) before registration."""
    work.mkdir(parents=True)
    names = ("snapshot", "contract", "train", "test", "model", "profile", "twin", "explainer")
    p = {n: work / n for n in (*names, "evaluation", "importance")}
    params = {"C": 0.5} if params is None else params
    fp = extract.run(extract.ExtractInputs(data_uri, p["snapshot"]), ctx)
    assert fp.rows > 0 and p["snapshot"].is_file()
    checked = validate.run(
        validate.ValidateInputs(p["snapshot"], target, task, MODEL, p["contract"], ("year",)),
        ctx,
    )
    split = prepare.run(
        prepare.PrepareInputs(p["snapshot"], p["contract"], p["train"], p["test"], 0.25, 7), ctx
    )
    fitted = train.run(
        train.TrainInputs(
            p["train"], p["contract"], estimator, 7, p["model"], p["profile"], p["twin"],
            p["explainer"], params=params,
        ),
        ctx,
    )  # fmt: skip
    scored = evaluate.run(
        evaluate.EvaluateInputs(
            p["model"], p["test"], p["contract"], p["evaluation"], p["importance"], 7
        ),
        ctx,
    )
    default_thresholds = {"f1_macro": 0.5} if task == "classification" else {"r2": 0.0}
    decision = bless.run(
        bless.BlessInputs(
            p["evaluation"], p["test"], MODEL, 0.01, thresholds or default_thresholds
        ),
        ctx,
    )
    # What each step handed on, checked where the next step picks it up.
    assert "year" not in checked.contract.feature_names
    labelled = drop_null_target(pd.read_parquet(p["snapshot"]), checked.contract)
    assert split.train_rows + split.test_rows == len(labelled)
    assert fitted.params == params and fitted.train_rows == split.train_rows
    assert scored.evaluation.n_rows == split.test_rows
    if task == "classification":
        assert scored.curves is not None and len(scored.curves.labels) == 3
    assert read_json(p["evaluation"])["metrics"] == scored.evaluation.metrics
    assert read_json(p["importance"]) == scored.importance.to_dict()
    if not decision.blessed:
        return checked, decision, None
    if before_register is not None:
        before_register(p)
    version = register.run(
        register.RegisterInputs(
            model_name=MODEL,
            model_path=p["model"],
            contract_path=p["contract"],
            profile_path=p["profile"],
            evaluation_path=p["evaluation"],
            importance_path=p["importance"],
            test_path=p["test"],
            twin_path=p["twin"],
            twin=fitted.twin,
            explainer_path=p["explainer"],
            lineage={"data_fingerprint": fp.sha256, "params": fitted.params},
        ),
        ctx,
    )
    return checked, decision, version.version


def test_steps_chain_from_raw_data_to_a_registered_and_deployed_version(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    ctx = RunContext.of(root, "run-1")
    checked, decision, version = train_once(str(default_data_path()), tmp_path / "one", ctx)
    assert checked.champion_version is None  # the first run has nothing to compare with
    assert decision.blessed and decision.champion_version is None
    assert version == "v1"
    registry = Registry(root)
    mv = registry.verify(MODEL, "v1")
    assert registry.get_alias(MODEL, CHALLENGER) == "v1"
    assert registry.get_alias(MODEL, CHAMPION) is None  # deploy moves the champion, not register
    assert mv.lineage["run_id"] == "run-1" and mv.lineage["params"] == {"C": 0.5}
    assert set(mv.lineage["metrics"]) >= {"accuracy", "f1_macro"}
    assert sorted(mv.files) == [
        "MODEL_CARD.md", "contract.json", "explainer.json", "lineage.json", "metrics.json",
        "model.joblib", "model.onnx", "reference_profile.json",
    ]  # fmt: skip
    record = tracking.load_run(root, "run-1")
    assert {
        "start",
        "extract",
        "validate",
        "prepare",
        "train",
        "evaluate",
        "bless",
        "register",
    } <= (set(record.steps))
    assert record.version == "v1" and record.blessed is True

    deployed = deploy.run(deploy.DeployInputs(root, MODEL, "v1"), ctx)
    assert deployed.summary == f"local: {MODEL} champion -> v1"
    assert registry.get_alias(MODEL, CHAMPION) == "v1"
    assert tracking.load_run(root, "run-1").steps["deploy"]["summary"] == deployed.summary

    # The second run is validated against and judged by the champion the first one made.
    ctx2 = RunContext.of(root, "run-2")
    checked, decision, version = train_once(str(default_data_path()), tmp_path / "two", ctx2)
    assert checked.champion_version == "v1"
    assert decision.champion_version == "v1" and decision.champion is not None
    page = validation_markdown(checked.report, checked.contract, checked.champion_version)
    assert "against champion **v1**'s contract" in page


def test_validate_refuses_data_the_champion_would_reject(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    train_once(str(default_data_path()), tmp_path / "one", RunContext.of(root, "r1"))
    deploy.run(deploy.DeployInputs(root, MODEL, "v1"))
    renamed = pd.read_csv(default_data_path()).rename(columns={"island": "isle"})
    renamed.to_csv(tmp_path / "renamed.csv", index=False)
    ctx = RunContext.of(root, "r2")
    extract.run(extract.ExtractInputs(str(tmp_path / "renamed.csv"), tmp_path / "snap"), ctx)
    inputs = validate.ValidateInputs(
        tmp_path / "snap", "species", "classification", MODEL, tmp_path / "contract"
    )
    with pytest.raises(ContractError, match=r"contract of champion penguins v1.*'island'"):
        validate.run(inputs, ctx)
    assert not (tmp_path / "contract").exists()
    assert tracking.load_run(root, "r2").steps["validate"]["validation"]["ok"] is False


def test_bless_rejects_below_threshold_and_nothing_is_registered(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    _, decision, version = train_once(
        str(default_data_path()), tmp_path / "one", RunContext.of(root, "r1"), {"accuracy": 1.01}
    )
    assert not decision.blessed and version is None
    assert Registry(root).models() == []


def test_task_boundary_records_user_errors_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ctx = RunContext.of(tmp_path / "registry", "r1")
    with pytest.raises(SystemExit) as info, ctx.task("extract"):
        extract.run(extract.ExtractInputs(str(tmp_path / "missing.csv"), tmp_path / "s"), ctx)
    assert info.value.code == 2
    failed = tracking.load_run(tmp_path / "registry", "r1").steps["failed"]
    assert failed["step"] == "extract" and "missing.csv" in failed["error"]
    assert capsys.readouterr().err.startswith("error: extract: ")
    # A bug is not a user error: recorded, and its traceback kept.
    with pytest.raises(ZeroDivisionError), ctx.task("train"):
        _ = 1 / 0
    assert tracking.load_run(tmp_path / "registry", "r1").steps["failed"]["step"] == "train"
    with pytest.raises(ConfigError, match="registry_root is empty"):
        RunContext.of("")


# -- monitor and retrain --------------------------------------------------------------------------


def test_monitor_step_writes_reports_and_plans_retraining_on_labelled_traffic(
    tmp_path: Path,
) -> None:
    from tests.unit.test_monitoring import MODEL as SYNTH
    from tests.unit.test_monitoring import T0, make_registry, write_capture

    # The champion's training data, where its lineage says (retraining mixes it in).
    train = make_synthetic(2000, n_numeric=4, n_categorical=2, seed=1)
    train.to_csv(tmp_path / "train.csv", index=False)
    registry = make_registry(tmp_path, lineage={"data_uri": str(tmp_path / "train.csv")})
    capture, labels = tmp_path / "capture", tmp_path / "labels"
    drifted = make_synthetic(600, n_numeric=4, n_categorical=2, seed=6, drift={"num_01": 1.5})
    ids = write_capture(capture, drifted)
    labels.mkdir()
    (labels / "l.jsonl").write_text(
        "".join(
            json.dumps({"id": i, "label": int(t)}) + "\n"
            for i, t in zip(ids, drifted.target, strict=True)
        )
    )
    inputs = monitor.MonitorInputs(
        model_name=SYNTH,
        registry_root=registry.root,
        capture_dir=capture,
        start=T0,
        end=T0 + 3600,
        labels_dir=labels,
        reports=monitor.ReportPaths.in_dir(tmp_path / "report"),
        retrain_data_path=tmp_path / "retrain.parquet",
    )
    out = monitor.run(inputs)
    assert out.window.retrain and out.window.drift is not None
    assert out.window.drift.drifted == ["num_01"]
    assert (tmp_path / "report" / "report.html").read_text().startswith("<!doctype html>")
    assert "num_01" in (tmp_path / "report" / "report.md").read_text()
    assert read_json(tmp_path / "report" / "result.json")["status"] == "retrain"
    plan = out.plan
    assert plan.retrain and plan.data_uri == str(tmp_path / "retrain.parquet")
    assert (plan.target, plan.task, plan.estimator) == (
        "target", "classification", "logistic_regression",
    )  # fmt: skip
    assert "600 labelled captured rows plus 2000 reference training rows" in plan.reason
    table = pd.read_parquet(plan.data_uri)
    contract = Contract.load(registry.resolve(SYNTH, CHAMPION).file("contract.json"))
    assert list(table.columns) == [*contract.feature_names, "target"] and len(table) == 2600
    assert plan.data_mix["reference_uri"] == str(tmp_path / "train.csv")

    # Without labels there is nothing to train on; a given data URI is trained on as it is.
    no_labels = monitor.run(
        monitor.MonitorInputs(SYNTH, registry.root, capture, T0, T0 + 3600)
    ).plan
    assert not no_labels.retrain and "no labels and no data URI" in no_labels.reason
    given = monitor.run(
        monitor.MonitorInputs(
            SYNTH, registry.root, capture, T0, T0 + 3600, retrain_data_uri="s3://b/new.parquet"
        )
    ).plan
    assert given.retrain and given.data_uri == "s3://b/new.parquet"


def test_retrain_plan_says_why_not(tmp_path: Path) -> None:
    from tests.unit.test_monitoring import MODEL as SYNTH
    from tests.unit.test_monitoring import T0, make_registry, write_capture

    registry = make_registry(tmp_path)
    capture = tmp_path / "capture"
    write_capture(capture, make_synthetic(300, n_numeric=4, n_categorical=2, seed=2))
    calm = monitor.run(
        monitor.MonitorInputs(
            SYNTH, registry.root, capture, T0, T0 + 3600, policy=MonitoringPolicy(min_rows=50)
        )
    )
    assert calm.window.status == "ok" and not calm.plan.retrain
    assert calm.plan.reason == "no retraining: window status ok"
    with pytest.raises(DataError, match="only 0 captured rows"):
        retrain.labelled_window(
            registry.root, SYNTH, capture, _empty_labels(tmp_path), T0, T0 + 3600,
            tmp_path / "x.parquet",
        )  # fmt: skip
    assert retrain.data_path(registry.root, SYNTH, "r1") == (
        registry.root / "retrain-data" / SYNTH / "r1.parquet"
    )
    assert retrain.data_path(registry.root, SYNTH, "r1", tmp_path / "w") == (
        tmp_path / "w" / SYNTH / "r1.parquet"
    )


def _empty_labels(tmp_path: Path) -> Path:
    labels = tmp_path / "no-labels"
    labels.mkdir()
    (labels / "l.jsonl").write_text("")
    return labels


def test_a_model_with_the_champions_bytes_is_unchanged_not_a_new_version(
    tmp_path: Path,
) -> None:
    root = tmp_path / "registry"
    data = str(default_data_path())
    _, _, first = train_once(data, tmp_path / "one", RunContext.of(root, "run-1"))
    deploy.run(deploy.DeployInputs(root, MODEL, "v1"), RunContext.of(root, "run-1"))
    registry = Registry(root)

    # The same data, seed and parameters give the same bytes: nothing new to register.
    _, decision, again = train_once(data, tmp_path / "two", RunContext.of(root, "run-2"))
    assert decision.blessed and first == again == "v1"
    assert [v.version for v in registry.versions(MODEL)] == ["v1"]
    record = tracking.load_run(root, "run-2")
    assert record.version == "v1"
    assert record.steps["register"]["unchanged"] is True
    assert record.steps["register"]["matched"] == "v1"
    assert record.steps["register"]["twin"] == registry.resolve(MODEL, "v1").lineage["twin"]
    assert registry.aliases(MODEL) == {CHALLENGER: "v1", CHAMPION: "v1"}

    # Different parameters, different bytes: a new version as usual.
    _, _, changed = train_once(
        data, tmp_path / "three", RunContext.of(root, "run-3"), params={"C": 0.25}
    )
    assert changed == "v2"
    assert "unchanged" not in tracking.load_run(root, "run-3").steps["register"]


def test_registered_files_are_readable_by_other_users_under_the_usual_umask(
    tmp_path: Path,
) -> None:
    import os
    import stat

    old = os.umask(0o022)
    try:
        root = tmp_path / "registry"
        train_once(str(default_data_path()), tmp_path / "one", RunContext.of(root, "run-1"))
    finally:
        os.umask(old)
    version_dir = Registry(root).resolve(MODEL, "v1").path
    alias = root / "models" / MODEL / "aliases" / f"{CHALLENGER}.json"
    for path in [*version_dir.iterdir(), alias]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path.name


def test_a_regression_run_without_an_estimator_trains_the_tasks_default(tmp_path: Path) -> None:
    """The pipeline's estimator parameter is empty unless given (a cluster run submitted with
    task=regression only): train and register resolve it from the contract's task."""
    root = tmp_path / "registry"
    ctx = RunContext.of(root, "run-r")
    _, decision, version = train_once(
        str(default_data_path()), tmp_path / "r", ctx, target="body_mass_g", task="regression",
        estimator="", params={},
    )  # fmt: skip
    assert decision.blessed and version == "v1"
    assert tracking.load_run(root, "run-r").steps["train"]["estimator"] == "ridge"
    assert Registry(root).verify(MODEL, "v1").lineage["estimator"] == "ridge"
