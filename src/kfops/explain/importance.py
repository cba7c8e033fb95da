"""Global importance: permutation importance of each column the user sends, on held-out rows.

sklearn's ``permutation_importance`` shuffles one raw column of the held-out split at a time
and measures how much the task's primary metric worsens (the fitted Pipeline takes raw columns,
so a one-hot or TF-IDF column is permuted as the one column the user sent). Seeded, so the same
model and rows give the same result on the same machine.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from kfops.errors import ConfigError, DataError
from kfops.evaluation import PRIMARY_METRIC

# kfops metric name -> sklearn scorer (greater is better, so a drop is importance).
SCORERS: dict[str, str] = {
    "f1_macro": "f1_macro",
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced_accuracy",
    "log_loss": "neg_log_loss",
    "roc_auc": "roc_auc_ovr",
    "rmse": "neg_root_mean_squared_error",
    "mae": "neg_mean_absolute_error",
    "r2": "r2",
}
N_REPEATS = 5
# Rows scored per repeat, at most. The cost is n_features x n_repeats x rows predicted rows;
# ROW_BUDGET caps that total for wide tables (fewer rows per repeat), but never below MIN_ROWS.
# Measured on a loaded 2-core machine, 50 features x 5 repeats x 2,000 rows took 8.8 s for a
# logistic regression and 26 s for a 100-tree random forest; the budget makes that 800 rows.
MAX_ROWS = 2000
ROW_BUDGET = 200_000
MIN_ROWS = 200
# Bars drawn in the chart; the rest are summed into one "other" line in the caption.
CHART_TOP = 20


@dataclass(frozen=True)
class FeatureImportance:
    """Mean and std (over repeats) of the metric's worsening when ``feature`` is shuffled, in
    the metric's units, and ``share``: the feature's part of the positive importances (0..1)."""

    feature: str
    mean: float
    std: float
    share: float


@dataclass(frozen=True)
class Importance:
    """Permutation importance of every raw feature, most important first."""

    metric: str
    scoring: str
    n_rows: int
    n_repeats: int
    seed: int
    features: tuple[FeatureImportance, ...]

    def shares(self) -> dict[str, float]:
        return {f.feature: f.share for f in self.features}

    def ranked(self) -> list[str]:
        return [f.feature for f in self.features]

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "scoring": self.scoring,
            "n_rows": self.n_rows,
            "n_repeats": self.n_repeats,
            "seed": self.seed,
            "features": [
                {"feature": f.feature, "mean": f.mean, "std": f.std, "share": f.share}
                for f in self.features
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Importance:
        return cls(
            metric=str(data["metric"]),
            scoring=str(data["scoring"]),
            n_rows=int(data["n_rows"]),
            n_repeats=int(data["n_repeats"]),
            seed=int(data["seed"]),
            features=tuple(
                FeatureImportance(
                    feature=str(f["feature"]),
                    mean=float(f["mean"]),
                    std=float(f["std"]),
                    share=float(f["share"]),
                )
                for f in data["features"]
            ),
        )

    def summary(self, top: int = 3) -> str:
        """One line for a run summary: the ``top`` features by share, and how it was measured."""
        shown = ", ".join(f"{f.feature} {f.share:.0%}" for f in self.features[:top])
        more = len(self.features) - top
        shown += f" (+{more} more)" if more > 0 else ""
        return (
            f"{shown or 'none'}; {self.metric} worsening, {self.n_rows} held-out rows x "
            f"{self.n_repeats} repeats"
        )

    def metrics(self, prefix: str = "importance_") -> dict[str, float]:
        """Flat name -> share for a KFP Metrics artifact (``log_metric`` takes floats)."""
        return {f"{prefix}{f.feature}": f.share for f in self.features}


def permutation_importances(
    model: Any,
    X: pd.DataFrame,
    y: pd.Series | np.ndarray,
    task: str,
    *,
    metric: str | None = None,
    n_repeats: int = N_REPEATS,
    seed: int = 42,
    max_rows: int | None = None,
) -> Importance:
    """Permutation importance of each column of ``X`` (the raw columns the model takes) for a
    fitted ``model`` on held-out rows ``X``/``y``. ``max_rows`` (rows scored per repeat)
    defaults to :func:`rows_for` the table's width."""
    from sklearn.inspection import permutation_importance  # sklearn.inspection is slow to load

    # The task's primary metric (what blessing judges) unless the caller names another.
    if task not in PRIMARY_METRIC:
        raise ConfigError(f"unknown task {task!r}; known tasks: {sorted(PRIMARY_METRIC)}")
    metric = metric or PRIMARY_METRIC[task]
    if metric not in SCORERS:
        raise ConfigError(
            f"no permutation scorer for metric {metric!r}; known: {', '.join(sorted(SCORERS))}"
        )
    if max_rows is None:
        max_rows = rows_for(X.shape[1], n_repeats)
    if n_repeats < 1 or max_rows < 1:
        raise ConfigError("n_repeats and max_rows must be at least 1")
    if len(X) == 0 or len(X) != len(y):
        raise DataError(f"need held-out rows with targets, got {len(X)} rows and {len(y)} targets")
    result = permutation_importance(
        model,
        X,
        y,
        scoring=SCORERS[metric],
        n_repeats=n_repeats,
        random_state=seed,
        max_samples=min(len(X), max_rows),
        n_jobs=None,  # one process: the machine (and a KFP task's CPU limit) is small
    )
    means = np.asarray(result.importances_mean, dtype=np.float64)
    stds = np.asarray(result.importances_std, dtype=np.float64)
    positive = np.clip(np.nan_to_num(means), 0.0, None)
    total = positive.sum()
    shares = positive / total if total > 0 else np.zeros_like(positive)
    order = sorted(range(len(means)), key=lambda i: (-_finite(float(means[i])), str(X.columns[i])))
    return Importance(
        metric=metric,
        scoring=SCORERS[metric],
        n_rows=min(len(X), max_rows),
        n_repeats=n_repeats,
        seed=seed,
        features=tuple(
            FeatureImportance(
                feature=str(X.columns[i]),
                mean=_finite(float(means[i])),
                std=_finite(float(stds[i])),
                share=float(shares[i]),
            )
            for i in order
        ),
    )


def rows_for(n_features: int, n_repeats: int = N_REPEATS) -> int:
    """Rows scored per repeat: MAX_ROWS, fewer when n_features x n_repeats x rows would pass
    ROW_BUDGET, never fewer than MIN_ROWS."""
    per_row = max(1, n_features) * max(1, n_repeats)
    return max(MIN_ROWS, min(MAX_ROWS, ROW_BUDGET // per_row))


def _finite(value: float) -> float:
    # A scorer can give NaN (e.g. a metric undefined on the sample); JSON and KFP need numbers.
    return float(value) if math.isfinite(value) else 0.0


def importance_chart(
    importance: Importance, fmt: Literal["png", "svg"] = "png", top: int = CHART_TOP
) -> bytes:
    """A horizontal bar chart (mean worsening with std as error bars), most important on top.
    The same importance renders to the same bytes (no timestamps, fixed SVG ids)."""
    import matplotlib
    from matplotlib.figure import Figure  # no pyplot: no global state, Agg canvas

    shown = list(importance.features[:top])[::-1]
    fig = Figure(figsize=(6.0, max(2.0, 0.32 * len(shown) + 1.2)))
    ax = fig.add_subplot()
    ax.barh(
        [f.feature for f in shown],
        [f.mean for f in shown],
        xerr=[f.std for f in shown],
        color="#4c72b0",
        ecolor="#555555",
        capsize=2,
    )
    ax.axvline(0.0, color="grey", linewidth=0.8)
    ax.set_xlabel(f"{importance.metric} worsening when the column is shuffled")
    hidden = len(importance.features) - len(shown)
    title = "Permutation importance (held-out rows)"
    ax.set_title(title + (f"; {hidden} more not shown" if hidden > 0 else ""))
    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "kfops", "svg.fonttype": "none"}):
        if fmt == "svg":
            fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
        elif fmt == "png":
            fig.savefig(
                buffer, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None}
            )
        else:
            raise ConfigError(f"chart format must be 'png' or 'svg', got {fmt!r}")
    return buffer.getvalue()


def importance_chart_base64(importance: Importance, fmt: Literal["png", "svg"] = "png") -> str:
    """The chart as base64 text for ``<img src="data:image/png;base64,...">`` in a report."""
    return base64.b64encode(importance_chart(importance, fmt)).decode("ascii")
