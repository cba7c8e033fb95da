"""Quality: captured predictions vs late labels, compared with the version's training metrics."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kfops.contract_model import Contract
from kfops.evaluation import HIGHER_IS_BETTER, PRIMARY_METRIC
from kfops.monitoring.labels import cast_labels

if TYPE_CHECKING:
    from kfops.monitoring.policy import MonitoringPolicy


def window_metrics(joined: pd.DataFrame, contract: Contract) -> dict[str, float]:
    """Evaluation metrics (kfops.evaluation names) of captured predictions vs late labels."""
    from sklearn import metrics as skm

    from kfops.evaluation import label_metrics, regression_metrics

    if contract.task == "regression":
        y_true = pd.to_numeric(joined["label"], errors="coerce")
        y_pred = pd.to_numeric(joined["prediction"], errors="coerce")
        ok = y_true.notna() & y_pred.notna()
        yt, yp = y_true[ok].to_numpy(float), y_pred[ok].to_numpy(float)
        return regression_metrics(yt, yp) if len(yt) else {}
    classes = contract.target.classes
    yt_s = cast_labels(joined["label"], classes)
    yp_s = cast_labels(joined["prediction"], classes)
    ok = yt_s.notna() & yp_s.notna()
    yt, yp = yt_s[ok].astype(str).to_numpy(), yp_s[ok].astype(str).to_numpy()
    if len(yt) == 0:
        return {}
    out = label_metrics(yt, yp, labels=sorted(set(yt) | set(yp)))
    probas = joined["proba"][ok]
    if classes and probas.map(lambda p: isinstance(p, dict)).all():
        names = [str(c) for c in classes]
        matrix = np.array(
            [[float({str(k): v for k, v in p.items()}.get(n, 0.0)) for n in names] for p in probas]
        )
        if set(yt) <= set(names):
            matrix = np.clip(matrix, 1e-15, 1.0)
            matrix = matrix / matrix.sum(axis=1, keepdims=True)
            out["log_loss"] = float(skm.log_loss(yt, matrix, labels=names))
    return out


@dataclass
class QualityResult:
    labeled_rows: int
    metrics: dict[str, float]
    training_metrics: dict[str, float]
    primary_metric: str
    degradation: float | None  # relative change for the worse of the primary metric
    decayed: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_quality(
    metrics: dict[str, float],
    training: dict[str, Any],
    task: str,
    labeled_rows: int,
    policy: MonitoringPolicy,
) -> QualityResult:
    """Window metrics vs the version's training metrics under the policy's decay threshold."""
    primary = PRIMARY_METRIC[task]
    train = {k: float(v) for k, v in training.items() if isinstance(v, int | float)}
    result = QualityResult(labeled_rows, metrics, train, primary, None, False, "")
    now, then = metrics.get(primary), train.get(primary)
    if labeled_rows < policy.min_labeled_rows:
        result.reason = f"{labeled_rows} labelled rows (< {policy.min_labeled_rows}): no verdict"
        return result
    if now is None or then is None or not math.isfinite(now) or not math.isfinite(then):
        result.reason = f"{primary} not available for the window or the training run"
        return result
    worse = (then - now) if HIGHER_IS_BETTER[primary] else (now - then)
    result.degradation = worse / abs(then) if then else (math.inf if worse > 0 else 0.0)
    result.decayed = result.degradation > policy.max_metric_drop
    result.reason = (
        f"{primary} {now:.4f} vs {then:.4f} at training: "
        f"{result.degradation:+.1%} worse ({'>' if result.decayed else '<='} "
        f"{policy.max_metric_drop:.0%} allowed)"
    )
    return result
