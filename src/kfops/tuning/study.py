"""The study document: everything a tuning step needs, passed between pipeline tasks as JSON.

One tuning run is a sequence of rounds. Each round *asks* Optuna for N parameter sets (pending
trials), the trials run independently (``kfops.tuning.trials``) and their results are *told*
back. ``build_study`` rebuilds the Optuna study from the document with
``optuna.trial.create_trial`` / ``Study.add_trial`` and a ``TPESampler`` seeded from (seed,
number of trials so far), so the same history always yields the same next proposals, in any
process, pod or container.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kfops.errors import ConfigError, KfopsError
from kfops.io import read_json, write_json_atomic
from kfops.tuning.space import SearchSpace, is_int, is_number, parse_param, resolve_space

if TYPE_CHECKING:
    import optuna

STATE_SCHEMA_VERSION = 1
DEFAULT_CV_FOLDS = 3

TrialStateName = Literal["PENDING", "COMPLETE", "FAIL", "SKIPPED"]


class TuningError(KfopsError):
    """Tuning cannot produce a result: every trial failed, or a study document is unusable."""


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
        if not is_int(value) or value < 0:
            raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
    if not is_number(timeout_s) or timeout_s < 0:
        raise ConfigError(
            f"tuning timeout must be a non-negative number of seconds, got {timeout_s!r}"
        )
    if not is_int(cv_folds) or cv_folds < 2:
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
    if not is_int(n) or n < 1:
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


def trial_payloads(trials: list[TrialRecord], round_index: int) -> list[dict[str, Any]]:
    """What each trial task of a round gets: its number, round and parameters.

    A ParallelFor over an empty list fails under kfp.local, so a spent budget yields one
    ``skip`` payload that a trial task answers without work.
    """
    if not trials:
        return [{"skip": True, "round": round_index}]
    return [{"number": t.number, "round": t.round, "params": t.params} for t in trials]


def encode_trials(trials: list[TrialRecord], round_index: int) -> list[str]:
    """Trial payloads as they cross the KFP edge: JSON strings, so ints stay ints on every
    runner (``run_trial`` and ``tell`` take them as they come back)."""
    return [json.dumps(p, sort_keys=True) for p in trial_payloads(trials, round_index)]


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
