"""One window of a served model's traffic: data quality, drift and quality, and the verdict.

``run_monitoring`` streams the capture of a model for a time range (``read_window``: hourly
profiles for closed hours, raw rows in chunks for the rest, never the whole window in memory),
checks the rows against the
version's data contract, compares them with the version's reference profile (``kfops.drift``),
joins late labels by request id to measure the model's quality against its training metrics,
and decides under a ``MonitoringPolicy`` whether the model needs retraining.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from kfops.contract_model import Contract
from kfops.defaults import MONITORING_WINDOW_HOURS
from kfops.drift import ReferenceProfile
from kfops.errors import ConfigError
from kfops.monitoring import hourly
from kfops.monitoring.capture import (
    CHUNK_ROWS,
    FILE_SLACK_S,
    CaptureScan,
    iso,
    iter_capture,
    list_capture_files,
)
from kfops.monitoring.fold import (
    StreamingLabelJoin,
    WindowFold,
    fold_chunk,
    hour_folds_merge,
    served_mask,
)
from kfops.monitoring.labels import Labels, read_labels
from kfops.monitoring.policy import MonitoringPolicy
from kfops.monitoring.quality import assess_window, compare_quality, window_metrics
from kfops.monitoring.result import NO_ROWS, OK, RETRAIN, TOO_FEW, MonitoringResult
from kfops.registry import CHAMPION, Registry


def run_monitoring(
    model: str,
    registry_root: str | Path,
    capture_dir: str | Path,
    *,
    start: float | None = None,
    end: float | None = None,
    labels_dir: str | Path | None = None,
    version: str | None = None,
    policy: MonitoringPolicy | None = None,
    hourly_profiles: bool = True,
    chunk_rows: int = CHUNK_ROWS,
) -> MonitoringResult:
    """Monitor one window of ``model`` against ``version`` (default: its champion).

    The window is streamed in chunks of ``chunk_rows`` rows and folded into counts
    (``kfops.monitoring.fold``); with ``hourly_profiles`` the closed hours it covers are taken
    from their hourly profiles where valid, and written where missing
    (``kfops.monitoring.hourly``).
    """
    from kfops.drift import ReferenceProfile, detect_drift
    from kfops.io import read_json

    policy = policy or MonitoringPolicy()
    end = time.time() if end is None else end
    start = end - MONITORING_WINDOW_HOURS * 3600 if start is None else start
    if start >= end:
        raise ConfigError(f"window start {iso(start)} is not before its end {iso(end)}")
    mv = Registry(registry_root).verify(model, version or CHAMPION)
    contract = Contract.load(mv.path / "contract.json")
    reference = ReferenceProfile.load(mv.path)
    labels = read_labels(labels_dir) if labels_dir is not None else None

    read = read_window(
        capture_dir, model, mv.version, start, end, reference, contract,
        labels=labels, hourly_profiles=hourly_profiles, chunk_rows=chunk_rows,
    )  # fmt: skip
    fold = read.fold
    stats = {
        "model": model,
        "start": iso(start),
        "end": iso(end),
        "start_ts": start,
        "end_ts": end,
        "rows": fold.rows + fold.other_version_rows,
        "files": read.scan.files,
        "lines": read.lines,
        "malformed": read.malformed,
        "outside_window": read.scan.outside_window,
        "malformed_examples": list(read.scan.examples),
        "hours_from_profiles": len(read.profiled_hours),
        "hours_compacted": len(read.compacted_hours),
    }
    result = MonitoringResult(model, mv.version, NO_ROWS, False, [], stats, 0)
    if stats["rows"] == 0:
        result.reasons.append(
            f"no rows captured for {model} between {result.capture['start']} and "
            f"{result.capture['end']}"
        )
        return result

    # Drift is measured against the version that served the rows: rows of an older version
    # (before a hot swap) would flag the very shift the new version was trained on.
    result.rows = fold.rows
    result.other_version_rows = fold.other_version_rows
    if result.rows < policy.min_rows:
        result.status = TOO_FEW if result.rows else NO_ROWS
        result.reasons.append(
            f"{result.rows} rows of {mv.version} in the window (< {policy.min_rows}): no verdict"
        )
        return result

    report = fold.quality.to_report(contract)
    result.data_quality = report.to_dict()
    profile = fold.window_profile()
    result.drift = detect_drift(reference, profile, policy.drift_policy())
    assess_window(result, mv, policy, reference, profile)

    if labels is not None and read.join is not None:
        joined, result.labels = read.join.joined, read.join.stats()
        training = (
            read_json(mv.path / "metrics.json") if (mv.path / "metrics.json").is_file() else {}
        )
        result.quality = compare_quality(
            window_metrics(joined, contract) if len(joined) else {},
            training,
            contract.task,
            len(joined),
            policy,
        )

    result.status = OK
    if not report.ok:
        result.reasons.append(
            f"data violates the contract ({len(report.errors)} errors: "
            + "; ".join(v.message for v in report.errors[:3])
            + "): not retraining on it"
        )
        return result
    if policy.retrain_on_drift and result.ranking is not None and result.ranking.alerting:
        result.reasons.append(f"drift in {result.drift_annotation}")
    if result.quality is not None and result.quality.decayed:
        result.reasons.append(f"quality decay: {result.quality.reason}")
    if result.reasons:
        result.status, result.retrain = RETRAIN, True
    return result


@dataclass
class WindowRead:
    """A window of one version's traffic, folded: what ``read_window`` returns."""

    fold: WindowFold
    scan: CaptureScan
    join: StreamingLabelJoin | None
    profiled_hours: list[float] = field(default_factory=list)  # taken from hourly profiles
    compacted_hours: list[float] = field(default_factory=list)  # profiles written now
    lines: int = 0  # raw lines read, plus those of profiled hours whose files were not read
    malformed: int = 0


def read_window(
    capture_dir: str | Path,
    model: str,
    version: str,
    start: float,
    end: float,
    reference: ReferenceProfile,
    contract: Contract,
    *,
    labels: Labels | None = None,
    hourly_profiles: bool = True,
    chunk_rows: int = CHUNK_ROWS,
    now: float | None = None,
) -> WindowRead:
    """Fold the rows ``version`` served in [start, end): hourly profiles for the closed hours
    that have a valid one, raw rows (streamed in chunks) for the rest; closed hours read raw
    are compacted. With ``labels`` every raw row is streamed past the label index (labels come
    late, no profile holds them), but rows of profiled hours are only joined, not counted."""
    now = time.time() if now is None else now
    files = list_capture_files(capture_dir, model, [(start, end)])
    closed = [h for h in hourly.full_hours(start, end) if hourly.is_closed(h, now)]
    closed = closed if hourly_profiles else []
    used: dict[float, hourly.HourProfile] = {}
    for hour in closed:
        found = hourly.load(capture_dir, model, version, hour, reference.profile_id, files)
        if found is not None:
            used[hour] = found
    skip = frozenset(used)
    raw_intervals = _minus_hours(start, end, sorted(skip))
    raw_files = files if labels is not None else [
        f for f in files if f.hour is None or any(
            f.hour < e + FILE_SLACK_S and f.hour + 3600 + FILE_SLACK_S > s
            for s, e in raw_intervals)
    ]  # fmt: skip
    scan = CaptureScan()
    join = StreamingLabelJoin(labels) if labels is not None else None
    by_hour: dict[float, WindowFold] = {}
    if raw_files and (raw_intervals or join is not None):
        chunks = iter_capture(
            capture_dir, model, start, end, chunk_rows=chunk_rows, scan=scan,
            files=raw_files, skip_hours=frozenset() if join is not None else skip,
        )  # fmt: skip
        for chunk in chunks:
            if join is not None:
                served = served_mask(chunk.meta, version)
                join.add(chunk.features[served], chunk.meta[served])
            folds = fold_chunk(chunk, reference, contract, version)
            hour_folds_merge({h: f for h, f in folds.items() if h not in skip}, by_hour)
    compact = {h: by_hour.get(h) for h in closed if h not in used}
    read = WindowRead(WindowFold.empty(reference), scan, join, sorted(used))
    read.lines, read.malformed = scan.lines, scan.malformed
    for hour, profile in used.items():
        by_hour[hour] = profile.fold
        if hour not in scan.by_file_hour:  # its own files were not read: count from the profile
            read.lines += profile.lines
            read.malformed += profile.malformed
    for hour in sorted(by_hour):  # in time order, whatever came from where
        read.fold = read.fold.merge(by_hour[hour])
    for hour, fold in compact.items():
        sources = hourly.sources_of(files, hour)
        if not sources:
            continue  # no file can hold rows of this hour: nothing to save reading
        lines, malformed = scan.by_file_hour.get(hour, [0, 0])
        profile = hourly.HourProfile(
            model, version, hour, fold or WindowFold.empty(reference), sources,
            lines, malformed,
        )  # fmt: skip
        if hourly.save(capture_dir, profile):
            read.compacted_hours.append(hour)
    return read


def _minus_hours(start: float, end: float, hours: list[float]) -> list[tuple[float, float]]:
    """[start, end) without the given (sorted, inside) hours, as intervals."""
    out, cursor = [], start
    for hour in hours:
        if hour > cursor:
            out.append((cursor, hour))
        cursor = max(cursor, hour + 3600)
    if cursor < end:
        out.append((cursor, end))
    return out
