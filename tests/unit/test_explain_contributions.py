"""Per-row contributions: exact additivity against the fitted Pipeline's own outputs, every raw
column present, the column mapping, and refusals for what cannot be explained exactly."""

from __future__ import annotations

import builtins
import importlib.util
import json
import subprocess
import sys
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.svm import SVC

from kfops.contract_model import Contract
from kfops.errors import ConfigError, DataError
from kfops.explain.columns import assign_blocks, feature_map
from kfops.explain.contributions import Background, make_explainer, summarise_background
from kfops.explain.errors import ExplainUnsupported
from kfops.training import train
from tests.conftest import require

if importlib.util.find_spec("shap") is not None:
    # Imported while pytest collects, before any test runs: numba (under shap) cannot be
    # imported once builtins.print has been swapped, and kfp.local leaves its indented_print
    # wrapper there after running ParallelFor tasks in threads (the tuning pipeline tests).
    with warnings.catch_warnings():  # shap's plotting module warns about matplotlib at import
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        import shap  # noqa: F401


@pytest.fixture(autouse=True, scope="module")
def _needs_shap() -> None:
    # shap is the optional extra "explain" (the dev extra installs it; CI must have it).
    require(
        importlib.util.find_spec("shap") is not None,
        "shap is not installed (pip install 'kfops[explain]')",
    )


TOL = 1e-6
FEATURES = ["size", "flag", "color", "note", "when"]


def raw_rows(n: int, seed: int = 0) -> pd.DataFrame:
    """Rows as a CSV or a JSON request brings them: strings for booleans and dates (two date
    styles), nulls in every column, a numeric signal, a category, words."""
    rng = np.random.default_rng(seed)
    size = rng.normal(10.0, 3.0, n)
    flag = rng.choice(["yes", "no", None], n, p=[0.45, 0.45, 0.1])
    color = rng.choice(["red", "green", "blue", None], n, p=[0.3, 0.3, 0.3, 0.1])
    note = rng.choice(["fast shipping", "broken box", "great value", None], n)
    days = rng.integers(0, 700, n)
    dates = pd.Timestamp("2023-01-01") + pd.to_timedelta(days, "D")
    when = [
        None if i % 17 == 0 else (d.strftime("%Y-%m-%d") if i % 2 else d.strftime("%d %b %Y"))
        for i, d in enumerate(dates)
    ]
    effect = pd.Series(color).map({"red": 4.0, "green": 0.0, "blue": -3.0}).fillna(0.0)
    target = (
        2.0 * size
        + effect.to_numpy()
        + np.where(flag == "yes", 3.0, 0.0)
        + np.where(note == "broken box", -5.0, 0.0)
        + days / 100.0
        + rng.normal(0.0, 1.0, n)
    )
    frame = pd.DataFrame(
        {"size": size, "flag": flag, "color": color, "note": note, "when": when, "y": target}
    )
    frame.loc[::13, "size"] = np.nan
    cuts = np.quantile(target, [1 / 3, 2 / 3])
    frame["three"] = np.where(target < cuts[0], "low", np.where(target < cuts[1], "mid", "high"))
    frame["two"] = np.where(target < np.median(target), "low", "high")
    return frame


def contract(task: str, target: str) -> Contract:
    target_spec: dict[str, object] = {"name": target, "kind": "numeric", "dtype": "float64"}
    if task == "classification":
        classes = ["high", "low", "mid"] if target == "three" else ["high", "low"]
        target_spec = {"name": target, "kind": "categorical", "classes": classes}
    return Contract.from_dict(
        {
            "schema_version": 1,
            "task": task,
            "target": target_spec,
            "features": [
                {"name": "size", "kind": "numeric", "dtype": "float64"},
                {"name": "flag", "kind": "boolean", "dtype": "bool"},
                {"name": "color", "kind": "categorical", "dtype": "object"},
                {"name": "note", "kind": "text", "dtype": "object"},
                {"name": "when", "kind": "datetime", "dtype": "datetime64[ns]"},
            ],
        }
    )


FAST = {"random_forest": {"n_estimators": 20}, "gradient_boosting": {"max_iter": 20}}

CASES = [
    # (task, target, estimator, expected method, expected output)
    ("regression", "y", "linear_regression", "linear", "value"),
    ("regression", "y", "ridge", "linear", "value"),
    ("regression", "y", "random_forest", "tree", "value"),
    ("regression", "y", "gradient_boosting", "tree", "value"),
    ("regression", "y", "decision_tree", "tree", "value"),
    ("classification", "two", "logistic_regression", "linear", "margin"),
    ("classification", "three", "logistic_regression", "linear", "margin"),
    ("classification", "two", "random_forest", "tree", "probability"),
    ("classification", "three", "random_forest", "tree", "probability"),
    ("classification", "two", "gradient_boosting", "tree", "margin"),
    ("classification", "three", "gradient_boosting", "tree", "margin"),
    ("classification", "three", "decision_tree", "tree", "probability"),
]


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    return raw_rows(400, seed=1), raw_rows(60, seed=2)


def pipeline_output(model: Pipeline, rows: pd.DataFrame, output: str) -> np.ndarray:
    """The score the explanation must add up to, from the Pipeline's public methods."""
    predicted = model.predict(rows)
    if output == "value":
        return np.asarray(predicted, dtype=float)
    k = np.searchsorted(model.classes_, predicted)
    if output == "probability":
        return model.predict_proba(rows)[np.arange(len(rows)), k]
    margin = model.decision_function(rows)
    if margin.ndim == 1:
        return np.where(k == 1, margin, -margin)
    return margin[np.arange(len(rows)), k]


@pytest.mark.parametrize(("task", "target", "name", "method", "output"), CASES)
def test_base_plus_contributions_is_the_model_output(
    data: tuple[pd.DataFrame, pd.DataFrame],
    task: str,
    target: str,
    name: str,
    method: str,
    output: str,
) -> None:
    train_df, test_df = data
    spec = contract(task, target)
    model = train(train_df, spec, name, FAST.get(name))
    explainer = make_explainer(model, summarise_background(model, train_df[FEATURES]))
    rows = test_df[FEATURES]
    result = explainer.explain(rows)

    assert (result.method, result.output) == (method, output)
    expected = pipeline_output(model, rows, output)
    predicted = model.predict(rows)
    assert len(result.rows) == len(rows)
    for i, row in enumerate(result.rows):
        assert list(row.contributions) == FEATURES  # every column sent, in the model's order
        total = row.base_value + sum(row.contributions.values())
        assert total == pytest.approx(expected[i], abs=TOL)
        assert row.output == pytest.approx(expected[i], abs=TOL)
        assert row.prediction == predicted[i]
        if task == "classification":
            assert row.explained_class == predicted[i]
    # The response states what it explains and is plain JSON.
    body = json.loads(json.dumps(result.to_dict()))
    assert body["output"] == output and body["method"] == method and body["exact"] is True
    assert body["features"] == FEATURES


def test_contributions_follow_the_signal_and_single_rows_work(
    data: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train_df, _ = data
    model = train(train_df, contract("regression", "y"), "ridge")
    explainer = make_explainer(model, summarise_background(model, train_df[FEATURES]))
    base = {
        "size": 10.0,
        "flag": "no",
        "color": "green",
        "note": "great value",
        "when": "2024-01-01",
    }
    rows = pd.DataFrame([base, {**base, "note": "broken box"}, {**base, "size": 20.0}])
    result = explainer.explain(rows)
    # Changing only one column changes only that column's contribution, by the model's effect.
    broken = result.rows[1].contributions["note"] - result.rows[0].contributions["note"]
    larger = result.rows[2].contributions["size"] - result.rows[0].contributions["size"]
    assert broken < -3.0 and larger > 15.0
    for name in ("size", "flag", "color", "when"):
        assert result.rows[1].contributions[name] == pytest.approx(
            result.rows[0].contributions[name]
        )
    one = explainer.explain(rows.iloc[[1]]).rows[0]  # a batch of one explains the same
    assert one.prediction == pytest.approx(result.rows[1].prediction)
    assert one.base_value == pytest.approx(result.rows[1].base_value)
    assert one.contributions == pytest.approx(result.rows[1].contributions)


def test_unseen_category_null_and_unknown_date_still_add_up(
    data: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train_df, _ = data
    model = train(
        train_df, contract("classification", "three"), "random_forest", FAST["random_forest"]
    )
    explainer = make_explainer(model)
    rows = pd.DataFrame(
        [{"size": None, "flag": None, "color": "purple", "note": "", "when": "not a date"}]
    )
    row = explainer.explain(rows).rows[0]
    assert row.base_value + sum(row.contributions.values()) == pytest.approx(
        pipeline_output(model, rows, "probability")[0], abs=TOL
    )


def test_rows_without_a_model_column_get_one_clear_error(
    data: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train_df, test_df = data
    model = train(train_df, contract("regression", "y"), "decision_tree")
    explainer = make_explainer(model)
    with pytest.raises(DataError, match=r"lack column\(s\) \['when'\]"):
        explainer.explain(test_df[["size", "flag", "color", "note"]])
    with pytest.raises(DataError, match="no rows"):
        explainer.explain(test_df[FEATURES].iloc[:0])


def test_linear_model_needs_its_own_background(data: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train_df, _ = data
    model = train(train_df, contract("regression", "y"), "ridge")
    with pytest.raises(ConfigError, match="background"):
        make_explainer(model)
    with pytest.raises(ConfigError, match="another model"):
        make_explainer(model, Background(means=(0.0, 1.0), n_rows=2))
    background = summarise_background(model, train_df[FEATURES])
    assert Background.from_dict(json.loads(json.dumps(background.to_dict()))) == background


def _raw_pipeline(estimator: object) -> Pipeline:
    numeric = ["a", "b"]
    return Pipeline(
        [
            ("scale", ColumnTransformer([("num", StandardScaler(), numeric)])),
            ("model", estimator),
        ]
    )


def _numeric_frame(n: int = 80) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    return X, X["a"].to_numpy() * 2 + rng.normal(size=n) * 0.1


@pytest.mark.parametrize(
    "estimator",
    [KNeighborsRegressor(n_neighbors=3), SVC(kernel="rbf")],
    ids=["knn", "svc"],
)
def test_estimator_without_exact_explainer_is_refused_at_build(estimator: object) -> None:
    X, y = _numeric_frame()
    target = y if isinstance(estimator, KNeighborsRegressor) else (y > 0).astype(int)
    model = _raw_pipeline(estimator).fit(X, target)
    with pytest.raises(ExplainUnsupported, match="no exact fast explainer"):
        make_explainer(model)


def test_log_link_regressor_is_refused_not_explained_wrongly() -> None:
    X, y = _numeric_frame()
    model = _raw_pipeline(HistGradientBoostingRegressor(loss="poisson", max_iter=10))
    model.fit(X, np.exp(y / 4))
    with pytest.raises(ExplainUnsupported, match="do not add up"):
        make_explainer(model)


def test_not_a_pipeline_is_refused() -> None:
    X, y = _numeric_frame()
    with pytest.raises(ExplainUnsupported, match="Pipeline"):
        make_explainer(Ridge().fit(X, y))


def test_missing_shap_is_a_clear_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = _numeric_frame()
    model = _raw_pipeline(Ridge()).fit(X, y)
    monkeypatch.setitem(sys.modules, "shap", None)  # import shap -> ImportError
    with pytest.raises(ExplainUnsupported, match=r"kfops\[explain\]"):
        make_explainer(model, summarise_background(model, X))


def test_a_shap_that_fails_to_import_is_a_clear_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = _numeric_frame()
    model = _raw_pipeline(Ridge()).fit(X, y)
    real_import = builtins.__import__

    def failing_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "shap":  # what numba raised under a swapped builtins.print
            raise AttributeError("module 'kfp.local.logging_utils' has no attribute 'x'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", failing_import)
    with pytest.raises(ExplainUnsupported, match="shap failed to import"):
        make_explainer(model, summarise_background(model, X))


def test_importing_the_modules_does_not_import_shap() -> None:
    code = (
        "import sys, kfops.explain, kfops.explain.contributions, kfops.explain.importance, "
        "kfops.explain.model_card, kfops.explain.ranking, kfops.serving\n"
        "print('shap' in sys.modules, 'numba' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# --- the column mapping ------------------------------------------------------------------------


def test_mapping_survives_a_coercion_step_and_prefix_names() -> None:
    """An extra step before the ColumnTransformer (as an ONNX-friendly coercion step would be)
    and column names that are prefixes of each other ("c" / "c_d") still map exactly."""
    rng = np.random.default_rng(0)
    n = 120
    X = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "a_b": rng.normal(size=n),
            "c": rng.choice(["d_x", "y"], n),  # "c_d_x" could be c=d_x or c_d=x
            "c_d": rng.choice(["x", "z"], n),
            "unused": rng.normal(size=n),
        }
    )
    y = X["a"] * 3 + (X["c_d"] == "x") * 2 + rng.normal(size=n) * 0.1
    ct = ColumnTransformer(
        [
            ("num", StandardScaler(), ["a", "a_b"]),
            ("cat", OneHotEncoder(sparse_output=False), ["c", "c_d"]),
        ]
    )
    model = Pipeline(
        [
            ("coerce", FunctionTransformer(feature_names_out="one-to-one")),
            ("preprocess", ct),
            ("model", LinearRegression()),
        ]
    ).fit(X, y)
    fmap = feature_map(model)
    assert fmap.features == ("a", "a_b", "c", "c_d", "unused")
    names = [fmap.features[i] for i in fmap.owners]
    assert names == ["a", "a_b", "c", "c", "c_d", "c_d"]
    explainer = make_explainer(model, summarise_background(model, X))
    row = explainer.explain(X.head(5)).rows[0]
    assert row.contributions["unused"] == 0.0  # dropped by the preprocessing, still reported
    assert row.base_value + sum(row.contributions.values()) == pytest.approx(
        model.predict(X.head(1))[0], abs=TOL
    )


def test_assign_blocks_refuses_to_guess() -> None:
    assert assign_blocks(["a", "a_b"], ["a_x", "a_b_y"]) == [0, 1]
    assert assign_blocks(["a", "b"], ["a", "b"]) == [0, 1]
    # Every input must get a column when it can: "a_b_1" goes to a_b, not a.
    assert assign_blocks(["a", "a_b"], ["a_0", "a_b_1"]) == [0, 1]
    # Zero columns for an input is allowed when that is the only reading.
    assert assign_blocks(["a", "b", "c"], ["a_1", "c_1"]) == [0, 2]
    with pytest.raises(ExplainUnsupported, match="cannot tell"):
        assign_blocks(["a", "a_b"], ["a_b_1", "a_b_2", "a_b_3"])  # which split is a's?
    with pytest.raises(ExplainUnsupported, match="cannot tell"):
        assign_blocks(["a", "b"], ["a b", "b"])  # a crossed feature


def test_mapping_of_a_kfops_pipeline_follows_the_coercion_inputs(
    data: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    """kfops' coercion step renames the raw columns to positional inputs (f0, f4_year, ...):
    every estimator column maps back to the column the user sent, through kfops.coercion."""
    train_df, _ = data
    spec = contract("regression", "y")
    model = train(train_df, spec, "ridge")
    fmap = feature_map(model)
    assert fmap.features == tuple(FEATURES)
    owned = {name: fmap.owners.count(i) for i, name in enumerate(fmap.features)}
    encode = model.named_steps["preprocess"].named_steps["encode"]
    tfidf = encode.named_transformers_["text_f3"]
    onehot = encode.named_transformers_["categorical"].named_steps["onehot"]
    assert owned == {
        "size": 1,
        "flag": 1,
        "color": len(onehot.get_feature_names_out()),
        "note": len(tfidf.vocabulary_),
        "when": 5,  # the five date parts of kfops.coercion.DATETIME_PARTS
    }
    assert fmap.width == model.named_steps["model"].n_features_in_
