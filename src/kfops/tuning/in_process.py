"""The pipeline's tuning rounds in one process (the CLI without KFP, tests and benchmarks)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kfops.tuning.study import DEFAULT_CV_FOLDS, StudyState, ask, encode_trials, new_study, tell
from kfops.tuning.trials import run_trial

if TYPE_CHECKING:
    import pandas as pd

    from kfops.contract_model import Contract


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
