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
        ("thresholds_json", str),
        ("max_regression", float),
        ("data_mix_json", str),
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
    if window.null_shares is not None:
        for f in window.null_shares.features:
            metrics.log_metric(f"null_share_{f.feature}", f.window_share)
    if window.quality is not None:
        for name, value in window.quality.metrics.items():
            metrics.log_metric(f"window_{name}", value)
    print(window.summary())
    print(plan.reason)
    # The retraining plan, as the pipeline's If and training step consume it.
    # Its bar is the champion's (steps/retrain.champion_thresholds), as for every retrain.
    fields = ["retrain", "data_uri", "target", "task", "estimator", "params_json",
              "thresholds_json", "max_regression", "data_mix_json", "run_id"]  # fmt: skip
    return namedtuple("Plan", fields)(
        plan.retrain, plan.data_uri, plan.target, plan.task, plan.estimator,
        json.dumps(plan.params, sort_keys=True), json.dumps(plan.thresholds, sort_keys=True),
        float(plan.max_regression), json.dumps(plan.data_mix, sort_keys=True), run_id,
    )  # fmt: skip
