"""Prepare: a deterministic, seeded train/test split (stratified for classification)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kfops import data, features
from kfops.contract_model import Contract
from kfops.steps._run import RunContext


@dataclass(frozen=True)
class PrepareInputs:
    snapshot_path: Path
    contract_path: Path
    train_path: Path  # Parquet outputs
    test_path: Path
    test_size: float
    seed: int


@dataclass(frozen=True)
class PrepareResult:
    train_rows: int
    test_rows: int


def run(inputs: PrepareInputs, ctx: RunContext) -> PrepareResult:
    df = data.load_snapshot(inputs.snapshot_path)
    train_df, test_df = features.split(
        df, Contract.load(inputs.contract_path), inputs.test_size, inputs.seed
    )
    train_df.to_parquet(inputs.train_path, index=False)
    test_df.to_parquet(inputs.test_path, index=False)
    ctx.record(
        "prepare", {"train_rows": len(train_df), "test_rows": len(test_df), "seed": inputs.seed}
    )
    return PrepareResult(len(train_df), len(test_df))
