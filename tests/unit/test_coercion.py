"""Coercion: the reading of raw values that training and both serving paths share."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import BaseEstimator, clone
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from kfops import features
from kfops.coercion import (
    MISSING_CATEGORY,
    Coercion,
    booleans,
    category_strings,
    coerce,
    datetime_parts,
    numbers,
    text_tokens,
    utc_datetimes,
)
from kfops.contract import coerce_frame, infer_contract, to_jsonable
from kfops.datasets import MESSY_TARGET, make_messy
from kfops.errors import DataError
from kfops.features import build_preprocessor, feature_frame
from kfops.serving.validation import RequestSchema


def test_numbers_read_text_and_json_values() -> None:
    np.testing.assert_array_equal(
        numbers([1, "2.5", None, "abc", " 3 "]), [1.0, 2.5, np.nan, np.nan, 3.0]
    )
    np.testing.assert_array_equal(numbers([1, None, 2.5]), [1.0, np.nan, 2.5])
    np.testing.assert_array_equal(numbers(pd.Series([1, None], dtype="Int64")), [1.0, np.nan])
    np.testing.assert_array_equal(numbers(pd.Series([True, False])), [1.0, 0.0])
    assert numbers([]).shape == (0,)


def test_booleans_read_words_numbers_and_bools() -> None:
    values = ["yes", "No", " TRUE ", "f", 1, 0, 2, None, "maybe", True, 1.0, math.nan]
    expected = [1, 0, 1, 0, 1, 0, np.nan, np.nan, np.nan, 1, 1, np.nan]
    np.testing.assert_array_equal(booleans(values), expected)
    np.testing.assert_array_equal(booleans(pd.Series([1.0, 0.0, 0.5])), [1.0, 0.0, np.nan])


def test_categories_compare_by_string_form_and_missing_is_a_marker() -> None:
    out = category_strings([1.0, 1, "a", None, math.nan, True, 2.5, pd.NA])
    assert out.tolist() == ["1", "1", "a", "", "", "True", "2.5", ""]
    assert MISSING_CATEGORY == ""


@pytest.mark.parametrize(
    "text",
    [
        "Great service, will come back!",
        "Café CRÈME, très-bon! a b_c",
        "ǅemal ÜBER 123 x1 don't",
        "",
        "   ",
    ],
)
def test_text_tokens_are_scikit_learns_default_tokens(text: str) -> None:
    analyzer = TfidfVectorizer().build_analyzer()
    assert text_tokens([text])[0] == " ".join(analyzer(text))


def test_text_tokens_of_missing_values_are_empty() -> None:
    assert text_tokens([None, math.nan, 12]).tolist() == ["", "", "12"]


def test_datetime_parts_in_utc_whatever_the_style() -> None:
    parts = datetime_parts(["2021-03-04", "2021/03/04", "2021-03-04T23:30:00+02:00", None, "x"])
    np.testing.assert_array_equal(parts[0], parts[1])
    assert parts[0, :4].tolist() == [2021, 3, 4, 3]  # a Thursday
    assert parts[2, :4].tolist() == [2021, 3, 4, 3]  # 21:30 UTC the same day
    assert parts[2, 4] - parts[0, 4] == 21.5 * 3600
    assert np.isnan(parts[3:]).all()


def test_inputs_are_positional_and_dates_give_five() -> None:
    raw = make_messy(60)
    contract = infer_contract(raw, MESSY_TARGET, "classification")
    coercion = Coercion.from_contract(contract)
    names = [g.name for g in coercion.inputs]
    date_index = contract.feature_names.index("signup_date")
    assert names[:2] == ["f0", "f1"]
    assert [f"f{date_index}_{p}" for p in ("year", "month", "day", "dayofweek", "epoch")] == [
        g.name for g in coercion.inputs if g.feature == "signup_date"
    ]
    out = coercion.coerce(dict(raw.items()))
    assert list(out) == names
    assert all(v.shape == (len(raw), 1) for v in out.values())
    types = {g.name: g.type for g in coercion.inputs}
    assert all(
        (v.dtype == np.float64) == (types[k] == "double")
        and (v.dtype == object) == (types[k] == "string")
        for k, v in out.items()
    )
    with pytest.raises(DataError, match="'age'"):
        coercion.coerce({k: v for k, v in raw.items() if k != "age"})
    # The mapping back, for whoever reads the fitted preprocessing (explanations).
    assert [g.name for g in coercion.inputs_of("signup_date")] == names[
        names.index(f"f{date_index}_year") :
    ][:5]
    assert {g.feature for g in coercion.inputs_of("signup_date")} == {"signup_date"}
    with pytest.raises(DataError, match="'nope'"):
        coercion.inputs_of("nope")


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype == object or b.dtype == object:
        return a.tolist() == b.tolist()
    return bool(np.array_equal(a, b, equal_nan=True))


def test_request_values_coerce_exactly_as_the_training_frame() -> None:
    """The serving path (JSON values checked by the server, one row at a time) and the training
    path (a whole pandas frame) give the same inputs: no training/serving skew."""
    raw = make_messy(120, seed=2)
    contract = infer_contract(raw, MESSY_TARGET, "classification")
    whole = coerce(dict(feature_frame(raw, contract).items()), contract)
    schema = RequestSchema(contract)
    for r in range(0, len(raw), 7):
        row = {n: to_jsonable(raw.iloc[r][n]) for n in contract.feature_names}
        columns = schema.parse_v1({"instances": [row]}).columns
        one = coerce(dict(zip(contract.feature_names, columns, strict=True)), contract)
        for name, values in one.items():
            assert _equal(values[0], whole[name][r]), (r, name, values[0], whole[name][r])


def test_contract_coerced_frames_give_the_same_inputs() -> None:
    raw = make_messy(150, seed=5)
    contract = infer_contract(raw, MESSY_TARGET, "classification")
    a = coerce(dict(raw.items()), contract)
    b = coerce(dict(coerce_frame(raw, contract).items()), contract)
    for name in a:
        assert _equal(a[name], b[name]), name


def _standard(estimator: Any) -> bool:
    """A scikit-learn class (or kfops' pickle-stable TF-IDF subclass of one)."""
    if isinstance(estimator, features.StableTfidfVectorizer):
        return True
    return type(estimator).__module__.startswith("sklearn.")


def test_preprocessor_is_coerce_then_standard_transformers_only() -> None:
    raw = make_messy(120)
    contract = infer_contract(raw, MESSY_TARGET, "classification")
    pre = build_preprocessor(contract).fit(raw)
    assert [name for name, _ in pre.steps] == ["coerce", "encode"]
    encode = pre.named_steps["encode"]
    seen = []
    for _, transformer, _ in encode.transformers_:
        parts = (
            [s for _, s in transformer.steps]
            if isinstance(transformer, Pipeline)
            else [transformer]
        )
        for part in parts:
            assert isinstance(part, BaseEstimator) and _standard(part), part
            assert not isinstance(part, FunctionTransformer)
            seen.append(type(part).__name__)
    assert {"SimpleImputer", "StandardScaler", "OneHotEncoder", "StableTfidfVectorizer"} <= set(
        seen
    )


def test_model_files_from_before_the_coerce_step_still_load(tmp_path) -> None:
    """Registries hold pipelines that reference the old FunctionTransformer helpers by name."""
    raw = make_messy(200, seed=1)
    contract = infer_contract(raw, MESSY_TARGET, "classification")
    train = raw[raw[MESSY_TARGET].notna()]

    def step(f: Any, *rest: Any, **kw: Any) -> Pipeline:
        return Pipeline(
            [("f", FunctionTransformer(f, **kw))] + [(f"s{i}", r) for i, r in enumerate(rest)]
        )

    mode = SimpleImputer(strategy="most_frequent")
    parts = features.datetime_part_names
    legacy = Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer(
                    [
                        ("n", step(features.to_float_frame, SimpleImputer(), StandardScaler()),
                         ["age", "monthly_spend"]),
                        ("b", step(features.to_bool_float, mode), ["is_active"]),
                        ("c", step(features.to_category_strings, clone(mode),
                                   OneHotEncoder(handle_unknown="ignore")), ["city", "plan"]),
                        ("t", step(features.to_text, features.StableTfidfVectorizer()),
                         ["comment"]),
                        ("d", step(features.datetime_parts, SimpleImputer(), StandardScaler(),
                                   feature_names_out=parts), ["signup_date"]),
                    ],
                    sparse_threshold=0.0,
                ),
            ),
            ("model", LogisticRegression(max_iter=1000)),
        ]
    ).fit(train, train[MESSY_TARGET])  # fmt: skip
    path = tmp_path / "model.joblib"
    joblib.dump(legacy, path)
    loaded = joblib.load(path)
    np.testing.assert_array_equal(loaded.predict(raw), legacy.predict(raw))
    assert set(loaded.predict(raw.head(5))) <= {"yes", "no"}
    assert contract.task == "classification"


_MOMENTS = st.datetimes(
    min_value=datetime(1700, 1, 1), max_value=datetime(2200, 12, 31), timezones=st.none()
)
_OFFSETS = st.sampled_from(["", "Z", "+00:00", "+02:00", "-05:30", "+14:00"])
_STYLES = st.sampled_from(["date", "minutes", "seconds", "millis", "micros", "space"])


def _iso(moment: datetime, style: str, offset: str) -> str:
    text = {
        "date": moment.strftime("%Y-%m-%d"),
        "minutes": moment.strftime("%Y-%m-%dT%H:%M"),
        "seconds": moment.strftime("%Y-%m-%dT%H:%M:%S"),
        "millis": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}",
        "micros": moment.strftime("%Y-%m-%dT%H:%M:%S.%f"),
        "space": moment.strftime("%Y-%m-%d %H:%M:%S"),
    }[style]
    return text if style == "date" else text + offset


@settings(max_examples=200, deadline=None)
@given(moments=st.lists(st.tuples(_MOMENTS, _STYLES, _OFFSETS), min_size=1, max_size=4))
def test_iso_dates_without_pandas_match_pandas(moments: list[tuple[datetime, str, str]]) -> None:
    """A one-row request takes the fast ISO path; training frames with other styles take
    pandas: for ISO values both must give the same five numbers, bit for bit."""
    values = [_iso(m, style, offset) for m, style, offset in moments]
    fast = datetime_parts(values)
    parsed = utc_datetimes(pd.Series(values, dtype=object))
    epoch = (parsed - pd.Timestamp("1970-01-01", tz="UTC")) / pd.Timedelta(seconds=1)
    slow = np.column_stack(
        [
            s.to_numpy(dtype=np.float64, na_value=np.nan)
            for s in (parsed.dt.year, parsed.dt.month, parsed.dt.day, parsed.dt.dayofweek, epoch)
        ]
    )
    np.testing.assert_array_equal(fast, slow)


def test_non_iso_values_send_the_whole_column_through_pandas() -> None:
    mixed = ["2021-03-04", "04/05/2021", None]
    parts = datetime_parts(mixed)
    assert parts[1, :3].tolist() == [2021, 4, 5]  # month first, as pandas reads it
    assert parts[0, :3].tolist() == [2021, 3, 4] and np.isnan(parts[2]).all()
