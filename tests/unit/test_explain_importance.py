"""Permutation importance of the raw columns: a planted strong feature ranks first, the result
round-trips through JSON, and the chart renders the same bytes for the same result."""

from __future__ import annotations

import base64
import json

import numpy as np
import pandas as pd
import pytest

from kfops.contract_model import Contract
from kfops.errors import ConfigError, DataError
from kfops.explain.importance import (
    MAX_ROWS,
    MIN_ROWS,
    N_REPEATS,
    ROW_BUDGET,
    Importance,
    importance_chart,
    importance_chart_base64,
    permutation_importances,
    rows_for,
)
from kfops.training import train

FEATURES = ["noise_a", "strong", "weak", "shop", "noise_b"]


def planted(n: int, seed: int) -> pd.DataFrame:
    """``strong`` drives the target, ``weak`` a little, the rest not at all."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "noise_a": rng.normal(size=n),
            "strong": rng.normal(size=n),
            "weak": rng.normal(size=n),
            "shop": rng.choice(["north", "south", "east"], n),
            "noise_b": rng.normal(size=n),
        }
    )
    frame["y"] = 5.0 * frame["strong"] + 0.5 * frame["weak"] + rng.normal(0.0, 0.3, n)
    frame["label"] = np.where(frame["y"] > 0, "up", "down")
    return frame


def contract(task: str) -> Contract:
    target = (
        {"name": "y", "kind": "numeric", "dtype": "float64"}
        if task == "regression"
        else {"name": "label", "kind": "categorical", "classes": ["down", "up"]}
    )
    features = [
        {"name": name, "kind": "categorical" if name == "shop" else "numeric", "dtype": "float64"}
        for name in FEATURES
    ]
    return Contract.from_dict(
        {"schema_version": 1, "task": task, "target": target, "features": features}
    )


@pytest.fixture(scope="module")
def regression() -> tuple[object, pd.DataFrame]:
    model = train(planted(300, 0), contract("regression"), "random_forest", {"n_estimators": 30})
    return model, planted(150, 1)


def test_planted_strong_feature_ranks_first_in_regression(regression) -> None:
    model, held_out = regression
    result = permutation_importances(model, held_out[FEATURES], held_out["y"], "regression")
    assert result.metric == "rmse" and result.scoring == "neg_root_mean_squared_error"
    assert result.ranked()[:2] == ["strong", "weak"]
    top = result.features[0]
    assert top.share > 0.8 and top.mean > 1.0  # rmse grows by more than 1 without it
    assert sum(result.shares().values()) == pytest.approx(1.0)
    assert all(0.0 <= f.share <= 1.0 for f in result.features)
    assert set(result.ranked()) == set(FEATURES)


def test_planted_strong_feature_ranks_first_in_classification() -> None:
    model = train(planted(300, 0), contract("classification"), "logistic_regression")
    held_out = planted(150, 1)
    result = permutation_importances(model, held_out[FEATURES], held_out["label"], "classification")
    assert result.metric == "f1_macro"
    assert result.ranked()[0] == "strong"
    assert result.features[0].share > 0.8


def test_seeded_and_json_round_trip(regression) -> None:
    model, held_out = regression
    first = permutation_importances(model, held_out[FEATURES], held_out["y"], "regression", seed=3)
    again = permutation_importances(model, held_out[FEATURES], held_out["y"], "regression", seed=3)
    assert again.ranked() == first.ranked()
    assert [f.mean for f in again.features] == pytest.approx([f.mean for f in first.features])
    restored = Importance.from_dict(json.loads(json.dumps(first.to_dict())))
    assert restored == first
    flat = first.metrics()
    assert flat["importance_strong"] == first.features[0].share
    assert all(isinstance(v, float) for v in flat.values())


def test_other_metric_and_row_cap(regression) -> None:
    model, held_out = regression
    result = permutation_importances(
        model, held_out[FEATURES], held_out["y"], "regression", metric="mae", max_rows=50
    )
    assert result.metric == "mae" and result.n_rows == 50
    assert result.ranked()[0] == "strong"


def test_wide_tables_score_fewer_rows_within_the_budget() -> None:
    # Narrow tables: every held-out row up to MAX_ROWS; wide ones: the budget's share.
    assert rows_for(7) == MAX_ROWS
    assert rows_for(50) == 800 and 50 * N_REPEATS * rows_for(50) <= ROW_BUDGET
    assert rows_for(50, n_repeats=10) == 400
    assert rows_for(100_000) == MIN_ROWS  # never too few to mean anything


def test_bad_arguments_name_what_is_wrong(regression) -> None:
    model, held_out = regression
    X, y = held_out[FEATURES], held_out["y"]
    with pytest.raises(ConfigError, match="unknown task"):
        permutation_importances(model, X, y, "ranking")
    with pytest.raises(ConfigError, match="no permutation scorer for metric 'mape'"):
        permutation_importances(model, X, y, "regression", metric="mape")
    with pytest.raises(DataError, match="0 rows"):
        permutation_importances(model, X.iloc[:0], y.iloc[:0], "regression")


def test_chart_png_svg_and_base64(regression) -> None:
    model, held_out = regression
    result = permutation_importances(model, held_out[FEATURES], held_out["y"], "regression")
    png = importance_chart(result, "png")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert importance_chart(result, "png") == png  # same result, same bytes
    svg = importance_chart(result, "svg").decode("utf-8")
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert all(name in svg for name in FEATURES)  # text kept as text (svg.fonttype none)
    assert importance_chart(result, "svg").decode("utf-8") == svg
    assert base64.b64decode(importance_chart_base64(result)) == png
    with pytest.raises(ConfigError, match="png"):
        importance_chart(result, "gif")  # type: ignore[arg-type]
