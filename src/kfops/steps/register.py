"""Register: a blessed model becomes an immutable registry version, with lineage; `challenger`
points at it until the deploy step makes it the champion."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfops.io import read_json, write_json_atomic
from kfops.registry import CHALLENGER, ModelVersion
from kfops.steps._run import RunContext


@dataclass(frozen=True)
class RegisterInputs:
    model_name: str
    model_path: Path
    contract_path: Path
    profile_path: Path
    evaluation_path: Path
    # What the version was made from (data URI and fingerprint, estimator, params, seed,
    # blessing decision, tuning summary, ...): stored as lineage.json with the metrics and run.
    lineage: Mapping[str, Any]


def run(inputs: RegisterInputs, ctx: RunContext) -> ModelVersion:
    # The metrics straight from the evaluation file: importing kfops.evaluation (sklearn) would
    # cost this task a second for nothing.
    metrics = {k: float(v) for k, v in read_json(inputs.evaluation_path)["metrics"].items()}
    staging = Path(inputs.evaluation_path).with_name("metrics.json")
    write_json_atomic(staging, metrics)
    version = ctx.registry.register(
        inputs.model_name,
        {
            "model.joblib": Path(inputs.model_path),
            "contract.json": Path(inputs.contract_path),
            "reference_profile.json": Path(inputs.profile_path),
            "metrics.json": staging,
        },
        {**inputs.lineage, "metrics": metrics, "run_id": ctx.run_id},
        aliases=(CHALLENGER,),
    )
    ctx.record(
        "register",
        {"model": inputs.model_name, "version": version.version, "sha256": version.model_sha256},
    )
    return version
