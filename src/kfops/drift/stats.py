"""Drift statistics on count vectors (binned data), so they work on merged window profiles.

The verdict's test (``psi_test``): is the shift between two count vectors larger than a
tolerance, with confidence? Pearson's chi-square statistic of the 2 x k table (reference row,
window row) is, for ``n`` reference and ``m`` window rows and ``n_eff = n*m/(n+m)``,

    X2 = n_eff * sum_i (p_i - q_i)**2 / r_i          (r = pooled proportions)

so ``X2 / n_eff`` estimates the chi-square divergence of the two distributions over the bins,
which equals the PSI to second order (a normal mean shift of d sd on decile bins: PSI 0.0096
vs 0.0096 at d = 0.1, 0.0383 vs 0.0387 at 0.2, 0.238 vs 0.254 at 0.5). Under a true divergence
``w2``, X2 follows a noncentral chi-square with ``k-1`` degrees of freedom and noncentrality
``n_eff * w2`` (``E[X2] = k - 1 + n_eff * w2``). Hence:

- the bias-corrected PSI is ``max(0, (X2 - (k-1)) / n_eff)``: the raw PSI of a window of the
  reference's own distribution is about ``(k-1)/n + (k-1)/m``, large for small windows, and
  this estimate removes that term;
- the p-value of "divergence <= threshold" is ``ncx2.sf(X2, k-1, n_eff * threshold)``
  (``scipy.stats.ncx2``). At most ``alpha`` of the windows whose shift is within the threshold
  get p < alpha, at any window size; a shift above the threshold gets p -> 0 as the window
  grows (until ``n_eff`` approaches the reference rows, which bound the precision).

Cells too sparse for the chi-square approximation (expected count below ``MIN_EXPECTED`` in the
smaller sample) are pooled, smallest first, until each pooled cell reaches it. The pooling is
decided on the column totals of the table only, which under "no drift" carry no information
about the split between reference and window, so the test stays valid.

Descriptive statistics (reported, not part of the verdict):

- PSI: population stability index on proportions, empty bins floored at ``eps``.
- KS distance on grouped data: the largest CDF gap at the fine bin edges (a lower bound of the
  raw-data statistic, exact up to the 1 % reference quantile grid).
- Jensen-Shannon distance (base 2, in [0, 1]) via ``scipy.spatial.distance.jensenshannon``.

Benjamini-Hochberg adjustment across features via ``scipy.stats.false_discovery_control``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

PSI_EPS = 1e-4
MIN_EXPECTED = 5.0  # Cochran's rule for the chi-square approximation


def _proportions(counts: np.ndarray) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    return c / total if total > 0 else c


def psi(reference: np.ndarray, current: np.ndarray, eps: float = PSI_EPS) -> float:
    """Population stability index of two count vectors (same bins); 0 when either is empty."""
    ref, cur = np.asarray(reference, dtype=np.float64), np.asarray(current, dtype=np.float64)
    if ref.sum() <= 0 or cur.sum() <= 0:
        return 0.0
    p = np.maximum(_proportions(ref), eps)
    q = np.maximum(_proportions(cur), eps)
    return float(np.sum((q - p) * np.log(q / p)))


def ks_distance(reference: np.ndarray, current: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov distance of counts in the same ordered bins (0 if empty)."""
    ref, cur = np.asarray(reference, dtype=np.float64), np.asarray(current, dtype=np.float64)
    n, m = ref.sum(), cur.sum()
    if n <= 0 or m <= 0:
        return 0.0
    return float(np.max(np.abs(np.cumsum(ref) / n - np.cumsum(cur) / m)))


def js_distance(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2) of two count vectors; 0 when either is empty."""
    ref, cur = np.asarray(reference, dtype=np.float64), np.asarray(current, dtype=np.float64)
    if ref.sum() <= 0 or cur.sum() <= 0:
        return 0.0
    return float(jensenshannon(ref, cur, base=2))


def pool_sparse(table: np.ndarray, min_expected: float = MIN_EXPECTED) -> np.ndarray:
    """Merge the columns of a 2 x k count table whose expected count is below ``min_expected``.

    Empty columns are dropped. Sparse columns are merged in order of their totals (smallest
    first) into groups that reach ``min_expected``; a remainder joins the smallest other
    column. Only the column totals decide, so the result does not depend on how each column
    splits between the two rows.
    """
    table = table[:, table.sum(axis=0) > 0]
    rows = table.sum(axis=1)
    if table.shape[1] < 2 or (rows <= 0).any():
        return table
    totals = table.sum(axis=0)
    expected = rows.min() * totals / rows.sum()  # expected counts of the smaller row
    sparse = expected < min_expected
    if not sparse.any():
        return table
    order = np.flatnonzero(sparse)[np.argsort(expected[sparse], kind="stable")]
    groups: list[list[int]] = []
    current: list[int] = []
    mass = 0.0
    for i in order:
        current.append(int(i))
        mass += expected[i]
        if mass >= min_expected:
            groups.append(current)
            current, mass = [], 0.0
    dense = [[int(i)] for i in np.flatnonzero(~sparse)]
    if current:  # the remainder joins the smallest group or dense column
        pool = groups + dense
        if not pool:
            return table.sum(axis=1, keepdims=True)
        smallest = min(pool, key=lambda g: float(expected[g].sum()))
        smallest.extend(current)
    return np.column_stack([table[:, g].sum(axis=1) for g in groups + dense])


@dataclass(frozen=True)
class PsiTest:
    """Result of ``psi_test``: the chi-square statistic and what it says about the PSI."""

    statistic: float  # Pearson X2 of the (pooled) 2 x k table
    dof: int  # k - 1 after pooling; 0 when there is nothing to test
    n_eff: float  # n*m/(n+m)
    psi_corrected: float  # max(0, (X2 - dof) / n_eff)
    p_value: float  # P(X2 >= observed | divergence == threshold)


def chi2_statistic(reference: np.ndarray, current: np.ndarray) -> tuple[float, int, float]:
    """(Pearson X2, degrees of freedom, n_eff) of the pooled 2 x k table of two count vectors.

    The same statistic as ``scipy.stats.chi2_contingency(table, correction=False)``, written
    out because that wrapper's overhead is ten times the arithmetic on a 2 x 10 table, and
    the model server computes it for every feature every few seconds.
    """
    table = np.vstack([reference, current]).astype(np.float64)
    rows = table.sum(axis=1)
    if (rows <= 0).any():
        return 0.0, 0, 0.0
    n_eff = float(rows[0] * rows[1] / rows.sum())
    table = pool_sparse(table)
    if table.shape[1] < 2:
        return 0.0, 0, n_eff
    expected = np.outer(rows, table.sum(axis=0)) / rows.sum()
    return float(np.sum((table - expected) ** 2 / expected)), table.shape[1] - 1, n_eff


def corrected_psi(statistic: float, dof: int, n_eff: float) -> float:
    """``max(0, (X2 - dof) / n_eff)``: the PSI without its small-sample bias."""
    return max(0.0, (statistic - dof) / n_eff) if n_eff > 0 else 0.0


def psi_tests(pairs: Sequence[tuple[np.ndarray, np.ndarray]], threshold: float) -> list[PsiTest]:
    """``psi_test`` of several (reference, current) pairs with one vectorised scipy call."""
    parts = [chi2_statistic(ref, cur) for ref, cur in pairs]
    if not parts:
        return []
    x2, dof, n_eff = (np.asarray(v, dtype=np.float64) for v in zip(*parts, strict=True))
    tested = dof > 0
    p = np.ones(len(parts))
    # ncx2 with noncentrality 0 is the chi-square distribution: threshold 0 is the plain test.
    p[tested] = stats.ncx2.sf(x2[tested], dof[tested], n_eff[tested] * threshold)
    return [
        PsiTest(s, d, n, corrected_psi(s, d, n), float(np.clip(pv, 0.0, 1.0)))
        for (s, d, n), pv in zip(parts, p, strict=True)
    ]


def psi_test(reference: np.ndarray, current: np.ndarray, threshold: float) -> PsiTest:
    """Test "the divergence (~PSI) of ``current`` from ``reference`` exceeds ``threshold``".

    See the module docstring. ``threshold=0`` gives the plain chi-square homogeneity test.
    """
    return psi_tests([(reference, current)], threshold)[0]


def bh_adjust(pvalues: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (false discovery rate), in input order."""
    if len(pvalues) == 0:
        return []
    return [float(p) for p in stats.false_discovery_control(np.asarray(pvalues), method="bh")]
