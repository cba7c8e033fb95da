"""`kfops run` (the training pipeline on this machine) and `kfops compile`."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from kfops.cli import _flags
from kfops.config import Settings
from kfops.contract_model import TASKS
from kfops.defaults import KEEP_RUNS
from kfops.errors import ConfigError
from kfops.params import DEFAULTS, TrainingParams, default_estimator, default_thresholds

# kfops.local_runner.RUNNERS, spelled here so `kfops --help` does not import kfp.
RUNNERS = ("subprocess", "docker")

if TYPE_CHECKING:
    from kfops.local_runner import RunSummary
    from kfops.run_log import TaskEvent


# `kfops run` exit codes (README "Exit codes"): 0 done (blessed or not), 2 an error a user can
# fix (kfops.cli.main), 3 the challenger was not blessed and --fail-if-not-blessed was given.
EXIT_NOT_BLESSED = 3


def register(sub: Any) -> None:
    run = sub.add_parser(
        "run",
        help="run the training pipeline locally (kfp.local)",
        description="Extract, validate, prepare, train, evaluate, bless, register and deploy "
        "a model with kfp.local. Without --data, trains on the bundled Palmer Penguins data. "
        "Prints one line per step, then the metrics, the blessing decision, the version and "
        "aliases; the executor's logs go to <registry>/runs/<run id>/run.log. Exit codes: 0 "
        "done, 2 error, 3 not blessed with --fail-if-not-blessed.",
    )
    run.add_argument("--data", help="CSV or Parquet: path, file://, http(s):// or fsspec URI")
    run.add_argument("--target", help="target column (default for the bundled data: species)")
    run.add_argument(
        "--task",
        choices=TASKS,
        help="what to predict: a class or a number (default: inferred from the target "
        "column, reason printed)",
    )
    _flags.add_model(
        run, help="model name in the registry (default: from the data file)", old=["--model-name"]
    )
    _flags.add_registry(run)
    run.add_argument("--estimator", default=None, help=_estimator_help())
    run.add_argument("--params", default="{}", help='estimator parameters as JSON, e.g. {"C": 2}')
    run.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="METRIC=VALUE",
        help="blessing threshold (min for scores, max for errors); repeatable",
    )
    run.add_argument(
        "--max-regression",
        type=float,
        default=DEFAULTS.max_regression,
        help="largest worsening of the primary metric vs the champion that still blesses "
        "(default %(default)s)",
    )
    run.add_argument(
        "--test-size",
        type=float,
        default=DEFAULTS.test_size,
        help="share of rows held out for evaluation, 0..1 (default %(default)s)",
    )
    run.add_argument(
        "--seed",
        type=int,
        default=DEFAULTS.seed,
        help="random seed for the split, the estimator and tuning (default %(default)s)",
    )
    run.add_argument("--drop-columns", default="", help="comma-separated columns to ignore")
    tune = run.add_argument_group("hyperparameter tuning (Optuna, trials as parallel tasks)")
    tune.add_argument("--tune", action="store_true", help="tune before training")
    tune.add_argument(
        "--tune-rounds", type=int, default=DEFAULTS.tune_rounds, help="ask/tell rounds (1-3)"
    )
    tune.add_argument(
        "--tune-trials", type=int, default=DEFAULTS.tune_trials_per_round, help="trials per round"
    )
    tune.add_argument(
        "--tune-max-trials",
        type=int,
        default=DEFAULTS.tune_max_trials,
        help="trial budget (0: none)",
    )
    tune.add_argument(
        "--tune-timeout",
        type=float,
        default=DEFAULTS.tune_timeout_s,
        help="seconds budget (0: none)",
    )
    tune.add_argument("--search-space", help="YAML/JSON file overriding the default space")
    run.add_argument(
        "--runner",
        choices=RUNNERS,
        default="subprocess",
        help="where the tasks run: subprocess (this Python) or docker (the project image); "
        "default %(default)s",
    )
    run.add_argument("--image", help="image for --runner docker (env KFOPS_IMAGE)")
    out = run.add_argument_group("output")
    out.add_argument(
        "--json",
        action="store_true",
        help="print exactly one JSON document (the summary, or the error) on stdout; "
        "step lines go to stderr",
    )
    out.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="also stream the executor's logs (they always go to the run's log file)",
    )
    out.add_argument(
        "--fail-if-not-blessed",
        action="store_true",
        help=f"exit {EXIT_NOT_BLESSED} when the model is not blessed (a CI gate)",
    )
    out.add_argument(
        "--keep-runs",
        type=int,
        default=None,
        metavar="N",
        help="keep the pipeline roots and logs of the newest N runs under <registry>/runs, "
        f"removing older ones at the start of the run; 0 keeps all (env KFOPS_KEEP_RUNS, "
        f"default {KEEP_RUNS}); never touches registered versions",
    )
    run.set_defaults(func=cmd_run)

    comp = sub.add_parser("compile", help="compile every pipeline to KFP IR YAML")
    comp.add_argument("--out", default="build/pipelines", help="output directory")
    comp.add_argument("--image", help="component image (env KFOPS_IMAGE)")
    comp.set_defaults(func=cmd_compile)


def _estimator_help() -> str:
    from kfops.training import ESTIMATORS

    per_task = "; ".join(
        f"{task}: {', '.join(sorted(ESTIMATORS[task]))} (default {default_estimator(task)})"
        for task in TASKS
    )
    return f"estimator name. {per_task}"


def parse_thresholds(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise ConfigError(f"--threshold {item!r} is not METRIC=NUMBER, e.g. f1_macro=0.8")
    return out


def parse_columns(text: str) -> tuple[str, ...]:
    """``--drop-columns a,b``: the column names, blanks dropped."""
    return tuple(c.strip() for c in text.split(",") if c.strip())


def _model_name_from(data: str) -> str:
    from kfops.datasets import table_stem

    stem = table_stem(data.split("?")[0]).lower()
    name = re.sub(r"[^a-z0-9-]+", "-", stem).strip("-")[:63]
    return name or "model"


def training_params(args: argparse.Namespace, settings: Settings) -> TrainingParams:
    from kfops import datasets

    try:
        params = json.loads(args.params)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--params is not valid JSON: {exc.msg} at char {exc.pos}") from None
    if not isinstance(params, dict):
        raise ConfigError('--params must be a JSON object, e.g. {"C": 2.0}')
    thresholds = parse_thresholds(args.threshold)
    if args.data is None:
        data_uri = str(datasets.default_data_path())
        target = args.target or datasets.DEFAULT_TARGET
        task = args.task or datasets.DEFAULT_TASK
        model_name = settings.model_name or datasets.DEFAULT_MODEL_NAME
    else:
        if not args.target:
            raise ConfigError("--target is required with --data (the column to predict)")
        data_uri, target = args.data, args.target
        # With --json, stdout carries the one JSON document: the reason goes to stderr.
        out = sys.stderr if getattr(args, "json", False) else sys.stdout
        task = args.task or _infer_task(args.data, args.target, out)
        model_name = settings.model_name or _model_name_from(args.data)
    return TrainingParams(
        data_uri=data_uri,
        target=target,
        task=task,
        model_name=model_name,
        registry_root=str(settings.registry_root),
        estimator=args.estimator or default_estimator(task),
        params=params,
        thresholds=thresholds or default_thresholds(task),
        max_regression=args.max_regression,
        test_size=args.test_size,
        seed=args.seed,
        drop_columns=parse_columns(args.drop_columns),
        tune=args.tune,
        tune_rounds=args.tune_rounds,
        tune_trials_per_round=args.tune_trials,
        tune_max_trials=args.tune_max_trials,
        tune_timeout_s=args.tune_timeout,
        # The text, not the path: the file does not exist inside a container or a pod.
        search_space=_read_text(args.search_space) if args.search_space else "",
    )


def _infer_task(data_uri: str, target: str, out: TextIO) -> str:
    """The task for ``target`` of the data at ``data_uri``, with the reason printed.

    Read here, before the pipeline, so the task's estimator and blessing thresholds are the
    pipeline's parameters like any the user gives (what the run record and lineage show).
    """
    from kfops.contract.inference import target_column
    from kfops.contract.task import infer_task
    from kfops.data import read_table

    df = read_table(data_uri)
    choice = infer_task(target_column(df, target), target)
    print(f"kfops: {choice.reason}", file=out, flush=True)
    return choice.task


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"--search-space {path}: {exc.strerror or exc}") from None


def format_summary(summary: RunSummary) -> str:
    metrics = ", ".join(
        f"{k}={v:.4f}" for k, v in sorted(summary.metrics.items()) if isinstance(v, int | float)
    )
    lines = [
        "",
        f"run           {summary.run_id} ({summary.status})",
        f"model         {summary.model_name}",
        f"data          sha256 {summary.fingerprint}",
    ]
    if summary.dropped:
        lines.append(
            "not features  " + "; ".join(f"{d['name']} ({d['reason']})" for d in summary.dropped)
        )
    lines += [
        f"metrics       {metrics or 'none'}",
        f"blessed       {'yes' if summary.blessed else 'no'}",
    ]
    lines += [f"  - {reason}" for reason in summary.reasons]
    if summary.version and summary.unchanged:
        lines.append(
            f"version       {summary.version} unchanged: the model has the champion's exact "
            f"bytes, no new version (sha256 {summary.model_sha256})"
        )
    elif summary.version:
        lines.append(f"version       {summary.version} (sha256 {summary.model_sha256})")
    else:
        lines.append("version       none registered (not blessed)")
    aliases = ", ".join(f"{a} -> {v}" for a, v in sorted(summary.aliases.items()))
    lines.append(f"aliases       {aliases or 'none'}")
    if summary.twin:
        from kfops.twin.record import TwinRecord

        lines.append(f"onnx twin     {TwinRecord.from_dict(summary.twin).summary()}")
    if summary.importance:
        from kfops.explain.importance import Importance

        lines.append(f"importance    {Importance.from_dict(summary.importance).summary()}")
    if summary.log:
        lines.append(f"log           {summary.log}")
    return "\n".join(lines)


class StepLines:
    """One line per pipeline task as the run goes: ``  train          ok      4.1s``.

    On a terminal a task shows as ``running`` while it runs and the line is rewritten when it
    ends; elsewhere (a file, a CI log) only the final line is written.
    """

    def __init__(self, stream: TextIO, live: bool = True) -> None:
        self.stream = stream
        self.live = live and stream.isatty()  # not with --verbose: logs would share the line

    def __call__(self, event: TaskEvent) -> None:
        if event.outcome == "running":
            if self.live:
                self.stream.write(f"  {event.task:<16} running")
                self.stream.flush()
            return
        outcome = "ok" if event.outcome == "ok" else "FAILED"
        line = f"  {event.task:<16} {outcome:<6} {event.seconds:5.1f}s"
        self.stream.write(("\r\x1b[K" if self.live else "") + line + "\n")
        self.stream.flush()


def cmd_run(args: argparse.Namespace) -> int:
    """`kfops run`. With --json, stdout carries exactly one JSON document: the summary, or
    ``{"status": "failed", "error": ...}`` (plus the step, run id and log when a task failed)."""
    from kfops.errors import KfopsError
    from kfops.local_runner import RunFailed

    try:
        return _run(args)
    except KfopsError as exc:
        failure: dict[str, Any] = {"status": "failed", "error": str(exc)}
        if isinstance(exc, RunFailed):
            print(f"log: {exc.log_path}", file=sys.stderr)
            failure.update(
                run_id=exc.run_id, step=exc.step, error=exc.message, log=str(exc.log_path)
            )
        if args.json:
            print(json.dumps(failure, indent=2, sort_keys=True))
        raise  # kfops.cli.main prints the one-line error last on stderr and exits 2


def _run(args: argparse.Namespace) -> int:
    from kfops.local_runner import preflight, run_training

    settings = Settings.from_env(
        registry_root=args.registry,
        model_name=args.model,
        image=args.image,
        keep_runs=args.keep_runs,
    )
    params = training_params(args, settings)
    preflight(params)  # a bad --model or threshold fails now, not after training
    # With --json, stdout carries the one JSON document and nothing else.
    human = sys.stderr if args.json else sys.stdout
    print(
        f"kfops: training {params.model_name!r} on {params.data_uri} "
        f"(target {params.target!r}, {params.task}, {params.estimator}, runner {args.runner})",
        file=human,
        flush=True,
    )
    verbose = bool(getattr(args, "verbose", False))
    summary = run_training(
        params,
        runner=args.runner,
        image=settings.image,
        on_event=StepLines(human, live=not verbose),
        echo=human if verbose else None,
        keep_runs=settings.keep_runs,
    )
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2, sort_keys=True, default=str))
    else:
        print(format_summary(summary))
    if args.fail_if_not_blessed and not summary.blessed:
        print(f"not blessed: exit {EXIT_NOT_BLESSED} (--fail-if-not-blessed)", file=sys.stderr)
        return EXIT_NOT_BLESSED
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    from kfops.pipelines.compile import compile_all

    settings = Settings.from_env(image=args.image)
    for path in compile_all(args.out, settings.image):
        print(f"compiled {path}")
    return 0
