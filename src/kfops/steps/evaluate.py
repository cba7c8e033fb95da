"""Evaluate: the model's metrics on the held-out split, and the curves the dashboard plots."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from kfops import evaluation, training
from kfops.contract_model import Contract
from kfops.io import write_json_atomic
from kfops.steps._run import RunContext


@dataclass(frozen=True)
class EvaluateInputs:
    model_path: Path
    test_path: Path
    contract_path: Path
    evaluation_path: Path  # the Evaluation as JSON, read by bless and register


@dataclass(frozen=True)
class DashboardCurves:
    """What KFP's ClassificationMetrics artifact takes (labels must be strings)."""

    labels: list[str]
    matrix: list[list[int]]
    fpr: list[float]
    tpr: list[float]
    thresholds: list[float]


@dataclass(frozen=True)
class EvaluateResult:
    evaluation: evaluation.Evaluation
    curves: DashboardCurves | None  # classification only


def run(inputs: EvaluateInputs, ctx: RunContext) -> EvaluateResult:
    result = evaluation.evaluate(
        training.load_model(inputs.model_path),
        pd.read_parquet(inputs.test_path),
        Contract.load(inputs.contract_path),
    )
    write_json_atomic(inputs.evaluation_path, result.to_dict())
    ctx.record("evaluate", {"metrics": result.metrics, "test_rows": result.n_rows})
    return EvaluateResult(result, dashboard_curves(result))


def dashboard_curves(result: evaluation.Evaluation) -> DashboardCurves | None:
    if result.task != "classification" or not result.labels or not result.confusion_matrix:
        return None
    roc = result.roc or {"fpr": [], "tpr": [], "thresholds": []}
    return DashboardCurves(
        labels=[str(label) for label in result.labels],
        matrix=[[int(v) for v in row] for row in result.confusion_matrix],
        fpr=[float(v) for v in roc["fpr"]],
        tpr=[float(v) for v in roc["tpr"]],
        thresholds=[float(v) for v in roc["thresholds"]],
    )
