"""Hyperparameter tuning: Optuna ask-and-tell split into steps that can run as separate tasks.

One tuning run is a sequence of rounds. Each round *asks* Optuna for N parameter sets, runs every
trial independently (a KFP ParallelFor task each; cross-validation on the training split only)
and *tells* the scores back. Between steps the whole study lives in a JSON document
(``StudyState``): the search space, the budget and every trial with its parameters, state and
score. A step rebuilds the Optuna study from it with ``optuna.trial.create_trial`` /
``Study.add_trial`` and a ``TPESampler`` seeded from (seed, number of trials so far), so the
same history always yields the same next proposals, in any process, pod or container.

Search spaces are configuration: defaults per scikit-learn class in ``search_spaces.yaml``,
overridable per run by JSON or YAML text (or a file path). Every mistake is a ``ConfigError``
naming the parameter at fault.
"""

from __future__ import annotations

import html
import json
import math
import os
import time
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from kfops.errors import ConfigError, KfopsError
from kfops.io import read_json, write_json_atomic
from kfops.reports import fmt

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    from optuna.distributions import BaseDistribution

    from kfops.contract_model import Contract

SPACES_FILE = Path(__file__).with_name("search_spaces.yaml")
STATE_SCHEMA_VERSION = 1
DEFAULT_CV_FOLDS = 3

# kfops metric name (kfops.evaluation) -> (sklearn scorer, sign that turns the scorer's value
# back into the metric). sklearn scorers are "greater is better", so error metrics are negated.
SCORERS: dict[str, tuple[str, float]] = {
    "accuracy": ("accuracy", 1.0),
    "balanced_accuracy": ("balanced_accuracy", 1.0),
    "f1_macro": ("f1_macro", 1.0),
    "precision_macro": ("precision_macro", 1.0),
    "recall_macro": ("recall_macro", 1.0),
    "log_loss": ("neg_log_loss", -1.0),
    "roc_auc": ("roc_auc_ovr", 1.0),
    "rmse": ("neg_root_mean_squared_error", -1.0),
    "mae": ("neg_mean_absolute_error", -1.0),
    "r2": ("r2", 1.0),
    "mape": ("neg_mean_absolute_percentage_error", -1.0),
}

ParamKind = Literal["float", "int", "categorical"]
TrialStateName = Literal["PENDING", "COMPLETE", "FAIL", "SKIPPED"]
_SPEC_KEYS = ("type", "low", "high", "log", "step", "choices")
_KINDS: tuple[str, ...] = ("float", "int", "categorical")


class TuningError(KfopsError):
    """Tuning cannot produce a result: every trial failed, or a study document is unusable."""


# --- search spaces -----------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return _is_number(value) and float(value).is_integer()


@dataclass(frozen=True)
class ParamSpec:
    """One tunable parameter: a numeric range (optionally log-scaled or stepped) or choices."""

    name: str
    kind: ParamKind
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] | None = None

    def distribution(self) -> BaseDistribution:
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.kind == "categorical":
            return CategoricalDistribution(list(self.choices or ()))
        assert self.low is not None and self.high is not None
        if self.kind == "int":
            return IntDistribution(
                int(self.low), int(self.high), log=self.log, step=int(self.step or 1)
            )
        return FloatDistribution(float(self.low), float(self.high), log=self.log, step=self.step)

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "categorical":
            return {"choices": list(self.choices or ())}
        data: dict[str, Any] = {"type": self.kind, "low": self.low, "high": self.high}
        if self.log:
            data["log"] = True
        if self.step is not None:
            data["step"] = self.step
        return data


def parse_param(estimator: str, name: str, raw: Any) -> ParamSpec:
    """Validate one parameter entry of a search space (see ``search_spaces.yaml`` for syntax)."""
    where = f"search space of {estimator!r}: parameter {name!r}"
    if isinstance(raw, list):
        raw = {"choices": raw}
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{where} must be a mapping like {{low: 1, high: 10}} or a list of choices, got {raw!r}"
        )
    unknown = [key for key in raw if key not in _SPEC_KEYS]
    if unknown:
        raise ConfigError(
            f"{where} has unknown key {unknown[0]!r}; allowed: {', '.join(_SPEC_KEYS)}"
        )
    kind = raw.get("type")
    if kind is not None and kind not in _KINDS:
        raise ConfigError(f"{where} has type {kind!r}; expected one of {', '.join(_KINDS)}")
    if "choices" in raw:
        return _parse_choices(where, name, raw, kind)
    if kind == "categorical":
        raise ConfigError(f"{where} is categorical but has no 'choices'")
    return _parse_range(where, name, raw, kind)


def _parse_choices(where: str, name: str, raw: Mapping[str, Any], kind: Any) -> ParamSpec:
    extra = [key for key in ("low", "high", "log", "step") if key in raw]
    if extra:
        raise ConfigError(f"{where} has both 'choices' and {extra[0]!r}: use one or the other")
    if kind not in (None, "categorical"):
        raise ConfigError(f"{where} has 'choices' but type {kind!r}; choices are categorical")
    choices = raw["choices"]
    if not isinstance(choices, list) or not choices:
        raise ConfigError(f"{where} needs a non-empty list of choices, got {choices!r}")
    for choice in choices:
        if choice is not None and not isinstance(choice, str | int | float | bool):
            raise ConfigError(
                f"{where}: choice {choice!r} is not a string, number, boolean or null"
            )
    # Optuna finds a choice by ==, so 1, 1.0 and True would be one choice to it.
    for i, later in enumerate(choices):
        if any((type(c) is not str and c == later) or c is later for c in choices[:i]):
            raise ConfigError(f"{where} lists choice {later!r} more than once")
        if isinstance(later, str) and later in choices[:i]:
            raise ConfigError(f"{where} lists choice {later!r} more than once")
    return ParamSpec(name=name, kind="categorical", choices=tuple(choices))


def _parse_range(where: str, name: str, raw: Mapping[str, Any], kind: Any) -> ParamSpec:
    if "low" not in raw or "high" not in raw:
        raise ConfigError(f"{where} needs 'low' and 'high' (or a list of 'choices')")
    low, high = raw["low"], raw["high"]
    for key, value in (("low", low), ("high", high)):
        if not _is_number(value) or not math.isfinite(float(value)):
            raise ConfigError(f"{where}: {key} must be a finite number, got {value!r}")
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be true or false, got {log!r}")
    step = raw.get("step")
    if kind is None:
        kind = "int" if isinstance(low, int) and isinstance(high, int) else "float"
    if low > high:
        raise ConfigError(f"{where}: low {low!r} is greater than high {high!r}")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log scale needs positive bounds, got low={low!r}")
    if step is not None:
        if log:
            raise ConfigError(
                f"{where} has both 'log' and 'step'; Optuna supports one or the other"
            )
        if not _is_number(step) or step <= 0:
            raise ConfigError(f"{where}: step must be a positive number, got {step!r}")
    if kind == "int":
        for key, value in (("low", low), ("high", high), ("step", step)):
            if value is not None and not _is_int(value):
                raise ConfigError(f"{where} is an int range but {key} is {value!r}")
        return ParamSpec(
            name=name,
            kind="int",
            low=int(low),
            high=int(high),
            log=log,
            step=int(step) if step is not None else None,
        )
    return ParamSpec(
        name=name,
        kind="float",
        low=float(low),
        high=float(high),
        log=log,
        step=float(step) if step is not None else None,
    )


@dataclass(frozen=True)
class SearchSpace:
    """The validated search space of one estimator."""

    estimator: str
    params: tuple[ParamSpec, ...]

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def distributions(self) -> dict[str, BaseDistribution]:
        return {p.name: p.distribution() for p in self.params}

    def to_dict(self) -> dict[str, Any]:
        return {p.name: p.to_dict() for p in self.params}


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice (PyYAML silently keeps the last one)."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise ConfigError(f"search space lists {key!r} more than once (contradictory entries)")
        seen.add(key)
    return dict(loader.construct_mapping(node))


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def load_space_text(text: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    """Parse a search-space override: JSON or YAML text, or the path of such a file.

    Empty text means "no override" (None). JSON is read by the YAML parser (YAML 1.1 is a
    superset for the JSON anyone writes by hand), with duplicate keys rejected.
    """
    if text is None:
        return None
    source = os.fspath(text)
    if not source.strip():
        return None
    label = "search space"
    if "\n" not in source and source.strip().endswith((".json", ".yaml", ".yml")):
        path = Path(source.strip()).expanduser()
        if not path.is_file():
            raise ConfigError(f"search space file not found: {path}")
        source, label = path.read_text(encoding="utf-8"), f"search space file {path}"
    try:
        data = yaml.load(source, Loader=_UniqueKeyLoader)  # SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise ConfigError(f"{label} is not valid JSON/YAML: {problem}{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{label} must be a mapping of parameter to range, got {data!r}")
    return data


def default_spaces() -> dict[str, Any]:
    """The shipped defaults, keyed by scikit-learn class name."""
    data = load_space_text(SPACES_FILE)
    assert data is not None
    return data


def _estimator_class_and_params(task: str, estimator: str) -> tuple[str, list[str]]:
    from kfops.training import make_estimator

    model = make_estimator(task, estimator, {})
    return type(model).__name__, sorted(model.get_params(deep=False))


def resolve_space(
    task: str,
    estimator: str,
    override: str | Mapping[str, Any] | None = None,
    fixed_params: Mapping[str, Any] | None = None,
) -> SearchSpace:
    """The search space for ``estimator``: the user's override if given, else the default.

    An override replaces the default space of the estimator. It is either ``{param: spec}`` or
    ``{estimator_name: {param: spec}, ...}`` (one file for several estimators). Parameters in
    ``fixed_params`` are left out of a default space; in a given space they are contradictory.
    Raises ConfigError for an empty space, a bad range, an unknown parameter (not in the
    estimator's ``get_params()``) or a parameter both fixed and searched.
    """
    from kfops.training import ESTIMATORS

    cls_name, valid = _estimator_class_and_params(task, estimator)
    raw = load_space_text(override) if isinstance(override, str | os.PathLike) else override
    if raw is None:
        defaults = default_spaces()
        if cls_name not in defaults:
            raise ConfigError(
                f"no default search space for estimator {estimator!r} ({cls_name}); "
                "give one with a search space override"
            )
        # Parameters the user fixed are pinned, not searched: drop them from the default.
        raw = {k: v for k, v in defaults[cls_name].items() if k not in (fixed_params or {})}
        origin = "default"
    else:
        names = {name for table in ESTIMATORS.values() for name in table}
        if estimator in raw and isinstance(raw[estimator], Mapping):
            raw = raw[estimator]
        elif raw and all(key in names for key in raw):
            raise ConfigError(
                f"search space has entries for {', '.join(sorted(raw))} but not for "
                f"estimator {estimator!r}"
            )
        origin = "given"
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(
            f"the {origin} search space of {estimator!r} is empty (after leaving out fixed "
            "params): nothing to tune"
        )
    params: list[ParamSpec] = []
    fixed = dict(fixed_params or {})
    for name, spec in raw.items():
        if not isinstance(name, str):
            raise ConfigError(f"search space of {estimator!r}: parameter name {name!r} is not text")
        if name not in valid:
            raise ConfigError(
                f"search space of {estimator!r}: unknown parameter {name!r} for {cls_name}; "
                f"valid parameters: {', '.join(valid)}"
            )
        if name in fixed:
            raise ConfigError(
                f"parameter {name!r} is both fixed (params={fixed[name]!r}) and in the search "
                f"space of {estimator!r}: remove it from one of them"
            )
        param = parse_param(estimator, name, spec)
        _check_values(task, estimator, param, fixed)
        params.append(param)
    return SearchSpace(estimator=estimator, params=tuple(params))


def _check_values(task: str, estimator: str, param: ParamSpec, fixed: dict[str, Any]) -> None:
    """Every choice and both bounds must be values the estimator accepts (sklearn's own
    parameter constraints), so a typo fails the configuration instead of every trial."""
    from kfops.training import make_estimator

    values = list(param.choices or ()) if param.kind == "categorical" else [param.low, param.high]
    for value in values:
        try:
            make_estimator(task, estimator, {**fixed, param.name: value})
        except ConfigError as exc:
            raise ConfigError(
                f"search space of {estimator!r}: parameter {param.name!r} value {value!r} is "
                f"not accepted: {' '.join(str(exc).split())}"
            ) from None


# --- study state -------------------------------------------------------------------------------


@dataclass
class TrialRecord:
    """One trial as stored in the study document."""

    number: int
    round: int
    params: dict[str, Any]
    state: TrialStateName = "PENDING"
    value: float | None = None
    fold_scores: list[float] = field(default_factory=list)
    error: str | None = None
    duration_s: float | None = None


@dataclass
class StudyState:
    """Everything a tuning step needs; serialised as JSON between pipeline tasks."""

    task: str
    estimator: str
    metric: str
    direction: Literal["maximize", "minimize"]
    seed: int
    space: dict[str, Any]
    fixed_params: dict[str, Any] = field(default_factory=dict)
    cv_folds: int = DEFAULT_CV_FOLDS
    max_trials: int = 0  # 0: only the rounds limit the number of trials
    timeout_s: float = 0.0  # 0: no wall-time limit
    n_startup_trials: int = 10
    started_at: float = 0.0
    trials: list[TrialRecord] = field(default_factory=list)
    stop_reason: str | None = None

    # -- serialisation --
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["schema_version"] = STATE_SCHEMA_VERSION
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StudyState:
        if not isinstance(data, Mapping) or data.get("schema_version") != STATE_SCHEMA_VERSION:
            version = data.get("schema_version") if isinstance(data, Mapping) else None
            raise TuningError(f"study document has schema_version {version!r}, expected 1")
        values = {k: v for k, v in data.items() if k != "schema_version"}
        try:
            values["trials"] = [TrialRecord(**t) for t in values.get("trials", [])]
            return cls(**values)
        except TypeError as exc:
            raise TuningError(f"study document is malformed: {exc}") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> StudyState:
        target = Path(path)
        if not target.is_file():
            raise TuningError(f"no study document at {target}")
        try:
            return cls.from_dict(read_json(target))
        except json.JSONDecodeError as exc:
            raise TuningError(f"study document {target} is not JSON: {exc}") from None

    # -- views --
    @property
    def search_space(self) -> SearchSpace:
        return SearchSpace(
            self.estimator,
            tuple(parse_param(self.estimator, k, v) for k, v in self.space.items()),
        )

    def trials_in(self, *states: str) -> list[TrialRecord]:
        return [t for t in self.trials if t.state in states]

    @property
    def deadline(self) -> float | None:
        return self.started_at + self.timeout_s if self.timeout_s > 0 else None


def new_study(
    task: str,
    estimator: str,
    *,
    space_override: str | Mapping[str, Any] | None = None,
    fixed_params: Mapping[str, Any] | None = None,
    seed: int = 42,
    planned_trials: int = 0,
    max_trials: int = 0,
    timeout_s: float = 0.0,
    cv_folds: int = DEFAULT_CV_FOLDS,
    now: float | None = None,
) -> StudyState:
    """Validate the configuration and start an empty study (the wall-time budget starts now)."""
    from kfops.evaluation import HIGHER_IS_BETTER, PRIMARY_METRIC

    if task not in PRIMARY_METRIC:
        raise ConfigError(f"unknown task {task!r}; expected one of {sorted(PRIMARY_METRIC)}")
    for name, value in (("max_trials", max_trials), ("planned_trials", planned_trials)):
        if not _is_int(value) or value < 0:
            raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
    if not _is_number(timeout_s) or timeout_s < 0:
        raise ConfigError(
            f"tuning timeout must be a non-negative number of seconds, got {timeout_s!r}"
        )
    if not _is_int(cv_folds) or cv_folds < 2:
        raise ConfigError(f"cv_folds must be an integer of at least 2, got {cv_folds!r}")
    space = resolve_space(task, estimator, space_override, fixed_params)
    # make_estimator validates the fixed params (unknown names, bad values) before any trial.
    from kfops.training import make_estimator

    make_estimator(task, estimator, dict(fixed_params or {}), seed=seed)
    metric = PRIMARY_METRIC[task]
    budget = min(b for b in (planned_trials, max_trials, 10**9) if b > 0)
    return StudyState(
        task=task,
        estimator=estimator,
        metric=metric,
        direction="maximize" if HIGHER_IS_BETTER[metric] else "minimize",
        seed=int(seed),
        space=space.to_dict(),
        fixed_params=dict(fixed_params or {}),
        cv_folds=int(cv_folds),
        max_trials=int(max_trials),
        timeout_s=float(timeout_s),
        # TPE needs a few random trials first; with small budgets Optuna's default 10 would
        # leave nothing for the model-based part.
        n_startup_trials=max(1, min(10, budget // 3)) if budget < 10**9 else 10,
        started_at=time.time() if now is None else now,
    )


def build_study(state: StudyState) -> optuna.Study:
    """Rebuild the Optuna study from the document: finished trials only, in order.

    The sampler's seed moves with the number of stored trials so a later round does not replay
    the random draws of an earlier one, yet the same history always gives the same proposals.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(
        seed=state.seed + len(state.trials),
        n_startup_trials=state.n_startup_trials,
        constant_liar=True,  # trials asked together in one round spread out
    )
    study = optuna.create_study(direction=state.direction, sampler=sampler)
    distributions = state.search_space.distributions()
    for trial in state.trials:
        if trial.state == "COMPLETE":
            frozen = optuna.trial.create_trial(
                params=trial.params, distributions=distributions, value=trial.value
            )
        elif trial.state == "FAIL":
            frozen = optuna.trial.create_trial(
                params=trial.params,
                distributions=distributions,
                state=optuna.trial.TrialState.FAIL,
            )
        else:  # SKIPPED trials never ran: they tell the sampler nothing
            continue
        study.add_trial(frozen)
    return study


def remaining_budget(state: StudyState, now: float | None = None) -> tuple[int | None, str | None]:
    """(trials still allowed or None for unlimited, reason when the budget is spent)."""
    now = time.time() if now is None else now
    deadline = state.deadline
    if deadline is not None and now >= deadline:
        return 0, f"wall-time budget of {state.timeout_s:g} s spent"
    if state.max_trials > 0:
        used = len(state.trials_in("COMPLETE", "FAIL"))
        left = state.max_trials - used
        if left <= 0:
            return 0, f"trial budget of {state.max_trials} spent"
        return left, None
    return None, None


def ask(
    state: StudyState,
    n: int,
    round_index: int = 0,
    n_rounds: int | None = None,
    now: float | None = None,
) -> list[TrialRecord]:
    """Ask for up to ``n`` trials (fewer when the budget is spent; none for rounds past
    ``n_rounds``). The trials are appended to ``state`` as PENDING and returned."""
    if not _is_int(n) or n < 1:
        raise ConfigError(f"trials per round must be a positive integer, got {n!r}")
    if n_rounds is not None and round_index >= n_rounds:
        return []
    left, reason = remaining_budget(state, now)
    if reason:
        state.stop_reason = state.stop_reason or reason
        return []
    count = int(n) if left is None else min(int(n), left)
    if count < n:
        state.stop_reason = state.stop_reason or f"trial budget of {state.max_trials} spent"
    study = build_study(state)
    distributions = state.search_space.distributions()
    asked: list[TrialRecord] = []
    for _ in range(count):
        trial = study.ask(distributions)
        record = TrialRecord(number=len(state.trials), round=round_index, params=dict(trial.params))
        state.trials.append(record)
        asked.append(record)
    return asked


def encode_trials(trials: list[TrialRecord], round_index: int) -> list[str]:
    """Trial payloads for a ParallelFor: JSON strings, so ints stay ints on every runner.

    A ParallelFor over an empty list fails under kfp.local, so a spent budget yields one
    ``skip`` payload that a trial task answers without work.
    """
    if not trials:
        return [json.dumps({"skip": True, "round": round_index})]
    return [
        json.dumps({"number": t.number, "round": t.round, "params": t.params}, sort_keys=True)
        for t in trials
    ]


# --- trials ------------------------------------------------------------------------------------


@dataclass
class CVProblem:
    """What every trial cross-validates: the model pipeline, data, folds and scorer."""

    model: Any  # sklearn Pipeline(preprocess, model), unfitted
    X: pd.DataFrame
    y: pd.Series
    cv: Any  # a seeded (Stratified)KFold: every trial sees the same folds
    scoring: str  # sklearn scorer name (greater is better)
    sign: float  # scorer value * sign = the metric in its own units


def cv_problem(
    train_df: pd.DataFrame,
    contract: Contract,
    estimator: str,
    params: Mapping[str, Any],
    *,
    metric: str,
    folds: int = DEFAULT_CV_FOLDS,
    seed: int = 42,
) -> CVProblem:
    """The cross-validation set-up on ``train_df`` only (the held-out test split never enters).

    The model is the same Pipeline(preprocess, model) that ``kfops.training.train`` fits, so a
    trial scores exactly what would be trained.
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    from kfops.errors import DataError
    from kfops.features import drop_null_target, feature_frame, target_series
    from kfops.training import make_estimator, make_pipeline

    if metric not in SCORERS:
        raise ConfigError(f"metric {metric!r} cannot be cross-validated; known: {sorted(SCORERS)}")
    scoring, sign = SCORERS[metric]
    data = drop_null_target(train_df, contract)
    X = feature_frame(data, contract)
    y = target_series(data, contract)
    if contract.task == "classification":
        # Integer labels must stay integers: sklearn calls an object array of ints "unknown"
        # and the stratified splitter refuses it. String labels stay object.
        y = y.astype(object).infer_objects()
        smallest = int(y.astype(str).value_counts().min())
        n_splits = min(folds, smallest)
        if n_splits < 2:
            raise DataError(
                f"a class of target {contract.target.name!r} has a single training row; "
                "cross-validation needs at least 2 per class"
            )
        cv: Any = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    else:
        if len(y) < folds:
            raise DataError(f"{len(y)} training row(s) are too few for {folds}-fold CV")
        cv = KFold(n_splits=folds, shuffle=True, random_state=seed)
    model = make_pipeline(
        contract, make_estimator(contract.task, estimator, dict(params), seed=seed)
    )
    return CVProblem(model=model, X=X, y=y, cv=cv, scoring=scoring, sign=sign)


def cv_scores(
    train_df: pd.DataFrame,
    contract: Contract,
    estimator: str,
    params: Mapping[str, Any],
    *,
    metric: str,
    folds: int = DEFAULT_CV_FOLDS,
    seed: int = 42,
) -> list[float]:
    """Cross-validated scores of ``metric`` (in its own units) on ``train_df`` only."""
    from sklearn.model_selection import cross_val_score

    p = cv_problem(train_df, contract, estimator, params, metric=metric, folds=folds, seed=seed)
    # error_score="raise": a failing fit must fail the trial, not hide as NaN.
    raw = cross_val_score(
        p.model, p.X, p.y, scoring=p.scoring, cv=p.cv, n_jobs=1, error_score="raise"
    )
    return [float(p.sign * s) for s in raw]


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= 500 else text[:497] + "..."


def run_trial(
    payload: str | Mapping[str, Any],
    state: StudyState,
    train_df: pd.DataFrame,
    contract: Contract,
    now: float | None = None,
) -> dict[str, Any]:
    """Evaluate one asked trial; never raises for a failing fit (the result says FAIL).

    Returns ``{"number", "state", "value", "fold_scores", "error", "duration_s"}`` or
    ``{"skip": true}`` for the no-op payload of a spent round.
    """
    item = json.loads(payload) if isinstance(payload, str) else dict(payload)
    if item.get("skip"):
        return {"skip": True, "round": item.get("round")}
    number = int(item["number"])
    deadline = state.deadline
    if deadline is not None and (time.time() if now is None else now) >= deadline:
        return {"number": number, "state": "SKIPPED", "error": "wall-time budget spent"}
    params = {**state.fixed_params, **item["params"]}
    start = time.perf_counter()
    try:
        scores = cv_scores(
            train_df,
            contract,
            state.estimator,
            params,
            metric=state.metric,
            folds=state.cv_folds,
            seed=state.seed,
        )
        value = float(sum(scores) / len(scores))
        if not math.isfinite(value):
            raise ValueError(f"cross-validated {state.metric} is {value}")
    except Exception as exc:  # any trial error is data for the study, not a crash
        return {
            "number": number,
            "state": "FAIL",
            "error": _error_text(exc),
            "traceback": traceback.format_exc(limit=3),
            "duration_s": round(time.perf_counter() - start, 4),
        }
    return {
        "number": number,
        "state": "COMPLETE",
        "value": value,
        "fold_scores": scores,
        "duration_s": round(time.perf_counter() - start, 4),
    }


def tell(state: StudyState, results: Iterable[str | Mapping[str, Any]]) -> StudyState:
    """Record trial results in ``state``. PENDING trials without a result are marked FAIL."""
    by_number = {t.number: t for t in state.trials}
    for result in results:
        item = json.loads(result) if isinstance(result, str) else dict(result)
        if item.get("skip"):
            continue
        number = int(item["number"])
        trial = by_number.get(number)
        if trial is None or trial.state != "PENDING":
            raise TuningError(f"result for trial {number}, which is not pending in the study")
        trial.state = item["state"]
        trial.value = item.get("value")
        trial.fold_scores = list(item.get("fold_scores") or [])
        trial.error = item.get("error")
        trial.duration_s = item.get("duration_s")
    for trial in state.trials_in("PENDING"):
        trial.state, trial.error = "FAIL", "no result came back for this trial"
    # stop_reason is set by ask when a budget actually cuts trials, not here: a study that
    # finishes its last round just as the budget runs out did not stop early.
    return state


# --- results -----------------------------------------------------------------------------------


def best_trial(state: StudyState) -> TrialRecord:
    """The best COMPLETE trial; TuningError when none completed (nothing must be trained)."""
    done = state.trials_in("COMPLETE")
    if not done:
        failed = state.trials_in("FAIL")
        if failed:
            raise TuningError(
                f"all {len(failed)} tuning trial(s) of {state.estimator!r} failed; "
                f"first error: {failed[0].error}"
            )
        raise TuningError(
            f"no tuning trial of {state.estimator!r} ran"
            + (f" ({state.stop_reason})" if state.stop_reason else "")
        )
    sign = 1.0 if state.direction == "maximize" else -1.0
    # Ties go to the earliest trial, so the answer does not depend on completion order.
    return max(done, key=lambda t: (sign * float(t.value or 0.0), -t.number))


def best_params(state: StudyState) -> dict[str, Any]:
    """Fixed params plus the best trial's params: what the train step should use."""
    return {**state.fixed_params, **best_trial(state).params}


def best_per_round(state: StudyState) -> list[dict[str, Any]]:
    """Per round: trials run, best score in the round and best score so far."""
    sign = 1.0 if state.direction == "maximize" else -1.0
    rounds = sorted({t.round for t in state.trials})
    rows: list[dict[str, Any]] = []
    so_far: float | None = None
    for r in rounds:
        trials = [t for t in state.trials if t.round == r]
        values = [float(t.value) for t in trials if t.state == "COMPLETE" and t.value is not None]
        best = max(values, key=lambda v: sign * v) if values else None
        if best is not None and (so_far is None or sign * best > sign * so_far):
            so_far = best
        rows.append(
            {
                "round": r,
                "trials": len(trials),
                "complete": len(values),
                "failed": sum(t.state == "FAIL" for t in trials),
                "best": best,
                "best_so_far": so_far,
            }
        )
    return rows


def param_importances(state: StudyState) -> dict[str, float] | None:
    """Optuna's fANOVA parameter importances, or None with too few trials to say anything."""
    import optuna

    done = state.trials_in("COMPLETE")
    if len(done) < 4 or len(state.space) < 2:
        return None
    values = {float(t.value or 0.0) for t in done}
    if len(values) < 2:
        return None
    study = build_study(state)
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=state.seed)
    try:
        importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (RuntimeError, ValueError):  # e.g. a parameter that never varied
        return None
    return {k: float(v) for k, v in importances.items()}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return fmt.number(value, fmt.SIGNIFICANT)
    return "" if value is None else fmt.cell(html.escape(str(value)))


def summary(state: StudyState) -> dict[str, Any]:
    """Numbers for metrics/lineage: counts, best score and params (None when nothing completed)."""
    done = state.trials_in("COMPLETE")
    best = best_trial(state) if done else None
    return {
        "estimator": state.estimator,
        "metric": state.metric,
        "direction": state.direction,
        "trials": len(state.trials_in("COMPLETE", "FAIL")),
        "complete": len(done),
        "failed": len(state.trials_in("FAIL")),
        "skipped": len(state.trials_in("SKIPPED")),
        "best_value": best.value if best else None,
        "best_trial": best.number if best else None,
        "best_params": {**state.fixed_params, **best.params} if best else None,
        "stop_reason": state.stop_reason,
    }


def render_report(state: StudyState) -> str:
    """Markdown for the dashboard: summary, best score per round, importances, all trials."""
    info = summary(state)
    arrow = "higher" if state.direction == "maximize" else "lower"
    lines = [
        f"# Tuning: {state.estimator}",
        "",
        f"Cross-validated **{state.metric}** ({arrow} is better) on the training split, "
        f"{state.cv_folds} folds, seed {state.seed}.",
        "",
        f"- trials: {info['trials']} ({info['complete']} complete, {info['failed']} failed"
        + (f", {info['skipped']} skipped" if info["skipped"] else "")
        + ")",
    ]
    if info["best_value"] is not None:
        lines.append(
            f"- best {state.metric}: **{info['best_value']:.4f}** (trial {info['best_trial']})"
        )
        lines.append(f"- best params: `{json.dumps(info['best_params'], sort_keys=True)}`")
    else:
        lines.append("- no trial completed: nothing to train")
    if state.stop_reason:
        lines.append(f"- stopped early: {state.stop_reason}")
    lines += ["", "## Best score per round", "", "| round | trials | failed | best | best so far |"]
    lines.append("| --- | --- | --- | --- | --- |")
    for row in best_per_round(state):
        lines.append(
            f"| {row['round']} | {row['trials']} | {row['failed']} | {_fmt(row['best'])} "
            f"| {_fmt(row['best_so_far'])} |"
        )
    lines += ["", "## Parameter importance", ""]
    importances = param_importances(state)
    if importances is None:
        lines.append("Not enough completed trials (or parameters) for fANOVA importances.")
    else:
        lines += ["| parameter | importance |", "| --- | --- |"]
        lines += [f"| {_fmt(k)} | {v:.3f} |" for k, v in importances.items()]
    names = list(state.space)
    lines += ["", "## Trials", ""]
    lines.append(
        "| # | round | state | "
        + " | ".join(_fmt(n) for n in names)
        + f" | {state.metric} | seconds | error |"
    )
    lines.append("| " + " | ".join(["---"] * (len(names) + 6)) + " |")
    for t in state.trials:
        cells = [_fmt(t.params.get(n)) for n in names]
        lines.append(
            f"| {t.number} | {t.round} | {t.state} | "
            + " | ".join(cells)
            + f" | {_fmt(t.value)} | {_fmt(t.duration_s)} | {_fmt(t.error)} |"
        )
    return "\n".join(lines) + "\n"


# --- in-process driver -------------------------------------------------------------------------


def tune_in_process(
    train_df: pd.DataFrame,
    contract: Contract,
    estimator: str,
    *,
    n_rounds: int = 2,
    trials_per_round: int = 4,
    seed: int = 42,
    space_override: str | Mapping[str, Any] | None = None,
    fixed_params: Mapping[str, Any] | None = None,
    max_trials: int = 0,
    timeout_s: float = 0.0,
    cv_folds: int = DEFAULT_CV_FOLDS,
) -> StudyState:
    """The pipeline's rounds in one process (for the CLI without KFP, tests and benchmarks).

    The state goes through its JSON form between steps exactly as between pipeline tasks.
    """
    state = new_study(
        contract.task,
        estimator,
        space_override=space_override,
        fixed_params=fixed_params,
        seed=seed,
        planned_trials=n_rounds * trials_per_round,
        max_trials=max_trials,
        timeout_s=timeout_s,
        cv_folds=cv_folds,
    )
    for r in range(n_rounds):
        state = StudyState.from_dict(json.loads(json.dumps(state.to_dict())))
        payloads = encode_trials(ask(state, trials_per_round, r, n_rounds), r)
        results = [run_trial(p, state, train_df, contract) for p in payloads]
        state = tell(StudyState.from_dict(json.loads(json.dumps(state.to_dict()))), results)
    return state


# --- pipeline steps (paths in, paths out: what the KFP components call) ------------------------
#
# Telling a round's results is folded into the next task (the next round's ask, or the report):
# on kfp.local every task costs seconds of interpreter start and imports, so a round is
# ask -> trials rather than ask -> trials -> tell, with the same study document in between.


def start_step(
    study_out: str | os.PathLike[str],
    task: str,
    estimator: str,
    params_json: str = "",
    search_space: str = "",
    seed: int = 42,
    n_rounds: int = 1,
    trials_per_round: int = 1,
    max_trials: int = 0,
    timeout_s: float = 0.0,
    cv_folds: int = DEFAULT_CV_FOLDS,
    max_rounds: int = 0,
) -> list[str]:
    """Validate the configuration (config errors fail here, before any trial), start the study
    and ask round 0. Returns the trial payloads for the ParallelFor.

    ``max_rounds`` is the number of rounds the pipeline was compiled with (0: unchecked).
    """
    from kfops.training import parse_params

    for name, value in (("n_rounds", n_rounds), ("trials_per_round", trials_per_round)):
        if not _is_int(value) or value < 1:
            raise ConfigError(f"tuning {name} must be a positive integer, got {value!r}")
    if max_rounds and n_rounds > max_rounds:
        raise ConfigError(
            f"tuning n_rounds={n_rounds} but the pipeline was compiled with {max_rounds} "
            "round(s); compile with more rounds or ask for fewer"
        )
    state = new_study(
        task,
        estimator,
        space_override=search_space or None,
        fixed_params=parse_params(params_json),
        seed=int(seed),
        planned_trials=int(n_rounds) * int(trials_per_round),
        max_trials=int(max_trials),
        timeout_s=float(timeout_s),
        cv_folds=int(cv_folds),
    )
    trials = ask(state, int(trials_per_round), 0, int(n_rounds))
    state.save(study_out)
    return encode_trials(trials, 0)


def ask_step(
    study_in: str | os.PathLike[str],
    results: Iterable[str],
    study_out: str | os.PathLike[str],
    round_index: int,
    n_rounds: int,
    trials_per_round: int,
) -> list[str]:
    """Tell the previous round's results, then ask round ``round_index``."""
    state = tell(StudyState.load(study_in), list(results))
    trials = ask(state, int(trials_per_round), int(round_index), int(n_rounds))
    state.save(study_out)
    return encode_trials(trials, int(round_index))


def trial_step(
    train_path: str | os.PathLike[str],
    contract_path: str | os.PathLike[str],
    study_path: str | os.PathLike[str],
    payload: str,
) -> str:
    """Evaluate one trial on the training split; the result is a JSON string for Collected."""
    item = json.loads(payload)
    if item.get("skip"):  # spent budget: no data to read
        return json.dumps(item)
    from kfops.contract_model import Contract
    from kfops.data import read_table

    state = StudyState.load(study_path)
    result = run_trial(item, state, read_table(train_path), Contract.load(Path(contract_path)))
    return json.dumps(result, sort_keys=True)


def report_step(
    study_in: str | os.PathLike[str],
    results: Iterable[str],
    study_out: str | os.PathLike[str],
    report_path: str | os.PathLike[str],
) -> tuple[str, dict[str, Any]]:
    """Tell the last round's results; write the final study and the Markdown report; return
    (best params JSON, summary).

    Raises TuningError after writing both when no trial completed, so the pipeline stops before
    anything is trained or registered.
    """
    from kfops.io import write_text_atomic

    state = tell(StudyState.load(study_in), list(results))
    state.save(study_out)
    write_text_atomic(report_path, render_report(state))
    params = best_params(state)  # raises when every trial failed
    return json.dumps(params, sort_keys=True), summary(state)
