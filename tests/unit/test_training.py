"""Training every estimator for real, parameter errors, and byte-stable model files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from palmerpenguins import load_penguins
from sklearn.pipeline import Pipeline

from kfops.contract import infer_contract
from kfops.contract_model import Contract
from kfops.datasets import MESSY_TARGET, make_messy, make_synthetic
from kfops.errors import ConfigError, DataError
from kfops.features import feature_frame, split
from kfops.training import (
    ESTIMATORS,
    load_model,
    make_estimator,
    save_model,
    train,
)

from .test_features import messy_contract, mixed_contract, mixed_frame, penguin_contract

REPO = Path(__file__).resolve().parents[2]


def regression_contract() -> Contract:
    # Predict body mass from the other measurements, species and sex.
    return infer_contract(load_penguins(), "body_mass_g", "regression", drop=["year"])


@pytest.fixture(scope="module")
def penguin_split() -> tuple[pd.DataFrame, pd.DataFrame]:
    return split(load_penguins(), penguin_contract(), seed=42)


@pytest.mark.parametrize("name", sorted(ESTIMATORS["classification"]))
def test_every_classifier_learns_penguins(name: str, penguin_split) -> None:
    train_df, test_df = penguin_split
    contract = penguin_contract()
    params = {"max_iter": 30} if name == "gradient_boosting" else None
    model = train(train_df, contract, name, params)
    assert isinstance(model, Pipeline)
    assert [step for step, _ in model.steps] == ["preprocess", "model"]
    assert set(model.classes_) == {"Adelie", "Chinstrap", "Gentoo"}
    # Raw columns in, labels out; extra and reordered columns are fine.
    raw = test_df[list(reversed(test_df.columns))]
    accuracy = (model.predict(raw) == test_df["species"]).mean()
    assert accuracy > 0.9


@pytest.mark.parametrize("name", sorted(ESTIMATORS["regression"]))
def test_every_regressor_learns_body_mass(name: str) -> None:
    contract = regression_contract()
    train_df, test_df = split(load_penguins(), contract, seed=1)
    model = train(train_df, contract, name, {"max_iter": 30} if name == "gradient_boosting" else {})
    test_df = test_df.dropna(subset=["body_mass_g"])
    predicted = model.predict(feature_frame(test_df, contract))
    rmse = float(np.sqrt(np.mean((predicted - test_df["body_mass_g"].to_numpy()) ** 2)))
    assert rmse < 450  # the target's std is ~800 g


def test_mixed_kinds_train_with_all_estimators() -> None:
    df, contract = mixed_frame(), mixed_contract()
    for name in ESTIMATORS["classification"]:
        model = train(df, contract, name, {"max_iter": 10} if name == "gradient_boosting" else {})
        assert len(model.predict(df.head(5))) == 5


@pytest.mark.parametrize("name", sorted(ESTIMATORS["classification"]))
def test_every_classifier_trains_on_messy_data(name: str) -> None:
    raw = make_messy(300)
    contract = messy_contract(raw)
    train_df, test_df = split(raw, contract)
    params = {"max_iter": 30} if name == "gradient_boosting" else None
    model = train(train_df, contract, name, params)
    assert set(model.classes_) == {"no", "yes"}
    test_df = test_df[test_df[MESSY_TARGET].notna()]
    # Raw rows with nulls, date strings and free text go straight in.
    accuracy = (model.predict(test_df) == test_df[MESSY_TARGET]).mean()
    assert accuracy > 0.6


def test_seed_reaches_the_estimator_unless_params_set_it() -> None:
    assert make_estimator("classification", "random_forest", {}, seed=3).random_state == 3
    est = make_estimator("classification", "random_forest", {"random_state": 9}, seed=3)
    assert est.random_state == 9
    assert make_estimator("classification", "logistic_regression", {}).max_iter == 1000


def test_unknown_task_and_estimator_messages() -> None:
    with pytest.raises(ConfigError, match="unknown task 'clustering'"):
        make_estimator("clustering", "kmeans", {})
    with pytest.raises(ConfigError) as err:
        make_estimator("classification", "random_forrest", {})
    message = str(err.value)
    assert "'random_forrest'" in message
    assert "logistic_regression" in message and "decision_tree" in message
    assert "did you mean 'random_forest'" in message
    with pytest.raises(ConfigError, match="did you mean 'logistic_regression'"):
        make_estimator("classification", "logistic", {})


def test_unknown_parameter_lists_valid_ones() -> None:
    with pytest.raises(ConfigError) as err:
        make_estimator("classification", "random_forest", {"n_estimator": 10})
    message = str(err.value)
    assert "'n_estimator'" in message
    assert "did you mean 'n_estimators'" in message
    assert "max_depth" in message  # the list of valid parameters


@pytest.mark.parametrize(
    ("name", "params", "fragment"),
    [
        ("logistic_regression", {"C": -1}, "'C' parameter"),
        ("random_forest", {"n_estimators": "many"}, "'n_estimators' parameter"),
        ("gradient_boosting", {"learning_rate": 0}, "'learning_rate' parameter"),
    ],
)
def test_invalid_parameter_values_fail_before_training(name, params, fragment) -> None:
    with pytest.raises(ConfigError, match=fragment):
        make_estimator("classification", name, params)


def test_fit_time_parameter_conflict_is_a_config_error(penguin_split) -> None:
    train_df, _ = penguin_split
    with pytest.raises(ConfigError, match="failed to fit"):
        train(
            train_df, penguin_contract(), "logistic_regression", {"solver": "lbfgs", "dual": True}
        )


def test_single_class_training_data_is_rejected() -> None:
    df = load_penguins()
    df = df[df["species"] == "Adelie"]
    with pytest.raises(DataError, match="single class"):
        train(df, penguin_contract(), "decision_tree")


def test_save_load_round_trip_and_bad_files(tmp_path: Path, penguin_split) -> None:
    train_df, test_df = penguin_split
    model = train(train_df, penguin_contract(), "random_forest", {"n_estimators": 20})
    path = save_model(model, tmp_path / "m" / "model.joblib")
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(test_df), model.predict(test_df))
    with pytest.raises(ConfigError, match="no model file"):
        load_model(tmp_path / "missing.joblib")
    (tmp_path / "junk.joblib").write_bytes(b"not a pickle")
    with pytest.raises(ConfigError, match="cannot be loaded"):
        load_model(tmp_path / "junk.joblib")


_TRAIN_SCRIPT = """
import sys
from kfops.features import split
from kfops.training import save_model, train
sys.path.insert(0, {repo!r})
from tests.unit.test_features import mixed_contract, mixed_frame
df, contract = mixed_frame(), mixed_contract()
train_df, _ = split(df, contract, seed=5)
save_model(train(train_df, contract, sys.argv[1], seed=5), sys.argv[2])
"""


@pytest.mark.parametrize("name", ["random_forest", "logistic_regression"])
def test_identical_training_gives_identical_bytes(tmp_path: Path, name: str) -> None:
    """Model hashes are compared between runners: same data+params+seed -> same file bytes,
    also across processes with different hash seeds (TF-IDF vocabulary, one-hot categories)."""
    df, contract = mixed_frame(), mixed_contract()
    train_df, _ = split(df, contract, seed=5)
    a = save_model(train(train_df, contract, name, seed=5), tmp_path / "a.joblib")
    b = save_model(train(train_df, contract, name, seed=5), tmp_path / "b.joblib")
    assert a.read_bytes() == b.read_bytes()
    # Across processes: two fresh ones, as pipeline steps are. (This long-lived test process may
    # pickle the same model differently: pickle memoizes by object identity, and which equal
    # strings are one object depends on what the process did before; the content is the same.)
    c, e = tmp_path / "c.joblib", tmp_path / "e.joblib"
    for out, hash_seed in ((c, "12345"), (e, "0")):
        subprocess.run(
            [sys.executable, "-c", _TRAIN_SCRIPT.format(repo=str(REPO)), name, str(out)],
            check=True,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            cwd=REPO,
        )
    assert c.read_bytes() == e.read_bytes()
    d = save_model(train(train_df, contract, name, seed=6), tmp_path / "d.joblib")
    if name == "random_forest":
        assert d.read_bytes() != a.read_bytes()


def test_integer_labels_with_null_targets_stay_integers() -> None:
    """A null in an int label column makes pandas read floats; the model still predicts ints."""
    df = make_synthetic(400, n_numeric=4, n_categorical=1, seed=2)
    df["target"] = df["target"].astype("float64")
    df.loc[[3, 7], "target"] = np.nan
    contract = infer_contract(df, "target", "classification")
    assert contract.target.classes == (0, 1)
    train_df, test_df = split(df, contract)
    model = train(train_df, contract, "logistic_regression")
    assert list(model.classes_) == [0, 1]
    assert set(model.predict(test_df).tolist()) <= {0, 1}


def test_cpu_budget_respects_override(monkeypatch: pytest.MonkeyPatch) -> None:
    from kfops.training import cpu_budget

    monkeypatch.delenv("KFOPS_THREADS", raising=False)
    assert cpu_budget() >= 1
    monkeypatch.setenv("KFOPS_THREADS", "1")
    assert cpu_budget() == 1
    monkeypatch.setenv("KFOPS_THREADS", "many")
    with pytest.raises(ConfigError, match="KFOPS_THREADS"):
        cpu_budget()


def test_text_feature_without_words_is_named() -> None:
    df, contract = mixed_frame(), mixed_contract()
    df["note"] = None
    with pytest.raises(DataError, match="text feature 'note'"):
        train(df, contract, "logistic_regression")
