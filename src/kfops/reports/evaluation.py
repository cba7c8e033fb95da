"""The evaluation page: metrics, details, the permutation importance of each feature (bar
chart and table), and the plots of a classifier (confusion matrix, ROC) or a regressor
(predicted vs actual, residuals), as a self-contained HTML page."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from kfops.evaluation import Evaluation
from kfops.explain.importance import Importance, importance_chart_base64
from kfops.reports import fmt
from kfops.reports.html import escape, figure, figure_png, page, table


def render_report(
    evaluation: Evaluation,
    title: str = "Model evaluation",
    extra: dict[str, Any] | None = None,
    importance: Importance | None = None,
) -> str:
    """A self-contained HTML page (inline CSS, base64 PNGs) for the Kubeflow dashboard."""
    metric_rows = [(name, _value(value)) for name, value in evaluation.metrics.items()]
    metric_rows.append(("rows evaluated", str(evaluation.n_rows)))
    sections = [f"<h2>Metrics</h2>{table(('metric', 'value'), metric_rows)}"]
    if extra:
        rows = [(str(k), _value(v)) for k, v in extra.items()]
        sections.append(f"<h2>Details</h2>{table(('field', 'value'), rows)}")
    if importance is not None:
        sections.append(_importance_section(importance))
    images: list[tuple[str, str]] = []
    if evaluation.task == "classification":
        if evaluation.confusion_matrix is not None:
            images.append(("Confusion matrix", _confusion_png(evaluation)))
        if evaluation.roc is not None:
            images.append(("ROC curve", _roc_png(evaluation)))
    else:
        if evaluation.residuals:
            rows = [(k, _value(v)) for k, v in evaluation.residuals.items()]
            sections.append(f"<h2>Residuals</h2>{table(('statistic', 'value'), rows)}")
        images.extend(_regression_pngs(evaluation))
    figures = "".join(figure(name, data) for name, data in images)
    return page(title, f"{''.join(sections)}<h2>Plots</h2>{figures}")


def _importance_section(importance: Importance) -> str:
    """The bar chart, then every feature's numbers (the chart shows the top ones only)."""
    intro = (
        f"<p>How much <code>{escape(importance.metric)}</code> worsens when one column of the "
        f"{importance.n_rows} held-out rows is shuffled ({importance.n_repeats} repeats; mean "
        "and standard deviation). Share: the column's part of all positive worsening.</p>"
    )
    rows = [
        (
            f.feature,
            f"{f.share:.1%}",
            fmt.number(f.mean, fmt.SIGNIFICANT),
            fmt.number(f.std, fmt.SIGNIFICANT),
        )
        for f in importance.features
    ]
    chart = figure("Permutation importance", importance_chart_base64(importance))
    head = ("feature", "share", "worsening (mean)", "std")
    return f"<h2>Feature importance</h2>{intro}{chart}{table(head, rows)}"


def _value(value: Any) -> str:
    if isinstance(value, float):
        return fmt.number(value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


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
    return figure_png(fig)


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
    return figure_png(fig)


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
    scatter = figure_png(fig)
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.add_subplot()
    ax.scatter(predicted, actual - predicted, s=8, alpha=0.6)
    ax.axhline(0, linestyle="--", color="grey", linewidth=1)
    ax.set_xlabel("predicted")
    ax.set_ylabel("residual (actual - predicted)")
    ax.set_title("Residuals")
    return [("Predicted vs actual", scatter), ("Residuals", figure_png(fig))]
