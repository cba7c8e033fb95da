"""Blessing decisions: thresholds, first model, regression versus the champion, policy errors."""

from __future__ import annotations

import pytest
from palmerpenguins import load_penguins

from kfops.blessing import BlessingDecision, BlessingPolicy, bless, parse_policy
from kfops.components._decode import thresholds as decode_thresholds
from kfops.errors import ConfigError
from kfops.evaluation import Evaluation, evaluate
from kfops.features import split
from kfops.training import train

from .test_features import penguin_contract


def cls_eval(f1: float, accuracy: float = 0.9, sha: str = "abc", n: int = 69) -> Evaluation:
    return Evaluation(
        task="classification",
        metrics={"f1_macro": f1, "accuracy": accuracy, "log_loss": 0.3},
        n_rows=n,
        data_sha256=sha,
    )


def reg_eval(rmse: float, r2: float = 0.8) -> Evaluation:
    return Evaluation(
        task="regression", metrics={"rmse": rmse, "r2": r2}, n_rows=50, data_sha256="d"
    )


def test_first_real_model_is_blessed_when_it_meets_thresholds() -> None:
    contract = penguin_contract()
    train_df, test_df = split(load_penguins(), contract)
    ev = evaluate(train(train_df, contract, "logistic_regression"), test_df, contract)
    decision = bless(ev, None, parse_policy({"f1_macro": 0.8}, 0.01, "classification"))
    assert decision.blessed
    assert decision.champion is None
    assert any(
        r.startswith("f1_macro ") and r.endswith(">= threshold 0.800: pass")
        for r in decision.reasons
    )
    assert any("no champion" in r for r in decision.reasons)


def test_first_model_below_threshold_is_rejected() -> None:
    decision = bless(cls_eval(0.75), None, BlessingPolicy({"f1_macro": 0.8}))
    assert not decision.blessed
    assert "f1_macro 0.750 < threshold 0.800: fail" in decision.reasons


def test_lower_is_better_thresholds_are_maximums() -> None:
    policy = BlessingPolicy({"log_loss": 0.5})
    assert bless(cls_eval(0.9), None, policy).blessed
    assert not bless(cls_eval(0.9), None, BlessingPolicy({"log_loss": 0.2})).blessed
    assert (
        "log_loss 0.300 > maximum 0.200: fail"
        in bless(cls_eval(0.9), None, BlessingPolicy({"log_loss": 0.2})).reasons
    )


def test_missing_metric_fails_its_threshold() -> None:
    decision = bless(cls_eval(0.9), None, BlessingPolicy({"roc_auc": 0.8}))
    assert not decision.blessed
    assert "roc_auc not available" in decision.reasons[0]


def test_small_regression_within_tolerance_passes() -> None:
    policy = BlessingPolicy({"f1_macro": 0.8}, max_regression=0.01)
    decision = bless(cls_eval(0.958), cls_eval(0.962), policy, champion_version="v3")
    assert decision.blessed
    assert "f1_macro regression 0.004 <= allowed 0.010 versus champion v3: pass" in decision.reasons
    assert decision.champion_version == "v3"


def test_regression_beyond_tolerance_is_rejected() -> None:
    policy = BlessingPolicy({"f1_macro": 0.8}, max_regression=0.01)
    decision = bless(cls_eval(0.90), cls_eval(0.95), policy, champion_version="v3")
    assert not decision.blessed
    assert "f1_macro regression 0.050 > allowed 0.010 versus champion v3: fail" in decision.reasons
    # Thresholds alone would have passed.
    assert "f1_macro 0.900 >= threshold 0.800: pass" in decision.reasons


def test_lower_is_better_primary_uses_relative_regression() -> None:
    policy = BlessingPolicy({}, max_regression=0.05)
    assert bless(reg_eval(103.0), reg_eval(100.0), policy, "v1").blessed  # 3% worse
    decision = bless(reg_eval(110.0), reg_eval(100.0), policy, "v1")
    assert not decision.blessed
    assert (
        "rmse regression 10.0% of 100.000 > allowed 5.0% versus champion v1: fail"
        in decision.reasons
    )
    assert bless(reg_eval(90.0), reg_eval(100.0), BlessingPolicy({}, 0.0)).blessed  # better


def test_champion_on_different_data_is_not_compared() -> None:
    decision = bless(cls_eval(0.99), cls_eval(0.5, sha="other"), BlessingPolicy({}))
    assert not decision.blessed
    assert "different held-out data" in decision.reasons[-1]


def test_custom_primary_metric() -> None:
    policy = BlessingPolicy({}, max_regression=0.01, primary_metric="accuracy")
    decision = bless(cls_eval(0.5, accuracy=0.95), cls_eval(0.9, accuracy=0.95), policy)
    assert decision.blessed
    assert decision.reasons[-1].startswith("accuracy regression 0.000")


def test_decision_serialisation_and_markdown() -> None:
    decision = bless(cls_eval(0.958), cls_eval(0.962), BlessingPolicy({"f1_macro": 0.8}), "v3")
    data = decision.to_dict()
    assert data["blessed"] is True and data["champion_version"] == "v3"
    assert BlessingDecision.from_dict(data) == decision
    md = decision.to_markdown()
    assert "BLESSED" in md and "| f1_macro | 0.9580 | 0.9620 |" in md
    assert "- f1_macro regression 0.004 <= allowed 0.010 versus champion v3: pass" in md


def test_parse_policy() -> None:
    # Pipeline parameters arrive as JSON text: the component decodes it, the library checks it.
    text = '{"f1_macro": 0.8, "log_loss": "0.5"}'
    policy = parse_policy(decode_thresholds(text), "0.02", "classification")
    assert policy.thresholds == {"f1_macro": 0.8, "log_loss": 0.5}
    assert policy.max_regression == 0.02
    assert parse_policy(decode_thresholds(""), 0.01, "regression").thresholds == {}
    assert parse_policy(None, 0.01, "regression").thresholds == {}
    assert parse_policy({"rmse": 300}, 0.01, "regression").primary_for("regression") == "rmse"


@pytest.mark.parametrize(
    ("text", "max_regression", "task", "fragment"),
    [
        ('{"f1": 0.8}', 0.01, "classification", "unknown classification metric 'f1'"),
        ('{"rmse": 1}', 0.01, "classification", "unknown classification metric 'rmse'"),
        ('{"f1_macro": "high"}', 0.01, "classification", "threshold for 'f1_macro'"),
        ('{"f1_macro": NaN}', 0.01, "classification", "finite"),
        ("{f1_macro: 0.8}", 0.01, "classification", "not valid JSON"),
        ("[0.8]", 0.01, "classification", "JSON object"),
        ("{}", -0.1, "classification", "max_regression must be >= 0"),
        ("{}", "lots", "classification", "max_regression must be a number"),
        ("{}", 0.01, "clustering", "unknown task"),
    ],
)
def test_parse_policy_errors(text, max_regression, task, fragment) -> None:
    with pytest.raises(ConfigError, match=fragment):
        parse_policy(decode_thresholds(text), max_regression, task)
