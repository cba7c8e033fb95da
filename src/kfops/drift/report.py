"""Per-feature drift verdicts and the dataset verdict.

A feature drifts only when BOTH hold:

1. its test is significant after Benjamini-Hochberg correction across all tested features
   (numeric: KS p-value, Bonferroni-combined with a chi-square test of the null rate when
   either side has nulls; categorical/boolean: chi-square p-value over categories, __other__
   and null), at false discovery rate ``alpha``; this stops many columns x p<0.05 from
   raising false alarms, and
2. the effect is large enough (numeric: PSI >= ``psi_threshold`` or KS >= ``ks_threshold``;
   categorical: PSI >= ``psi_threshold`` or JS >= ``js_threshold``); this stops large samples
   from flagging trivial shifts that any test finds significant.

The dataset drifts when ANY feature drifts (a share-of-columns rule such as ">= 50 % of columns"
hides a few strongly drifted features); the share is reported as well.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from kfops.drift.profile import CATEGORICAL_KINDS, NUMERIC, ReferenceProfile, WindowProfile
from kfops.drift.stats import bh_adjust, chi2_pvalue, js_distance, ks_binned, psi
from kfops.errors import ConfigError, DataError

# Feature statuses
OK, DRIFT, MISSING, NO_DATA, UNTESTED = "ok", "drift", "missing", "no_data", "untested"


@dataclass(frozen=True)
class DriftPolicy:
    """Thresholds of the drift verdict (see the module docstring)."""

    alpha: float = 0.05
    psi_threshold: float = 0.2
    ks_threshold: float = 0.1
    js_threshold: float = 0.1
    min_rows: int = 1  # fewer window rows than this -> "no_data", no verdict

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ConfigError(f"drift policy alpha must be in (0, 1), got {self.alpha}")
        for name in ("psi_threshold", "ks_threshold", "js_threshold"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and value > 0 and math.isfinite(value)):
                raise ConfigError(f"drift policy {name} must be a positive number, got {value!r}")
        for name in ("ks_threshold", "js_threshold"):
            if getattr(self, name) > 1:
                raise ConfigError(
                    f"drift policy {name} must be at most 1, got {getattr(self, name)}"
                )
        if self.min_rows < 1:
            raise ConfigError(f"drift policy min_rows must be at least 1, got {self.min_rows}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftPolicy:
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"unknown drift policy settings {unknown}")
        return cls(**data)


@dataclass
class FeatureDrift:
    """One feature's statistics and verdict. p-values are None for untested features."""

    name: str
    kind: str
    status: str
    drifted: bool
    reason: str
    reference_rows: int = 0
    window_rows: int = 0
    reference_null_rate: float | None = None
    window_null_rate: float | None = None
    psi: float | None = None
    ks: float | None = None
    js: float | None = None
    test: str | None = None  # "ks", "ks+null" or "chi2"
    p_value: float | None = None
    p_adjusted: float | None = None


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
        """PSI per tested feature (what the server and the monitoring job export)."""
        return {f.name: f.psi for f in self.features if f.psi is not None}

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


def _null_split(counts: np.ndarray) -> np.ndarray:
    return np.array([counts[:-1].sum(), counts[-1]])


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
        row.psi = psi(fb.psi_counts(ref), fb.psi_counts(cur))
        if fb.kind == NUMERIC:
            # KS on the non-null fine bins. When nulls occur, a chi-square test of the null
            # rate joins it (Bonferroni over the two), so a column that starts arriving empty
            # is significant too; PSI has the null slot, so its effect is measured.
            row.ks, row.p_value = ks_binned(ref[:-1], cur[:-1])
            row.test = "ks"
            if ref[-1] or cur[-1]:
                p_null = chi2_pvalue(_null_split(ref), _null_split(cur))
                row.p_value = min(1.0, 2 * min(row.p_value, p_null))
                row.test = "ks+null"
        else:
            row.js = js_distance(ref, cur)
            row.p_value = chi2_pvalue(ref, cur)
            row.test = "chi2"

    tested = [r for r in rows if r.p_value is not None]
    for r, adj in zip(
        tested, bh_adjust([r.p_value for r in tested if r.p_value is not None]), strict=True
    ):
        r.p_adjusted = adj
        _decide(r, policy)
    drift = any(r.drifted for r in rows)
    status = NO_DATA if no_data else (DRIFT if drift else OK)
    return DriftReport(status, drift, window.rows, reference.rows, rows, policy)


def _effect(label: str, value: float, threshold: float) -> tuple[bool, str]:
    large = value >= threshold
    return large, f"{label} {value:.3f} {'>=' if large else '<'} {threshold}"


def _decide(row: FeatureDrift, policy: DriftPolicy) -> None:
    assert row.p_adjusted is not None and row.psi is not None
    checks = [_effect("PSI", row.psi, policy.psi_threshold)]
    if row.kind == NUMERIC and row.ks is not None:
        checks.append(_effect("KS", row.ks, policy.ks_threshold))
    elif row.kind in CATEGORICAL_KINDS and row.js is not None:
        checks.append(_effect("JS", row.js, policy.js_threshold))
    large = any(big for big, _ in checks)
    effects = ", ".join(text for _, text in checks)
    significant = row.p_adjusted < policy.alpha
    sig = f"p_adj {row.p_adjusted:.3g} {'<' if significant else '>='} {policy.alpha}"
    row.drifted = bool(significant and large)
    row.status = DRIFT if row.drifted else OK
    if row.drifted:
        row.reason = f"drift: {sig} and {effects}"
    elif significant:
        row.reason = f"significant ({sig}) but small effect: {effects}"
    else:
        row.reason = f"not significant: {sig}; {effects}"
