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
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class TaskDefaults:
    """What a run of one task uses when the user names nothing: the estimator, and the
    blessing thresholds a model must meet (so a regression is never judged on f1_macro)."""

    estimator: str
    thresholds: MappingProxyType[str, float]


# The one table of per-task defaults: `kfops run` (after inferring the task), TrainingParams,
# training, retraining and blessing all read it. The default bars say "better than guessing",
# whatever the data: a classifier's adjusted balanced accuracy (0 for any constant or random
# prediction) at least 0.1, a regressor's r2 (0 for predicting the mean) at least 0. An
# absolute bar such as f1_macro >= 0.6 refused useful first models of harder tables (5-class
# weather: f1_macro 0.56); give one with --threshold when the use case has one.
TASK_DEFAULTS: dict[str, TaskDefaults] = {
    "classification": TaskDefaults(
        "logistic_regression", MappingProxyType({"balanced_accuracy_adjusted": 0.1})
    ),
    "regression": TaskDefaults("ridge", MappingProxyType({"r2": 0.0})),
}
DEFAULT_TASK = "classification"  # a TrainingParams built without a task (the bundled data's)


def default_estimator(task: str) -> str:
    """The estimator a run of ``task`` trains when none is named."""
    return TASK_DEFAULTS[task].estimator if task in TASK_DEFAULTS else ""


def resolve_estimator(estimator: str, task: str) -> str:
    """``estimator``, or the task's default when it is empty (a pipeline submitted with a task
    and no estimator: the steps resolve it from the task the contract records)."""
    return estimator or default_estimator(task)


def default_thresholds(task: str) -> dict[str, float]:
    """The blessing thresholds a run of ``task`` must meet when none are given."""
    return dict(TASK_DEFAULTS[task].thresholds) if task in TASK_DEFAULTS else {}


@dataclass(frozen=True)
class TrainingParams:
    """The training pipeline's parameters, as `kfops run` and the retraining trigger set them."""

    data_uri: str
    target: str
    model_name: str
    registry_root: str
    task: str = DEFAULT_TASK
    estimator: str = ""  # empty: the task's default estimator (TASK_DEFAULTS)
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

    def __post_init__(self) -> None:
        if not self.estimator:
            object.__setattr__(self, "estimator", default_estimator(self.task))

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
