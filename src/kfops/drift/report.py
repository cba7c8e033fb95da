"""Per-feature drift verdicts and the dataset verdict.

The policy (``DriftPolicy``): a feature drifts when its shift is LARGER THAN A TOLERANCE, WITH
CONFIDENCE. For every tested feature, on its NON-NULL values (numeric: the ``bins`` coarse
quantile bins; categorical/boolean: its categories and ``__other__``; the share of missing
values is checked on its own by monitoring, ``kfops.monitoring.quality``), the test of
``kfops.drift.stats.psi_test`` gives the p-value of "the PSI of this feature is at most
``psi_threshold``" (a noncentral chi-square test on the profile counts). The p-values are
adjusted with Benjamini-Hochberg across the tested features, and a feature drifts when its
adjusted p-value is below ``alpha``. The dataset drifts when ANY feature drifts (a share-of-
columns rule such as ">= 50 % of columns" hides a few strongly drifted features); the share is
reported as well.

What this buys, at every window size from a hundred rows to millions:

- false alarms: a window whose features all shift by less than ``psi_threshold`` (in
  particular a window of the reference's own distribution) is flagged with probability at most
  ``alpha`` (Benjamini-Hochberg controls the chance of any false alarm at ``alpha`` when no
  feature drifts);
- power rises with the window: a shift above ``psi_threshold`` is found more often the more
  rows the window has, until the effective sample ``n*m/(n+m)`` approaches the reference rows
  ``n``, which bound the precision (a larger reference profile sharpens every verdict);
- a shift below ``psi_threshold`` is NOT drift however many rows show it: large windows do not
  flag trivial shifts that any plain test would call significant.

The reported PSI is the textbook one (biased upward in small windows by about
``(k-1)/n + (k-1)/m`` for ``k`` bins); ``psi_corrected`` removes that bias and is what the
verdict judges, what ``DriftReport.scores`` returns and what the gauges export. KS (numeric) and
Jensen-Shannon (categorical) distances are reported for reading, not used in the verdict.

What a user tunes: ``psi_threshold`` (the tolerance; default 0.01, which a normal feature
reaches with a mean shift of 0.1 standard deviation: PSI is about d**2 for a shift of d sd, so
0.04 ~ 0.2 sd and 0.25 ~ 0.5 sd; 0 flags any detectable change however small), ``alpha`` (the
false-alarm rate per window, default 0.05) and ``min_rows`` (no verdict below it). The bins are
fixed when the reference profile is built (``build_reference_profile(bins=..., fine_bins=...,
max_categories=...)``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from kfops.drift.profile import NUMERIC, ReferenceProfile, WindowProfile
from kfops.drift.stats import bh_adjust, js_distance, ks_distance, psi, psi_tests
from kfops.errors import ConfigError, DataError

# Feature statuses
OK, DRIFT, MISSING, NO_DATA, UNTESTED = "ok", "drift", "missing", "no_data", "untested"

# Settings of earlier versions, with what replaced them (a clear error instead of "unknown").
_REMOVED = {
    "ks_threshold": "the verdict tests the bias-corrected PSI against psi_threshold",
    "js_threshold": "the verdict tests the bias-corrected PSI against psi_threshold",
}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class DriftPolicy:
    """The drift verdict's settings (see the module docstring for what they guarantee).

    - ``alpha``: false-alarm rate per window (Benjamini-Hochberg level across features).
    - ``psi_threshold``: the tolerance; a feature drifts only when its PSI exceeds this with
      confidence ``1 - alpha``. 0.01 ~ a 0.1 sd mean shift of a normal feature (PSI ~ d**2).
    - ``min_rows``: windows with fewer rows get no verdict (status "no_data").
    """

    alpha: float = 0.05
    psi_threshold: float = 0.01
    min_rows: int = 1

    def __post_init__(self) -> None:
        if not (_number(self.alpha) and 0.0 < self.alpha < 1.0):
            raise ConfigError(f"drift policy alpha must be in (0, 1), got {self.alpha!r}")
        value = self.psi_threshold
        if not (_number(value) and value >= 0 and math.isfinite(value)):
            raise ConfigError(f"drift policy psi_threshold must be a number >= 0, got {value!r}")
        if (
            isinstance(self.min_rows, bool)
            or not isinstance(self.min_rows, int)
            or self.min_rows < 1
        ):
            raise ConfigError(
                f"drift policy min_rows must be an integer >= 1, got {self.min_rows!r}"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftPolicy:
        removed = sorted(set(data) & set(_REMOVED))
        if removed:
            raise ConfigError(
                f"drift policy settings {removed} were removed: "
                f"{_REMOVED[removed[0]]} (docs/ARCHITECTURE.md, Drift)"
            )
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(
                f"unknown drift policy settings {unknown}; known: "
                f"{sorted(cls.__dataclass_fields__)}"
            )
        return cls(**data)

    def describe(self) -> str:
        return (
            f"a feature drifts when its bias-corrected PSI exceeds {self.psi_threshold} with "
            f"confidence: Benjamini-Hochberg adjusted p < {self.alpha} for "
            f'"PSI <= {self.psi_threshold}" (noncentral chi-square test on the profile bins)'
        )


@dataclass
class FeatureDrift:
    """One feature's statistics and verdict. Test fields are None for untested features."""

    name: str
    kind: str
    status: str
    drifted: bool
    reason: str
    reference_rows: int = 0
    window_rows: int = 0
    reference_null_rate: float | None = None
    window_null_rate: float | None = None
    psi: float | None = None  # textbook PSI (biased upward in small windows)
    psi_corrected: float | None = None  # bias-corrected PSI: what the verdict judges
    ks: float | None = None  # numeric: KS distance (descriptive)
    js: float | None = None  # categorical: Jensen-Shannon distance (descriptive)
    test: str | None = None  # "chi2"
    dof: int | None = None  # degrees of freedom after pooling sparse bins
    p_value: float | None = None  # p of "PSI <= psi_threshold"
    p_adjusted: float | None = None  # Benjamini-Hochberg across tested features


@dataclass
class DriftReport:
    status: str  # "drift", "ok" or "no_data"
    dataset_drift: bool
    window_rows: int
    reference_rows: int
    features: list[FeatureDrift]
    policy: DriftPolicy = field(default_factory=DriftPolicy)

    @property
    def drifted(self) -> list[str]:
        return [f.name for f in self.features if f.drifted]

    @property
    def missing(self) -> list[str]:
        return [f.name for f in self.features if f.status == MISSING]

    @property
    def tested(self) -> int:
        return sum(1 for f in self.features if f.p_value is not None)

    @property
    def drift_share(self) -> float:
        return len(self.drifted) / self.tested if self.tested else 0.0

    def scores(self) -> dict[str, float]:
        """Bias-corrected PSI per tested feature (what the server and the monitoring job
        export as the drift gauge): about 0 for a window of the reference's own distribution
        at any size, where the raw PSI of a small window is not."""
        return {f.name: f.psi_corrected for f in self.features if f.psi_corrected is not None}

    def feature(self, name: str) -> FeatureDrift:
        for f in self.features:
            if f.name == name:
                return f
        raise DataError(f"no feature {name!r} in the drift report")

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "dataset_drift": self.dataset_drift,
            "window_rows": self.window_rows,
            "reference_rows": self.reference_rows,
            "drifted": self.drifted,
            "missing": self.missing,
            "tested": self.tested,
            "drift_share": self.drift_share,
            "policy": asdict(self.policy),
            "features": [asdict(f) for f in self.features],
        }

    def to_markdown(self) -> str:
        from kfops.reports.drift import markdown

        return markdown(self)

    def to_html(self, title: str = "Drift report") -> str:
        from kfops.reports.drift import html_page

        return html_page(self, title)


def _null_rate(counts: Any) -> float | None:
    total = int(counts.sum())
    return int(counts[-1]) / total if total else None


def detect_drift(
    reference: ReferenceProfile, window: WindowProfile, policy: DriftPolicy | None = None
) -> DriftReport:
    """Compare a window profile with the reference profile under ``policy``."""
    policy = policy or DriftPolicy()
    if window.profile_id != reference.profile_id:
        raise DataError(
            "the window was binned with a different reference profile "
            f"({window.profile_id[:12]} vs {reference.profile_id[:12]})"
        )
    no_data = window.rows < policy.min_rows
    rows: list[FeatureDrift] = []
    cells: list[tuple[np.ndarray, np.ndarray]] = []  # per tested feature, in order
    for name, fb in reference.features.items():
        ref = reference.reference.counts[name]
        row = FeatureDrift(
            name, fb.kind, OK, False, "", reference_rows=int(ref.sum()),
            reference_null_rate=_null_rate(ref),
        )  # fmt: skip
        rows.append(row)
        cur = window.counts.get(name)
        # Zero counts in a non-empty window: a streaming window that never saw the column.
        if cur is None or (window.rows > 0 and int(cur.sum()) == 0):
            row.status, row.reason = MISSING, "feature missing from the window"
            continue
        row.window_rows = int(cur.sum())
        row.window_null_rate = _null_rate(cur)
        if not fb.tested:
            row.status, row.reason = UNTESTED, f"{fb.kind} features are not tested for drift"
            continue
        if no_data:
            row.status, row.reason = NO_DATA, f"window has {window.rows} rows (< {policy.min_rows})"
            continue
        # One test per feature on the PSI vector: the non-null distribution (numeric: coarse
        # bins; categorical: categories + other). A column whose null share moves is the
        # missing-value check's finding (kfops.monitoring.quality), not drift.
        ref_cells, cur_cells = fb.psi_counts(ref), fb.psi_counts(cur)
        cells.append((ref_cells, cur_cells))
        row.psi = psi(ref_cells, cur_cells)
        row.test = "chi2"
        if fb.kind == NUMERIC:
            row.ks = ks_distance(ref[:-1], cur[:-1])
        else:
            row.js = js_distance(ref, cur)

    tested = [r for r in rows if r.test is not None]
    for r, result in zip(tested, psi_tests(cells, policy.psi_threshold), strict=True):
        r.psi_corrected, r.dof, r.p_value = result.psi_corrected, result.dof, result.p_value
    for r, adj in zip(
        tested, bh_adjust([r.p_value for r in tested if r.p_value is not None]), strict=True
    ):
        r.p_adjusted = adj
        _decide(r, policy)
    drift = any(r.drifted for r in rows)
    status = NO_DATA if no_data else (DRIFT if drift else OK)
    return DriftReport(status, drift, window.rows, reference.rows, rows, policy)


def _decide(row: FeatureDrift, policy: DriftPolicy) -> None:
    assert row.p_adjusted is not None and row.psi_corrected is not None
    row.drifted = row.p_adjusted < policy.alpha
    row.status = DRIFT if row.drifted else OK
    effect = f"PSI corrected {row.psi_corrected:.4f}"
    if row.drifted:
        row.reason = (
            f"drift: {effect} > {policy.psi_threshold} with confidence "
            f"(p_adj {row.p_adjusted:.3g} < {policy.alpha})"
        )
    else:
        row.reason = (
            f"no drift: {effect}, not shown above {policy.psi_threshold} "
            f"(p_adj {row.p_adjusted:.3g} >= {policy.alpha})"
        )
