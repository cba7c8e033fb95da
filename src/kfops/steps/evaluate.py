"""Evaluate: the model's metrics on the held-out split, the curves the dashboard plots, and
the permutation importance of each column the model takes (kfops.explain.importance)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sklearn.pipeline import Pipeline

from kfops import evaluation, training
from kfops.contract_model import Contract
from kfops.explain.importance import Importance, permutation_importances
from kfops.features import drop_null_target, feature_frame, target_series
from kfops.io import write_json_atomic
from kfops.steps._run import RunContext


@dataclass(frozen=True)
class EvaluateInputs:
    model_path: Path
    test_path: Path
    contract_path: Path
    evaluation_path: Path  # the Evaluation as JSON, read by bless and register
    importance_path: Path  # the Importance as JSON, read by register (lineage, model card)
    seed: int  # shuffles of the permutation importance


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
    importance: Importance


def run(inputs: EvaluateInputs, ctx: RunContext) -> EvaluateResult:
    model = training.load_model(inputs.model_path)
    test_df = pd.read_parquet(inputs.test_path)
    the_contract = Contract.load(inputs.contract_path)
    result = evaluation.evaluate(model, test_df, the_contract)
    importance = importance_of(model, test_df, the_contract, inputs.seed)
    write_json_atomic(inputs.evaluation_path, result.to_dict())
    write_json_atomic(inputs.importance_path, importance.to_dict())
    ctx.record(
        "evaluate",
        {"metrics": result.metrics, "test_rows": result.n_rows, "importance": importance.to_dict()},
    )
    return EvaluateResult(result, dashboard_curves(result), importance)


def importance_of(
    model: Pipeline, test_df: pd.DataFrame, contract: Contract, seed: int
) -> Importance:
    """Permutation importance of each raw feature on the labelled held-out rows, scored with
    the task's primary metric (the rows, repeats and cost are bounded in kfops.explain)."""
    data = drop_null_target(test_df, contract)
    with training.limited_threads():
        return permutation_importances(
            model,
            feature_frame(data, contract),
            target_series(data, contract),
            contract.task,
            seed=seed,
        )


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
