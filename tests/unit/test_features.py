"""Split and preprocessing behaviour on real data (Palmer Penguins) and mixed-kind frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from palmerpenguins import load_penguins

from kfops.contract import coerce_frame, infer_contract
from kfops.contract_model import Contract
from kfops.datasets import MESSY_TARGET, make_messy
from kfops.errors import ConfigError, DataError
from kfops.features import build_preprocessor, feature_frame, split


def penguin_contract() -> Contract:
    return infer_contract(load_penguins(), "species", "classification")


def messy_contract(df: pd.DataFrame) -> Contract:
    return infer_contract(df, MESSY_TARGET, "classification")


def mixed_frame(n: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "num": rng.normal(size=n),
            "flag": rng.choice([True, False], size=n),
            "color": rng.choice(["red", "green", None], size=n),
            "note": rng.choice(["fast shipping", "broken box", None, "great value"], size=n),
            "when": pd.to_datetime("2024-01-01") + pd.to_timedelta(rng.integers(0, 400, n), "D"),
            "label": rng.choice(["a", "b"], size=n),
            "extra": np.arange(n),
        }
    )


def mixed_contract() -> Contract:
    return Contract.from_dict(
        {
            "schema_version": 1,
            "task": "classification",
            "target": {"name": "label", "kind": "categorical", "classes": ["a", "b"]},
            "features": [
                {"name": "num", "kind": "numeric", "dtype": "float64"},
                {"name": "flag", "kind": "boolean", "dtype": "bool"},
                {"name": "color", "kind": "categorical", "dtype": "object"},
                {"name": "note", "kind": "text", "dtype": "object"},
                {"name": "when", "kind": "datetime", "dtype": "datetime64[ns]"},
            ],
        }
    )


def test_split_is_deterministic_stratified_and_drops_null_targets() -> None:
    df = load_penguins()
    df.loc[[0, 5], "species"] = None
    contract = penguin_contract()
    train, test = split(df, contract, test_size=0.2, seed=7)
    train2, test2 = split(df, contract, test_size=0.2, seed=7)
    pd.testing.assert_frame_equal(train, train2)
    pd.testing.assert_frame_equal(test, test2)
    assert len(train) + len(test) == len(df) - 2
    assert train["species"].notna().all() and test["species"].notna().all()
    assert not set(train.index) & set(test.index)
    # Stratified: class shares in the test split match the whole within one row.
    whole = df["species"].value_counts(normalize=True)
    for label, share in test["species"].value_counts(normalize=True).items():
        assert abs(share - whole[label]) < 1.5 / len(test)
    other, _ = split(df, contract, test_size=0.2, seed=8)
    assert list(other.index) != list(train.index)


def test_split_names_a_class_with_too_few_rows() -> None:
    df = load_penguins()
    df.loc[len(df)] = {**df.iloc[0].to_dict(), "species": "Emperor"}
    contract = penguin_contract()
    with pytest.raises(DataError, match="'Emperor'"):
        split(df, contract)


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1])
def test_split_rejects_bad_test_size(bad: float) -> None:
    with pytest.raises(ConfigError, match="test_size"):
        split(load_penguins(), penguin_contract(), test_size=bad)


def test_split_rejects_test_split_smaller_than_class_count() -> None:
    df = load_penguins().groupby("species").head(4)
    with pytest.raises(ConfigError, match="test_size"):
        split(df, penguin_contract(), test_size=0.1)


def test_feature_frame_orders_columns_and_names_missing_ones() -> None:
    df = load_penguins()
    contract = penguin_contract()
    assert list(feature_frame(df, contract).columns) == contract.feature_names
    with pytest.raises(DataError, match="island"):
        feature_frame(df.drop(columns=["island"]), contract)


def test_preprocessor_handles_every_kind_and_ignores_order_and_extras() -> None:
    df = mixed_frame()
    contract = mixed_contract()
    pre = build_preprocessor(contract).fit(df)
    out = pre.transform(df)
    assert isinstance(out, np.ndarray)
    assert np.isfinite(out).all()
    shuffled = df[list(reversed(df.columns))].assign(unrelated=1.0)
    np.testing.assert_array_equal(out, pre.transform(shuffled))
    # 1 numeric + flag(2) + color(2 seen) + tfidf words + 5 datetime parts
    assert out.shape[1] >= 1 + 2 + 2 + 5 + 4


def test_preprocessor_tolerates_unseen_categories_and_missing_values() -> None:
    df = mixed_frame()
    contract = mixed_contract()
    pre = build_preprocessor(contract).fit(df)
    odd = df.head(3).copy()
    odd["color"] = ["purple", None, "red"]
    odd["num"] = [np.nan, 1.0, 2.0]
    odd["when"] = [pd.NaT, pd.Timestamp("2030-01-01"), pd.Timestamp("2024-02-01")]
    odd["note"] = [None, "never seen words", "broken box"]
    out = pre.transform(odd)
    assert out.shape == (3, pre.transform(df).shape[1])
    assert np.isfinite(out).all()


def test_preprocessor_needs_features() -> None:
    contract = Contract.from_dict(
        {
            "schema_version": 1,
            "task": "regression",
            "target": {"name": "y", "kind": "numeric"},
            "features": [],
        }
    )
    with pytest.raises(DataError, match="no features"):
        build_preprocessor(contract)


def test_raw_and_coerced_frames_give_the_same_features() -> None:
    """Training may see contract-coerced data and serving raw JSON values (or the reverse)."""
    raw = make_messy(200, seed=3)
    contract = messy_contract(raw)
    assert {f.kind for f in contract.features} == {
        "numeric",
        "categorical",
        "boolean",
        "datetime",
        "text",
    }
    coerced = coerce_frame(raw, contract)
    pre = build_preprocessor(contract).fit(raw)
    np.testing.assert_allclose(pre.transform(raw), pre.transform(coerced))
    pre2 = build_preprocessor(contract).fit(coerced)
    np.testing.assert_allclose(pre2.transform(raw), pre.transform(raw))


def test_boolean_words_and_numbers_read_alike() -> None:
    raw = make_messy(60, seed=1)
    contract = messy_contract(raw)
    pre = build_preprocessor(contract).fit(raw)
    as_words = raw.assign(is_active=raw["is_active"].map({True: "yes", False: "no"}))
    as_ints = raw.assign(is_active=raw["is_active"].astype(int))
    expected = pre.transform(raw)
    np.testing.assert_allclose(pre.transform(as_words), expected)
    np.testing.assert_allclose(pre.transform(as_ints), expected)


def test_split_of_messy_data_skips_null_targets() -> None:
    raw = make_messy(300)
    train, test = split(raw, messy_contract(raw))
    assert len(train) + len(test) == int(raw[MESSY_TARGET].notna().sum())


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(min_value=2, max_value=30), min_size=2, max_size=5),
    seed=st.integers(min_value=0, max_value=2**31 - 1),
)
def test_split_partitions_labeled_rows_and_keeps_every_class(counts: list[int], seed: int) -> None:
    labels = [f"k{i}" for i, n in enumerate(counts) for _ in range(n)]
    df = pd.DataFrame({"x": np.arange(len(labels), dtype=float), "y": labels})
    contract = Contract.from_dict(
        {
            "schema_version": 1,
            "task": "classification",
            "target": {"name": "y", "kind": "categorical", "classes": sorted(set(labels))},
            "features": [{"name": "x", "kind": "numeric"}],
        }
    )
    test_size = max(0.2, len(counts) / len(labels) + 0.01)
    if test_size > 0.5:
        with pytest.raises(ConfigError, match="lower test_size so every class can be learned"):
            split(df, contract, test_size=test_size, seed=seed)
        return
    train, test = split(df, contract, test_size=test_size, seed=seed)
    assert sorted([*train.index, *test.index]) == list(df.index)
    assert set(train["y"]) == set(labels)  # every class (>= 2 rows) lands in training
    again, _ = split(df, contract, test_size=test_size, seed=seed)
    assert list(again.index) == list(train.index)
