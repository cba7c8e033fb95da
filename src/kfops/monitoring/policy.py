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

    - ``importance_min_share``: drift in a feature whose permutation-importance share (the
      version's lineage) is below this is reported but ignored by the verdict; 0 (the default)
      acts on every drifted feature, since a feature the model ignores can still signal a
      broken upstream source.
    - ``max_null_share_change``: the missing-value check's tolerance (absolute share, 0.01 =
      one percentage point), tested with the drift policy's ``alpha``; a finding of data
      quality, never a reason to retrain.
    - ``retrain_reference_share``: the retraining data is the labelled window plus this share
      of the reference training rows (the champion's training data, sampled with the
      champion's seed): 1.0 keeps all of them, 0 trains on the window alone.
    """

    min_rows: int = 100
    retrain_on_drift: bool = True
    max_metric_drop: float = 0.05
    min_labeled_rows: int = 50
    drift: dict[str, Any] = field(default_factory=dict)  # DriftPolicy settings
    importance_min_share: float = 0.0
    max_null_share_change: float = 0.01
    retrain_reference_share: float = 1.0

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
        for name in ("importance_min_share", "max_null_share_change", "retrain_reference_share"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ConfigError(f"policy {name} must be a share in [0, 1], got {value!r}")
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
