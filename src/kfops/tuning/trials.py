"""Trials: one asked parameter set, cross-validated on the training split only.

A trial scores exactly the Pipeline(preprocess, model) that ``kfops.training.train`` would fit,
on the same seeded folds for every trial; a failing fit is a FAIL result, never a crash.
"""

from __future__ import annotations

import json
import math
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kfops.errors import ConfigError
from kfops.tuning.study import DEFAULT_CV_FOLDS, StudyState

if TYPE_CHECKING:
    import pandas as pd

    from kfops.contract_model import Contract

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
