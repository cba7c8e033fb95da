"""Quality of a window: the model's (captured predictions vs late labels, compared with the
version's training metrics) and the data's beyond the contract check (the share of missing
values per feature, values outside the contract's domain)."""

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
    from kfops.drift import DriftReport, ReferenceProfile, WindowProfile
    from kfops.monitoring.policy import MonitoringPolicy
    from kfops.monitoring.result import MonitoringResult
    from kfops.registry import ModelVersion


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


# --- Missing values: the share of nulls per feature, window vs reference -------------------


@dataclass
class NullShare:
    """One feature's share of missing values in the reference and the window, and the test."""

    feature: str
    reference_share: float
    window_share: float
    reference_rows: int
    window_rows: int
    p_value: float  # p of "the share moved by at most the tolerance"
    p_adjusted: float = 1.0  # Benjamini-Hochberg across features
    changed: bool = False

    @property
    def change(self) -> float:
        return self.window_share - self.reference_share


@dataclass
class NullShareReport:
    """The missing-value check: a feature's null share CHANGED when it moved by more than
    ``tolerance`` (absolute, 0.01 = one percentage point) with confidence (BH-adjusted p below
    ``alpha``). A data-quality finding: reported, pushed as a gauge, never a reason to retrain
    (retraining does not fix an upstream source that stopped or started sending nulls)."""

    tolerance: float
    alpha: float
    features: list[NullShare]

    @property
    def changed(self) -> list[str]:
        return [f.feature for f in self.features if f.changed]

    def describe(self) -> str:
        return (
            f"a feature's null share changed when it moved by more than {self.tolerance:.1%} "
            f"(absolute) with confidence: Benjamini-Hochberg adjusted p < {self.alpha} "
            "(noncentral chi-square test of the 2x2 null/non-null table)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "tolerance": self.tolerance,
            "alpha": self.alpha,
            "changed": self.changed,
            "features": [{**asdict(f), "change": f.change} for f in self.features],
        }


def null_share_p_value(
    ref_nulls: int, ref_rows: int, win_nulls: int, win_rows: int, tolerance: float
) -> float:
    """p of "the null shares differ by at most ``tolerance``" (absolute).

    Pearson's X2 of the 2x2 table is ``n_eff * (p - q)**2 / (r * (1 - r))`` (``r`` the pooled
    share, ``n_eff = n*m/(n+m)``); when the shares differ by exactly ``tolerance`` it follows a
    noncentral chi-square with 1 degree of freedom and noncentrality
    ``n_eff * tolerance**2 / (r * (1 - r))``: the test of ``kfops.drift.stats`` on two cells.
    """
    from scipy import stats

    if ref_rows <= 0 or win_rows <= 0:
        return 1.0
    r = (ref_nulls + win_nulls) / (ref_rows + win_rows)
    if r <= 0.0 or r >= 1.0:
        return 1.0  # no nulls (or only nulls) on both sides: nothing moved
    n_eff = ref_rows * win_rows / (ref_rows + win_rows)
    diff = ref_nulls / ref_rows - win_nulls / win_rows
    x2 = n_eff * diff**2 / (r * (1.0 - r))
    nc = n_eff * tolerance**2 / (r * (1.0 - r))
    return float(np.clip(stats.ncx2.sf(x2, 1, nc) if nc > 0 else stats.chi2.sf(x2, 1), 0, 1))


def check_null_shares(
    drift: DriftReport, tolerance: float = 0.01, alpha: float = 0.05
) -> NullShareReport:
    """The missing-value check on the null counts a drift report carries (every feature's
    reference and window rows and null rates), BH-adjusted across features."""
    from kfops.drift import bh_adjust

    rows: list[NullShare] = []
    for f in drift.features:
        if f.reference_null_rate is None or f.window_null_rate is None or not f.window_rows:
            continue
        ref_nulls = round(f.reference_null_rate * f.reference_rows)
        win_nulls = round(f.window_null_rate * f.window_rows)
        p = null_share_p_value(ref_nulls, f.reference_rows, win_nulls, f.window_rows, tolerance)
        rows.append(
            NullShare(
                f.name,
                f.reference_null_rate,
                f.window_null_rate,
                f.reference_rows,
                f.window_rows,
                p,
            )
        )
    for row, adjusted in zip(rows, bh_adjust([r.p_value for r in rows]), strict=True):
        row.p_adjusted = adjusted
        row.changed = adjusted < alpha
    return NullShareReport(tolerance, alpha, rows)


# --- Unseen categories: values outside the contract's domain, per feature ------------------


def unseen_categories(data_quality: dict[str, Any] | None, rows: int) -> list[dict[str, Any]]:
    """Per categorical/boolean feature: window values outside the contract's domain (the
    contract check's ``unseen_category`` warnings), with their count, share and examples."""
    if not data_quality:
        return []
    out = []
    for v in data_quality.get("violations", []):
        if v.get("rule") != "unseen_category" or not v.get("column"):
            continue
        count = int(v.get("count") or 0)
        out.append(
            {
                "feature": v["column"],
                "rows": count,
                "share": count / rows if rows else 0.0,
                "examples": [str(e) for e in (v.get("examples") or [])][:5],
            }
        )
    return sorted(out, key=lambda u: (-u["rows"], u["feature"]))


def assess_window(
    result: MonitoringResult,
    version: ModelVersion,
    policy: MonitoringPolicy,
    reference: ReferenceProfile | None = None,
    window: WindowProfile | None = None,
) -> None:
    """The findings beside drift, on a result whose drift and data quality are set: the
    missing-value check, unseen categories, the drifted features ranked by the version's
    permutation importance (``lineage["importance"]``) under ``importance_min_share``, and
    (given the profiles) each drifted feature's reference and window distributions."""
    from kfops.explain.importance import Importance
    from kfops.explain.ranking import rank_drift

    assert result.drift is not None
    result.null_shares = check_null_shares(
        result.drift, policy.max_null_share_change, policy.drift_policy().alpha
    )
    if result.null_shares.changed:
        moved = ", ".join(
            f"{f.feature} {f.reference_share:.1%} -> {f.window_share:.1%}"
            for f in result.null_shares.features
            if f.changed
        )
        result.warnings.append(f"missing values changed: {moved}")
    result.unseen = unseen_categories(result.data_quality, result.rows)
    if result.unseen:
        result.warnings.append(
            "values outside the contract's domain: "
            + ", ".join(f"{u['feature']} ({u['rows']} rows)" for u in result.unseen)
        )
    lineage = version.lineage or {}
    if isinstance(lineage.get("importance"), dict):
        try:
            result.importance = Importance.from_dict(lineage["importance"]).shares()
        except (KeyError, TypeError, ValueError):
            result.importance = {}  # an unreadable record ranks like none at all
    result.ranking = rank_drift(
        result.drift.features, result.importance, policy.importance_min_share
    )
    if result.ranking.ignored:
        result.warnings.append(
            f"drift ignored below {policy.importance_min_share:.0%} of importance: "
            + ", ".join(result.ranking.ignored)
        )
    if reference is not None and window is not None:
        result.distributions = {
            name: distribution(reference, window, name)
            for name in result.drift.drifted
            if name in window.counts
        }


def distribution(reference: ReferenceProfile, window: WindowProfile, name: str) -> dict[str, Any]:
    """One feature's non-null distribution in the drift test's bins, reference vs window, as
    shares (what the report plots): numeric bins as ``[lo, hi]`` for ``(lo, hi]`` (None: open
    ended), categories by name then ``__other__``."""
    from kfops.drift.profile import NUMERIC, OTHER

    fb = reference.features[name]
    ref = fb.psi_counts(reference.reference.counts[name]).astype(float)
    cur = fb.psi_counts(window.counts[name]).astype(float)
    if fb.kind == NUMERIC:
        edges: list[float | None] = [None, *fb.coarse_edges, None]
        bins: list[Any] = [[edges[i], edges[i + 1]] for i in range(len(edges) - 1)]
    else:
        bins = [*fb.categories, OTHER]
    return {
        "kind": fb.kind,
        "bins": bins,
        "reference": (ref / ref.sum() if ref.sum() else ref).tolist(),
        "window": (cur / cur.sum() if cur.sum() else cur).tolist(),
    }
