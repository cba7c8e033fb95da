"""Run roots under the registry root, and the retention that keeps the newest N of them.

Real run records (kfops.tracking) and a real registry version: retention must remove only
pipeline roots and logs, never a version, a run record, a run an alias points at, or a run
that may still be writing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kfops import tracking
from kfops.errors import ConfigError
from kfops.registry import CHAMPION, Registry
from kfops.run_roots import ACTIVE_GRACE_S, RunRoot, capture_root, prune, reports_root


def _run(root: Path, run_id: str, status: str | None = "succeeded") -> RunRoot:
    """A local run as kfops.local_runner leaves it: record, pipeline root, log. Runs made
    later are newer (the record's time), as `kfops runs` orders them."""
    rr = RunRoot(root, run_id)
    tracking.record_step(root, run_id, "params", {"runner": "subprocess"})
    if status:
        tracking.finish_run(root, run_id, status)
    (rr.pipeline_root / "kfops-training-x" / "train").mkdir(parents=True)
    (rr.pipeline_root / "kfops-training-x" / "train" / "model").write_bytes(b"m" * 100)
    rr.log.write_text("executor output\n")
    return rr


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_layout_is_under_the_registry_root(tmp_path: Path) -> None:
    rr = RunRoot(tmp_path, "r1")
    assert rr.pipeline_root == tmp_path / "runs" / "r1" / "pipeline"
    assert rr.log == tmp_path / "runs" / "r1" / "run.log"
    assert rr.staging.is_relative_to(rr.pipeline_root)
    assert capture_root(tmp_path) == tmp_path / "capture"
    assert reports_root(tmp_path) == tmp_path / "reports"


def test_keeps_the_newest_n_and_every_record(tmp_path: Path) -> None:
    runs = [_run(tmp_path, f"2026010{i}-000000-000000-aaaaa{i}") for i in range(1, 6)]
    removed = prune(tmp_path, keep=2)
    assert sorted(removed) == sorted(p for rr in runs[:3] for p in (rr.pipeline_root, rr.log))
    for rr in runs[:3]:
        assert not rr.pipeline_root.exists() and not rr.log.exists()
    for rr in runs[3:]:
        assert rr.pipeline_root.is_dir() and rr.log.is_file()
    # The records stay: `kfops runs` still lists all five.
    assert len(tracking.list_runs(tmp_path)) == 5
    assert prune(tmp_path, keep=2) == []  # nothing more to do


def test_zero_keeps_everything_and_negative_is_refused(tmp_path: Path) -> None:
    runs = [_run(tmp_path, f"r{i}") for i in range(3)]
    assert prune(tmp_path, keep=0) == []
    assert all(rr.pipeline_root.is_dir() for rr in runs)
    with pytest.raises(ConfigError, match="--keep-runs"):
        prune(tmp_path, keep=-1)


def test_never_touches_versions_or_the_champions_run(tmp_path: Path) -> None:
    old = _run(tmp_path, "20260101-000000-000000-aaaaaa")
    _run(tmp_path, "20260102-000000-000000-bbbbbb")
    _run(tmp_path, "20260103-000000-000000-cccccc")
    model = tmp_path / "artifact.joblib"
    model.write_bytes(b"model")
    registry = Registry(tmp_path)
    registry.register("m", {"model.joblib": model}, {"run_id": old.run_id}, aliases=[CHAMPION])
    versions_before = {f for f in _files(tmp_path) if f.startswith("models/")}

    prune(tmp_path, keep=1)

    assert old.pipeline_root.is_dir(), "the champion's run keeps its snapshot"
    assert {f for f in _files(tmp_path) if f.startswith("models/")} == versions_before
    registry.verify("m", CHAMPION)


def test_a_run_still_writing_is_left_alone(tmp_path: Path) -> None:
    running = _run(tmp_path, "20260101-000000-000000-aaaaaa", status=None)
    stale = _run(tmp_path, "20260102-000000-000000-bbbbbb", status=None)
    _run(tmp_path, "20260103-000000-000000-cccccc")
    long_ago = 1_000_000.0
    for path in stale.path.iterdir():
        os.utime(path, (long_ago, long_ago))
    now = long_ago + ACTIVE_GRACE_S + 1
    for path in running.path.iterdir():
        os.utime(path, (now - 60, now - 60))

    removed = prune(tmp_path, keep=1, now=now)

    assert running.pipeline_root.is_dir()
    assert stale.pipeline_root in removed and not stale.pipeline_root.exists()


def test_old_layout_outside_the_registry_is_not_touched(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    legacy = tmp_path / "kfops-training-2026-01-01-00-00-00-000000"
    legacy.mkdir()
    for i in range(3):
        _run(registry, f"r{i}")
    prune(registry, keep=1)
    assert legacy.is_dir()


def test_monitor_reads_capture_and_writes_reports_under_the_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`kfops serve` captures to <registry>/capture by default; `kfops monitor` reads it there
    and writes its report under <registry>/reports, nothing next to the registry."""
    from kfops.cli import main
    from kfops.datasets import make_synthetic
    from tests.unit.test_monitoring import MODEL, T0, make_registry, write_capture

    monkeypatch.delenv("KFOPS_CAPTURE_DIR", raising=False)
    registry = make_registry(tmp_path)
    write_capture(capture_root(registry.root), make_synthetic(300, 4, 2, seed=6))
    before = set(registry.root.parent.iterdir())
    code = main(["monitor", "--model", MODEL, "--registry", str(registry.root),
                 "--start", str(T0), "--end", str(T0 + 3600), "--no-retrain"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "no_rows" not in out, out
    reports = list((reports_root(registry.root) / MODEL).glob("*/report.html"))
    assert len(reports) == 1 and str(reports[0]) in out
    assert set(registry.root.parent.iterdir()) == before
