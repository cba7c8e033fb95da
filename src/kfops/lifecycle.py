"""The training lifecycle, one function per pipeline step.

Each function takes paths and plain values, calls the library modules, records what it did in
the run history (kfops.tracking) and returns a small result. KFP components are thin wrappers
around these; `benchmarks/bench_pipeline.py` calls them directly to measure the orchestration
overhead; so the pipeline and the library can never disagree about what a step does.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from kfops import tracking
from kfops.contract_model import Contract
from kfops.errors import ConfigError, ContractError, KfopsError
from kfops.io import read_json, write_json_atomic
from kfops.registry import ModelVersion, Registry, validate_model_name

if TYPE_CHECKING:  # each step imports only what it needs: a task process pays for its imports
    from kfops import blessing, data, evaluation
    from kfops.contract import ValidationReport

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class RunContext:
    """Where a run records its steps: the registry root and the run id."""

    registry_root: Path
    run_id: str

    @classmethod
    def of(cls, registry_root: str, run_id: str = "", job_id: str = "") -> RunContext:
        """`run_id` is set by whoever launched the run; a cluster's job id stands in otherwise."""
        if not registry_root:
            raise ConfigError("registry_root is empty: set --registry or KFOPS_REGISTRY_ROOT")
        return cls(Path(registry_root), run_id or job_id or tracking.new_run_id())

    @property
    def registry(self) -> Registry:
        return Registry(self.registry_root)

    def record(self, step: str, payload: dict[str, Any]) -> None:
        tracking.record_step(self.registry_root, self.run_id, step, payload)


P = ParamSpec("P")
R = TypeVar("R")


def recorded_step(step: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Record a step's failure in the run history. A user error (KfopsError) ends the task
    with its one-line message and exit code 2 instead of a traceback, in a local task or a pod;
    anything else is a bug and keeps its traceback."""

    def wrap(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            ctx = next((a for a in (*args, *kwargs.values()) if isinstance(a, RunContext)), None)
            try:
                return func(*args, **kwargs)
            except KfopsError as exc:
                if ctx is not None:
                    ctx.record("failed", {"status": "failed", "step": step, "error": str(exc)})
                print(f"error: {step}: {exc}", file=sys.stderr, flush=True)
                raise SystemExit(2) from None
            except Exception as exc:
                if ctx is not None:
                    ctx.record(
                        "failed",
                        {"status": "failed", "step": step, "error": f"{type(exc).__name__}: {exc}"},
                    )
                raise

        return run

    return wrap


def parse_columns(text: str) -> list[str]:
    """A comma-separated column list from the CLI or a pipeline parameter."""
    return [c.strip() for c in text.split(",") if c.strip()]


# -- extract ------------------------------------------------------------------------------------


@recorded_step("extract")
def extract_step(data_uri: str, snapshot_path: Path, ctx: RunContext) -> data.Fingerprint:
    from kfops import data

    ctx.record("start", {"status": "running", "data_uri": data_uri})
    fp = data.extract(data_uri, Path(snapshot_path))
    ctx.record("extract", {"data_uri": data_uri, "fingerprint": fp.to_dict()})
    return fp


# -- validate -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValidateResult:
    contract: Contract
    report: ValidationReport
    statistics_markdown: str
    champion_version: str | None


def champion_version(registry: Registry, model_name: str) -> ModelVersion | None:
    """The verified champion of `model_name`, or None when it has none yet."""
    validate_model_name(model_name)  # a run started with a bad name fails here, before training
    if model_name not in registry.models():
        return None
    if registry.get_alias(model_name, CHAMPION) is None:
        return None
    version = registry.resolve(model_name, CHAMPION)
    registry.verify_dir(version.path)
    return version


@recorded_step("validate")
def validate_step(
    snapshot_path: Path,
    target: str,
    task: str,
    model_name: str,
    contract_path: Path,
    ctx: RunContext,
    drop_columns: str = "",
) -> ValidateResult:
    """Infer the new data's contract; when a champion exists, check the data against its
    contract too. Blocking violations raise ContractError with the whole report."""
    from kfops import contract, data

    df = data.load_snapshot(snapshot_path)
    inferred = contract.infer_contract(df, target, task, drop=parse_columns(drop_columns))
    report = contract.validate(df, inferred)
    champion = champion_version(ctx.registry, model_name)
    against = f"the contract inferred from this data ({len(inferred.features)} features)"
    if champion is not None:
        champion_contract = Contract.load(champion.file("contract.json"))
        report = contract.validate(df, champion_contract)
        against = f"the contract of champion {model_name} {champion.version}"
    ctx.record(
        "validate",
        {
            "target": target,
            "task": task,
            "features": inferred.feature_names,
            "dropped": list(inferred.dropped),
            "validation": report.to_dict(),
            "validated_against": against,
        },
    )
    if not report.ok:
        # One line for the terminal; the whole table is in the run record and the task log.
        print(report.to_markdown(), file=sys.stderr)
        details = "; ".join(v.message for v in report.errors)
        raise ContractError(
            f"data violates {against} ({len(report.errors)} errors): {details}", report=report
        )
    inferred.save(contract_path)
    return ValidateResult(
        contract=inferred,
        report=report,
        statistics_markdown=contract.describe(df, inferred),
        champion_version=champion.version if champion else None,
    )


def validation_markdown(result: ValidateResult) -> str:
    lines = ["# Data validation", ""]
    if result.champion_version:
        lines.append(f"Validated against champion **{result.champion_version}**'s contract.")
    else:
        lines.append("No champion yet: validated against the contract inferred from this data.")
    lines += ["", result.report.to_markdown()]
    if result.contract.dropped:
        lines += ["", "## Columns not used as features", ""]
        lines += [f"- `{d['name']}`: {d['reason']}" for d in result.contract.dropped]
    return "\n".join(lines) + "\n"


# -- prepare ------------------------------------------------------------------------------------


@recorded_step("prepare")
def prepare_step(
    snapshot_path: Path,
    contract_path: Path,
    train_path: Path,
    test_path: Path,
    test_size: float,
    seed: int,
    ctx: RunContext,
) -> tuple[int, int]:
    from kfops import data, features

    df = data.load_snapshot(snapshot_path)
    train_df, test_df = features.split(df, Contract.load(contract_path), test_size, seed)
    train_df.to_parquet(train_path, index=False)
    test_df.to_parquet(test_path, index=False)
    ctx.record("prepare", {"train_rows": len(train_df), "test_rows": len(test_df), "seed": seed})
    return len(train_df), len(test_df)


# -- train --------------------------------------------------------------------------------------


@recorded_step("train")
def train_step(
    train_path: Path,
    contract_path: Path,
    estimator: str,
    params_json: str,
    seed: int,
    model_path: Path,
    profile_path: Path,
    ctx: RunContext,
) -> dict[str, Any]:
    """Fit the sklearn Pipeline and build the drift reference profile from the same rows."""
    import pandas as pd

    from kfops import training
    from kfops.drift.profile import build_reference_profile

    params = training.parse_params(params_json)
    the_contract = Contract.load(contract_path)
    train_df = pd.read_parquet(train_path)
    model = training.train(train_df, the_contract, estimator, params, seed)
    training.save_model(model, model_path)
    build_reference_profile(train_df, the_contract).save(profile_path)
    ctx.record(
        "train",
        {"estimator": estimator, "params": params, "seed": seed, "train_rows": len(train_df)},
    )
    return params


# -- evaluate -----------------------------------------------------------------------------------


@recorded_step("evaluate")
def evaluate_step(
    model_path: Path,
    test_path: Path,
    contract_path: Path,
    evaluation_path: Path,
    ctx: RunContext,
) -> evaluation.Evaluation:
    import pandas as pd

    from kfops import evaluation, training

    the_contract = Contract.load(contract_path)
    result = evaluation.evaluate(
        training.load_model(model_path), pd.read_parquet(test_path), the_contract
    )
    write_json_atomic(evaluation_path, result.to_dict())
    ctx.record("evaluate", {"metrics": result.metrics, "test_rows": result.n_rows})
    return result


# -- bless --------------------------------------------------------------------------------------


@recorded_step("bless")
def bless_step(
    evaluation_path: Path,
    test_path: Path,
    model_name: str,
    thresholds_json: str,
    max_regression: float,
    ctx: RunContext,
) -> blessing.BlessingDecision:
    """Judge the challenger against the thresholds and the champion on the same test rows."""
    import pandas as pd

    from kfops import blessing, evaluation, training

    challenger = evaluation.Evaluation.from_dict(read_json(evaluation_path))
    policy = blessing.parse_policy(thresholds_json, max_regression, challenger.task)
    champion = champion_version(ctx.registry, model_name)
    champion_eval = None
    if champion is not None:
        champion_eval = evaluation.evaluate(
            training.load_model(champion.file("model.joblib")),
            pd.read_parquet(test_path),
            Contract.load(champion.file("contract.json")),
        )
    decision = blessing.bless(
        challenger, champion_eval, policy, champion.version if champion else None
    )
    ctx.record("bless", {"decision": decision.to_dict()})
    return decision


# -- register -----------------------------------------------------------------------------------


@recorded_step("register")
def register_step(
    model_name: str,
    model_path: Path,
    contract_path: Path,
    profile_path: Path,
    evaluation_path: Path,
    lineage: dict[str, Any],
    ctx: RunContext,
) -> ModelVersion:
    """Register a blessed model as a new immutable version and point `challenger` at it."""
    # The metrics straight from the evaluation file: importing kfops.evaluation (sklearn) would
    # cost this task a second for nothing.
    metrics = {k: float(v) for k, v in read_json(evaluation_path)["metrics"].items()}
    staging = Path(evaluation_path).with_name("metrics.json")
    write_json_atomic(staging, metrics)
    version = ctx.registry.register(
        model_name,
        {
            "model.joblib": Path(model_path),
            "contract.json": Path(contract_path),
            "reference_profile.json": Path(profile_path),
            "metrics.json": staging,
        },
        {**lineage, "metrics": metrics, "run_id": ctx.run_id},
        aliases=(CHALLENGER,),
    )
    ctx.record(
        "register",
        {"model": model_name, "version": version.version, "sha256": version.model_sha256},
    )
    return version


def lineage_of(**values: Any) -> dict[str, Any]:
    """Lineage values arrive from KFP as strings; JSON-looking ones are decoded."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, str) and value[:1] in "{[":
            with contextlib.suppress(json.JSONDecodeError):
                value = json.loads(value)
        out[key] = value
    return out


@dataclass(frozen=True)
class DashboardCurves:
    """What KFP's ClassificationMetrics artifact takes (labels must be strings)."""

    labels: list[str]
    matrix: list[list[int]]
    fpr: list[float]
    tpr: list[float]
    thresholds: list[float]


def dashboard_curves(result: evaluation.Evaluation) -> DashboardCurves | None:
    if result.task != "classification" or not result.labels or not result.confusion_matrix:
        return None
    roc = result.roc or {"fpr": [], "tpr": [], "thresholds": []}
    return DashboardCurves(
        labels=[str(label) for label in result.labels],
        matrix=[[int(v) for v in row] for row in result.confusion_matrix],
        fpr=[float(v) for v in roc["fpr"]],
        tpr=[float(v) for v in roc["tpr"]],
        thresholds=[float(v) for v in roc["thresholds"]],
    )
