"""Run history: step records, merging, listing order, comparison table."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kfops.errors import KfopsError
from kfops.tracking import (
    compare_table,
    finish_run,
    list_runs,
    load_run,
    new_run_id,
    pick_metrics,
    record_step,
)


def _record_full_run(
    root: Path, run_id: str, estimator: str, acc: float, blessed: bool, version: str | None
) -> None:
    record_step(root, run_id, "extract", {"fingerprint": {"sha256": "ab" * 32, "rows": 344}})
    record_step(
        root, run_id, "train", {"estimator": estimator, "params": {"n_estimators": 100, "seed": 0}}
    )
    record_step(root, run_id, "evaluate", {"metrics": {"accuracy": acc, "f1_macro": acc - 0.01}})
    record_step(
        root, run_id, "bless", {"decision": {"blessed": blessed, "reasons": ["better than v1"]}}
    )
    if version:
        record_step(root, run_id, "register", {"model": "penguins", "version": version})
    finish_run(root, run_id, "succeeded")


def test_new_run_id_sorts_by_time_and_is_unique() -> None:
    ids = [new_run_id() for _ in range(200)]
    assert len(set(ids)) == 200
    assert ids == sorted(ids)
    assert re.fullmatch(r"\d{8}-\d{6}-\d{6}-[0-9a-f]{6}", ids[0])


def test_record_step_writes_one_atomic_file(registry_root: Path) -> None:
    path = record_step(registry_root, "run-1", "train", {"params": {"max_depth": 3}})
    assert path == registry_root / "runs/run-1/train.json"
    data = json.loads(path.read_text())
    assert data["params"] == {"max_depth": 3} and data["recorded_at"].endswith("Z")
    assert [p.name for p in path.parent.iterdir()] == ["train.json"]  # no temp files left


def test_load_run_merges_steps(registry_root: Path) -> None:
    run_id = new_run_id()
    _record_full_run(registry_root, run_id, "random_forest", 0.97, True, "v2")
    run = load_run(registry_root, run_id)
    assert run.run_id == run_id
    assert run.params == {"n_estimators": 100, "seed": 0}
    assert run.metrics["accuracy"] == 0.97
    assert run.fingerprint == "ab" * 32
    assert run.estimator == "random_forest"
    assert (run.model, run.version) == ("penguins", "v2")
    assert run.blessed is True and run.reasons == ["better than v1"]
    assert run.status == "succeeded"
    assert run.started_at is not None and run.finished_at is not None
    assert run.started_at <= run.finished_at
    assert set(run.steps) == {"extract", "train", "evaluate", "bless", "register", "finish"}
    assert run.steps["extract"]["fingerprint"]["rows"] == 344
    assert json.loads(json.dumps(run.to_dict()))["blessed"] is True


def test_running_and_failed_runs(registry_root: Path) -> None:
    record_step(registry_root, "r1", "extract", {"fingerprint": "f" * 64})
    running = load_run(registry_root, "r1")
    assert running.status == "running" and running.finished_at is None
    assert running.blessed is None and running.reasons == []
    finish_run(registry_root, "r1", "failed", error="data: column 'x' missing")
    failed = load_run(registry_root, "r1")
    assert failed.status == "failed" and failed.error == "data: column 'x' missing"
    with pytest.raises(KfopsError, match="not final"):
        finish_run(registry_root, "r1", "done")


def test_same_step_recorded_twice_keeps_latest(registry_root: Path) -> None:
    record_step(registry_root, "r1", "evaluate", {"metrics": {"accuracy": 0.5}})
    record_step(registry_root, "r1", "evaluate", {"metrics": {"accuracy": 0.9}})
    assert load_run(registry_root, "r1").metrics == {"accuracy": 0.9}


def test_decision_as_bool(registry_root: Path) -> None:
    record_step(registry_root, "r1", "bless", {"decision": False})
    assert load_run(registry_root, "r1").blessed is False
    record_step(registry_root, "r2", "bless", {"blessed": True})
    assert load_run(registry_root, "r2").blessed is True


def test_list_runs_newest_first_with_limit(registry_root: Path) -> None:
    assert list_runs(registry_root) == []
    ids = [new_run_id() for _ in range(3)]
    for i, run_id in enumerate(ids):
        _record_full_run(registry_root, run_id, "logistic", 0.9 + i / 100, i == 2, None)
    assert [r.run_id for r in list_runs(registry_root)] == ids[::-1]
    assert [r.run_id for r in list_runs(registry_root, limit=2)] == ids[:0:-1]
    # a run with an unreadable step is shown, not hidden and not fatal
    (registry_root / "runs" / ids[0] / "broken.json").write_text("{not json")
    runs = {r.run_id: r for r in list_runs(registry_root)}
    assert runs[ids[0]].status == "unreadable" and "broken.json" in (runs[ids[0]].error or "")


def test_unknown_run_and_bad_names(registry_root: Path) -> None:
    record_step(registry_root, "known-run", "train", {})
    with pytest.raises(KfopsError, match=r"unknown run 'nope'.*recent runs: known-run"):
        load_run(registry_root, "nope")
    for bad_run in ("../escape", "", ".hidden", "a/b"):
        with pytest.raises(KfopsError, match="run id"):
            record_step(registry_root, bad_run, "train", {})
    for bad_step in ("../x", "a.b", ""):
        with pytest.raises(KfopsError, match="step name"):
            record_step(registry_root, "r1", bad_step, {})
    with pytest.raises(KfopsError, match="mapping"):
        record_step(registry_root, "r1", "train", ["not", "a", "dict"])  # type: ignore[arg-type]


def test_compare_table_side_by_side(registry_root: Path) -> None:
    a, b = new_run_id(), new_run_id()
    _record_full_run(registry_root, a, "logistic", 0.91234, False, None)
    _record_full_run(registry_root, b, "random_forest", 0.97, True, "v3")
    runs = list_runs(registry_root)
    table = compare_table(runs)
    lines = table.splitlines()
    header = lines[0].split()
    assert header[:3] == ["run", "id", "status"]
    for col in ("estimator", "params", "data", "accuracy", "f1_macro", "blessed", "version"):
        assert col in header
    row_b, row_a = lines[2], lines[3]  # newest first
    assert b in row_b and "random_forest" in row_b and "yes" in row_b and "v3" in row_b
    assert a in row_a and "logistic" in row_a and "0.9123" in row_a and "no" in row_a
    assert "abababababab" in row_a and "ab" * 13 not in row_a  # short fingerprint
    assert "n_estimators=100,seed=0" in row_a
    assert compare_table([]) == "no runs recorded"
    only = compare_table(runs, metrics=["f1_macro"])
    assert "accuracy" not in only and "0.96" in only


def test_pick_metrics_prefers_primary_and_skips_non_scalars(registry_root: Path) -> None:
    record_step(
        registry_root,
        "r1",
        "evaluate",
        {"metrics": {"zeta": 1.0, "accuracy": 0.9, "confusion": [[1, 0], [0, 1]], "ok": True}},
    )
    record_step(registry_root, "r2", "evaluate", {"metrics": {"rmse": 2.5}})
    runs = list_runs(registry_root)
    assert pick_metrics(runs) == ["accuracy", "rmse", "zeta"]
    assert pick_metrics(runs, max_metrics=1) == ["accuracy"]


def test_parallel_steps_from_processes(registry_root: Path) -> None:
    """Steps of one run written concurrently by separate processes all land intact."""
    child = textwrap.dedent(
        """
        import sys
        from kfops.tracking import record_step
        root, step = sys.argv[1], sys.argv[2]
        for i in range(50):
            record_step(root, "par", step, {"metrics": {step: i}})
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", child, str(registry_root), f"s{k}"])
        for k in range(3)
    ]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    run = load_run(registry_root, "par")
    assert run.metrics == {"s0": 49, "s1": 49, "s2": 49}
