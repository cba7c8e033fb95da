"""run_training's files and records when it stops before kfp.local runs a task: the log is
under the registry root, the record is final, retention has run, nothing is printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from kfops import tracking
from kfops.errors import ConfigError, KfopsError
from kfops.local_runner import TrainingParams, run_training
from kfops.run_roots import RunRoot


def _params(tmp_path: Path, **overrides: object) -> TrainingParams:
    data = tmp_path / "data.csv"
    data.write_text("a,y\n1,0\n2,1\n")
    fields = {
        "data_uri": str(data),
        "target": "y",
        "model_name": "m",
        "registry_root": str(tmp_path / "registry"),
    }
    return TrainingParams(**{**fields, **overrides})  # type: ignore[arg-type]


def _old_run(registry: Path, run_id: str) -> RunRoot:
    rr = RunRoot(registry, run_id)
    tracking.record_step(registry, run_id, "params", {})
    tracking.finish_run(registry, run_id, "failed", "old")
    rr.pipeline_root.mkdir(parents=True)
    rr.log.write_text("old\n")
    return rr


def test_a_run_stopped_before_any_task_is_recorded_failed_quietly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = tmp_path / "registry"
    old = [_old_run(registry, f"2026010{i}-000000-000000-aaaaaa") for i in range(1, 4)]
    # kfp.local's SubprocessRunner rewrites 'python3' in task arguments: refused up front.
    params = _params(tmp_path, target="python3_score")
    with pytest.raises(ConfigError, match="python3"):
        run_training(params, run_id="run-1", keep_runs=2)
    record = tracking.load_run(registry, "run-1")
    assert record.status == "failed" and "python3" in (record.error or "")
    # Retention ran first: two runs kept (the new one and the newest old one).
    assert [rr.pipeline_root.exists() for rr in old] == [False, False, True]
    assert RunRoot(registry, "run-1").log.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv", "registry"]
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_a_bad_run_id_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(KfopsError, match="run id"):
        run_training(_params(tmp_path), run_id="../escape")
    assert not (tmp_path / "escape").exists() and not (tmp_path / "registry" / "runs").exists()


def test_negative_retention_is_refused_before_anything(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--keep-runs"):
        run_training(_params(tmp_path), keep_runs=-1)
    assert not (tmp_path / "registry").exists()


def test_json_error_is_one_document_on_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`kfops run --json` that fails still prints exactly one JSON document on stdout; the
    one-line error goes to stderr."""
    import json

    from kfops.cli import main

    code = main(["run", "--json", "--estimator", "random_forrest",
                 "--registry", str(tmp_path / "registry")])  # fmt: skip
    assert code == 2
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["status"] == "failed" and "random_forest" in doc["error"]
    assert err.strip().splitlines()[-1].startswith("error: ")
