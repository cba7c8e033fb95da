"""Local run history: the stand-in for the Kubeflow dashboard's run comparison.

Each pipeline step writes one JSON file, ``<root>/runs/<run_id>/<step>.json`` (atomically, so
steps running in parallel processes or containers never clash). ``load_run`` merges the steps
into one :class:`RunRecord`; ``compare_table`` prints runs side by side.

Keys a step payload may carry and how they merge (steps in the order they were recorded):
``params``/``metrics`` (dicts, updated), ``decision`` (dict with ``blessed``/``reasons``, or a
bool), ``blessed``, ``fingerprint`` (sha256 string or a dict with ``sha256``), ``estimator``,
``model``, ``version``, ``data_uri``, ``status``, ``error``, ``started_at``, ``finished_at``
(last value wins). Anything else stays available per step in ``RunRecord.steps``.
"""

from __future__ import annotations

import math
import os
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tabulate import tabulate

from kfops.errors import KfopsError
from kfops.io import read_json, write_json_atomic

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "canceled"})
RECORDED_AT = "recorded_at"

_RUN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_STEP_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_SCALAR_KEYS = ("estimator", "model", "version", "data_uri", "status", "error")
# Shown first in compare_table when present; then the other scalar metrics alphabetically.
PRIMARY_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "f1_macro",
    "f1_weighted",
    "roc_auc",
    "roc_auc_ovr",
    "log_loss",
    "rmse",
    "mae",
    "r2",
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def new_run_id() -> str:
    """A run id that sorts by creation time: ``YYYYMMDD-HHMMSS-ffffff-<6 hex>`` (UTC)."""
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S-%f}-{secrets.token_hex(3)}"


def _runs_dir(root: str | os.PathLike[str]) -> Path:
    return Path(root) / "runs"


def check_run_id(run_id: object) -> str:
    """``run_id`` if it is a valid run id (a safe directory name), else KfopsError."""
    return _check_run_id(run_id)


def _check_run_id(run_id: object) -> str:
    if not isinstance(run_id, str) or not _RUN_ID_RE.fullmatch(run_id):
        raise KfopsError(
            f"run id {run_id!r} is invalid: use letters, digits, '.', '_' and '-' "
            "(at most 128, not starting with '.' or '-')"
        )
    return run_id


def record_step(
    root: str | os.PathLike[str], run_id: str, step: str, payload: Mapping[str, Any]
) -> Path:
    """Write ``payload`` as ``<root>/runs/<run_id>/<step>.json`` and return the path.

    Recording the same step again replaces it (a retried step keeps its latest outcome).
    ``recorded_at`` is added unless the payload has one.
    """
    _check_run_id(run_id)
    if not isinstance(step, str) or not _STEP_RE.fullmatch(step):
        raise KfopsError(f"step name {step!r} is invalid: use letters, digits, '_' and '-'")
    if not isinstance(payload, Mapping):
        raise KfopsError(
            f"payload of step {step!r} must be a mapping, got {type(payload).__name__}"
        )
    data = {RECORDED_AT: _now(), **payload}
    path = _runs_dir(root) / run_id / f"{step}.json"
    write_json_atomic(path, data)
    return path


def finish_run(
    root: str | os.PathLike[str], run_id: str, status: str, error: str | None = None
) -> Path:
    """Record the run's final status (``succeeded``, ``failed`` or ``canceled``)."""
    if status not in TERMINAL_STATUSES:
        raise KfopsError(
            f"status {status!r} is not final; use one of {', '.join(sorted(TERMINAL_STATUSES))}"
        )
    payload: dict[str, Any] = {"status": status, "finished_at": _now()}
    if error is not None:
        payload["error"] = error
    return record_step(root, run_id, "finish", payload)


@dataclass
class RunRecord:
    """All steps of one run merged into one view."""

    run_id: str
    path: Path
    steps: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    decision: dict[str, Any] | None = None
    fingerprint: str | None = None
    estimator: str | None = None
    model: str | None = None
    version: str | None = None
    data_uri: str | None = None
    status: str = "running"
    error: str | None = None
    started_at: str | None = None
    finished_at: str | None = None

    @property
    def blessed(self) -> bool | None:
        if self.decision is None or "blessed" not in self.decision:
            return None
        return bool(self.decision["blessed"])

    @property
    def reasons(self) -> list[str]:
        reasons = (self.decision or {}).get("reasons") or []
        return [str(r) for r in reasons] if isinstance(reasons, list) else [str(reasons)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "params": self.params,
            "metrics": self.metrics,
            "decision": self.decision,
            "blessed": self.blessed,
            "fingerprint": self.fingerprint,
            "estimator": self.estimator,
            "model": self.model,
            "version": self.version,
            "data_uri": self.data_uri,
            "error": self.error,
            "steps": self.steps,
        }


def _merge(record: RunRecord, step: str, payload: dict[str, Any]) -> None:
    for key in ("params", "metrics"):
        value = payload.get(key)
        if isinstance(value, Mapping):
            getattr(record, key).update(value)
    if "decision" in payload:
        decision = payload["decision"]
        if isinstance(decision, Mapping):
            record.decision = dict(decision)
        elif isinstance(decision, bool):
            record.decision = {"blessed": decision}
    if isinstance(payload.get("blessed"), bool):
        record.decision = {**(record.decision or {}), "blessed": payload["blessed"]}
    if "fingerprint" in payload:
        fp = payload["fingerprint"]
        if isinstance(fp, Mapping):
            fp = fp.get("sha256")
        record.fingerprint = None if fp is None else str(fp)
    for key in _SCALAR_KEYS:
        if payload.get(key) is not None:
            setattr(record, key, str(payload[key]))
    recorded = payload.get(RECORDED_AT)
    started = payload.get("started_at") or recorded
    if started and (record.started_at is None or str(started) < record.started_at):
        record.started_at = str(started)
    if payload.get("finished_at"):
        record.finished_at = str(payload["finished_at"])
    elif payload.get("status") in TERMINAL_STATUSES and recorded:
        record.finished_at = str(recorded)


def load_run(root: str | os.PathLike[str], run_id: str) -> RunRecord:
    """Merge every recorded step of ``run_id``; KfopsError if the run is unknown."""
    directory = _runs_dir(root) / _check_run_id(run_id)
    step_files = sorted(p for p in directory.glob("*.json") if not p.name.startswith("."))
    if not step_files:
        recent = ", ".join(r.run_id for r in list_runs(root, limit=5)) or "none"
        raise KfopsError(f"unknown run {run_id!r} in {_runs_dir(root)}; recent runs: {recent}")
    loaded: list[tuple[str, str, dict[str, Any]]] = []
    for path in step_files:
        try:
            data = read_json(path)
        except (OSError, ValueError) as exc:
            raise KfopsError(f"run {run_id!r}: step file {path} is unreadable ({exc})") from None
        if not isinstance(data, dict):
            raise KfopsError(f"run {run_id!r}: step file {path} does not hold a JSON object")
        loaded.append((str(data.get(RECORDED_AT, "")), path.stem, data))
    record = RunRecord(run_id=run_id, path=directory)
    for _recorded, step, data in sorted(loaded, key=lambda item: (item[0], item[1])):
        record.steps[step] = data
        _merge(record, step, data)
    return record


def list_runs(root: str | os.PathLike[str], limit: int | None = None) -> list[RunRecord]:
    """Runs under ``root`` newest first (by start time, then run id).

    A run whose files cannot be read is listed with status ``unreadable`` rather than hiding
    every other run.
    """
    runs_dir = _runs_dir(root)
    if not runs_dir.is_dir():
        return []
    records = []
    for directory in runs_dir.iterdir():
        if not directory.is_dir() or not _RUN_ID_RE.fullmatch(directory.name):
            continue
        if not any(p for p in directory.glob("*.json") if not p.name.startswith(".")):
            continue
        try:
            records.append(load_run(root, directory.name))
        except KfopsError as exc:
            records.append(
                RunRecord(directory.name, directory, status="unreadable", error=str(exc))
            )
    records.sort(key=lambda r: (r.started_at or "", r.run_id), reverse=True)
    return records if limit is None else records[: max(limit, 0)]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def pick_metrics(runs: Iterable[RunRecord], max_metrics: int = 4) -> list[str]:
    """Scalar metric names to compare: known primary metrics first, then alphabetical."""
    names = {k for r in runs for k, v in r.metrics.items() if _is_number(v)}
    ordered = [m for m in PRIMARY_METRICS if m in names]
    ordered += sorted(names - set(ordered))
    return ordered[:max_metrics]


def _fmt_params(params: Mapping[str, Any], width: int) -> str:
    text = ",".join(f"{k}={params[k]}" for k in sorted(params)) or "-"
    return text if len(text) <= width else text[: width - 3] + "..."


def _fmt_metric(value: Any) -> str:
    return f"{value:.4g}" if _is_number(value) else "-"


def compare_table(
    runs: Sequence[RunRecord],
    metrics: Sequence[str] | None = None,
    *,
    params_width: int = 40,
) -> str:
    """Plain-text table of runs with parameters and metrics side by side."""
    if not runs:
        return "no runs recorded"
    metric_names = list(metrics) if metrics is not None else pick_metrics(runs)
    headers = ["run id", "status", "estimator", "params", "data", *metric_names]
    headers += ["blessed", "version"]
    rows = []
    for r in runs:
        blessed = {True: "yes", False: "no", None: "-"}[r.blessed]
        rows.append(
            [
                r.run_id,
                r.status,
                r.estimator or "-",
                _fmt_params(r.params, params_width),
                (r.fingerprint or "-")[:12],
                *(_fmt_metric(r.metrics.get(m)) for m in metric_names),
                blessed,
                r.version or "-",
            ]
        )
    # disable_numparse: metrics are pre-formatted; keep ids like "20261126-..." as text.
    align = ["left"] * 5 + ["right"] * len(metric_names) + ["left", "left"]
    return str(
        tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True, colalign=align)
    )
