"""Train: fit the sklearn Pipeline (preprocessing inside) and the drift reference profile.

Both come from the same training rows, so drift is measured against exactly what the model saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from kfops import training
from kfops.contract_model import Contract
from kfops.drift.profile import build_reference_profile
from kfops.steps._run import RunContext


@dataclass(frozen=True)
class TrainInputs:
    train_path: Path
    contract_path: Path
    estimator: str
    seed: int
    model_path: Path  # the fitted Pipeline (joblib)
    profile_path: Path  # the drift reference profile (JSON)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainResult:
    estimator: str
    params: dict[str, Any]  # the estimator parameters the model was fitted with
    train_rows: int


def run(inputs: TrainInputs, ctx: RunContext) -> TrainResult:
    the_contract = Contract.load(inputs.contract_path)
    train_df = pd.read_parquet(inputs.train_path)
    params = dict(inputs.params)
    model = training.train(train_df, the_contract, inputs.estimator, params, inputs.seed)
    training.save_model(model, inputs.model_path)
    build_reference_profile(train_df, the_contract).save(inputs.profile_path)
    ctx.record(
        "train",
        {
            "estimator": inputs.estimator,
            "params": params,
            "seed": inputs.seed,
            "train_rows": len(train_df),
        },
    )
    return TrainResult(inputs.estimator, params, len(train_df))
