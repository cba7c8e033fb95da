"""Drifted features ranked by how much the model relies on them.

Monitoring says *which* features drifted; the importance shares (from
:mod:`kfops.explain.importance`) say whether the model cares. A policy may ignore drift in
features below an importance share; that is off by default (``min_share=0``), because a
feature the model ignores today can still signal a broken upstream source.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from kfops.errors import ConfigError


class FeatureVerdict(Protocol):
    """What ranking needs of a per-feature drift result (``kfops.drift``'s ``FeatureDrift``
    has it)."""

    name: str
    drifted: bool


@dataclass(frozen=True)
class RankedDrift:
    """A drifted feature with its importance share (None: the importance does not know it,
    e.g. a model trained before the feature was measured) and whether the policy ignores it."""

    feature: str
    share: float | None
    ignored: bool
    psi: float | None = None


@dataclass(frozen=True)
class DriftRanking:
    """Drifted features, most important first; ``min_share`` is the policy's cut (0 = off)."""

    features: tuple[RankedDrift, ...]
    min_share: float

    @property
    def alerting(self) -> list[str]:
        """Drifted features the policy acts on, most important first."""
        return [f.feature for f in self.features if not f.ignored]

    @property
    def ignored(self) -> list[str]:
        return [f.feature for f in self.features if f.ignored]

    def annotation(self, top: int = 3) -> str:
        """A short text for alert annotations: the most important drifted features."""
        shown = [f for f in self.features if not f.ignored][:top]
        if not shown:
            return "no drifted feature the model relies on"
        parts = [
            f"{f.feature} ({f.share:.0%} of importance)"
            if f.share is not None
            else f"{f.feature} (importance unknown)"
            for f in shown
        ]
        more = len(self.alerting) - len(shown)
        return ", ".join(parts) + (f" and {more} more" if more > 0 else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "min_share": self.min_share,
            "alerting": self.alerting,
            "ignored": self.ignored,
            "features": [
                {"feature": f.feature, "share": f.share, "ignored": f.ignored, "psi": f.psi}
                for f in self.features
            ],
        }


def rank_drift(
    verdicts: Iterable[FeatureVerdict],
    shares: Mapping[str, float],
    min_share: float = 0.0,
) -> DriftRanking:
    """Rank the drifted features among ``verdicts`` by importance share (then by PSI, then by
    name) and mark those below ``min_share`` as ignored. Features without a share are never
    ignored (we cannot tell that the model does not use them) and rank after known ones."""
    if not (isinstance(min_share, int | float) and 0.0 <= min_share <= 1.0):
        raise ConfigError(f"importance min_share must be between 0 and 1, got {min_share!r}")
    ranked = []
    for verdict in verdicts:
        if not verdict.drifted:
            continue
        share = shares.get(verdict.name)
        psi = getattr(verdict, "psi", None)
        ranked.append(
            RankedDrift(
                feature=verdict.name,
                share=None if share is None else float(share),
                ignored=share is not None and float(share) < min_share,
                psi=None if psi is None or not math.isfinite(psi) else float(psi),
            )
        )
    ranked.sort(
        key=lambda f: (
            f.share is None,
            -(f.share or 0.0),
            -(f.psi if f.psi is not None else -math.inf),
            f.feature,
        )
    )
    return DriftRanking(features=tuple(ranked), min_share=float(min_share))
