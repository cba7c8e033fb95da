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

    from kfops.components import _decode
    from kfops.monitoring import MonitoringPolicy, parse_time
    from kfops.steps import monitor as step
    from kfops.steps import retrain
    from kfops.tracking import new_run_id

    end = parse_time(window_end or None, time.time())
    run_id = new_run_id()  # the retraining run's, when the plan says retrain
    out = step.run(
        step.MonitorInputs(
            model_name=model_name,
            registry_root=Path(registry_root),
            capture_dir=capture_uri,
            start=end - float(window_hours) * 3600,
            end=end,
            labels_dir=labels_uri or None,
            policy=MonitoringPolicy.from_dict(_decode.policy(policy_json)),
            reports=step.ReportPaths(Path(report.path), Path(summary.path), Path(result.path)),
            pushgateway=pushgateway or None,
            push_job=push_job,
            retrain_data_uri=retrain_data_uri or None,
            retrain_data_path=retrain.data_path(registry_root, model_name, run_id),
        )
    )
    window, plan = out.window, out.plan
    metrics.log_metric("rows", window.rows)
    metrics.log_metric("malformed_lines", window.capture["malformed"])
    metrics.log_metric("retrain", 1 if window.retrain else 0)
    for feature, psi in window.drift_scores.items():
        metrics.log_metric(f"psi_{feature}", psi)
    if window.quality is not None:
        for name, value in window.quality.metrics.items():
            metrics.log_metric(f"window_{name}", value)
    print(window.summary())
    print(plan.reason)
    # The retraining plan, as the pipeline's If and training step consume it.
    fields = ["retrain", "data_uri", "target", "task", "estimator", "params_json", "run_id"]
    params_json = json.dumps(plan.params, sort_keys=True)
    return namedtuple("Plan", fields)(
        plan.retrain, plan.data_uri, plan.target, plan.task, plan.estimator, params_json, run_id
    )
