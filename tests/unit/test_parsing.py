"""The shared value reader (kfops.parsing) and what it means for serving: a row of the training
file, sent as written there, is read as training read it (issue 11: no training/serving skew)."""

from __future__ import annotations

import contextlib
import csv
import io
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kfops.contract import infer_contract
from kfops.contract_model import Contract
from kfops.parsing import (
    NA_STRINGS,
    Unreadable,
    date_formats,
    parse_datetime_column,
    read_bool,
    read_datetime,
    read_number,
)
from kfops.serving.model import ServedVersion
from kfops.serving.validation import RequestError, RequestSchema
from kfops.training import train


def test_na_strings_are_read_csvs_defaults() -> None:
    from pandas._libs.parsers import STR_NA_VALUES

    assert frozenset(STR_NA_VALUES) == NA_STRINGS


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3.5", 3.5), ("3", 3), (" 1e3 ", 1000.0), ("-.5", -0.5), (7, 7), (2.5, 2.5),
     ("", None), ("NA", None), ("nan", None), ("null", None), (None, None)],
)  # fmt: skip
def test_numbers_from_text_and_json(value: Any, expected: Any) -> None:
    got = read_number(value)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    "value", ["abc", "1,234", "1e400", True, [1], 10**400, float("inf"), "3.5.1"]
)
def test_numbers_that_are_not(value: Any) -> None:
    with pytest.raises(Unreadable):
        read_number(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("yes", True), ("No", False), ("TRUE", True), ("false", False), ("t", True), ("0", False),
     (1, True), (0.0, False), (True, True), ("NA", None), ("", None), (None, None)],
)  # fmt: skip
def test_booleans_from_words(value: Any, expected: Any) -> None:
    assert read_bool(value) is expected


@pytest.mark.parametrize("value", ["maybe", 2, "2", [True]])
def test_booleans_that_are_not(value: Any) -> None:
    with pytest.raises(Unreadable):
        read_bool(value)


@pytest.mark.parametrize(
    ("value", "formats", "expected"),
    [
        ("2014/03/03", ("%Y/%m/%d",), datetime(2014, 3, 3)),
        ("2014/03/03", (), datetime(2014, 3, 3)),  # contracts from before formats: pandas
        ("09 Oct 2024", ("%d %b %Y",), datetime(2024, 10, 9)),
        ("09 Oct 2024", (), datetime(2024, 10, 9)),
        ("1980", (), datetime(1980, 1, 1)),
        ("1980", ("%Y",), datetime(1980, 1, 1)),
        (1980, ("%Y",), datetime(1980, 1, 1)),  # a column of years, sent as numbers
        ("1970-01-01", ("%Y-%m-%d",), datetime(1970, 1, 1)),
        ("2024-10-09T08:30:00", (), datetime(2024, 10, 9, 8, 30)),
        # Ambiguous: read as training read the column (the recorded format), not month-first.
        ("01/02/2012", ("%d/%m/%Y",), datetime(2012, 2, 1)),
        ("01/02/2012", ("%m/%d/%Y",), datetime(2012, 1, 2)),
        ("NA", ("%Y/%m/%d",), None),
        ("", (), None),
        (None, (), None),
    ],
)
def test_dates_in_the_formats_training_saw(
    value: Any, formats: tuple[str, ...], expected: datetime | None
) -> None:
    assert read_datetime(value, formats) == expected


@pytest.mark.parametrize("value", ["not a date", "9999-01-01", 3.5, 1980, "2014/13/45"])
def test_dates_that_are_not(value: Any) -> None:
    with pytest.raises(Unreadable):
        read_datetime(value)


def test_recorded_formats_start_with_the_one_pandas_infers_for_the_column() -> None:
    assert date_formats(["2012/01/01", "2012/01/02", None, "NA"]) == ("%Y/%m/%d",)
    assert date_formats(["13/01/2012", "01/02/2012"])[0] == "%d/%m/%Y"
    mixed = ["2012/01/01", "09 Oct 2024", "2012/01/03"]
    assert date_formats(mixed) == ("%Y/%m/%d", "%d %b %Y")
    assert date_formats([None, "NA"]) == ()


@pytest.mark.parametrize(
    "column",
    [
        ["13/01/2012", "01/02/2012", "05/06/2013", "NA", "09 Oct 2024"],
        ["2012/01/01", "2012/1/2", "2013-05-06", "1980", None],
        ["Mar 4, 2021", "April 5, 2022", "2021-03-04 10:00:00"],
    ],
)
def test_one_value_is_read_as_its_column_was(column: list[Any]) -> None:
    """The server reads one value at a time; training read the whole column: same dates."""
    formats = date_formats(column)
    whole = parse_datetime_column(pd.Series(column, dtype=object), formats)
    for value, moment in zip(column, whole, strict=True):
        one = read_datetime(value, formats)
        if pd.isna(moment):
            assert one is None
        else:
            assert pd.Timestamp(one, tz="UTC") == moment


# --- a training file's own rows, served -----------------------------------------------------------

CSV = """\
row_id,day,visit,year_built,rooms,garden,city,note,price_band
{rows}"""


def _training_csv(rows: int = 60) -> str:
    rng = np.random.default_rng(3)
    cities = ["Oslo", "Bergen", "Tromso"]
    lines = []
    for i in range(rows):
        day = f"2014/{1 + i % 12:02d}/{1 + i % 28:02d}"
        visit = "" if i % 9 == 0 else f"{1 + i % 27:02d} Oct 20{10 + i % 10}"
        rooms = "NA" if i % 7 == 0 else f"{rng.uniform(1, 9):.1f}"
        garden = ["True", "False", ""][i % 3]
        city = cities[i % 3] if i % 11 else "n/a"
        note = f"bright quiet flat number {i}" if i % 5 else ""
        band = ["low", "mid", "high"][(i + (i % 3 == 0)) % 3]
        lines.append(
            f"{1000 + i},{day},{visit},{1950 + i % 40},{rooms},{garden},{city},{note},{band}"
        )
    return CSV.format(rows="\n".join(lines))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Contract, Any]:
    path = tmp_path_factory.mktemp("csv") / "homes.csv"
    path.write_text(_training_csv())
    df = pd.read_csv(path)
    contract = infer_contract(df, "price_band", "classification")
    return path, contract, train(df, contract)


def _served(contract: Contract, pipeline: Any, strict: bool = False) -> ServedVersion:
    return ServedVersion(
        model="homes", version="v1", path=Path("."), sha256="0" * 64, estimator=pipeline,
        contract=contract, schema=RequestSchema(contract, strict_categories=strict),
        classes=list(pipeline.classes_), has_proba=True,
    )  # fmt: skip


def test_the_contract_records_the_date_formats(trained: tuple[Path, Contract, Any]) -> None:
    _, contract, _ = trained
    assert contract.feature("day").formats == ("%Y/%m/%d",)
    assert contract.feature("visit").formats == ("%d %b %Y",)
    assert Contract.from_dict(contract.to_dict()) == contract
    assert {d["name"] for d in contract.dropped} == {"row_id"}


def test_every_row_of_the_training_file_is_served_as_training_read_it(
    trained: tuple[Path, Contract, Any],
) -> None:
    path, contract, pipeline = trained
    served = _served(contract, pipeline)
    with path.open(newline="") as fh:
        as_written = list(csv.DictReader(fh))  # every value a string, "" and "NA" included
    frame = pd.read_csv(path)
    as_pandas = [
        {k: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in r.items()}
        for r in frame.to_dict("records")
    ]  # numbers as numbers, missing as null
    expected = pipeline.predict_proba(frame)
    for rows in (as_written, as_pandas):
        # The target and the dropped id column travel along, as in the file: ignored.
        batch = served.schema.parse_v1({"instances": rows})
        assert batch.unseen == {}
        labels, proba = served.predict(batch.columns, True)
        assert proba is not None
        np.testing.assert_allclose(proba, expected, rtol=1e-9, atol=1e-12)
        assert labels == list(pipeline.classes_[expected.argmax(axis=1)])


def test_real_contract_violations_stay_4xx(trained: tuple[Path, Contract, Any]) -> None:
    _, contract, pipeline = trained
    schema = _served(contract, pipeline).schema
    row = {"day": "2014/01/01", "visit": "09 Oct 2014", "year_built": "1980", "rooms": "3.5",
           "garden": "yes", "city": "Oslo", "note": "nice"}  # fmt: skip
    assert schema.parse_v1({"instances": [row]}).rows == 1
    bad = {**row, "day": "someday", "rooms": "three", "garden": "maybe", "colour": "red"}
    del bad["city"]
    with pytest.raises(RequestError) as exc:
        schema.parse_v1({"instances": [bad]})
    assert {e.field: e.reason for e in exc.value.errors} == {
        "instances[0].day": "wrong_type",
        "instances[0].rooms": "wrong_type",
        "instances[0].garden": "wrong_type",
        "instances[0].city": "missing_feature",
        "instances[0].colour": "unknown_feature",
    }
    assert exc.value.status == 422


def test_unseen_categories_are_served_and_counted_or_refused_when_strict(
    trained: tuple[Path, Contract, Any],
) -> None:
    _, contract, pipeline = trained
    row = {"day": "2014/01/01", "visit": "", "year_built": 1980, "rooms": None,
           "garden": "True", "city": "Atlantis", "note": ""}  # fmt: skip
    served = _served(contract, pipeline)
    batch = served.schema.parse_v1({"instances": [row, {**row, "city": "Oslo"}, row]})
    assert batch.unseen == {"city": 2}
    labels, _ = served.predict(batch.columns, False)
    assert len(labels) == 3
    strict = _served(contract, pipeline, strict=True).schema
    with pytest.raises(RequestError) as exc:
        strict.parse_v1({"instances": [row]})
    [error] = exc.value.errors
    assert (error.field, error.reason) == ("instances[0].city", "out_of_domain")
    assert "'Atlantis'" in error.message and "'Oslo'" in error.message
    assert strict.parse_v1({"instances": [{**row, "city": "Oslo"}]}).unseen == {}


def test_dates_travel_on_as_iso_text(trained: tuple[Path, Contract, Any]) -> None:
    _, contract, pipeline = trained
    schema = _served(contract, pipeline).schema
    row = {"day": "2014/03/03", "visit": "09 Oct 2024", "year_built": "1980", "rooms": "3.5",
           "garden": "no", "city": "NA", "note": "NA"}  # fmt: skip
    batch = schema.parse_v1({"instances": [row]})
    columns = dict(zip(schema.names, batch.columns, strict=True))
    assert columns["day"] == ["2014-03-03T00:00:00"]
    assert columns["visit"] == ["2024-10-09T00:00:00"]
    assert columns["year_built"] == [1980] and columns["rooms"] == [3.5]
    assert columns["garden"] == [False]
    assert columns["city"] == [None] and columns["note"] == [None]


def test_csv_text_round_trip_of_the_fixture_is_what_the_test_means() -> None:
    """Guard for the fixture: its file really has slash dates, NA strings and empty cells."""
    text = _training_csv()
    rows = list(csv.reader(io.StringIO(text)))
    values = {v for r in rows[1:] for v in r}
    assert {"NA", "", "n/a", "True"} <= values
    assert any("/" in r[1] for r in rows[1:]) and any(" Oct " in r[2] for r in rows[1:])


def test_a_column_null_only_where_the_target_is_null_is_nullable() -> None:
    """Rows with a null target are left out of training but are rows of the file: a null in
    them must not make the file's own row a contract violation."""
    df = pd.DataFrame(
        {"x": [1.0, 2.0, 3.0, 4.0, None], "c": ["a", "b", "a", "b", "a"],
         "y": ["p", "q", "p", "q", None]}
    )  # fmt: skip
    contract = infer_contract(df, "y", "classification")
    assert contract.feature("x").nullable is True
    assert contract.feature("c").nullable is False
    row = {"x": "", "c": "a", "y": ""}
    assert RequestSchema(contract).parse_v1({"instances": [row]}).rows == 1


_ANY = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)


@settings(max_examples=400, deadline=None, database=None)
@given(value=_ANY, formats=st.sampled_from([(), ("%Y/%m/%d",), ("%d %b %Y", "%Y")]))
def test_readers_only_ever_refuse_with_unreadable(value: Any, formats: tuple[str, ...]) -> None:
    """Whatever a client sends, a reader answers or raises Unreadable (a 4xx), nothing else."""
    for read in (read_number, read_bool, lambda v: read_datetime(v, formats)):
        with contextlib.suppress(Unreadable):
            read(value)


def test_an_empty_header_is_the_column_read_csv_calls_unnamed(tmp_path: Path) -> None:
    """R writes row names under an empty header: read_csv names the column "Unnamed: 0", the
    csv module keeps the key "". Either way the row is the file's own row."""
    lines = ['"","size","colour","kind"']
    lines += [
        f'"{i}",{i % 7 + 0.5},"{["red", "blue"][i % 2]}","{"ab"[i % 3 == 0]}"' for i in range(1, 41)
    ]
    path = tmp_path / "r.csv"
    path.write_text("\n".join(lines) + "\n")
    frame = pd.read_csv(path)
    assert "Unnamed: 0" in frame.columns
    contract = infer_contract(frame, "kind", "classification")
    schema = RequestSchema(contract)
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert "" in rows[0]
    assert schema.parse_v1({"instances": rows}).rows == 40
    with pytest.raises(RequestError):  # an empty key means nothing to a model without one
        RequestSchema(
            infer_contract(frame.drop(columns="Unnamed: 0"), "kind", "classification")
        ).parse_v1({"instances": rows[:1]})
