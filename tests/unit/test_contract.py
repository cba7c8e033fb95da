"""Data contracts: inference, bad-input messages, coercion, validation, reports."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kfops.contract import (
    Contract,
    FeatureSpec,
    TargetSpec,
    ValidationReport,
    Violation,
    coerce_frame,
    describe,
    drop_null_target,
    infer_contract,
    validate,
)
from kfops.data import fingerprint, read_table
from kfops.datasets import MESSY_ID, MESSY_TARGET, default_data_path, make_messy, make_synthetic
from kfops.errors import ConfigError, ContractError, DataError, KfopsError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    return read_table(default_data_path())


@pytest.fixture(scope="module")
def penguins_contract(penguins: pd.DataFrame) -> Contract:
    return infer_contract(penguins, "species", "classification")


@pytest.fixture(scope="module")
def messy() -> pd.DataFrame:
    return make_messy(400, seed=0)


@pytest.fixture(scope="module")
def messy_contract(messy: pd.DataFrame) -> Contract:
    return infer_contract(messy, MESSY_TARGET, "classification")


def _small(n: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "color": rng.choice(["red", "green", "blue"], n),
            "label": np.where(np.arange(n) % 2 == 0, "a", "b"),
        }
    )


# -- inference ----------------------------------------------------------------------------------


def test_penguins_contract(penguins_contract: Contract, penguins: pd.DataFrame) -> None:
    c = penguins_contract
    assert c.task == "classification"
    assert c.target == TargetSpec(
        "species", "categorical", "object", ("Adelie", "Chinstrap", "Gentoo")
    )
    assert c.feature_names == [
        "island",
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
        "sex",
        "year",
    ]
    island = c.feature("island")
    assert (island.kind, island.nullable) == ("categorical", False)
    assert island.categories == ("Biscoe", "Dream", "Torgersen")
    bill = c.feature("bill_length_mm")
    assert (bill.kind, bill.nullable, bill.min, bill.max) == ("numeric", True, 32.1, 59.6)
    assert c.feature("sex").categories == ("female", "male")
    assert c.feature("year").kind == "numeric"
    assert c.dropped == ()
    assert c.fingerprint == fingerprint(penguins).sha256


def test_contract_json_round_trip(
    penguins_contract: Contract, messy_contract: Contract, tmp_path: Path
) -> None:
    for i, contract in enumerate((penguins_contract, messy_contract)):
        path = tmp_path / f"c{i}.json"
        contract.save(path)
        loaded = Contract.load(path)
        assert loaded == contract
        # JSON-safe python types only (no numpy scalars): plain json round trip works too.
        assert json.loads(json.dumps(contract.to_dict())) == contract.to_dict()


def test_messy_contract_kinds(messy_contract: Contract) -> None:
    kinds = {f.name: f.kind for f in messy_contract.features}
    assert kinds == {
        "age": "numeric",
        "monthly_spend": "numeric",
        "city": "categorical",
        "plan": "categorical",
        "is_active": "boolean",
        "signup_date": "datetime",
        "comment": "text",
    }
    assert messy_contract.dropped == (
        {"name": MESSY_ID, "reason": "identifier: 100% unique values"},
    )
    signup = messy_contract.feature("signup_date")
    assert signup.dtype == "datetime64[ns]" and str(signup.min).startswith("2021-")
    assert messy_contract.feature("is_active").categories == (False, True)
    assert messy_contract.target.classes == ("no", "yes")


def test_null_target_rows_are_excluded_with_a_warning(
    messy: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    nulls = int(messy[MESSY_TARGET].isna().sum())
    assert nulls > 0
    with caplog.at_level(logging.WARNING, logger="kfops.contract"):
        contract = infer_contract(messy, MESSY_TARGET, "classification")
    assert f"null in {nulls} of 400 rows" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kfops.contract"):
        rows = drop_null_target(messy, contract)
    assert len(rows) == 400 - nulls
    assert f"excluding {nulls} rows" in caplog.text


def test_regression_contract() -> None:
    df = make_synthetic(500, 3, 1, task="regression", seed=0)
    c = infer_contract(df, "target", "regression")
    assert c.target.kind == "numeric" and c.target.classes is None
    assert c.target.min == pytest.approx(float(df["target"].min()))
    assert c.target.max == pytest.approx(float(df["target"].max()))
    assert c.feature("num_00").dtype == "float32"


def test_drop_columns_are_recorded() -> None:
    df = _small().assign(note="x")
    c = infer_contract(df, "label", "classification", drop=["note"])
    assert "note" not in c.feature_names
    assert c.dropped == ({"name": "note", "reason": "dropped by user (--drop-columns)"},)


def test_integer_id_column_is_dropped() -> None:
    df = _small().assign(row_id=range(40))
    c = infer_contract(df, "label", "classification")
    assert "row_id" not in c.feature_names
    assert c.dropped[0]["name"] == "row_id"


def test_object_column_of_numbers_and_bools() -> None:
    df = _small()
    df["n"] = pd.Series([str(i) for i in range(40)], dtype=object)
    df["flag"] = pd.Series([True, False, None, True] * 10, dtype=object)
    c = infer_contract(df, "label", "classification")
    assert c.feature("n").kind == "numeric"
    assert c.feature("flag").kind == "boolean" and c.feature("flag").nullable


# -- bad input: one clear message each ----------------------------------------------------------


def test_target_missing_suggests_closest(penguins: pd.DataFrame) -> None:
    with pytest.raises(
        DataError, match=r"target column 'specie' not found; did you mean 'species'\?"
    ):
        infer_contract(penguins, "specie", "classification")
    with pytest.raises(DataError, match=r"did you mean 'species'\?"):
        infer_contract(penguins, "Species", "classification")
    with pytest.raises(DataError, match=r"'zzz' not found; columns are \['species'"):
        infer_contract(penguins, "zzz", "classification")


def test_target_with_one_class() -> None:
    df = _small().assign(label="a")
    with pytest.raises(DataError, match=r"target 'label' has only one class \('a'\)"):
        infer_contract(df, "label", "classification")


def test_target_with_nulls_only() -> None:
    df = _small().assign(label=None)
    with pytest.raises(DataError, match="target column 'label' has only null values"):
        infer_contract(df, "label", "classification")


def test_classification_target_with_too_many_classes() -> None:
    df = _small().assign(label=np.arange(40) * 1.5)
    with pytest.raises(
        DataError,
        match=r"target 'label' has 40 distinct values in 40 rows: too many classes"
        r".*--task regression",
    ):
        infer_contract(df, "label", "classification")


def test_regression_target_not_numeric() -> None:
    with pytest.raises(
        DataError,
        match=r"regression target 'label' is not numeric \(dtype object, e.g. \['a', 'b'\]\)",
    ):
        infer_contract(_small(), "label", "regression")


def test_all_null_column() -> None:
    df = _small().assign(empty=np.nan)
    with pytest.raises(
        DataError, match=r"column 'empty' has only null values; drop it with --drop-columns empty"
    ):
        infer_contract(df, "label", "classification")


def test_constant_column_suggests_dropping() -> None:
    df = _small().assign(const=7, tag="same")
    with pytest.raises(DataError) as info:
        infer_contract(df, "label", "classification")
    message = str(info.value)
    # Every bad column in one message, each with the fix.
    assert (
        "column 'const' is constant (every value is 7); drop it with --drop-columns const"
        in message
    )
    assert (
        "column 'tag' is constant (every value is 'same'); drop it with --drop-columns tag"
        in message
    )
    assert infer_contract(df, "label", "classification", drop=["const", "tag"]).feature_names == [
        "x",
        "color",
    ]


def test_constant_fixture_year_column() -> None:
    df = read_table(FIXTURES / "penguins_small.csv")
    with pytest.raises(DataError, match=r"column 'year' is constant .*--drop-columns year"):
        infer_contract(df, "species", "classification")


def test_mixed_types_column() -> None:
    df = read_table(FIXTURES / "mixed_types.csv")
    with pytest.raises(
        DataError,
        match=r"column 'age' mixes numbers and text: 2 of 12 values are not numbers, "
        r"e.g. \['unknown', 'n.a.'\]",
    ):
        infer_contract(df, "label", "classification")


def test_unknown_task() -> None:
    with pytest.raises(
        ConfigError, match="unknown task 'clustering': expected one of classification, regression"
    ):
        infer_contract(_small(), "label", "clustering")


def test_drop_unknown_column_and_target() -> None:
    with pytest.raises(
        DataError, match=r"cannot drop column 'colour': not found; did you mean 'color'\?"
    ):
        infer_contract(_small(), "label", "classification", drop=["colour"])
    with pytest.raises(DataError, match="cannot drop the target column 'label'"):
        infer_contract(_small(), "label", "classification", drop=["label"])


def test_no_rows() -> None:
    with pytest.raises(DataError, match="the data has no rows"):
        infer_contract(_small().iloc[:0], "label", "classification")


# -- coercion -----------------------------------------------------------------------------------


def test_coerce_json_records(messy_contract: Contract) -> None:
    records = [
        {
            "age": "41",
            "monthly_spend": 12,
            "city": "Oslo",
            "plan": "pro",
            "is_active": "true",
            "signup_date": "2022-03-04T10:00:00+02:00",
            "comment": "fine",
        },
        {
            "age": None,
            "monthly_spend": "7.5",
            "city": None,
            "plan": "team",
            "is_active": False,
            "signup_date": "March 5, 2022",
            "comment": 42,
        },
    ]
    raw = pd.DataFrame(records)
    before = raw.copy()
    out = coerce_frame(raw, messy_contract)
    pd.testing.assert_frame_equal(raw, before)  # input untouched
    assert (
        out["age"].dtype == np.float64
        and out["age"].iloc[0] == 41.0
        and np.isnan(out["age"].iloc[1])
    )
    assert out["monthly_spend"].tolist() == [12.0, 7.5]
    assert out["is_active"].tolist() == [1.0, 0.0]
    assert out["signup_date"].dtype == "datetime64[ns]"
    assert out["signup_date"].tolist() == [
        pd.Timestamp("2022-03-04 08:00"),
        pd.Timestamp("2022-03-05"),
    ]
    assert out["city"].dtype == object and out["city"].iloc[0] == "Oslo"
    assert out["city"].iloc[1] is np.nan or pd.isna(out["city"].iloc[1])
    assert out["comment"].iloc[1] == "42"


def test_coerce_training_frame_matches_csv_and_parquet(
    penguins_contract: Contract, tmp_path: Path
) -> None:
    from_csv = read_table(default_data_path())
    from_csv.to_parquet(tmp_path / "p.parquet", index=False)
    a = coerce_frame(from_csv, penguins_contract)
    b = coerce_frame(read_table(tmp_path / "p.parquet"), penguins_contract)
    pd.testing.assert_frame_equal(a, b)
    assert a["year"].dtype == np.float64


# -- validation ---------------------------------------------------------------------------------


def test_penguins_validate_against_own_contract(
    penguins: pd.DataFrame, penguins_contract: Contract
) -> None:
    report = validate(penguins, penguins_contract)
    assert report.ok and report.violations == []
    assert report.rows == 344
    report.raise_for_errors()  # no error


def test_null_targets_warn_by_default_and_can_block(
    messy: pd.DataFrame, messy_contract: Contract
) -> None:
    strict = validate(messy, messy_contract, allow_null_target=False)
    assert [v.rule for v in strict.errors] == ["target_null"]
    relaxed = validate(messy, messy_contract)
    assert relaxed.ok
    assert [(v.rule, v.severity) for v in relaxed.violations] == [("target_null", "warning")]
    assert validate(drop_null_target(messy, messy_contract), messy_contract).ok


def test_planted_violations_are_each_listed(
    penguins: pd.DataFrame, penguins_contract: Contract
) -> None:
    bad = penguins.drop(columns=["island"]).copy()
    bad["note"] = "extra"
    bad["bill_length_mm"] = bad["bill_length_mm"].astype(object)
    bad.loc[0:2, "bill_length_mm"] = "long"  # 3 values of the wrong type
    bad.loc[10:13, "body_mass_g"] = 99999.0  # 4 values out of range
    bad.loc[20:21, "sex"] = "unknown"  # 2 unseen categories
    bad.loc[30:34, "year"] = np.nan  # 5 nulls in a column without nulls in training
    bad["flipper_length_mm"] = np.nan  # all null
    bad.loc[40, "species"] = "Emperor"  # unseen class
    bad.loc[41:42, "species"] = None  # null targets

    report = validate(bad, penguins_contract, allow_null_target=False)
    found = {(v.column, v.rule, v.severity, v.count) for v in report.violations}
    expected = {
        ("island", "missing_column", "error", 0),
        ("bill_length_mm", "type", "error", 3),
        ("flipper_length_mm", "all_null", "error", 0),
        ("species", "unseen_class", "error", 1),
        ("species", "target_null", "error", 2),
        ("note", "unexpected_column", "warning", 0),
        ("body_mass_g", "out_of_range", "warning", 4),
        ("sex", "unseen_category", "warning", 2),
        ("year", "nulls", "warning", 5),
    }
    assert found == expected
    assert not report.ok
    by_rule = {v.rule: v for v in report.violations}
    assert by_rule["type"].examples == ["long"]
    assert by_rule["out_of_range"].examples == [99999.0]
    assert by_rule["unseen_category"].examples == ["unknown"]
    assert by_rule["unseen_class"].examples == ["Emperor"]
    assert "[2700, 6300]" in by_rule["out_of_range"].message

    with pytest.raises(ContractError) as info:
        report.raise_for_errors()
    message = str(info.value)
    assert message.startswith("data violates the contract (5 errors): ")
    for text in (
        "column 'island' is missing",
        "column 'bill_length_mm': 3 values cannot be read as numbers, e.g. ['long']",
        "column 'flipper_length_mm' has only null values",
        "target 'species' has 1 values outside the training classes, e.g. ['Emperor']",
        "target 'species' has 2 null values",
    ):
        assert text in message
    assert info.value.report is report

    data = report.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert (data["errors"], data["warnings"], data["ok"]) == (5, 4, False)

    md = report.to_markdown()
    assert md.startswith("## Data validation: FAILED")
    assert "| severity | column | rule | count | message |" in md
    assert "| warning | sex | unseen_category | 2 |" in md
    assert md.index("| error |") < md.index("| warning |")


def test_validate_without_target_for_scoring(
    penguins: pd.DataFrame, penguins_contract: Contract
) -> None:
    features = penguins.drop(columns=["species"]).head(5)
    assert validate(features, penguins_contract, check_target=False).ok
    one_row = features.head(1).assign(sex=np.nan)
    assert not validate(one_row, penguins_contract, check_target=False).ok
    assert validate(one_row, penguins_contract, check_target=False, allow_all_null=True).ok


def test_validate_empty_frame(penguins: pd.DataFrame, penguins_contract: Contract) -> None:
    report = validate(penguins.iloc[:0], penguins_contract)
    assert [(v.rule, v.severity, v.message) for v in report.violations] == [
        ("empty", "error", "the data has no rows")
    ]
    with pytest.raises(ContractError, match="the data has no rows"):
        report.raise_for_errors()


def test_validate_datetime_and_boolean_rules(messy: pd.DataFrame, messy_contract: Contract) -> None:
    bad = drop_null_target(messy, messy_contract).head(20).copy()
    bad["signup_date"] = bad["signup_date"].astype(object)
    bad.iloc[0, bad.columns.get_loc("signup_date")] = "not a date"
    bad.iloc[1, bad.columns.get_loc("signup_date")] = "1999-01-01"
    bad["is_active"] = bad["is_active"].astype(object)
    bad.iloc[2, bad.columns.get_loc("is_active")] = "maybe"
    report = validate(bad, messy_contract)
    found = {(v.column, v.rule, v.severity, v.count) for v in report.violations}
    assert found == {
        ("signup_date", "type", "error", 1),
        ("signup_date", "out_of_range", "warning", 1),
        ("is_active", "type", "error", 1),
    }


def test_report_markdown_when_clean() -> None:
    md = ValidationReport(rows=3, columns=2).to_markdown()
    assert "## Data validation: OK" in md and "No violations." in md
    v = Violation("a", "nulls", "warning", "a | b", 1)
    assert "a \\| b" in ValidationReport([v], 1, 1).to_markdown()


def test_errors_are_kfops_errors() -> None:
    assert issubclass(ContractError, KfopsError) and issubclass(DataError, KfopsError)


def test_describe(
    penguins: pd.DataFrame,
    penguins_contract: Contract,
    messy: pd.DataFrame,
    messy_contract: Contract,
) -> None:
    md = describe(penguins, penguins_contract)
    assert md.startswith("## Data statistics")
    assert "| bill_length_mm | numeric | 2 | 32.1 | 43.92 | 59.6 |  |" in md
    assert "| island | categorical | 0 |  |  |  | Biscoe (168), Dream (124), Torgersen (52) |" in md
    assert "| species | target (categorical) | 0 |" in md
    md2 = describe(messy, messy_contract)
    assert "| signup_date | datetime |" in md2
    assert f"- `{MESSY_ID}`: identifier" in md2


def test_feature_spec_reexports() -> None:
    spec = FeatureSpec("a", "numeric", "float64", True, 0.0, 1.0)
    assert FeatureSpec.from_dict(spec.to_dict()) == spec


def test_million_rows_infer_and_validate() -> None:
    # At scale it still finds what it should; timings belong to benchmarks, not to tests.
    df = make_synthetic(1_000_000, n_numeric=45, n_categorical=5, seed=0)
    contract = infer_contract(df, "target", "classification", fingerprint="x")
    drifted = make_synthetic(
        1_000_000, n_numeric=45, n_categorical=5, seed=1, drift={"num_03": 3.0}
    )
    report = validate(drifted, contract)
    assert report.ok
    shifted = [v for v in report.warnings if v.column == "num_03"]
    assert shifted and shifted[0].rule == "out_of_range" and shifted[0].count > 1000


def test_nested_values_column() -> None:
    df = _small().assign(tags=[["a", "b"]] * 40)
    with pytest.raises(DataError, match=r"column 'tags' holds values that are not scalars"):
        infer_contract(df, "label", "classification")
    assert "tags" not in infer_contract(df, "label", "classification", drop=["tags"]).feature_names


def test_coerce_is_idempotent(messy: pd.DataFrame, messy_contract: Contract) -> None:
    once = coerce_frame(messy, messy_contract)
    pd.testing.assert_frame_equal(coerce_frame(once, messy_contract), once)
    # A coerced frame validates exactly like the raw one.
    assert validate(once, messy_contract).ok


def test_describe_regression() -> None:
    df = make_synthetic(300, 2, 1, task="regression", seed=4)
    md = describe(df, infer_contract(df, "target", "regression"))
    row = next(line for line in md.splitlines() if line.startswith("| target |"))
    assert row.startswith("| target | target (numeric) | 0 | -")
    assert "| cat_00 | categorical | 0 |" in md


def test_duplicate_column_names(penguins: pd.DataFrame, penguins_contract: Contract) -> None:
    dup = penguins.copy()
    dup.columns = [*penguins.columns[:-1], "island"]
    with pytest.raises(DataError, match=r"duplicate column names \['island'\]"):
        infer_contract(dup, "species", "classification")
    report = validate(dup, penguins_contract)
    assert [v.rule for v in report.errors] == ["duplicate_columns"]
