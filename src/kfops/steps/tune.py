"""Tune: Optuna ask-and-tell as pipeline tasks, with the study document as the file between them.

    start (validate config, ask round 0) -> trials (ParallelFor) -> ask (tell round r-1,
    ask round r) -> trials -> ... -> report (tell the last round, best params, report)

Telling a round's results is folded into the next task (the next round's ask, or the report):
on kfp.local every task costs seconds of interpreter start and imports, so a round is
ask -> trials rather than ask -> trials -> tell. Payloads and results are dictionaries here;
the components carry them as JSON strings (so integer parameters stay integers through
ParallelFor and Collected on every runner). The domain logic is ``kfops.tuning``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfops.errors import ConfigError
from kfops.io import write_text_atomic
from kfops.params import DEFAULTS, resolve_estimator
from kfops.tuning.report import best_params, render_report, summary
from kfops.tuning.space import is_int
from kfops.tuning.study import (
    DEFAULT_CV_FOLDS,
    StudyState,
    ask,
    new_study,
    tell,
    trial_payloads,
)

Payload = dict[str, Any]  # one trial to run: number, round, params (or skip)
Result = Mapping[str, Any]  # what a trial task returns: state, value, fold scores, error


@dataclass(frozen=True)
class StartInputs:
    study_path: Path  # where the new study document goes
    task: str
    estimator: str
    fixed_params: dict[str, Any] = field(default_factory=dict)  # pinned, not searched
    search_space: str = ""  # YAML/JSON text or file path overriding the default space
    seed: int = DEFAULTS.seed
    n_rounds: int = 1
    trials_per_round: int = 1
    max_trials: int = 0
    timeout_s: float = 0.0
    cv_folds: int = DEFAULT_CV_FOLDS
    max_rounds: int = 0  # rounds the pipeline was compiled with (0: unchecked)


def start(inputs: StartInputs) -> list[Payload]:
    """Validate the configuration (config errors fail here, before any trial), start the study
    and ask round 0. Returns the trial payloads for the ParallelFor."""
    n_rounds, per_round = inputs.n_rounds, inputs.trials_per_round
    for name, value in (("n_rounds", n_rounds), ("trials_per_round", per_round)):
        if not is_int(value) or value < 1:
            raise ConfigError(f"tuning {name} must be a positive integer, got {value!r}")
    if inputs.max_rounds and n_rounds > inputs.max_rounds:
        raise ConfigError(
            f"tuning n_rounds={n_rounds} but the pipeline was compiled with {inputs.max_rounds} "
            "round(s); compile with more rounds or ask for fewer"
        )
    state = new_study(
        inputs.task,
        resolve_estimator(inputs.estimator, inputs.task),
        space_override=inputs.search_space or None,
        fixed_params=inputs.fixed_params,
        seed=int(inputs.seed),
        planned_trials=int(n_rounds) * int(per_round),
        max_trials=int(inputs.max_trials),
        timeout_s=float(inputs.timeout_s),
        cv_folds=int(inputs.cv_folds),
    )
    trials = ask(state, int(per_round), 0, int(n_rounds))
    state.save(inputs.study_path)
    return trial_payloads(trials, 0)


@dataclass(frozen=True)
class AskInputs:
    study_in: Path
    results: Sequence[Result]  # the previous round's trial results
    study_out: Path
    round_index: int
    n_rounds: int
    trials_per_round: int


def ask_round(inputs: AskInputs) -> list[Payload]:
    """Tell the previous round's results, then ask round ``round_index``."""
    state = tell(StudyState.load(inputs.study_in), list(inputs.results))
    trials = ask(state, int(inputs.trials_per_round), int(inputs.round_index), int(inputs.n_rounds))
    state.save(inputs.study_out)
    return trial_payloads(trials, int(inputs.round_index))


@dataclass(frozen=True)
class TrialInputs:
    train_path: Path
    contract_path: Path
    study_path: Path
    payload: Payload  # one of start's or ask_round's


def trial(inputs: TrialInputs) -> dict[str, Any]:
    """Evaluate one trial on the training split (a failing fit is a FAIL result, not an error)."""
    item = dict(inputs.payload)
    if item.get("skip"):  # spent budget: no data to read
        return item
    from kfops.contract_model import Contract
    from kfops.data import read_table
    from kfops.tuning.trials import run_trial

    state = StudyState.load(inputs.study_path)
    return run_trial(
        item, state, read_table(inputs.train_path), Contract.load(Path(inputs.contract_path))
    )


@dataclass(frozen=True)
class ReportInputs:
    study_in: Path
    results: Sequence[Result]  # the last round's trial results
    study_out: Path
    report_path: Path  # Markdown


@dataclass(frozen=True)
class TuneResult:
    best_params: dict[str, Any]  # fixed params + the best trial's: what train uses
    summary: dict[str, Any]  # metric, direction, trial counts, best value, stop reason


def report(inputs: ReportInputs) -> TuneResult:
    """Tell the last round's results; write the final study and the Markdown report.

    Raises TuningError after writing both when no trial completed, so the pipeline stops before
    anything is trained or registered.
    """
    state = tell(StudyState.load(inputs.study_in), list(inputs.results))
    state.save(inputs.study_out)
    write_text_atomic(inputs.report_path, render_report(state))
    params = best_params(state)  # raises when every trial failed
    return TuneResult(params, summary(state))
