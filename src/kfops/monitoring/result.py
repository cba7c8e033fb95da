"""The result of monitoring one window: verdict, reasons and the figures behind them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from kfops.drift import DriftReport
from kfops.monitoring.capture import iso
from kfops.monitoring.quality import QualityResult

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
    labels: dict[str, Any] | None = None
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
            "finished_at": iso(self.finished_at),
        }

    def summary(self) -> str:
        head = f"{self.model} {self.version or '-'}: {self.status}"
        return f"{head} ({'; '.join(self.reasons)})" if self.reasons else head

    def to_markdown(self) -> str:
        from kfops.reports.monitoring import markdown

        return markdown(self)

    def to_html(self) -> str:
        """One self-contained page (the Kubeflow dashboard renders it as an HTML artifact)."""
        from kfops.reports.monitoring import html

        return html(self)
