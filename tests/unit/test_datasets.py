"""Bundled data and generators: shapes, determinism, planted drift, messy frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kfops import datasets
from kfops.data import read_table
from kfops.datasets import (
    DEFAULT_MODEL_NAME,
    DEFAULT_TARGET,
    DEFAULT_TASK,
    MESSY_ID,
    MESSY_TARGET,
    default_data_path,
    make_messy,
    make_synthetic,
    write_table,
)
from kfops.errors import DataError


def test_default_data_is_the_bundled_penguins_csv() -> None:
    path = default_data_path()
    assert path.is_file() and path.name == "penguins.csv"
    assert "palmerpenguins" in path.parts
    df = pd.read_csv(path)
    assert len(df) == 344
    assert DEFAULT_TARGET in df.columns
    assert (DEFAULT_TASK, DEFAULT_MODEL_NAME) == ("classification", "penguins")


def test_synthetic_shape_names_and_dtypes() -> None:
    df = make_synthetic(1000, n_numeric=4, n_categorical=2, seed=3)
    assert list(df.columns) == [
        "num_00",
        "num_01",
        "num_02",
        "num_03",
        "cat_00",
        "cat_01",
        "target",
    ]
    assert all(df[f"num_0{i}"].dtype == np.float32 for i in range(4))
    assert df["cat_00"].dtype == object and df["cat_00"].str.startswith("c00_").all()
    assert set(df["target"].unique()) == {0, 1}
    assert df.isna().sum().sum() == 0


def test_synthetic_is_deterministic_per_seed() -> None:
    a = make_synthetic(500, 3, 2, seed=7)
    pd.testing.assert_frame_equal(a, make_synthetic(500, 3, 2, seed=7))
    assert not a.equals(make_synthetic(500, 3, 2, seed=8))


def test_synthetic_target_is_learnable() -> None:
    from sklearn.linear_model import LinearRegression, LogisticRegression

    df = make_synthetic(4000, 5, 1, seed=0)
    x = df[[f"num_0{i}" for i in range(5)]].to_numpy()
    clf = LogisticRegression().fit(x[:3000], df["target"][:3000])
    assert clf.score(x[3000:], df["target"][3000:]) > 0.75

    reg = make_synthetic(4000, 5, 1, task="regression", seed=0)
    assert reg["target"].dtype == np.float64
    xr = reg[[f"num_0{i}" for i in range(5)]].to_numpy()
    model = LinearRegression().fit(xr[:3000], reg["target"][:3000])
    assert model.score(xr[3000:], reg["target"][3000:]) > 0.5


def test_planted_drift_moves_only_the_named_columns() -> None:
    base = make_synthetic(20_000, 4, 3, seed=1)
    drifted = make_synthetic(20_000, 4, 3, seed=1, drift={"num_01": 1.0, "cat_02": 1.5})
    # Numeric: mean shifts by ~strength standard deviations.
    shift = drifted["num_01"].mean() - base["num_01"].mean()
    assert shift == pytest.approx(1.0, abs=0.01)
    # Categorical: the distribution over categories changes clearly (total variation).
    p = base["cat_02"].value_counts(normalize=True)
    q = drifted["cat_02"].value_counts(normalize=True).reindex(p.index, fill_value=0)
    assert 0.5 * float((p - q).abs().sum()) > 0.15
    # Columns without drift get exactly the same values.
    for col in ("num_00", "num_02", "num_03", "cat_00", "cat_01"):
        pd.testing.assert_series_equal(base[col], drifted[col])


def test_synthetic_rejects_bad_arguments() -> None:
    with pytest.raises(DataError, match=r"drift names unknown columns \['num_99'\]"):
        make_synthetic(10, 3, 1, drift={"num_99": 1.0})
    with pytest.raises(DataError, match="unknown task 'ranking'"):
        make_synthetic(10, task="ranking")
    with pytest.raises(DataError, match="rows must be at least 1"):
        make_synthetic(0)


def test_synthetic_million_rows_is_small() -> None:
    # How fast is a benchmark's business (make bench-*), not a test's.
    df = make_synthetic(1_000_000, n_numeric=45, n_categorical=5, seed=0)
    assert df.shape == (1_000_000, 51)
    # float32 numerics plus shared category strings: about 230 MB, not gigabytes.
    assert df.memory_usage(deep=False).sum() < 400e6


def test_messy_frame_has_the_usual_mess() -> None:
    df = make_messy(300, seed=2)
    assert len(df) == 300
    assert df[MESSY_ID].is_unique
    assert df["age"].isna().any() and df["city"].isna().any()
    assert df[MESSY_TARGET].isna().sum() > 0
    assert set(df[MESSY_TARGET].dropna()) == {"yes", "no"}
    dates = df["signup_date"].dropna()
    assert dates.str.match(r"^\d{4}-\d{2}-\d{2}$").all()
    assert df["comment"].dropna().str.split().str.len().min() >= 4
    assert df["is_active"].dtype == bool
    pd.testing.assert_frame_equal(df, make_messy(300, seed=2))


def test_write_table_by_suffix(tmp_path: Path) -> None:
    df = make_messy(50, seed=0)
    csv = write_table(df, tmp_path / "sub" / "m.csv")
    pq = write_table(df, tmp_path / "m.parquet")
    assert csv.read_text().startswith(MESSY_ID + ",")
    assert pq.read_bytes()[:4] == b"PAR1"
    pd.testing.assert_frame_equal(read_table(pq), df)
    with pytest.raises(DataError, match=r"cannot tell the format of .*m\.json"):
        write_table(df, tmp_path / "m.json")


def test_table_format() -> None:
    assert datasets.table_format("a/b.PARQUET") == "parquet"
    assert datasets.table_format("x.csv.gz") == "csv"
    assert datasets.table_format("x.bin") is None
