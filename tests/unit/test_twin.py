"""The ONNX twin: every estimator converts and verifies on real and messy data; broken twins and
files are caught; the runtime answers like the sklearn serving path."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import numpy_helper
from palmerpenguins import load_penguins

from kfops.coercion import Coercion
from kfops.contract import infer_contract, to_jsonable
from kfops.contract_model import Contract
from kfops.datasets import MESSY_TARGET, make_messy
from kfops.features import feature_frame, split
from kfops.serving.model import ServedVersion
from kfops.serving.validation import RequestSchema
from kfops.training import ESTIMATORS, train
from kfops.twin import (
    NotConvertible,
    Tolerance,
    Twin,
    TwinError,
    TwinRuntime,
    convert,
    verify,
)
from kfops.twin import converters as twin_converters
from kfops.twin.verify import compare

# Small but real: default settings except fewer boosting rounds (time on a shared machine).
PARAMS: dict[str, dict[str, Any]] = {"gradient_boosting": {"max_iter": 40}}


def odd_rows(test: pd.DataFrame) -> pd.DataFrame:
    """Held-out rows written the way other sources write them: unseen categories, words for
    booleans, numbers as text, other date styles, non-ASCII and unseen words, missing values."""
    rows = test.head(8).copy().astype(object)
    rows.index = [f"odd{i}" for i in range(len(rows))]
    rows.iloc[0, rows.columns.get_loc("city")] = "Atlantis"  # unseen category
    rows.iloc[1, rows.columns.get_loc("city")] = None
    rows.iloc[2, rows.columns.get_loc("plan")] = "enterprise"
    rows.iloc[3, rows.columns.get_loc("is_active")] = "yes"
    rows.iloc[4, rows.columns.get_loc("is_active")] = 0
    rows.iloc[5, rows.columns.get_loc("signup_date")] = "2022/03/04"
    rows.iloc[6, rows.columns.get_loc("signup_date")] = "2023-07-01T23:30:00+02:00"
    rows.iloc[7, rows.columns.get_loc("signup_date")] = None
    rows.iloc[0, rows.columns.get_loc("comment")] = "Café CRÈME très bon, GREAT service"
    rows.iloc[1, rows.columns.get_loc("comment")] = "zzz unseen words only"
    rows.iloc[2, rows.columns.get_loc("comment")] = ""
    rows.iloc[3, rows.columns.get_loc("age")] = "42"
    rows.iloc[4, rows.columns.get_loc("age")] = None
    return pd.concat([test.astype(object), rows])


def _cases() -> dict[str, tuple[pd.DataFrame, Contract]]:
    penguins = load_penguins()
    messy = make_messy(400, seed=4)
    return {
        "penguins-species": (penguins, infer_contract(penguins, "species", "classification")),
        "messy-churned": (messy, infer_contract(messy, MESSY_TARGET, "classification")),
        "messy-spend": (messy, infer_contract(messy, "monthly_spend", "regression")),
    }


DATASETS = {"classification": ["penguins-species", "messy-churned"], "regression": ["messy-spend"]}
MODELS = [
    (data, task, name)
    for task, names in ESTIMATORS.items()
    for name in sorted(names)
    for data in DATASETS[task]
]


@pytest.fixture(scope="module")
def trained() -> dict[tuple[str, str], tuple[Any, Contract, pd.DataFrame, Twin | NotConvertible]]:
    """Every (dataset, estimator): fitted pipeline, contract, held-out split (+ odd rows), twin."""
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KFOPS_THREADS", "1")  # OpenMP on a busy 2-core machine: 40x slower with 2
        for key, (df, contract) in _cases().items():
            train_df, test_df = split(df, contract, seed=3)
            held_out = odd_rows(test_df) if key.startswith("messy") else test_df
            for name in ESTIMATORS[contract.task]:
                pipeline = train(train_df, contract, name, PARAMS.get(name))
                out[(key, name)] = (pipeline, contract, held_out, convert(pipeline, contract))
    return out


def served_labels(pipeline: Any, frame: pd.DataFrame, contract: Contract) -> list[Any]:
    """What the sklearn serving path answers: the class with the highest probability."""
    proba = pipeline.predict_proba(feature_frame(frame, contract))
    return [pipeline.classes_[i] for i in proba.argmax(axis=1)]


def test_messy_cases_exercise_every_feature_kind() -> None:
    for key in ("messy-churned", "messy-spend"):
        _, contract = _cases()[key]
        kinds = {f.kind for f in contract.features}
        assert kinds == {"numeric", "boolean", "categorical", "datetime", "text"}, key


@pytest.mark.parametrize(("data", "task", "name"), MODELS)
def test_every_estimator_converts_and_verifies(data: str, task: str, name: str, trained) -> None:
    pipeline, contract, held_out, twin = trained[(data, name)]
    assert isinstance(twin, Twin), twin
    assert twin.info.task == task
    verdict = verify(pipeline, twin, held_out, contract)
    assert verdict.passed, verdict.reason
    assert verdict.rows == len(held_out)
    assert verdict.label_mismatches == 0 and verdict.outside_tolerance == 0
    assert verdict.max_abs_diff <= verdict.tolerance.atol + 1e-300
    runtime = TwinRuntime(twin.onnx)
    # Labels identical on every row of the data (training rows included), not only held-out.
    df, _ = _cases()[data]
    rows = df[df[contract.target.name].notna()]
    inputs = Coercion.from_contract(contract).coerce(dict(feature_frame(rows, contract).items()))
    labels, proba = runtime.predict(inputs)
    if task == "classification":
        assert labels == served_labels(pipeline, rows, contract)
        assert proba is not None and np.shape(proba) == (len(rows), len(pipeline.classes_))
    else:
        assert proba is None
        np.testing.assert_allclose(labels, pipeline.predict(rows), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    ("data", "name"),
    [(d, n) for d, _, n in MODELS if d.startswith("messy")],
)
def test_single_rows_with_nothing_known_verify(data: str, name: str, trained) -> None:
    """One-row requests are where graph shapes get thin: every value missing, or text without
    one known word, each alone in its batch."""
    pipeline, contract, held_out, twin = trained[(data, name)]
    assert isinstance(twin, Twin)
    empty = pd.DataFrame({n: pd.Series([None], dtype=object) for n in contract.feature_names})
    unknown = held_out.head(1).assign(comment="qqq zzz")
    for row in (empty, unknown):
        verdict = verify(pipeline, twin, row, contract)
        assert verdict.passed and verdict.rows == 1, verdict.reason


def test_verdict_is_json_ready(trained) -> None:
    pipeline, contract, held_out, twin = trained[("messy-spend", "random_forest")]
    assert isinstance(twin, Twin)
    data = verify(pipeline, twin, held_out, contract).to_dict()
    assert data["passed"] is True and data["compared"] == "values"
    # Regression tolerance scales with the target's range (spend is positive: max is the scale).
    scale = float(contract.target.max)
    assert scale > 100
    assert data["tolerance"] == {"atol": pytest.approx(scale * 1e-6), "rtol": 1e-5}
    assert set(data) >= {"rows", "max_abs_diff", "max_rel_diff", "label_mismatches", "reason"}
    assert twin.to_dict()["convertible"] is True


def _request_columns(contract: Contract, frame: pd.DataFrame) -> tuple[list[list[Any]], int]:
    """Rows as a client sends them (JSON values), through the server's own request check."""
    instances = [
        {name: to_jsonable(row[name]) for name in contract.feature_names}
        for _, row in feature_frame(frame, contract).iterrows()
    ]
    batch = RequestSchema(contract).parse_v1({"instances": instances})
    return batch.columns, batch.rows


@pytest.mark.parametrize("data", ["penguins-species", "messy-churned", "messy-spend"])
@pytest.mark.parametrize("rows", [1, 25])
def test_runtime_answers_like_the_sklearn_serving_path(data: str, rows: int, trained) -> None:
    name = "random_forest"
    pipeline, contract, _, twin = trained[(data, name)]
    df, _ = _cases()[data]
    sample = df[df[contract.target.name].notna()].sample(rows, random_state=rows)
    columns, n = _request_columns(contract, sample)
    served = ServedVersion(
        model="m", version="v1", path=Path("."), sha256="0" * 64, estimator=pipeline,
        contract=contract, schema=RequestSchema(contract),
        classes=list(pipeline.classes_) if contract.task == "classification" else None,
        has_proba=contract.task == "classification",
    )  # fmt: skip
    expected_labels, expected_proba = served.predict(columns, True)
    coercion = Coercion.from_contract(contract)
    labels, proba = TwinRuntime(twin.onnx).predict(
        coercion.coerce(dict(zip(contract.feature_names, columns, strict=True)))
    )
    assert len(labels) == n
    if contract.task == "classification":
        assert labels == expected_labels
        assert [type(v) for v in labels] == [type(v) for v in expected_labels]
        assert proba is not None and expected_proba is not None
        np.testing.assert_allclose(proba, expected_proba, atol=1e-6)
    else:
        assert proba is None and expected_proba is None
        np.testing.assert_allclose(labels, expected_labels, rtol=1e-5)
        assert all(type(v) is float for v in labels)


def _tampered(twin: Twin, shift: float) -> bytes:
    """The twin with the numeric scaler's means shifted: a graph that loads and runs but is
    wrong (as a converter bug would make it)."""
    model = onnx.load_from_string(twin.onnx)
    subtracted = {node.input[1] for node in model.graph.node if node.op_type == "Sub"}
    changed = 0
    for init in model.graph.initializer:
        if init.name in subtracted:
            values = numpy_helper.to_array(init)
            init.CopyFrom(numpy_helper.from_array(values + shift, init.name))
            changed += 1
    assert changed, "no scaler offset to tamper with"
    return model.SerializeToString()


@pytest.mark.parametrize("data", ["penguins-species", "messy-spend"])
def test_a_broken_twin_fails_verification(data: str, trained) -> None:
    pipeline, contract, held_out, twin = trained[
        (data, "logistic_regression" if "species" in data else "ridge")
    ]
    assert isinstance(twin, Twin)
    verdict = verify(pipeline, _tampered(twin, 0.5), held_out, contract)
    assert not verdict.passed
    assert verdict.outside_tolerance > 0
    assert verdict.max_abs_diff > verdict.tolerance.atol
    assert "differ" in verdict.reason


def test_a_twin_of_another_model_fails_verification(trained) -> None:
    pipeline, contract, held_out, _ = trained[("penguins-species", "random_forest")]
    _, _, _, other = trained[("penguins-species", "decision_tree")]
    assert isinstance(other, Twin)
    verdict = verify(pipeline, other, held_out, contract)
    assert not verdict.passed and verdict.max_abs_diff > 0.01


def test_compare_reports_labels_and_tolerance() -> None:
    tol = Tolerance(atol=1e-6, rtol=1e-5)
    a = np.array([[0.6, 0.4], [0.2, 0.8]])
    ok = compare(a, a + 5e-7, tol, ["x", "y"])
    assert ok.passed and ok.max_abs_diff == pytest.approx(5e-7)
    flipped = compare(a, a[:, ::-1], tol, ["x", "y"])
    assert not flipped.passed and flipped.label_mismatches == 2
    assert "2 of 2 labels differ (first at row 0: twin 'y', sklearn 'x')" in flipped.reason
    values = compare(np.array([100.0, 0.0]), np.array([100.0005, np.nan]), tol)
    assert not values.passed and values.outside_tolerance == 1  # 5e-4 < 1e-6 + 1e-3; NaN is not
    shape = compare(a, a[:1], tol, ["x", "y"])
    assert not shape.passed and "shape" in shape.reason


def _knife_edge_data() -> pd.DataFrame:
    """One feature whose values crowd into a band narrower than float32 spacing after scaling
    (a million-wide spread plus a 0.3-wide cluster), labels alternating inside the cluster."""
    rng = np.random.default_rng(0)
    n = 1200
    x = np.r_[rng.uniform(0, 1e6, n // 2), 9e5 + rng.uniform(0, 0.3, n - n // 2)]
    inside = ((x - 9e5) * 40).astype(int) % 2 == 0
    y = np.where(x < 9e5, np.where(x < 4e5, "a", "b"), np.where(inside, "a", "b"))
    return pd.DataFrame({"x": x, "noise": rng.normal(size=n), "label": y})


def test_float32_tree_thresholds_would_change_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Why kfops' tree converters exist: skl2onnx's own (float32 attributes) flips a label."""
    monkeypatch.setenv("KFOPS_THREADS", "1")
    df = _knife_edge_data()
    contract = infer_contract(df, "label", "classification")
    train_df, test_df = split(df, contract, seed=0)
    pipeline = train(train_df, contract, "random_forest")
    double = convert(pipeline, contract)
    assert isinstance(double, Twin)
    assert verify(pipeline, double, test_df, contract).passed
    stock = {
        k: v
        for k, v in twin_converters.CONVERTERS.items()
        if k.__name__ not in ("RandomForestClassifier", "RandomForestRegressor")
    }
    monkeypatch.setattr(twin_converters, "CONVERTERS", stock)
    single = convert(pipeline, contract)
    assert isinstance(single, Twin)
    verdict = verify(pipeline, single, test_df, contract)
    assert not verdict.passed and verdict.label_mismatches >= 1


def test_grouped_rare_categories_convert(monkeypatch: pytest.MonkeyPatch) -> None:
    """More categories than the one-hot limit: the rarest share one column, in the twin too."""
    monkeypatch.setenv("KFOPS_THREADS", "1")
    rng = np.random.default_rng(1)
    n = 3000
    shops = rng.integers(0, 150, n)
    df = pd.DataFrame(
        {
            "shop": [f"s{i}" for i in shops],  # 150 categories > features.MAX_CATEGORIES
            "town": rng.choice(["north", "south", None], n),
            "x": rng.normal(size=n),
        }
    )
    df["y"] = df["x"] + (shops % 7) * 0.3 + rng.normal(size=n) * 0.1
    contract = infer_contract(df, "y", "regression")
    train_df, test_df = split(df, contract)
    held_out = pd.concat([test_df, test_df.head(3).assign(shop=["s999", None, "s1"])])
    for name in ("ridge", "random_forest"):
        pipeline = train(train_df, contract, name)
        onehot = pipeline.named_steps["preprocess"].named_steps["encode"].named_transformers_
        assert onehot["categorical"].named_steps["onehot"].infrequent_categories_[0] is not None
        twin = convert(pipeline, contract)
        assert isinstance(twin, Twin), twin
        verdict = verify(pipeline, twin, held_out, contract)
        assert verdict.passed, verdict.reason


def test_not_convertible_is_a_typed_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """skl2onnx 1.20 leaves the log link of poisson/gamma boosting out of the graph: say so
    instead of building a twin that verification would reject."""
    monkeypatch.setenv("KFOPS_THREADS", "1")
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"x": rng.normal(size=500)})
    df["y"] = np.exp(df["x"] + rng.normal(size=500) * 0.1)
    contract = infer_contract(df, "y", "regression")
    poisson = train(df, contract, "gradient_boosting", {"loss": "poisson", "max_iter": 5})
    result = convert(poisson, contract)
    assert isinstance(result, NotConvertible) and "log link" in result.reason
    assert result.to_dict() == {
        "convertible": False,
        "estimator": "HistGradientBoostingRegressor",
        "reason": result.reason,
    }


def test_forests_too_large_to_convert_say_so(monkeypatch: pytest.MonkeyPatch, trained) -> None:
    """Conversion costs about 1 KB of memory per tree node: past MAX_TREE_NODES no twin is
    built, and the reason says how to get one."""
    # (kfops.twin.convert, the module: the package's name "convert" is the function)
    convert_module = importlib.import_module("kfops.twin.convert")
    forest, contract, _, twin = trained[("penguins-species", "random_forest")]
    nodes = sum(tree.tree_.node_count for tree in forest.named_steps["model"].estimators_)
    assert convert_module.tree_nodes(forest.named_steps["model"]) == nodes
    boosted = trained[("penguins-species", "gradient_boosting")][0].named_steps["model"]
    assert convert_module.tree_nodes(boosted) == sum(
        len(p.nodes) for per_iteration in boosted._predictors for p in per_iteration
    )
    assert convert_module.tree_nodes(trained[("penguins-species", "logistic_regression")][0]) == 0
    assert isinstance(twin, Twin)  # under the cap: converted
    monkeypatch.setattr(convert_module, "MAX_TREE_NODES", nodes - 1)
    result = convert(forest, contract)
    assert isinstance(result, NotConvertible)
    assert f"its trees have {nodes:,} nodes" in result.reason and "max_depth" in result.reason


def test_a_pipeline_from_before_the_coerce_step_is_not_convertible() -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer
    from sklearn.tree import DecisionTreeClassifier

    from kfops.features import to_float_frame

    df = load_penguins().dropna()
    contract = infer_contract(df, "species", "classification")
    numeric = contract.features_of("numeric")
    legacy = Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer([("n", FunctionTransformer(to_float_frame), numeric)]),
            ),
            ("model", DecisionTreeClassifier(max_depth=3)),
        ]
    ).fit(df, df["species"])
    result = convert(legacy, contract)
    assert isinstance(result, NotConvertible) and "retrain" in result.reason


def test_missing_and_corrupt_twin_files_are_one_clear_error(tmp_path: Path, trained) -> None:
    _, _, _, twin = trained[("penguins-species", "logistic_regression")]
    assert isinstance(twin, Twin)
    missing = tmp_path / "v1" / "model.onnx"
    with pytest.raises(TwinError, match=f"no ONNX twin at {missing}"):
        TwinRuntime.load(missing)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(TwinError, match=f"ONNX twin {empty} is empty"):
        TwinRuntime.load(empty)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(twin.onnx[: len(twin.onnx) // 2])
    with pytest.raises(TwinError, match=f"ONNX twin {truncated} cannot be loaded by onnxruntime"):
        TwinRuntime.load(truncated)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not an onnx model" * 10)
    with pytest.raises(TwinError, match=str(garbage)):
        TwinRuntime.load(garbage)
    # A valid ONNX model that is not a kfops twin (no kfops metadata).
    foreign = onnx.load_from_string(twin.onnx)
    del foreign.metadata_props[:]
    plain = tmp_path / "foreign.onnx"
    plain.write_bytes(foreign.SerializeToString())
    with pytest.raises(TwinError, match=f"ONNX twin {plain} is not a kfops twin"):
        TwinRuntime.load(plain)
    good = tmp_path / "good.onnx"
    good.write_bytes(twin.onnx)
    assert TwinRuntime.load(good).classes == ["Adelie", "Chinstrap", "Gentoo"]


def test_runtime_uses_one_thread_sequentially(trained) -> None:
    _, _, _, twin = trained[("penguins-species", "logistic_regression")]
    assert isinstance(twin, Twin)
    runtime = TwinRuntime(twin.onnx)
    options = runtime.session.get_session_options()
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
    import onnxruntime as ort

    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
