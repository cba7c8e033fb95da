"""The monitoring policy: when a window asks for retraining."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfops.drift import DriftPolicy
from kfops.errors import ConfigError


@dataclass(frozen=True)
class MonitoringPolicy:
    """When a window asks for retraining.

    Retrain when the drift verdict (``kfops.drift.DriftPolicy``) says the dataset drifted
    (``retrain_on_drift``) or the primary metric got worse than at training by more than
    ``max_metric_drop`` (relative, e.g. 0.05 = 5%) on at least ``min_labeled_rows`` labelled
    rows. Windows with fewer than ``min_rows`` rows give no verdict; a window whose data
    violates the contract is reported but never retrained on.
    """

    min_rows: int = 100
    retrain_on_drift: bool = True
    max_metric_drop: float = 0.05
    min_labeled_rows: int = 50
    drift: dict[str, Any] = field(default_factory=dict)  # DriftPolicy settings

    def __post_init__(self) -> None:
        if self.min_rows < 1:
            raise ConfigError(f"policy min_rows must be at least 1, got {self.min_rows}")
        if self.min_labeled_rows < 1:
            raise ConfigError(
                f"policy min_labeled_rows must be at least 1, got {self.min_labeled_rows}"
            )
        if not (0 <= self.max_metric_drop < 10):
            raise ConfigError(
                f"policy max_metric_drop must be a share in [0, 10), got {self.max_metric_drop}"
            )
        self.drift_policy()  # validate early

    def drift_policy(self) -> DriftPolicy:
        return DriftPolicy.from_dict(dict(self.drift))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MonitoringPolicy:
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(
                f"unknown monitoring policy settings {unknown}; known: "
                f"{sorted(cls.__dataclass_fields__)}"
            )
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"bad monitoring policy: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> MonitoringPolicy:
        import yaml

        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read monitoring policy {path}: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"monitoring policy {path} must be a mapping")
        return cls.from_dict(data)
