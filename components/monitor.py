"""Monitor: one window of captured traffic -> data quality, drift, quality, report, retrain plan."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Markdown, Metrics, Output

from kfops.components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def monitor(
    model_name: str,
    registry_root: str,
    capture_uri: str,
    labels_uri: str,
    window_hours: float,
    window_end: str,
    policy_json: str,
    pushgateway: str,
    push_job: str,
    retrain_data_uri: str,
    report: Output[HTML],
    summary: Output[Markdown],
    result: Output[Artifact],
    metrics: Output[Metrics],
) -> NamedTuple(
    "Plan",
    [
        ("retrain", bool),
        ("data_uri", str),
        ("target", str),
        ("task", str),
        ("estimator", str),
        ("params_json", str),
        ("run_id", str),
    ],
):
    import json
    import time
    from collections import namedtuple
    from pathlib import Path

    from kfops import monitoring
    from kfops.io import write_json_atomic, write_text_atomic
    from kfops.tracking import new_run_id

    end = monitoring.parse_time(window_end or None, time.time())
    res = monitoring.run_monitoring(
        model_name,
        registry_root,
        capture_uri,
        start=end - float(window_hours) * 3600,
        end=end,
        labels_dir=labels_uri or None,
        policy=monitoring.MonitoringPolicy.from_dict(json.loads(policy_json or "{}")),
    )
    write_text_atomic(Path(report.path), res.to_html())
    write_text_atomic(Path(summary.path), res.to_markdown())
    write_json_atomic(Path(result.path), res.to_dict())
    metrics.log_metric("rows", res.rows)
    metrics.log_metric("malformed_lines", res.capture["malformed"])
    metrics.log_metric("retrain", 1 if res.retrain else 0)
    for feature, psi in res.drift_scores.items():
        metrics.log_metric(f"psi_{feature}", psi)
    if res.quality is not None:
        for name, value in res.quality.metrics.items():
            metrics.log_metric(f"window_{name}", value)
    if pushgateway:
        monitoring.push_metrics(res, pushgateway, job=push_job)
    run_id = new_run_id()
    plan = monitoring.plan_retraining(
        res,
        registry_root,
        capture_dir=capture_uri,
        labels_dir=labels_uri or None,
        data_uri=retrain_data_uri or None,
        out_path=Path(registry_root).parent / "retrain-data" / model_name / f"{run_id}.parquet",
    )
    print(res.summary())
    print(plan.reason)
    # The retraining plan, as the pipeline's If and training step consume it.
    fields = ["retrain", "data_uri", "target", "task", "estimator", "params_json", "run_id"]
    return namedtuple("Plan", fields)(
        plan.retrain, plan.data_uri, plan.target, plan.task, plan.estimator, plan.params_json,
        run_id,
    )  # fmt: skip
