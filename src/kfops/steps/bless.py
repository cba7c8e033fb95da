"""Bless: the challenger against absolute thresholds and the champion on the same test rows.

The champion is re-evaluated on this run's held-out rows (its own model and contract), so the
comparison is fair whatever data the champion was trained and tested on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from kfops import blessing, evaluation, training
from kfops.contract_model import Contract
from kfops.io import read_json
from kfops.steps._run import RunContext


@dataclass(frozen=True)
class BlessInputs:
    evaluation_path: Path  # the challenger's Evaluation (evaluate step)
    test_path: Path
    model_name: str
    max_regression: float
    thresholds: dict[str, float] = field(default_factory=dict)  # metric -> minimum/maximum


def run(inputs: BlessInputs, ctx: RunContext) -> blessing.BlessingDecision:
    challenger = evaluation.Evaluation.from_dict(read_json(inputs.evaluation_path))
    policy = blessing.parse_policy(inputs.thresholds, inputs.max_regression, challenger.task)
    champion = ctx.registry.verify(inputs.model_name, missing_ok=True)
    champion_eval = None
    if champion is not None:
        champion_eval = evaluation.evaluate(
            training.load_model(champion.file("model.joblib")),
            pd.read_parquet(inputs.test_path),
            Contract.load(champion.file("contract.json")),
        )
    decision = blessing.bless(
        challenger, champion_eval, policy, champion.version if champion else None
    )
    ctx.record("bless", {"decision": decision.to_dict()})
    return decision
