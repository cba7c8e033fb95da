"""One window of a served model's traffic: data quality, drift and quality, and the verdict.

``run_monitoring`` reads the capture of a model for a time range, checks the rows against the
version's data contract, compares them with the version's reference profile (``kfops.drift``),
joins late labels by request id to measure the model's quality against its training metrics,
and decides under a ``MonitoringPolicy`` whether the model needs retraining.
"""

from __future__ import annotations

from pathlib import Path

from kfops.contract_model import Contract
from kfops.monitoring.capture import CaptureWindow, read_capture
from kfops.monitoring.labels import match_labels, read_labels
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
) -> MonitoringResult:
    """Monitor one window of ``model`` against ``version`` (default: its champion)."""
    from kfops.contract import validate
    from kfops.drift import ReferenceProfile, detect_drift, profile_window
    from kfops.io import read_json

    policy = policy or MonitoringPolicy()
    mv = Registry(registry_root).verify(model, version or CHAMPION)
    contract = Contract.load(mv.path / "contract.json")
    window = read_capture(capture_dir, model, start, end)
    result = MonitoringResult(model, mv.version, NO_ROWS, False, [], window.stats(), 0)
    if window.rows == 0:
        result.reasons.append(
            f"no rows captured for {model} between {result.capture['start']} and "
            f"{result.capture['end']}"
        )
        return result

    # Drift is measured against the version that served the rows: rows of an older version
    # (before a hot swap) would flag the very shift the new version was trained on.
    served = window.meta["version"].fillna(mv.version) == mv.version
    feats = window.features[served.to_numpy()].reset_index(drop=True)
    result.rows = int(served.sum())
    result.other_version_rows = window.rows - result.rows
    if result.rows < policy.min_rows:
        result.status = TOO_FEW if result.rows else NO_ROWS
        result.reasons.append(
            f"{result.rows} rows of {mv.version} in the window (< {policy.min_rows}): no verdict"
        )
        return result

    report = validate(feats, contract, check_target=False)
    result.data_quality = report.to_dict()
    reference = ReferenceProfile.load(mv.path)
    profile = profile_window(feats, reference)
    result.drift = detect_drift(reference, profile, policy.drift_policy())
    assess_window(result, mv, policy, reference, profile)

    if labels_dir is not None:
        labels = read_labels(labels_dir)
        meta = window.meta[served.to_numpy()].reset_index(drop=True)
        join = match_labels(CaptureWindow(model, window.start, window.end, feats, meta), labels)
        joined, result.labels = join.frame, join.stats()
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
