"""Bundled default data and generated data sets.

- ``default_data_path()``: the Palmer Penguins CSV shipped inside the installed ``palmerpenguins``
  package (nothing is downloaded), the data ``kfops run`` trains on when given no ``--data``.
- ``make_synthetic()``: a fast numpy generator for large inputs with optional planted drift, so
  tests and benchmarks know exactly which columns shifted.
- ``make_messy()``: a small frame with the usual mess of real CSVs (nulls, free text, date
  strings, an id column) to prove training works on it.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import numpy as np
import pandas as pd

from kfops.errors import DataError

DEFAULT_TARGET = "species"
DEFAULT_TASK = "classification"
DEFAULT_MODEL_NAME = "penguins"

SYNTHETIC_TARGET = "target"
MESSY_TARGET = "churned"
MESSY_ID = "customer_id"

PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zip", ".xz", ".zst")
# Delimited text, plain or compressed (pandas decompresses by suffix); the separator is sniffed.
_TEXT_SUFFIXES = (".csv", ".tsv", ".tab", ".txt")
CSV_SUFFIXES = _TEXT_SUFFIXES + tuple(t + c for t in _TEXT_SUFFIXES for c in COMPRESSION_SUFFIXES)


def default_data_path() -> Path:
    """Path of ``penguins.csv`` inside the installed palmerpenguins package."""
    try:
        resource = importlib.resources.files("palmerpenguins") / "data" / "penguins.csv"
    except ModuleNotFoundError as exc:  # pragma: no cover - it is a hard dependency
        raise DataError("the palmerpenguins package is not installed (pip install kfops)") from exc
    path = Path(str(resource))
    if not path.is_file():  # pragma: no cover - a broken install
        raise DataError(f"bundled penguins data not found at {path}")
    return path


def _numeric_names(n: int) -> list[str]:
    return [f"num_{i:02d}" for i in range(n)]


def _categorical_names(n: int) -> list[str]:
    return [f"cat_{i:02d}" for i in range(n)]


def _categories(index: int) -> list[str]:
    # 3..8 categories per column so domains differ between columns.
    size = 3 + index % 6
    return [f"c{index:02d}_{k}" for k in range(size)]


def _category_probs(size: int, strength: float) -> np.ndarray:
    # Base weights are skewed (not uniform) like real categories; drift tilts them towards the
    # last categories by exp(strength * position), so strength 0 means no change.
    base = 1.0 / np.arange(1, size + 1)
    tilt = np.exp(strength * np.linspace(0.0, 2.0, size))
    probs = base * tilt
    return probs / probs.sum()


def make_synthetic(
    rows: int,
    n_numeric: int = 20,
    n_categorical: int = 5,
    task: str = "classification",
    seed: int = 0,
    drift: dict[str, float] | None = None,
) -> pd.DataFrame:
    """A synthetic table: ``num_00..`` (float32 normals), ``cat_00..`` (strings), ``target``.

    The target depends on num_00..num_02 and cat_00, so models learn something. ``drift`` maps a
    column name to a strength: numeric columns shift their mean by ``strength`` standard
    deviations; categorical columns reweight their categories (exp tilt). The target is computed
    from the (drifted) features, i.e. covariate shift with an unchanged concept.
    """
    if rows < 1:
        raise DataError(f"rows must be at least 1, got {rows}")
    if n_numeric < 0 or n_categorical < 0:
        raise DataError("n_numeric and n_categorical must not be negative")
    if task not in ("classification", "regression"):
        raise DataError(f"unknown task {task!r}: expected 'classification' or 'regression'")
    drift = dict(drift or {})
    num_names = _numeric_names(n_numeric)
    cat_names = _categorical_names(n_categorical)
    unknown = sorted(set(drift) - set(num_names) - set(cat_names))
    if unknown:
        raise DataError(f"drift names unknown columns {unknown}; columns are num_NN and cat_NN")

    rng = np.random.default_rng(seed)
    data: dict[str, np.ndarray] = {}
    for name in num_names:
        col = rng.standard_normal(rows, dtype=np.float32)
        if name in drift:
            col += np.float32(drift[name])
        data[name] = col
    for i, name in enumerate(cat_names):
        cats = _categories(i)
        codes = rng.choice(len(cats), size=rows, p=_category_probs(len(cats), drift.get(name, 0.0)))
        # Indexing an object array shares the few string objects: fast and small.
        data[name] = np.asarray(cats, dtype=object)[codes]

    signal = np.zeros(rows, dtype=np.float64)
    weights = (1.5, -1.0, 0.75)
    for weight, name in zip(weights, num_names, strict=False):
        signal += weight * data[name]
    if cat_names:
        signal += np.where(data[cat_names[0]] == _categories(0)[0], 1.0, -0.5)
    noise = rng.standard_normal(rows)
    if task == "classification":
        data[SYNTHETIC_TARGET] = (signal + 0.5 * noise > 0).astype(np.int64)
    else:
        data[SYNTHETIC_TARGET] = signal + 0.3 * noise
    return pd.DataFrame(data, copy=False)


_CITIES = ["Berlin", "Lisbon", "Oslo", "Porto", "Rome", "Vienna"]
_PLANS = ["basic", "pro", "team"]
_WORDS = [
    "great",
    "service",
    "slow",
    "delivery",
    "friendly",
    "staff",
    "price",
    "too",
    "high",
    "will",
    "come",
    "back",
    "never",
    "again",
    "support",
    "answered",
    "quickly",
    "app",
    "keeps",
    "crashing",
    "love",
    "the",
    "new",
    "features",
    "billing",
    "was",
    "confusing",
]


def make_messy(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    """A frame like a real export: ids, nulls, free text, date strings, mixed categoricals.

    Columns: customer_id (unique ids, to be dropped), age (ints with nulls), monthly_spend
    (floats with nulls), city (categorical with nulls), plan, is_active (booleans),
    signup_date (ISO date strings with nulls), comment (multi-word text with nulls) and the
    target ``churned`` ("yes"/"no", a few nulls that training must skip).
    """
    if rows < 10:
        raise DataError(f"make_messy needs at least 10 rows, got {rows}")
    rng = np.random.default_rng(seed)

    def with_nulls(values: np.ndarray, share: float) -> np.ndarray:
        out = values.astype(object)
        out[rng.random(rows) < share] = np.nan
        return out

    age = rng.integers(18, 80, rows).astype(float)
    age[rng.random(rows) < 0.05] = np.nan
    spend = np.round(rng.gamma(2.0, 20.0, rows), 2)
    spend[rng.random(rows) < 0.08] = np.nan
    city = with_nulls(rng.choice(_CITIES, rows), 0.05)
    plan = rng.choice(_PLANS, rows, p=[0.5, 0.3, 0.2])
    active = rng.random(rows) < 0.7
    days = rng.integers(0, 3 * 365, rows)
    dates = (np.datetime64("2021-01-01") + days.astype("timedelta64[D]")).astype(str)
    signup = with_nulls(dates, 0.04)
    comment = with_nulls(
        np.array([" ".join(rng.choice(_WORDS, rng.integers(4, 12))) for _ in range(rows)]),
        0.2,
    )
    logit = (
        -0.04 * (np.nan_to_num(age, nan=45.0) - 45)
        + 0.02 * (np.nan_to_num(spend, nan=40.0) - 40)
        + np.where(plan == "basic", 1.0, -0.5)
        - 1.2 * active
    )
    churned = np.where(logit + rng.normal(0, 0.7, rows) > 0, "yes", "no").astype(object)
    churned[rng.random(rows) < 0.02] = np.nan
    return pd.DataFrame(
        {
            MESSY_ID: [f"C-{seed:02d}-{i:07d}" for i in range(rows)],
            "age": age,
            "monthly_spend": spend,
            "city": city,
            "plan": plan,
            "is_active": active,
            "signup_date": signup,
            "comment": comment,
            MESSY_TARGET: churned,
        }
    )


def table_format(path: str | Path) -> str | None:
    """``"parquet"``, ``"csv"`` or ``None`` from a file name's suffix."""
    name = str(path).lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    return None


def table_stem(path: str | Path) -> str:
    """A data file's name without its table and compression suffixes:
    ``penguins.csv.gz`` -> ``penguins``, ``sales.2024.parquet`` -> ``sales.2024``."""
    name = Path(str(path)).name
    lowered = name.lower()
    for suffix in COMPRESSION_SUFFIXES:
        if lowered.endswith(suffix):
            name, lowered = name[: -len(suffix)], lowered[: -len(suffix)]
            break
    for suffix in PARQUET_SUFFIXES + _TEXT_SUFFIXES:
        if lowered.endswith(suffix) and len(lowered) > len(suffix):
            return name[: -len(suffix)]
    return Path(name).stem or name


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` as CSV or Parquet, chosen by the suffix of ``path``; returns the path."""
    path = Path(path)
    fmt = table_format(path)
    if fmt is None:
        raise DataError(f"cannot tell the format of {path}: use a .csv or .parquet suffix")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        df.to_parquet(path, index=False, engine="pyarrow")
    else:
        df.to_csv(path, index=False)
    return path
