"""Evaluation of real fitted models: metrics, confusion matrix, ROC, residuals, HTML report."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest
from palmerpenguins import load_penguins

from kfops.contract import infer_contract
from kfops.datasets import MESSY_TARGET, make_messy, make_synthetic
from kfops.evaluation import (
    CLASSIFICATION_METRICS,
    HIGHER_IS_BETTER,
    MAX_ROC_POINTS,
    PRIMARY_METRIC,
    REGRESSION_METRICS,
    Evaluation,
    evaluate,
    thin_curve,
)
from kfops.features import split
from kfops.reports.evaluation import render_report
from kfops.training import train

from .test_features import messy_contract, mixed_contract, mixed_frame, penguin_contract
from .test_training import regression_contract

PNG_SRC = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="module")
def penguin_eval() -> Evaluation:
    contract = penguin_contract()
    train_df, test_df = split(load_penguins(), contract)
    return evaluate(train(train_df, contract, "logistic_regression"), test_df, contract)


def test_multiclass_metrics_confusion_and_micro_roc(penguin_eval: Evaluation) -> None:
    ev = penguin_eval
    assert set(ev.metrics) == set(CLASSIFICATION_METRICS)
    assert ev.metrics["accuracy"] > 0.9 and ev.metrics["roc_auc"] > 0.95
    assert ev.labels == ["Adelie", "Chinstrap", "Gentoo"]
    matrix = np.array(ev.confusion_matrix)
    assert matrix.shape == (3, 3) and matrix.sum() == ev.n_rows == 69
    assert ev.roc is not None and ev.roc["average"] == "micro"
    assert len(ev.roc["fpr"]) == len(ev.roc["tpr"]) == len(ev.roc["thresholds"])
    assert all(np.isfinite(ev.roc["thresholds"]))
    assert ev.roc["fpr"][0] == 0.0 and ev.roc["tpr"][-1] == 1.0


def test_to_dict_is_json_and_round_trips(penguin_eval: Evaluation) -> None:
    data = json.loads(json.dumps(penguin_eval.to_dict(), allow_nan=False))
    again = Evaluation.from_dict(data)
    assert again == penguin_eval


def test_binary_roc_uses_positive_class() -> None:
    df, contract = mixed_frame(400), mixed_contract()
    # Make the label learnable from `num` so the AUC is meaningful.
    df["label"] = np.where(
        df["num"] + np.random.default_rng(1).normal(0, 0.5, len(df)) > 0, "b", "a"
    )
    train_df, test_df = split(df, contract)
    ev = evaluate(train(train_df, contract, "logistic_regression"), test_df, contract)
    assert ev.roc is not None and ev.roc["positive_class"] == "b"
    assert ev.roc["average"] == "binary"
    assert ev.metrics["roc_auc"] == pytest.approx(ev.roc["auc"])
    assert ev.metrics["roc_auc"] > 0.8


def test_roc_is_thinned_for_kfp() -> None:
    n = 5000
    fpr = np.linspace(0, 1, n)
    out = thin_curve(fpr, fpr**0.5, 1 - fpr)
    assert len(out[0]) <= MAX_ROC_POINTS
    assert out[0][0] == 0.0 and out[0][-1] == 1.0
    rng = np.random.default_rng(0)
    y = rng.choice(["x", "y"], 3000)
    frame = pd.DataFrame({"v": rng.normal(size=3000) + (y == "y"), "t": y})
    from kfops.contract_model import Contract

    contract = Contract.from_dict(
        {
            "schema_version": 1,
            "task": "classification",
            "target": {"name": "t", "kind": "categorical", "classes": ["x", "y"]},
            "features": [{"name": "v", "kind": "numeric"}],
        }
    )
    train_df, test_df = split(frame, contract, test_size=0.5)
    ev = evaluate(
        train(train_df, contract, "random_forest", {"n_estimators": 20}), test_df, contract
    )
    assert ev.roc is not None and len(ev.roc["fpr"]) <= MAX_ROC_POINTS


def test_regression_metrics_and_residuals() -> None:
    contract = regression_contract()
    train_df, test_df = split(load_penguins(), contract)
    ev = evaluate(train(train_df, contract, "ridge"), test_df, contract)
    assert set(ev.metrics) == set(REGRESSION_METRICS)
    assert 0.6 < ev.metrics["r2"] <= 1.0
    assert ev.metrics["rmse"] >= ev.metrics["mae"] > 0
    assert ev.residuals is not None and set(ev.residuals) >= {"mean", "std", "p05", "p95"}
    assert ev.sample is not None and len(ev.sample["actual"]) == ev.n_rows
    assert ev.roc is None and ev.confusion_matrix is None
    json.dumps(ev.to_dict(), allow_nan=False)


def test_primary_and_direction_tables_cover_every_metric() -> None:
    assert set(HIGHER_IS_BETTER) == set(CLASSIFICATION_METRICS) | set(REGRESSION_METRICS)
    assert PRIMARY_METRIC == {"classification": "f1_macro", "regression": "rmse"}
    assert HIGHER_IS_BETTER["f1_macro"] and not HIGHER_IS_BETTER["rmse"]


def test_champion_without_a_new_class_still_gets_label_metrics(penguin_eval: Evaluation) -> None:
    """A champion trained before a class existed is scored on hard labels only."""
    contract = penguin_contract()
    df = load_penguins()
    train_df, test_df = split(df, contract)
    old = train(train_df[train_df["species"] != "Gentoo"], contract, "decision_tree")
    ev = evaluate(old, test_df, contract)
    assert "accuracy" in ev.metrics and "log_loss" not in ev.metrics
    assert ev.data_sha256 == penguin_eval.data_sha256


def _pngs(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in PNG_SRC.findall(page)]


def test_classification_report_embeds_confusion_and_roc(penguin_eval: Evaluation) -> None:
    page = render_report(penguin_eval, "Penguins <v1>", {"estimator": "logistic_regression"})
    assert page.startswith("<!doctype html>")  # the one page shell of every report
    assert "Penguins &lt;v1&gt;" in page  # escaped
    assert "f1_macro" in page and "logistic_regression" in page
    images = _pngs(page)
    assert len(images) == 2
    assert all(img.startswith(b"\x89PNG") for img in images)
    assert "Confusion matrix" in page and "ROC curve" in page
    assert "http" not in PNG_SRC.sub("", page)  # self-contained: no external resources


def test_regression_report_embeds_scatter_and_residuals() -> None:
    contract = regression_contract()
    train_df, test_df = split(load_penguins(), contract)
    ev = evaluate(train(train_df, contract, "linear_regression"), test_df, contract)
    page = render_report(ev, "Body mass", None)
    assert len(_pngs(page)) == 2
    assert "Predicted vs actual" in page and "Residuals" in page and "rmse" in page


def test_messy_binary_evaluation_and_integer_labels() -> None:
    raw = make_messy(300)
    contract = messy_contract(raw)
    train_df, test_df = split(raw, contract)
    ev = evaluate(train(train_df, contract, "logistic_regression"), test_df, contract)
    assert ev.labels == ["no", "yes"] and ev.roc is not None
    assert ev.roc["positive_class"] == "yes"
    assert ev.n_rows == int(test_df[MESSY_TARGET].notna().sum())
    assert ev.metrics["f1_macro"] > 0.7
    df = make_synthetic(400, n_numeric=4, n_categorical=1, seed=2)
    contract = infer_contract(df, "target", "classification")
    train_df, test_df = split(df, contract)
    ev = evaluate(train(train_df, contract, "decision_tree"), test_df, contract)
    assert ev.labels == [0, 1] and ev.roc is not None and ev.roc["positive_class"] == 1
    json.dumps(ev.to_dict(), allow_nan=False)


def test_test_rows_missing_a_class_skip_only_undefined_metrics() -> None:
    contract = penguin_contract()
    train_df, test_df = split(load_penguins(), contract)
    model = train(train_df, contract, "logistic_regression")
    ev = evaluate(model, test_df[test_df["species"] != "Chinstrap"], contract)
    assert "roc_auc" not in ev.metrics  # undefined for the absent class
    assert {"accuracy", "f1_macro", "log_loss"} <= set(ev.metrics)
    assert ev.roc is not None and ev.labels == ["Adelie", "Chinstrap", "Gentoo"]
