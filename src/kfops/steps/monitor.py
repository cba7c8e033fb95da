"""Monitor: one window of a served model's captured traffic, from the rows to a retraining plan.

    window (data quality, drift, quality vs late labels, verdict) -> reports (HTML, Markdown,
    JSON) -> Pushgateway figures -> retraining plan (kfops.steps.retrain)

``kfops monitor`` (then ``retrain.run`` when the plan says so) and the monitoring pipeline's
monitor task (then the training pipeline under an If) both run exactly this. The window logic
is ``kfops.monitoring``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kfops.defaults import PUSHGATEWAY_JOB
from kfops.io import write_json_atomic, write_text_atomic
from kfops.monitoring import MonitoringPolicy, MonitoringResult, push_metrics, run_monitoring
from kfops.steps import retrain


@dataclass(frozen=True)
class ReportPaths:
    """Where a window's report goes: HTML page, Markdown summary, JSON result."""

    html: Path
    markdown: Path
    json: Path

    @classmethod
    def in_dir(cls, directory: str | Path) -> ReportPaths:
        out = Path(directory)
        return cls(out / "report.html", out / "report.md", out / "result.json")


@dataclass(frozen=True)
class MonitorInputs:
    model_name: str
    registry_root: Path
    capture_dir: str | Path  # payload capture root (a directory or an fsspec URI)
    start: float  # the window, epoch seconds: start <= ts < end
    end: float
    labels_dir: str | Path | None = None  # late labels; None: no quality verdict
    version: str | None = None  # the version to compare with (default: the champion)
    policy: MonitoringPolicy = field(default_factory=MonitoringPolicy)
    reports: ReportPaths | None = None
    pushgateway: str | None = None  # URL; None: no push
    push_job: str = PUSHGATEWAY_JOB
    retrain_data_uri: str | None = None  # retrain on this instead of the labelled window
    retrain_data_path: Path | None = None  # where the labelled window is written


@dataclass(frozen=True)
class MonitorResult:
    window: MonitoringResult
    plan: retrain.RetrainPlan


def run(inputs: MonitorInputs) -> MonitorResult:
    window = run_monitoring(
        inputs.model_name,
        inputs.registry_root,
        inputs.capture_dir,
        start=inputs.start,
        end=inputs.end,
        labels_dir=inputs.labels_dir,
        version=inputs.version,
        policy=inputs.policy,
    )
    if inputs.reports is not None:
        write_reports(window, inputs.reports)
    if inputs.pushgateway:
        push_metrics(window, inputs.pushgateway, job=inputs.push_job)
    plan = retrain.plan(
        retrain.PlanInputs(
            window,
            inputs.registry_root,
            capture_dir=inputs.capture_dir,
            labels_dir=inputs.labels_dir,
            data_uri=inputs.retrain_data_uri,
            out_path=inputs.retrain_data_path,
            reference_share=inputs.policy.retrain_reference_share,
        )
    )
    return MonitorResult(window, plan)


def write_reports(window: MonitoringResult, paths: ReportPaths) -> None:
    write_text_atomic(paths.html, window.to_html())
    write_text_atomic(paths.markdown, window.to_markdown())
    write_json_atomic(paths.json, window.to_dict())
