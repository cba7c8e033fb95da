"""Hyperparameter tuning: Optuna ask-and-tell split into steps that can run as separate tasks.

- ``space``: search spaces (defaults in ``search_spaces.yaml``, per-run overrides), validated;
- ``study``: the study document passed between tasks, and ask / tell on it;
- ``trials``: one trial, cross-validated on the training split only;
- ``report``: best trial and parameters, per-round progress, importances, the Markdown report;
- ``in_process``: all rounds in one process (CLI without KFP, tests, benchmarks).

The pipeline's tasks are ``kfops.steps.tune`` (paths in, paths out).
"""

from kfops.tuning.in_process import tune_in_process
from kfops.tuning.report import (
    best_params,
    best_per_round,
    best_trial,
    param_importances,
    render_report,
    summary,
)
from kfops.tuning.space import (
    SPACES_FILE,
    ParamSpec,
    SearchSpace,
    default_spaces,
    load_space_text,
    parse_param,
    resolve_space,
)
from kfops.tuning.study import (
    DEFAULT_CV_FOLDS,
    STATE_SCHEMA_VERSION,
    StudyState,
    TrialRecord,
    TuningError,
    ask,
    build_study,
    encode_trials,
    new_study,
    remaining_budget,
    tell,
    trial_payloads,
)
from kfops.tuning.trials import SCORERS, CVProblem, cv_problem, cv_scores, run_trial

__all__ = [
    "DEFAULT_CV_FOLDS",
    "SCORERS",
    "SPACES_FILE",
    "STATE_SCHEMA_VERSION",
    "CVProblem",
    "ParamSpec",
    "SearchSpace",
    "StudyState",
    "TrialRecord",
    "TuningError",
    "ask",
    "best_params",
    "best_per_round",
    "best_trial",
    "build_study",
    "cv_problem",
    "cv_scores",
    "default_spaces",
    "encode_trials",
    "load_space_text",
    "new_study",
    "param_importances",
    "parse_param",
    "remaining_budget",
    "render_report",
    "resolve_space",
    "run_trial",
    "summary",
    "tell",
    "trial_payloads",
    "tune_in_process",
]
