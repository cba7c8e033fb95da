"""Feature preparation: the train/test split and the preprocessing that lives inside the model.

Preprocessing is a ``ColumnTransformer`` placed inside the sklearn ``Pipeline`` so the served
model takes raw feature columns (by name) and nothing has to be re-implemented at serving time.
Every helper used by a ``FunctionTransformer`` is a module-level function so the fitted
pipeline pickles by reference and loads anywhere ``kfops`` is installed.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from kfops.contract_model import BOOL_WORDS, Contract
from kfops.errors import ConfigError, DataError

# Bounds that keep the feature matrix small and dense enough for every estimator.
TEXT_MAX_FEATURES = 200
MAX_CATEGORIES = 100
DATETIME_PARTS: tuple[str, ...] = ("year", "month", "day", "dayofweek", "epoch")


# --- module-level transformers (picklable by reference) ------------------------------------
# They accept both raw frames (CSV strings, Python bools) and frames already put into contract
# dtypes by ``kfops.contract.coerce_frame``, so training and serving agree whichever they see.


def _frame(X: Any) -> pd.DataFrame:
    return X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)


def to_float_frame(X: Any) -> np.ndarray:
    """Numeric columns as float64; anything unparsable becomes NaN (then imputed)."""
    frame = _frame(X)
    if all(ptypes.is_numeric_dtype(dtype) for dtype in frame.dtypes):
        return frame.to_numpy(dtype=np.float64, na_value=np.nan)  # fast path (serving)
    columns = [
        col.to_numpy(dtype=np.float64, na_value=np.nan)
        if ptypes.is_numeric_dtype(col.dtype)
        else pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        for _, col in frame.items()
    ]
    return np.column_stack(columns)


def to_bool_float(X: Any) -> np.ndarray:
    """Boolean columns as 1.0/0.0 with NaN for missing or unreadable values.

    Same reading as ``coerce_frame``: True/"yes"/"t"/1 are 1.0, so a raw frame and a coerced
    one give the same features.
    """
    frame = _frame(X)
    columns = []
    for _, col in frame.items():
        if ptypes.is_bool_dtype(col.dtype) or ptypes.is_numeric_dtype(col.dtype):
            values = col.to_numpy(dtype=np.float64, na_value=np.nan)
            values = np.where(np.isin(values, (0.0, 1.0)), values, np.nan)
        else:
            words = col.map(
                lambda v: v if v is None or isinstance(v, float) else str(v).strip().lower()
            )
            values = words.map(BOOL_WORDS).to_numpy(dtype=np.float64, na_value=np.nan)
        columns.append(values)
    return np.column_stack(columns)


def to_category_strings(X: Any) -> np.ndarray:
    """Categorical columns as strings with NaN for missing values.

    OneHotEncoder needs one value type per column; served JSON may send ``1`` where training
    saw ``1.0``, so every value is compared by its string form.
    """
    frame = _frame(X)
    columns = []
    for _, col in frame.items():
        if ptypes.infer_dtype(col, skipna=True) in ("string", "empty"):
            # fast path: already strings; only unify the null marker
            columns.append(col.astype(object).where(col.notna(), np.nan).to_numpy(dtype=object))
        else:
            columns.append(col.astype(object).map(_category_string).to_numpy(dtype=object))
    return np.column_stack(columns) if columns else np.empty((len(frame), 0), dtype=object)


def _category_string(value: Any) -> Any:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return np.nan
    # 1.0 and 1 are the same category.
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def to_text(X: Any) -> np.ndarray:
    """One text column as a 1-D array of strings, missing values as ""."""
    column = _frame(X).iloc[:, 0]
    return column.where(column.notna(), "").astype(str).to_numpy(dtype=object)


def _to_utc_datetimes(col: pd.Series) -> pd.Series:
    """Parse to tz-aware UTC (naive values are taken as UTC); unreadable values become NaT."""
    if ptypes.is_datetime64_any_dtype(col.dtype):
        values = col
    else:
        text = col.where(col.isna(), col.astype(str))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "could not infer format" is expected
            values = pd.to_datetime(text, errors="coerce", utc=True)
            retry = values.isna() & text.notna()
            if retry.any():  # mixed date styles: slower per-value parsing for the rest
                values = values.copy()
                values[retry] = pd.to_datetime(
                    text[retry], errors="coerce", utc=True, format="mixed"
                )
    if getattr(values.dt, "tz", None) is None:
        return values.dt.tz_localize("UTC")
    return values.dt.tz_convert("UTC")


def datetime_parts(X: Any) -> np.ndarray:
    """Each datetime column as year, month, day, dayofweek and epoch seconds (NaN if missing)."""
    frame = _frame(X)
    parts: list[np.ndarray] = []
    for _, col in frame.items():
        values = _to_utc_datetimes(col)
        epoch = (values - pd.Timestamp("1970-01-01", tz="UTC")) / pd.Timedelta(seconds=1)
        for series in (
            values.dt.year,
            values.dt.month,
            values.dt.day,
            values.dt.dayofweek,
            epoch,
        ):
            parts.append(series.to_numpy(dtype=np.float64, na_value=np.nan))
    if not parts:
        return np.empty((len(frame), 0))
    return np.column_stack(parts)


def datetime_part_names(transformer: Any, input_features: Any) -> list[str]:
    """Output names for ``datetime_parts`` (FunctionTransformer feature_names_out)."""
    return [f"{name}_{part}" for name in input_features for part in DATETIME_PARTS]


class StableTfidfVectorizer(TfidfVectorizer):
    """TfidfVectorizer whose pickle is the same in every process.

    sklearn stores ``_stop_words_id = id(self.stop_words)`` (a memory address, used only to
    avoid repeating a warning), which would make model bytes differ between identical runs.
    """

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop("_stop_words_id", None)
        return state


# --- public API ------------------------------------------------------------------------------


def feature_frame(df: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """The contract's feature columns of ``df`` in contract order (extra columns dropped)."""
    missing = [name for name in contract.feature_names if name not in df.columns]
    if missing:
        raise DataError(f"data is missing feature column(s) {missing} required by the contract")
    return df.loc[:, contract.feature_names]


def target_series(df: pd.DataFrame, contract: Contract) -> pd.Series:
    """The target column with labels shaped as in the contract (integral floats -> ints)."""
    name = contract.target.name
    if name not in df.columns:
        raise DataError(f"data has no target column {name!r}")
    y = df[name]
    if contract.task == "regression":
        return pd.to_numeric(y, errors="coerce").astype(np.float64)
    classes = contract.target.classes or ()
    # A null somewhere turns an int label column into floats: bring 1.0 back to 1 once the
    # nulls are gone (sklearn needs a numeric or string dtype, not objects, to see classes).
    if (
        classes
        and all(isinstance(c, int | np.integer) and not isinstance(c, bool) for c in classes)
        and pd.api.types.is_float_dtype(y)
        and not y.isna().any()
        and bool((y == y.round()).all())
    ):
        return y.astype(np.int64)
    return y


def drop_null_target(df: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """Rows whose target is known: unlabeled rows can neither train nor evaluate."""
    name = contract.target.name
    if name not in df.columns:
        raise DataError(f"data has no target column {name!r}")
    kept = df[target_series(df, contract).notna()]
    if kept.empty:
        raise DataError(f"no rows with a non-null target {name!r}")
    return kept


def split(
    df: pd.DataFrame, contract: Contract, test_size: float = 0.2, seed: int = 42
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deterministic train/test split, stratified by class for classification.

    Rows with a null target are removed first. Returns (train, test) with the original index.
    """
    if not isinstance(test_size, int | float) or not 0.0 < float(test_size) < 1.0:
        raise ConfigError(f"test_size must be a fraction between 0 and 1, got {test_size!r}")
    data = drop_null_target(df, contract)
    n_test = int(np.ceil(len(data) * float(test_size)))
    if n_test < 1 or len(data) - n_test < 1:
        raise DataError(
            f"{len(data)} labeled row(s) are too few for a train/test split "
            f"with test_size={test_size}"
        )
    stratify = None
    if contract.task == "classification":
        y = target_series(data, contract)
        counts = y.astype(str).value_counts()
        rare = counts[counts < 2]
        if not rare.empty:
            label = rare.index[0]
            raise DataError(
                f"class {label!r} of target {contract.target.name!r} has only "
                f"{int(rare.iloc[0])} labeled row(s); a stratified split needs at least 2 per "
                "class (add rows or remove the class)"
            )
        if n_test < len(counts):
            raise ConfigError(
                f"test_size={test_size} gives {n_test} test row(s) for {len(counts)} classes; "
                "raise test_size so every class can appear in the test split"
            )
        if len(data) - n_test < len(counts):
            raise ConfigError(
                f"test_size={test_size} leaves {len(data) - n_test} training row(s) for "
                f"{len(counts)} classes; lower test_size so every class can be learned"
            )
        stratify = y.astype(str)
    train, test = train_test_split(
        data, test_size=float(test_size), random_state=seed, stratify=stratify, shuffle=True
    )
    if stratify is not None:
        # Rounding can put all rows of a 2-row class into the test split at large test sizes.
        missing = sorted(set(stratify) - set(stratify.loc[train.index]))
        if missing:
            raise DataError(
                f"class {missing[0]!r} of target {contract.target.name!r} has too few rows to "
                f"appear in the training split at test_size={test_size}; add rows or lower "
                "test_size"
            )
    return train, test


def build_preprocessor(contract: Contract) -> ColumnTransformer:
    """Column-wise preprocessing for the contract's features (selected by name).

    Selection by name makes column order irrelevant and ignores columns outside the contract.
    The output is dense: bounded one-hot and TF-IDF widths keep it small, and some estimators
    (HistGradientBoosting) accept only dense input.
    """
    transformers: list[tuple[str, Any, Any]] = []
    numeric = contract.features_of("numeric")
    if numeric:
        transformers.append(
            (
                "numeric",
                Pipeline(
                    [
                        (
                            "to_float",
                            FunctionTransformer(to_float_frame, feature_names_out="one-to-one"),
                        ),
                        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                        ("scale", StandardScaler()),
                    ]
                ),
                numeric,
            )
        )
    booleans = contract.features_of("boolean")
    if booleans:
        transformers.append(
            (
                "boolean",
                Pipeline(
                    [
                        (
                            "to_float",
                            FunctionTransformer(to_bool_float, feature_names_out="one-to-one"),
                        ),
                        (
                            "impute",
                            SimpleImputer(strategy="most_frequent", keep_empty_features=True),
                        ),
                    ]
                ),
                booleans,
            )
        )
    categorical = contract.features_of("categorical")
    if categorical:
        transformers.append(
            (
                "categorical",
                Pipeline(
                    [
                        (
                            "to_string",
                            FunctionTransformer(
                                to_category_strings, feature_names_out="one-to-one"
                            ),
                        ),
                        (
                            "impute",
                            SimpleImputer(
                                strategy="most_frequent",
                                missing_values=np.nan,
                                keep_empty_features=True,
                            ),
                        ),
                        (
                            "onehot",
                            OneHotEncoder(
                                handle_unknown="ignore",
                                max_categories=MAX_CATEGORIES,
                                sparse_output=False,
                            ),
                        ),
                    ]
                ),
                categorical,
            )
        )
    for name in contract.features_of("text"):
        transformers.append(
            (
                f"text_{name}",
                Pipeline(
                    [
                        ("to_text", FunctionTransformer(to_text)),
                        ("tfidf", StableTfidfVectorizer(max_features=TEXT_MAX_FEATURES)),
                    ]
                ),
                [name],
            )
        )
    datetimes = contract.features_of("datetime")
    if datetimes:
        transformers.append(
            (
                "datetime",
                Pipeline(
                    [
                        (
                            "parts",
                            FunctionTransformer(
                                datetime_parts, feature_names_out=datetime_part_names
                            ),
                        ),
                        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                        ("scale", StandardScaler()),
                    ]
                ),
                datetimes,
            )
        )
    if not transformers:
        raise DataError("the contract has no features to train on")
    return ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)
