"""Where a local run keeps its files under the registry root, and how many it keeps.

Layout (one home for these paths):

- ``<registry>/runs/<run_id>/*.json``: the run record (kfops.tracking); small, always kept, so
  ``kfops runs`` keeps the whole history.
- ``<registry>/runs/<run_id>/pipeline/``: kfp.local's pipeline root for that run (every task's
  artifacts: snapshot, splits, model, reports) and the staged input file.
- ``<registry>/runs/<run_id>/run.log``: everything the executor printed (kfp.local's task logs).
- ``<registry>/capture/``: payload capture of ``kfops serve`` (read by ``kfops monitor``).
- ``<registry>/reports/<model>/<time>/``: ``kfops monitor`` reports.

Retention (``prune``) removes the ``pipeline/`` directory and ``run.log`` of all but the newest
``keep`` runs, at the start of each run. It never touches ``<registry>/models`` (versions and
aliases), nor the run records, nor a run an alias points at (its snapshot is the version's
training data, named in the lineage as ``snapshot_uri``), nor a run that is still writing.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from kfops import tracking
from kfops.defaults import KEEP_RUNS
from kfops.errors import ConfigError

RUNS_DIR = "runs"  # the same directory kfops.tracking records runs in
PIPELINE_DIR = "pipeline"
LOG_FILE = "run.log"
CAPTURE_DIR = "capture"
REPORTS_DIR = "reports"
DEFAULT_KEEP_RUNS = KEEP_RUNS  # KFOPS_KEEP_RUNS / `kfops run --keep-runs`
# A run without a final status whose files changed more recently than this may still be running
# (another `kfops run` on the same registry): retention leaves it alone.
ACTIVE_GRACE_S = 24 * 3600.0


@dataclass(frozen=True)
class RunRoot:
    """The files of one local run under the registry root."""

    registry_root: Path
    run_id: str

    @property
    def path(self) -> Path:
        return self.registry_root / RUNS_DIR / self.run_id

    @property
    def pipeline_root(self) -> Path:
        """kfp.local's pipeline root for this run."""
        return self.path / PIPELINE_DIR

    @property
    def staging(self) -> Path:
        """Where an input file is staged for the tasks (inside the pipeline root, so a
        container sees it); removed after the run."""
        return self.pipeline_root / "inputs"

    @property
    def log(self) -> Path:
        return self.path / LOG_FILE


def capture_root(registry_root: Path) -> Path:
    return registry_root / CAPTURE_DIR


def reports_root(registry_root: Path) -> Path:
    return registry_root / REPORTS_DIR


def check_keep(keep: int) -> int:
    if keep < 0:
        raise ConfigError(f"--keep-runs {keep} must be 0 (keep every run) or more")
    return keep


def prune(registry_root: Path, keep: int, now: float | None = None) -> list[Path]:
    """Remove pipeline roots and logs of all but the newest ``keep`` runs; 0 keeps every run.

    Returns the removed paths. Runs are ordered as ``kfops runs`` lists them (newest first).
    """
    check_keep(keep)
    runs_dir = registry_root / RUNS_DIR
    if keep == 0 or not runs_dir.is_dir():
        return []
    now = time.time() if now is None else now
    order = {r.run_id: i for i, r in enumerate(tracking.list_runs(registry_root))}
    candidates = [
        d
        for d in runs_dir.iterdir()
        if d.is_dir() and ((d / PIPELINE_DIR).exists() or (d / LOG_FILE).exists())
    ]
    # Unrecorded leftovers sort as the oldest.
    candidates.sort(key=lambda d: order.get(d.name, len(order)))
    protected = _aliased_runs(registry_root)
    removed: list[Path] = []
    for run_dir in candidates[keep:]:
        if run_dir.name in protected or _maybe_running(registry_root, run_dir, now):
            continue
        for path in (run_dir / PIPELINE_DIR, run_dir / LOG_FILE):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists():
                path.unlink(missing_ok=True)
            else:
                continue
            removed.append(path)
    return removed


def _aliased_runs(registry_root: Path) -> set[str]:
    """Run ids of the versions an alias points at (champion, challenger, ...)."""
    from kfops.registry import Registry

    registry = Registry(registry_root)
    runs: set[str] = set()
    for model in registry.models():
        for version in set(registry.aliases(model).values()):
            try:
                run_id = registry.resolve(model, version).lineage.get("run_id")
            except Exception:  # an unreadable version: keep what might belong to it
                continue
            if isinstance(run_id, str):
                runs.add(run_id)
    return runs


def _maybe_running(registry_root: Path, run_dir: Path, now: float) -> bool:
    try:
        status = tracking.load_run(registry_root, run_dir.name).status
    except Exception:  # no record or an unreadable one: judge by the files alone
        status = "running"
    if status in tracking.TERMINAL_STATUSES:
        return False
    newest = max((p.stat().st_mtime for p in run_dir.iterdir()), default=0.0)
    return now - newest < ACTIVE_GRACE_S
