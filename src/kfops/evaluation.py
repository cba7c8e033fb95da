"""Evaluation on the held-out split: metrics, confusion matrix, ROC, residuals, HTML report."""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.pipeline import Pipeline

from kfops.contract_model import Contract
from kfops.errors import DataError
from kfops.features import drop_null_target, feature_frame, target_series
from kfops.training import limited_threads

PRIMARY_METRIC: dict[str, str] = {"classification": "f1_macro", "regression": "rmse"}

CLASSIFICATION_METRICS: tuple[str, ...] = (
    "accuracy",
    "balanced_accuracy",
    # 0 for any constant or random prediction, 1 for perfect (sklearn's adjusted=True): the
    # default blessing bar of a classifier, "better than guessing", whatever the class balance.
    "balanced_accuracy_adjusted",
    "f1_macro",
    "precision_macro",
    "recall_macro",
    "log_loss",
    "roc_auc",
)
REGRESSION_METRICS: tuple[str, ...] = ("rmse", "mae", "r2", "mape")
METRICS_BY_TASK: dict[str, tuple[str, ...]] = {
    "classification": CLASSIFICATION_METRICS,
    "regression": REGRESSION_METRICS,
}
HIGHER_IS_BETTER: dict[str, bool] = {
    "accuracy": True,
    "balanced_accuracy": True,
    "balanced_accuracy_adjusted": True,
    "f1_macro": True,
    "precision_macro": True,
    "recall_macro": True,
    "log_loss": False,
    "roc_auc": True,
    "rmse": False,
    "mae": False,
    "r2": True,
    "mape": False,
}

# KFP's ClassificationMetrics.log_roc_curve stores every point in run metadata: keep it small.
MAX_ROC_POINTS = 200
# Predicted-vs-actual points kept for the regression plots (a deterministic sample).
MAX_SAMPLE_POINTS = 500


@dataclass
class Evaluation:
    """Metrics and plot data of one model on one held-out split (JSON-friendly)."""

    task: str
    metrics: dict[str, float]
    n_rows: int
    labels: list[Any] | None = None  # confusion-matrix row/column order (classification)
    confusion_matrix: list[list[int]] | None = None  # rows: actual, columns: predicted
    roc: dict[str, Any] | None = None  # fpr, tpr, thresholds, auc, average, positive_class
    residuals: dict[str, float] | None = None  # regression: summary of actual - predicted
    sample: dict[str, list[float]] | None = None  # regression: actual/predicted for plots
    data_sha256: str | None = None  # hash of the held-out targets: "same data" check
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evaluation:
        return cls(
            task=str(data["task"]),
            metrics={str(k): float(v) for k, v in data["metrics"].items()},
            n_rows=int(data["n_rows"]),
            labels=data.get("labels"),
            confusion_matrix=data.get("confusion_matrix"),
            roc=data.get("roc"),
            residuals=data.get("residuals"),
            sample=data.get("sample"),
            data_sha256=data.get("data_sha256"),
            extra=dict(data.get("extra") or {}),
        )


def _jsonable(value: Any) -> Any:
    """numpy scalars/arrays to plain Python so json.dumps (and KFP metadata) accept them."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def _targets_sha256(y: pd.Series) -> str:
    hashed = pd.util.hash_pandas_object(y.astype(str).reset_index(drop=True), index=False)
    return hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()


def thin_curve(*arrays: np.ndarray, max_points: int = MAX_ROC_POINTS) -> list[np.ndarray]:
    """Keep at most ``max_points`` evenly spaced points, always the first and the last."""
    n = len(arrays[0])
    if n <= max_points:
        return list(arrays)
    idx = np.unique(np.linspace(0, n - 1, max_points).round().astype(int))
    return [a[idx] for a in arrays]


def label_metrics(y_true: Any, predicted: Any, labels: list[Any] | None = None) -> dict[str, float]:
    """Metrics that need only predicted labels (shared with monitoring's late-label windows)."""
    macro: dict[str, Any] = {"average": "macro", "zero_division": 0, "labels": labels}
    return {
        "accuracy": float(skm.accuracy_score(y_true, predicted)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, predicted)),
        "balanced_accuracy_adjusted": float(
            skm.balanced_accuracy_score(y_true, predicted, adjusted=True)
        ),
        "f1_macro": float(skm.f1_score(y_true, predicted, **macro)),
        "precision_macro": float(skm.precision_score(y_true, predicted, **macro)),
        "recall_macro": float(skm.recall_score(y_true, predicted, **macro)),
    }


def regression_metrics(y_true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Regression metrics; undefined ones (r2 on one row) are left out, never NaN."""
    metrics = {
        "rmse": float(np.sqrt(skm.mean_squared_error(y_true, predicted))),
        "mae": float(skm.mean_absolute_error(y_true, predicted)),
        "r2": float(skm.r2_score(y_true, predicted)) if len(y_true) >= 2 else float("nan"),
        "mape": float(skm.mean_absolute_percentage_error(y_true, predicted)),
    }
    return {k: v for k, v in metrics.items() if math.isfinite(v)}


def evaluate(model: Pipeline, test_df: pd.DataFrame, contract: Contract) -> Evaluation:
    """Evaluate a fitted Pipeline (raw feature columns in) on ``test_df``."""
    data = drop_null_target(test_df, contract)
    X = feature_frame(data, contract)
    y = target_series(data, contract)
    with limited_threads():
        if contract.task == "classification":
            evaluation = _evaluate_classifier(model, X, y, contract)
        else:
            evaluation = _evaluate_regressor(model, X, y)
    evaluation.data_sha256 = _targets_sha256(y)
    return evaluation


def _evaluate_classifier(
    model: Pipeline, X: pd.DataFrame, y: pd.Series, contract: Contract
) -> Evaluation:
    predicted = model.predict(X)
    model_classes = list(getattr(model, "classes_", []))
    labels = list(contract.target.classes or [])
    for label in [*model_classes, *pd.unique(y)]:
        if label not in labels:
            labels.append(label)
    y_true = y.to_numpy()
    metrics = label_metrics(y_true, predicted)
    matrix = skm.confusion_matrix(y_true, predicted, labels=labels)
    roc: dict[str, Any] | None = None
    # Probability metrics need every test label to be one the model knows (a champion trained
    # before a class existed cannot score it) and at least two classes present.
    known = set(model_classes)
    if (
        hasattr(model, "predict_proba")
        and len(model_classes) >= 2
        and all(label in known for label in pd.unique(y))
    ):
        proba = model.predict_proba(X)
        metrics["log_loss"] = skm.log_loss(y_true, proba, labels=model_classes)
        if pd.unique(y).size >= 2:
            roc = _roc(y_true, proba, model_classes)
            if len(model_classes) == 2:
                metrics["roc_auc"] = roc["auc"]
            elif set(pd.unique(y)) == known:
                # One-vs-rest AUC is undefined for a class absent from the test rows.
                metrics["roc_auc"] = skm.roc_auc_score(
                    y_true, proba, multi_class="ovr", average="macro", labels=model_classes
                )
    return Evaluation(
        task="classification",
        metrics={k: float(v) for k, v in metrics.items()},
        n_rows=len(y_true),
        labels=_jsonable(labels),
        confusion_matrix=matrix.astype(int).tolist(),
        roc=roc,
    )


def _roc(y_true: np.ndarray, proba: np.ndarray, classes: list[Any]) -> dict[str, Any]:
    if len(classes) == 2:
        # sklearn's convention: the second (sorted) class is the positive one.
        positive = classes[1]
        truth = (y_true == positive).astype(int)
        scores = proba[:, 1]
        average = "binary"
    else:
        # Micro-averaged one-vs-rest: every (row, class) pair is one binary decision.
        positive = None
        truth = np.column_stack([(y_true == c).astype(int) for c in classes]).ravel()
        scores = proba.ravel()
        average = "micro"
    fpr, tpr, thresholds = skm.roc_curve(truth, scores)
    auc = skm.auc(fpr, tpr)
    # The first threshold is +inf (nothing predicted positive); JSON and KFP need finite numbers.
    thresholds = np.where(np.isfinite(thresholds), thresholds, 1.0)
    fpr, tpr, thresholds = thin_curve(fpr, tpr, thresholds)
    return {
        "fpr": _jsonable(fpr),
        "tpr": _jsonable(tpr),
        "thresholds": _jsonable(thresholds),
        "auc": float(auc),
        "average": average,
        "positive_class": _jsonable(positive),
    }


def _evaluate_regressor(model: Pipeline, X: pd.DataFrame, y: pd.Series) -> Evaluation:
    y_true = y.to_numpy(dtype=np.float64)
    predicted = np.asarray(model.predict(X), dtype=np.float64)
    if not np.all(np.isfinite(predicted)):
        raise DataError("the model produced non-finite predictions on the test data")
    residuals = y_true - predicted
    metrics = regression_metrics(y_true, predicted)
    summary = {
        "mean": float(residuals.mean()),
        "std": float(residuals.std()),
        "min": float(residuals.min()),
        "max": float(residuals.max()),
        "p05": float(np.percentile(residuals, 5)),
        "p50": float(np.percentile(residuals, 50)),
        "p95": float(np.percentile(residuals, 95)),
    }
    if len(y_true) > MAX_SAMPLE_POINTS:
        idx = np.sort(
            np.random.default_rng(0).choice(len(y_true), MAX_SAMPLE_POINTS, replace=False)
        )
    else:
        idx = np.arange(len(y_true))
    return Evaluation(
        task="regression",
        metrics=metrics,
        n_rows=len(y_true),
        residuals=summary,
        sample={"actual": _jsonable(y_true[idx]), "predicted": _jsonable(predicted[idx])},
    )
