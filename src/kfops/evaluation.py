"""Evaluation on the held-out split: metrics, confusion matrix, ROC, residuals, HTML report."""

from __future__ import annotations

import base64
import hashlib
import html
import io
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from kfops.contract_model import Contract
from kfops.errors import DataError
from kfops.features import drop_null_target, feature_frame, target_series
from kfops.training import limited_threads

PRIMARY_METRIC: dict[str, str] = {"classification": "f1_macro", "regression": "rmse"}

CLASSIFICATION_METRICS: tuple[str, ...] = (
    "accuracy",
    "balanced_accuracy",
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


def evaluate(model: Any, test_df: pd.DataFrame, contract: Contract) -> Evaluation:
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
    model: Any, X: pd.DataFrame, y: pd.Series, contract: Contract
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


def _evaluate_regressor(model: Any, X: pd.DataFrame, y: pd.Series) -> Evaluation:
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


# --- HTML report -----------------------------------------------------------------------------


def _figure_png(fig: Any) -> str:
    buffer = io.BytesIO()
    # No timestamp/software metadata: the same evaluation renders to the same bytes.
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _confusion_png(evaluation: Evaluation) -> str:
    from matplotlib.figure import Figure  # Figure without pyplot: no global state, Agg canvas

    labels = [str(label) for label in evaluation.labels or []]
    matrix = np.asarray(evaluation.confusion_matrix or [[0]])
    size = max(3.5, 0.6 * len(labels) + 2)
    fig = Figure(figsize=(size, size))
    ax = fig.add_subplot()
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title("Confusion matrix")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(
            j,
            i,
            str(value),
            ha="center",
            va="center",
            color="white" if value > threshold else "black",
        )
    return _figure_png(fig)


def _roc_png(evaluation: Evaluation) -> str:
    from matplotlib.figure import Figure

    roc = evaluation.roc or {}
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.add_subplot()
    what = (
        "micro-average OvR"
        if roc.get("average") == "micro"
        else f"positive={roc.get('positive_class')}"
    )
    ax.plot(
        roc.get("fpr", []),
        roc.get("tpr", []),
        label=f"AUC {roc.get('auc', float('nan')):.3f} ({what})",
    )
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC curve")
    ax.legend(loc="lower right")
    return _figure_png(fig)


def _regression_pngs(evaluation: Evaluation) -> list[tuple[str, str]]:
    from matplotlib.figure import Figure

    sample = evaluation.sample or {"actual": [], "predicted": []}
    actual = np.asarray(sample["actual"], dtype=float)
    predicted = np.asarray(sample["predicted"], dtype=float)
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.add_subplot()
    ax.scatter(actual, predicted, s=8, alpha=0.6)
    if actual.size:
        lo, hi = (
            float(min(actual.min(), predicted.min())),
            float(max(actual.max(), predicted.max())),
        )
        ax.plot([lo, hi], [lo, hi], linestyle="--", color="grey", linewidth=1)
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.set_title("Predicted vs actual")
    scatter = _figure_png(fig)
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.add_subplot()
    ax.scatter(predicted, actual - predicted, s=8, alpha=0.6)
    ax.axhline(0, linestyle="--", color="grey", linewidth=1)
    ax.set_xlabel("predicted")
    ax.set_ylabel("residual (actual - predicted)")
    ax.set_title("Residuals")
    return [("Predicted vs actual", scatter), ("Residuals", _figure_png(fig))]


def _table(rows: list[tuple[str, str]], header: tuple[str, str]) -> str:
    body = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return (
        f"<table><thead><tr><th>{html.escape(header[0])}</th><th>{html.escape(header[1])}</th>"
        f"</tr></thead><tbody>{body}</tbody></table>"
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict | list):
        import json

        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def render_report(
    evaluation: Evaluation, title: str = "Model evaluation", extra: dict[str, Any] | None = None
) -> str:
    """A self-contained HTML page (inline CSS, base64 PNGs) for the Kubeflow dashboard."""
    metric_rows = [(name, _fmt(value)) for name, value in evaluation.metrics.items()]
    metric_rows.append(("rows evaluated", str(evaluation.n_rows)))
    sections = [f"<h2>Metrics</h2>{_table(metric_rows, ('metric', 'value'))}"]
    if extra:
        rows = [(str(k), _fmt(v)) for k, v in extra.items()]
        sections.append(f"<h2>Details</h2>{_table(rows, ('field', 'value'))}")
    images: list[tuple[str, str]] = []
    if evaluation.task == "classification":
        if evaluation.confusion_matrix is not None:
            images.append(("Confusion matrix", _confusion_png(evaluation)))
        if evaluation.roc is not None:
            images.append(("ROC curve", _roc_png(evaluation)))
    else:
        if evaluation.residuals:
            rows = [(k, _fmt(v)) for k, v in evaluation.residuals.items()]
            sections.append(f"<h2>Residuals</h2>{_table(rows, ('statistic', 'value'))}")
        images.extend(_regression_pngs(evaluation))
    figures = "".join(
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(name)}</figcaption></figure>"
        for name, data in images
    )
    style = (
        "body{font-family:sans-serif;margin:1.5em;color:#222}"
        "table{border-collapse:collapse;margin-bottom:1em}"
        "td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}"
        "th{background:#f3f3f3}figure{display:inline-block;margin:0 1em 1em 0}"
    )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{style}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{''.join(sections)}<h2>Plots</h2>{figures}"
        "</body></html>\n"
    )
