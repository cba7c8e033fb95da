"""The result of monitoring one window: verdict, reasons and the figures behind them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from kfops.drift import DriftReport
from kfops.explain.ranking import DriftRanking
from kfops.monitoring.capture import iso
from kfops.monitoring.labels import label_summary
from kfops.monitoring.quality import NullShareReport, QualityResult

NO_ROWS, TOO_FEW, OK, RETRAIN = "no_rows", "too_few_rows", "ok", "retrain"


@dataclass
class MonitoringResult:
    model: str
    version: str | None
    status: str  # no_rows | too_few_rows | ok | retrain
    retrain: bool
    reasons: list[str]
    capture: dict[str, Any]
    rows: int  # rows of the monitored version in the window
    other_version_rows: int = 0
    data_quality: dict[str, Any] | None = None
    drift: DriftReport | None = None
    quality: QualityResult | None = None
    labels: dict[str, Any] | None = None  # LabelJoin.stats(): read, joined, ambiguous, ...
    null_shares: NullShareReport | None = None  # the missing-value check
    unseen: list[dict[str, Any]] = field(default_factory=list)  # per feature, out of domain
    ranking: DriftRanking | None = None  # drifted features by importance share
    importance: dict[str, float] = field(default_factory=dict)  # shares from the lineage
    warnings: list[str] = field(default_factory=list)  # findings that do not ask to retrain
    # Drifted features: reference vs window shares in the drift test's bins (the report's plots).
    distributions: dict[str, dict[str, Any]] = field(default_factory=dict)
    finished_at: float = field(default_factory=time.time)

    @property
    def drift_scores(self) -> dict[str, float]:
        return {} if self.drift is None else dict(self.drift.scores())

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "status": self.status,
            "retrain": self.retrain,
            "reasons": list(self.reasons),
            "rows": self.rows,
            "other_version_rows": self.other_version_rows,
            "capture": self.capture,
            "data_quality": self.data_quality,
            "drift": None if self.drift is None else self.drift.to_dict(),
            "quality": None if self.quality is None else self.quality.to_dict(),
            "labels": self.labels,
            "null_shares": None if self.null_shares is None else self.null_shares.to_dict(),
            "unseen_categories": list(self.unseen),
            "drift_ranking": None if self.ranking is None else self.ranking.to_dict(),
            "importance": dict(self.importance),
            "warnings": list(self.warnings),
            "distributions": self.distributions,
            "finished_at": iso(self.finished_at),
        }

    def summary(self) -> str:
        """A few lines for a person: the verdict, the warnings and the label join."""
        head = f"{self.model} {self.version or '-'}: {self.status}"
        lines = [f"{head} ({'; '.join(self.reasons)})" if self.reasons else head]
        lines += [f"warning: {w}" for w in self.warnings]
        if self.labels is not None:
            lines.append(label_summary(self.labels))
        return "\n".join(lines)

    @property
    def drift_annotation(self) -> str:
        """The most important drifted features, as the alerts and reports name them."""
        return "" if self.ranking is None else self.ranking.annotation()

    def to_markdown(self) -> str:
        from kfops.reports.monitoring import markdown

        return markdown(self)

    def to_html(self) -> str:
        """One self-contained page (the Kubeflow dashboard renders it as an HTML artifact)."""
        from kfops.reports.monitoring import html

        return html(self)
