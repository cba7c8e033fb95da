"""Estimators by name, training of the full sklearn Pipeline, and byte-stable model files."""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
from sklearn.base import BaseEstimator
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.utils._param_validation import InvalidParameterError
from threadpoolctl import threadpool_limits

from kfops.contract_model import TASKS, Contract
from kfops.errors import ConfigError, DataError
from kfops.features import build_preprocessor, drop_null_target, feature_frame, target_series
from kfops.io import atomic_path
from kfops.params import default_estimator


@dataclass(frozen=True)
class EstimatorSpec:
    """An estimator class plus the defaults kfops uses (explicit params override them)."""

    cls: type[BaseEstimator]
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def seeded(self) -> bool:
        return "random_state" in self.cls().get_params()


ESTIMATORS: dict[str, dict[str, EstimatorSpec]] = {
    "classification": {
        "logistic_regression": EstimatorSpec(LogisticRegression, {"max_iter": 1000}),
        "random_forest": EstimatorSpec(
            RandomForestClassifier, {"n_estimators": 100, "min_samples_leaf": 1}
        ),
        "gradient_boosting": EstimatorSpec(HistGradientBoostingClassifier, {"max_iter": 100}),
        "decision_tree": EstimatorSpec(DecisionTreeClassifier, {"max_depth": 8}),
    },
    "regression": {
        "linear_regression": EstimatorSpec(LinearRegression),
        "ridge": EstimatorSpec(Ridge, {"alpha": 1.0}),
        "random_forest": EstimatorSpec(RandomForestRegressor, {"n_estimators": 100}),
        "gradient_boosting": EstimatorSpec(HistGradientBoostingRegressor, {"max_iter": 100}),
        "decision_tree": EstimatorSpec(DecisionTreeRegressor, {"max_depth": 8}),
    },
}


def _suggest(value: str, known: list[str]) -> str:
    close = difflib.get_close_matches(value, known, n=1)
    if not close:  # "logistic" -> "logistic_regression": difflib scores prefixes low
        close = [k for k in known if k.startswith(value.lower())][:1] if value else []
    return f"; did you mean {close[0]!r}?" if close else ""


def _spec(task: str, name: str) -> EstimatorSpec:
    if task not in ESTIMATORS:
        raise ConfigError(f"unknown task {task!r}; known tasks: {sorted(TASKS)}")
    table = ESTIMATORS[task]
    if name not in table:
        known = sorted(table)
        raise ConfigError(
            f"unknown {task} estimator {name!r}; known estimators: {', '.join(known)}"
            + _suggest(name, known)
        )
    return table[name]


def make_estimator(
    task: str, name: str, params: dict[str, Any] | None = None, seed: int = 42
) -> BaseEstimator:
    """An unfitted estimator with kfops defaults, ``params`` applied and validated.

    ``random_state`` is set to ``seed`` for estimators that have one, unless ``params`` sets it.
    """
    spec = _spec(task, name)
    params = dict(params or {})
    if not isinstance(params, dict):
        raise ConfigError(f"estimator params must be a JSON object, got {type(params).__name__}")
    estimator = spec.cls()
    valid = sorted(estimator.get_params(deep=False))
    unknown = [key for key in params if key not in valid]
    if unknown:
        raise ConfigError(
            f"unknown parameter {unknown[0]!r} for estimator {name!r} "
            f"({spec.cls.__name__}){_suggest(unknown[0], valid)}; valid parameters: "
            f"{', '.join(valid)}"
        )
    merged: dict[str, Any] = dict(spec.defaults)
    if spec.seeded:
        merged["random_state"] = seed
    merged.update(params)
    estimator.set_params(**merged)
    _validate_values(estimator, name)
    return estimator


def _validate_values(estimator: BaseEstimator, name: str) -> None:
    # sklearn checks types/ranges only at fit time; check now so a bad value fails before any
    # data is read. _validate_params is private, so a missing method just defers to fit time.
    validate = getattr(estimator, "_validate_params", None)
    if validate is None:
        return
    try:
        validate()
    except InvalidParameterError as exc:
        raise ConfigError(f"invalid parameter for estimator {name!r}: {exc}") from None


def cpu_budget() -> int:
    """CPUs this process may really use: affinity and cgroup quota (a pod's CPU limit).

    OpenMP/BLAS size their thread pools by the host's cores; in a pod limited to 2 CPUs on a
    32-core node the extra threads spin and get throttled. (On this busy 2-core machine
    HistGradientBoosting on 80k rows took 14 s with one thread versus 160 s with two threads
    competing with other work: OpenMP degrades sharply once threads exceed free CPUs.)
    ``KFOPS_THREADS`` overrides the detected value.
    """
    override = os.environ.get("KFOPS_THREADS", "").strip()
    if override:
        try:
            value = int(override)
        except ValueError:
            raise ConfigError(
                f"KFOPS_THREADS must be a positive integer, got {override!r}"
            ) from None
        if value < 1:
            raise ConfigError(f"KFOPS_THREADS must be a positive integer, got {override!r}")
        return value
    # joblib (loky) reads sched_getaffinity and the cgroup CPU quota.
    return max(1, int(joblib.cpu_count()))


def limited_threads() -> threadpool_limits:
    """Context manager capping OpenMP/BLAS threads at ``cpu_budget()``."""
    return threadpool_limits(limits=cpu_budget())


def make_pipeline(contract: Contract, model: BaseEstimator) -> Pipeline:
    """The served model's shape: raw feature columns -> preprocessing -> estimator. Training
    and tuning trials fit exactly this."""
    return Pipeline([("preprocess", build_preprocessor(contract)), ("model", model)])


def train(
    train_df: Any,
    contract: Contract,
    estimator: str | None = None,
    params: dict[str, Any] | None = None,
    seed: int = 42,
) -> Pipeline:
    """Fit ``Pipeline([("preprocess", ...), ("model", ...)])`` on raw feature columns.

    Classification targets are the labels as in the contract (e.g. species names), so the served
    model predicts those labels directly.
    """
    name = estimator or default_estimator(contract.task)
    model = make_estimator(contract.task, name, params, seed=seed)
    data = drop_null_target(train_df, contract)
    X = feature_frame(data, contract)
    y = target_series(data, contract)
    if contract.task == "classification" and y.nunique() < 2:
        raise DataError(
            f"training data has a single class {y.iloc[0]!r} in target "
            f"{contract.target.name!r}; a classifier needs at least 2"
        )
    for text in contract.features_of("text"):
        # TF-IDF cannot fit on a column without words; say which column instead of failing
        # with sklearn's "empty vocabulary".
        if not X[text].dropna().astype(str).str.contains(r"\w\w", regex=True).any():
            raise DataError(
                f"text feature {text!r} has no words in the training data; drop the column "
                "or declare it categorical in the contract"
            )
    pipeline = make_pipeline(contract, model)
    try:
        with limited_threads():
            pipeline.fit(X, y)
    except InvalidParameterError as exc:
        raise ConfigError(f"invalid parameter for estimator {name!r}: {exc}") from None
    except ValueError as exc:
        # Parameter combinations sklearn only rejects while fitting (e.g. an unsupported
        # penalty/solver pair) end here; name the estimator and params so the user can fix them.
        raise ConfigError(
            f"estimator {name!r} with params {json.dumps(params or {}, sort_keys=True)} "
            f"failed to fit: {exc}"
        ) from None
    return pipeline


def save_model(model: Pipeline, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` with joblib atomically. Identical training gives identical bytes."""
    target = Path(path)
    with atomic_path(target) as tmp:
        # compress=3 (zlib) is deterministic and shrinks forests several-fold.
        joblib.dump(model, tmp, compress=3)
    return target


def load_model(path: str | os.PathLike[str]) -> Pipeline:
    """The fitted Pipeline that ``save_model`` wrote (ConfigError for a missing or foreign file)."""
    target = Path(path)
    if not target.is_file():
        raise ConfigError(f"no model file at {target}")
    try:
        return joblib.load(target)
    except Exception as exc:  # a truncated or foreign file: one message, not a traceback
        raise ConfigError(f"model file {target} cannot be loaded: {exc}") from None
