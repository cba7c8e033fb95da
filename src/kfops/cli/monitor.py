"""`kfops monitor`: monitor one window of captured traffic now, locally."""

from __future__ import annotations

import argparse
import json
import logging
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kfops.config import Settings
from kfops.defaults import MONITORING_WINDOW_HOURS, PUSHGATEWAY_JOB

if TYPE_CHECKING:
    from kfops.steps.retrain import RetrainPlan

log = logging.getLogger(__name__)

# What argparse may take as a value although it starts with "-": its own negative numbers and
# the relative times of kfops.monitoring.parse_time (-2h, -30m, -1.5d, -90s). A number with
# any unit letters counts too, so that "-2x" gets parse_time's message naming the forms.
RELATIVE_TIME_ARG = re.compile(r"^-\d+$|^-\d*\.\d+$|^-\d+(?:\.\d+)?[A-Za-z]+$")


def register(sub: Any) -> None:
    """Add this module's sub-commands to the `kfops` parser."""
    p = sub.add_parser(
        "monitor",
        help="check one window of captured traffic: data quality, drift, quality; retrain",
        description=(
            "Read the model's captured traffic for a time window, check it against the serving "
            "version's data contract and reference profile, join late labels, write an HTML "
            "report, push the figures to a Pushgateway and, when the policy says so, run the "
            "training pipeline on the fresh data."
        ),
    )
    # argparse takes any word that starts with "-" and is not a plain negative number for an
    # option, so `--start -2h` would fail with "expected one argument". This parser has no
    # option that looks like a number, so relative times can count as "negative numbers".
    p._negative_number_matcher = RELATIVE_TIME_ARG
    p.add_argument("--model", help="model name (KFOPS_MODEL_NAME)")
    p.add_argument("--registry", help="registry root (KFOPS_REGISTRY_ROOT)")
    p.add_argument("--capture-dir", help="payload capture root (KFOPS_CAPTURE_DIR)")
    p.add_argument("--labels-dir", help="late labels (*.jsonl / *.csv with id,label)")
    p.add_argument("--version", help="version or alias to compare with (default: champion)")
    p.add_argument(
        "--start",
        help="window start: relative (-2h, -30m, -1d, -90s), ISO 8601 (naive = UTC), "
        "epoch seconds or 'now' (default: 24 hours before --end)",
    )
    p.add_argument("--end", help="window end, same forms as --start (default now)")
    p.add_argument("--policy", help="monitoring policy YAML (MonitoringPolicy fields)")
    p.add_argument("--pushgateway", help="Pushgateway URL, e.g. http://pushgateway:9091")
    p.add_argument("--job", default=PUSHGATEWAY_JOB, help="Pushgateway job label")
    p.add_argument("--report-dir", help="where to write report.html/.md/result.json")
    p.add_argument("--data-uri", help="retrain on this data instead of the labelled window")
    p.add_argument("--no-retrain", action="store_true", help="report only, never retrain")
    p.add_argument("--runner", choices=("subprocess", "docker"), default="subprocess")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kfops.errors import ConfigError
    from kfops.monitoring import MonitoringPolicy, parse_time
    from kfops.steps import monitor, retrain

    settings = Settings.from_env(
        registry_root=args.registry, model_name=args.model, capture_dir=args.capture_dir
    )
    if not settings.model_name:
        raise ConfigError("no model: pass --model or set KFOPS_MODEL_NAME")
    end = parse_time(args.end, time.time())
    start = parse_time(args.start, end - MONITORING_WINDOW_HOURS * 3600)
    policy = MonitoringPolicy.load(args.policy) if args.policy else MonitoringPolicy()
    # The report directory is named after the moment the window is checked.
    report_dir = Path(args.report_dir) if args.report_dir else (
        settings.registry_root.parent / "monitoring" / settings.model_name
        / time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    )  # fmt: skip
    reports = monitor.ReportPaths.in_dir(report_dir)
    out = monitor.run(
        monitor.MonitorInputs(
            model_name=settings.model_name,
            registry_root=settings.registry_root,
            capture_dir=settings.capture_dir,
            start=start,
            end=end,
            labels_dir=args.labels_dir,
            version=args.version,
            policy=policy,
            reports=reports,
            pushgateway=args.pushgateway,
            push_job=args.job,
            retrain_data_uri=args.data_uri,
            retrain_data_path=report_dir / "training_data.parquet",
        )
    )
    result, plan = out.window, out.plan
    summary = None
    if plan.retrain and not args.no_retrain:
        summary = retrain.run(
            retrain.RetrainInputs(
                settings.model_name,
                settings.registry_root,
                plan.data_uri,
                runner=args.runner,
                data_mix=plan.data_mix or None,
            )
        )
    if args.json:
        out_json = {
            "result": result.to_dict(),
            "report": str(reports.html),
            "plan": _plan_dict(plan),
            "run": None if summary is None else summary.to_dict(),
        }
        print(json.dumps(out_json, indent=2, default=str))
        return 0
    print(result.summary())
    print(f"report: {reports.html}")
    if result.retrain:
        print(("retraining: " if plan.retrain and not args.no_retrain else "not retraining: ")
              + plan.reason)  # fmt: skip
    if summary is not None:
        verdict = f"blessed as {summary.version}" if summary.blessed else "rejected"
        print(f"run {summary.run_id}: {verdict}" + (
            f" ({'; '.join(summary.reasons)})" if summary.reasons else ""))  # fmt: skip
    return 0


def _plan_dict(plan: RetrainPlan) -> dict[str, Any]:
    """The plan as `--json` prints it (the parameters as the pipeline parameter params_json)."""
    data = plan.to_dict()
    data["params_json"] = json.dumps(data.pop("params"), sort_keys=True)
    data["thresholds_json"] = json.dumps(data.pop("thresholds"), sort_keys=True)
    data["data_mix_json"] = json.dumps(data.pop("data_mix"), sort_keys=True)
    return data
