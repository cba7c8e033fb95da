"""The kfops Grafana dashboard, built with Grafana's grafana-foundation-sdk (dev extra).

Writes monitoring/grafana/kfops.json, the one source of the dashboard; monitoring/
render_manifests.py wraps it in the ConfigMap the Grafana sidecar of kube-prometheus-stack loads
(label ``grafana_dashboard: "1"``). Every query uses only metrics kfops exports:

- the model server (src/kfops/serving/metrics.py): kfops_requests_total,
  kfops_request_duration_seconds, kfops_predictions_total, kfops_feature_drift_psi,
  kfops_feature_drift_window_rows, kfops_model_info, kfops_capture_records_total,
  kfops_capture_dropped_total;
- the retraining trigger (src/kfops/trigger.py): kfops_trigger_runs_total,
  kfops_trigger_skipped_total, kfops_trigger_webhooks_total, kfops_trigger_runs_in_flight;
- the monitoring job through the Pushgateway (src/kfops/monitoring.py push_metrics):
  kfops_monitoring_last_success_timestamp_seconds, kfops_monitoring_feature_drift_psi,
  kfops_monitoring_retrain_required.

tests/integration/_grafana.py runs every target against a real Prometheus and reports the
empty ones. Usage: python monitoring/grafana/dashboard.py [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().with_name("kfops.json")
UID = "kfops-models"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# The namespace label exists on a cluster (Prometheus Operator); "All" is .* so the same
# queries also match series scraped without it (a local Prometheus, the tests).
SEL = 'namespace=~"$namespace", model=~"$model"'
RATE = "$__rate_interval"


def _queries() -> list[dict[str, Any]]:
    """Rows of panels: (title, kind, unit, [(legend, expr)], description)."""
    total = f"sum by (model) (rate(kfops_requests_total{{{SEL}}}[{RATE}]))"

    def ratio(status: str) -> str:
        # `or ... * 0` keeps a 0 for models that had no such response at all.
        part = f'sum by (model) (rate(kfops_requests_total{{{SEL}, status=~"{status}"}}[{RATE}]))'
        return f"({part} or {total} * 0) / {total}"

    def quantile(q: str) -> str:
        return (
            f"histogram_quantile({q}, sum by (model, le) "
            f"(rate(kfops_request_duration_seconds_bucket{{{SEL}, endpoint!='explain'}}"
            f"[{RATE}])))"
        )

    records = f"sum by (model) (rate(kfops_capture_records_total{{{SEL}}}[{RATE}]))"
    dropped = f"sum by (model) (rate(kfops_capture_dropped_total{{{SEL}}}[{RATE}]))"
    return [
        {"row": "Traffic", "panels": [
            ("Request rate by status", "timeseries", "reqps",
             [("{{model}} {{status}}",
               f"sum by (model, status) (rate(kfops_requests_total{{{SEL}}}[{RATE}]))")],
             "Prediction requests per second (V1 and V2), by HTTP status."),
            ("Error ratio", "timeseries", "percentunit",
             [("{{model}} 5xx (server)", ratio("5..")), ("{{model}} 4xx (rejected)", ratio("4.."))],
             "Share of requests answered 5xx (alert KfopsHighErrorRatio > 5%) and 4xx."),
            ("Latency percentiles", "timeseries", "s",
             [("{{model}} p50", quantile("0.5")), ("{{model}} p90", quantile("0.9")),
              ("{{model}} p99", quantile("0.99"))],
             "Prediction request duration from the server's histogram, :explain excluded "
             "(alert KfopsHighLatencyP99 > 0.5s)."),
        ]},
        {"row": "Model", "panels": [
            ("Served model version", "table", "none",
             [("", f"max by (model, version, sha256) (kfops_model_info{{{SEL}}}) == 1")],
             "The version each model server runs (kfops_model_info == 1)."),
            ("Predictions by class", "timeseries", "percentunit",
             [("{{model}} {{class}}",
               f"sum by (model, class) (rate(kfops_predictions_total{{{SEL}}}[{RATE}]))"
               " / ignoring (class) group_left () "
               f"sum by (model) (rate(kfops_predictions_total{{{SEL}}}[{RATE}]))")],
             "Share of each predicted class (alert KfopsPredictionShift on a 20-point move)."),
        ]},
        {"row": "Drift", "panels": [
            ("Feature drift (PSI, live)", "timeseries", "none",
             [("{{model}} {{version}} {{feature}}",
               f"max by (model, version, feature) (kfops_feature_drift_psi{{{SEL}}})")],
             "Population stability index of live traffic per feature vs the training reference "
             "(alert KfopsFeatureDrift above 0.2, which asks the trigger to retrain)."),
            ("Rows behind the drift scores", "timeseries", "none",
             [("{{model}} {{version}}",
               f"max by (model, version) (kfops_feature_drift_window_rows{{{SEL}}})")],
             "Live rows in the window the server's drift scores are computed on."),
            ("Monitoring job: drift per feature (PSI)", "timeseries", "none",
             [("{{model}} {{feature}}",
               f"max by (model, feature) (kfops_monitoring_feature_drift_psi{{{SEL}}})")],
             "PSI per feature of the last monitoring window (Pushgateway)."),
            ("Monitoring job: missing values per feature", "timeseries", "percentunit",
             [("{{model}} {{feature}}",
               f"max by (model, feature) (kfops_monitoring_feature_null_share{{{SEL}}})")],
             "Share of missing values per feature in the last monitoring window; "
             "kfops_monitoring_feature_null_share_changed says when it moved beyond the "
             "policy's tolerance (a data-quality finding, not drift)."),
            ("Monitoring job: last success", "stat", "s",
             [("{{model}}",
               f"time() - max by (model) "
               f"(kfops_monitoring_last_success_timestamp_seconds{{{SEL}}})")],
             "Age of the last successful monitoring window (alert KfopsMonitoringJobStale > 3h)."),
        ]},
        {"row": "Capture and retraining", "panels": [
            ("Payload capture", "timeseries", "rowsps",
             [("{{model}} captured", records),
              ("{{model}} dropped", f"{dropped} or {records} * 0")],
             "Captured rows per second and rows dropped (full queue or failing sink)."),
            ("Retraining trigger: runs", "timeseries", "none",
             [("{{outcome}}", f"sum by (outcome) (increase(kfops_trigger_runs_total[{RATE}]))"),
              ("in flight", "sum(kfops_trigger_runs_in_flight)")],
             "Training runs the trigger started, and how they ended."),
            ("Retraining trigger: alerts not acted on", "timeseries", "none",
             [("{{reason}}",
               f"sum by (reason) (increase(kfops_trigger_skipped_total[{RATE}]))"),
              ("webhook {{status}}",
               f"sum by (status) (increase(kfops_trigger_webhooks_total[{RATE}]))")],
             "Why alerts did not start a run (duplicate, in flight, cooldown, resolved, unknown "
             "model), and the Alertmanager notifications received."),
            ("Monitoring job: retraining asked", "stat", "none",
             [("{{model}}", f"max by (model) (kfops_monitoring_retrain_required{{{SEL}}})")],
             "1 when the last monitoring window crossed the drift or quality policy."),
        ]},
    ]  # fmt: skip


def build() -> dict[str, Any]:
    from grafana_foundation_sdk.builders import dashboard, prometheus, stat, table, timeseries
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import (
        DataSourceRef,
        VariableOption,
        VariableRefresh,
    )
    from grafana_foundation_sdk.models.prometheus import PromQueryFormat

    ds = DataSourceRef(type_val="prometheus", uid="${datasource}")
    builders = {"timeseries": timeseries.Panel, "stat": stat.Panel, "table": table.Panel}
    board = (
        dashboard.Dashboard("kfops: models in production")
        .uid(UID)
        .description("kfops model servers, drift, payload capture and the retraining trigger.")
        .tags(["kfops", "mlops"])
        .refresh("30s")
        .time("now-3h", "now")
        .timezone("browser")
        .with_variable(
            dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
    )
    for name, label, metric in (("namespace", "Namespace", "kfops_model_info"),
                                ("model", "Model", "kfops_model_info")):  # fmt: skip
        board = board.with_variable(
            dashboard.QueryVariable(name)
            .label(label)
            .datasource(ds)
            .query(f"label_values({metric}, {name})")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .include_all(True)
            .all_value(".*")
            .current(VariableOption(text="All", value="$__all", selected=True))
            .multi(True)
        )
    for group in _queries():
        board = board.with_row(dashboard.Row(group["row"]))
        for title, kind, unit, targets, description in group["panels"]:
            panel = builders[kind]().title(title).description(description).datasource(ds)
            panel = panel.unit(unit).height(8).span(12 if kind == "timeseries" else 6)
            for i, (legend, expr) in enumerate(targets):
                query = prometheus.Dataquery().expr(expr).ref_id(chr(ord("A") + i))
                if kind == "table":
                    query = query.instant().format(PromQueryFormat.TABLE)
                elif legend:
                    query = query.legend_format(legend)
                panel = panel.with_target(query)
            board = board.with_panel(panel)
    return dict(json.loads(json.dumps(board.build(), cls=JSONEncoder)))


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if kfops.json is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.is_file() or OUT.read_text() != text:
            print(f"{OUT.name} is out of date: run python monitoring/grafana/dashboard.py")
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
