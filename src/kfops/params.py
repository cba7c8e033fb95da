"""A training run's parameters: the one table of training defaults.

``kfops run`` (its flag defaults), the training and monitoring pipelines (their parameter
defaults), the retraining trigger and the library all take their defaults from the fields of
``TrainingParams``; ``pipeline_arguments`` turns a run into the pipeline's parameters (where
JSON and comma-separated strings are the KFP edge's encoding, decoded again in components/).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TrainingParams:
    """The training pipeline's parameters, as `kfops run` and the retraining trigger set them."""

    data_uri: str
    target: str
    model_name: str
    registry_root: str
    task: str = "classification"
    estimator: str = "logistic_regression"
    params: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    max_regression: float = 0.01
    test_size: float = 0.2
    seed: int = 42
    drop_columns: tuple[str, ...] = ()
    # Hyperparameter tuning (kfops.tuning): off unless tune is set.
    tune: bool = False
    tune_rounds: int = 2
    tune_trials_per_round: int = 4
    tune_max_trials: int = 0
    tune_timeout_s: float = 0.0
    search_space: str = ""  # YAML/JSON text overriding the estimator's default space
    # A retrain's training data: the labelled window plus reference rows (steps/retrain.DataMix);
    # recorded in the new version's lineage as ``data_mix``.
    data_mix: dict[str, Any] = field(default_factory=dict)

    def pipeline_arguments(self, run_id: str) -> dict[str, Any]:
        return {
            "data_uri": self.data_uri,
            "target": self.target,
            "model_name": self.model_name,
            "registry_root": str(Path(self.registry_root).resolve()),
            "task": self.task,
            "estimator": self.estimator,
            "params_json": json.dumps(self.params, sort_keys=True),
            "thresholds_json": json.dumps(self.thresholds, sort_keys=True),
            "max_regression": float(self.max_regression),
            "test_size": float(self.test_size),
            "seed": int(self.seed),
            "drop_columns": ",".join(self.drop_columns),
            "tune_enabled": bool(self.tune),
            "tune_rounds": int(self.tune_rounds),
            "tune_trials_per_round": int(self.tune_trials_per_round),
            "tune_max_trials": int(self.tune_max_trials),
            "tune_timeout_s": float(self.tune_timeout_s),
            "search_space": self.search_space,
            "data_mix_json": json.dumps(self.data_mix, sort_keys=True),
            "run_id": run_id,
        }


# The defaults as plain values, for signatures that cannot take the dataclass (pipeline
# parameters, argparse flags): TrainingParams.seed etc. read the same field defaults.
DEFAULTS = TrainingParams(data_uri="", target="", model_name="", registry_root="")
