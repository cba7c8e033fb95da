"""Pushgateway: a window's figures as gauges, for the alerts that watch monitoring jobs."""

from __future__ import annotations

import logging

from kfops.defaults import PUSHGATEWAY_JOB
from kfops.errors import ClusterError
from kfops.monitoring.result import MonitoringResult

log = logging.getLogger("kfops.monitoring")


def push_metrics(
    result: MonitoringResult, gateway: str, job: str = PUSHGATEWAY_JOB, timeout: float = 10.0
) -> None:
    """Push the window's figures (grouped by model) to a Prometheus Pushgateway.

    ``kfops_monitoring_last_success_timestamp_seconds`` is what the stale-job alert watches.
    An unreachable gateway raises ClusterError.
    """
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

    reg = CollectorRegistry()

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, labels, registry=reg)

    gauge("kfops_monitoring_rows", "Rows of the monitored version in the window.").set(result.rows)
    gauge("kfops_monitoring_malformed_lines", "Captured lines skipped as malformed.").set(
        result.capture["malformed"]
    )
    gauge("kfops_monitoring_retrain_required", "1 when the window crossed the policy.").set(
        1 if result.retrain else 0
    )
    if result.drift is not None:
        psi = gauge("kfops_monitoring_feature_drift_psi", "PSI per feature.", ("feature",))
        for name, value in result.drift_scores.items():
            psi.labels(name).set(value)
        drifted = gauge(
            "kfops_monitoring_feature_drifted", "1 when a feature drifted.", ("feature",)
        )
        for f in result.drift.features:
            drifted.labels(f.name).set(1 if f.drifted else 0)
        gauge("kfops_monitoring_dataset_drift", "1 when the dataset drifted.").set(
            1 if result.drift.dataset_drift else 0
        )
    if result.importance:
        share = gauge(
            "kfops_monitoring_feature_importance_share",
            "Permutation-importance share of each feature (the version's lineage).",
            ("feature",),
        )
        for name, value in result.importance.items():
            share.labels(name).set(value)
    if result.ranking is not None:
        # The drifted features the policy acts on, valued by importance share (-1: unknown);
        # the alert annotations name the top ones (monitoring/prometheus/kfops-rules.yml).
        ranked = gauge(
            "kfops_monitoring_drifted_feature_importance",
            "Importance share of each drifted feature the policy acts on (-1: unknown).",
            ("feature",),
        )
        for r in result.ranking.features:
            if not r.ignored:
                ranked.labels(r.feature).set(-1 if r.share is None else r.share)
    if result.null_shares is not None:
        null_share = gauge(
            "kfops_monitoring_feature_null_share",
            "Share of missing values per feature in the window.",
            ("feature",),
        )
        changed = gauge(
            "kfops_monitoring_feature_null_share_changed",
            "1 when a feature's share of missing values changed beyond the policy's tolerance.",
            ("feature",),
        )
        for n in result.null_shares.features:
            null_share.labels(n.feature).set(n.window_share)
            changed.labels(n.feature).set(1 if n.changed else 0)
    if result.data_quality is not None:
        unseen = gauge(
            "kfops_monitoring_unseen_category_rows",
            "Window rows whose value is outside the contract's domain, per feature.",
            ("feature",),
        )
        for u in result.unseen:
            unseen.labels(u["feature"]).set(u["rows"])
    if result.data_quality is not None:
        gauge("kfops_monitoring_data_quality_errors", "Contract violations (errors).").set(
            result.data_quality["errors"]
        )
    if result.labels is not None:
        labels = gauge(
            "kfops_monitoring_labels",
            "Late labels: read, joined to captured rows, ambiguous ids, unmatched.",
            ("state",),
        )
        for state in ("read", "joined", "ambiguous_ids", "unmatched"):
            labels.labels(state).set(result.labels.get(state, 0))
    if result.quality is not None:
        gauge("kfops_monitoring_labeled_rows", "Window rows with a late label.").set(
            result.quality.labeled_rows
        )
        quality = gauge("kfops_monitoring_quality", "Window metric from late labels.", ("metric",))
        for name, value in result.quality.metrics.items():
            quality.labels(name).set(value)
    gauge("kfops_monitoring_last_success_timestamp_seconds", "End of the last good run.").set(
        result.finished_at
    )
    try:
        push_to_gateway(
            gateway, job=job, registry=reg, grouping_key={"model": result.model}, timeout=timeout
        )
    except OSError as exc:  # URLError, connection refused, timeouts
        raise ClusterError(f"cannot push to the Pushgateway at {gateway}: {exc}") from None
    log.info("pushed monitoring figures of %s to %s (job=%s)", result.model, gateway, job)
