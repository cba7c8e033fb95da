"""Train: fit the sklearn Pipeline (preprocessing inside), and from the same training rows the
drift reference profile and what the explainer needs; convert the fitted pipeline to its ONNX
twin (kfops.twin), which registration verifies before any server may use it.

The profile and the explainer background come from exactly the rows the model saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from kfops import training
from kfops.contract_model import Contract
from kfops.drift.profile import build_reference_profile
from kfops.explain.contributions import write_explainer_file
from kfops.params import resolve_estimator
from kfops.steps._run import RunContext
from kfops.twin import Twin, TwinRecord, convert


@dataclass(frozen=True)
class TrainInputs:
    train_path: Path
    contract_path: Path
    estimator: str
    seed: int
    model_path: Path  # the fitted Pipeline (joblib)
    profile_path: Path  # the drift reference profile (JSON)
    twin_path: Path  # the ONNX twin (model.onnx); an empty file when the model has none
    explainer_path: Path  # explainer.json (kfops.explain.contributions.EXPLAINER_FILE)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainResult:
    estimator: str
    params: dict[str, Any]  # the estimator parameters the model was fitted with
    train_rows: int
    twin: TwinRecord  # "converted" or "not_convertible" (registration verifies a converted one)


def run(inputs: TrainInputs, ctx: RunContext) -> TrainResult:
    the_contract = Contract.load(inputs.contract_path)
    train_df = pd.read_parquet(inputs.train_path)
    params = dict(inputs.params)
    estimator = resolve_estimator(inputs.estimator, the_contract.task)
    model = training.train(train_df, the_contract, estimator, params, inputs.seed)
    training.save_model(model, inputs.model_path)
    build_reference_profile(train_df, the_contract).save(inputs.profile_path)
    write_explainer_file(inputs.explainer_path, model, train_df)
    converted = convert(model, the_contract)
    # Written even when there is no twin (empty): register takes it as an input whatever the
    # model, and KFP skips uploading an output a task did not write (kubeflow/pipelines 2.17.0,
    # backend/src/v2/component/launcher_v2.go), which would leave register nothing to read.
    Path(inputs.twin_path).write_bytes(converted.onnx if isinstance(converted, Twin) else b"")
    twin = TwinRecord.from_conversion(converted.to_dict())
    ctx.record(
        "train",
        {
            "estimator": estimator,
            "params": params,
            "seed": inputs.seed,
            "train_rows": len(train_df),
            "twin": twin.to_dict(),
        },
    )
    return TrainResult(estimator, params, len(train_df), twin)
