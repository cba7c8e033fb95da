"""Feature preparation: the train/test split and the preprocessing that lives inside the model.

Preprocessing is a two-step ``Pipeline`` placed inside the model so the served model takes raw
feature columns (by name) and nothing has to be re-implemented at serving time:

1. ``coerce``: ``kfops.coercion.CoerceStep``, kfops' own, stateless reading of raw values
   (numbers from text, booleans from words, dates to parts, categories to strings, text to
   tokens), the same function the ONNX twin's serving path calls before its graph;
2. ``encode``: a ``ColumnTransformer`` of standard, fitted scikit-learn transformers only
   (imputer, scaler, one-hot, TF-IDF), which skl2onnx converts (``kfops.twin``).

Every helper the pipeline references is module-level, so the fitted pipeline pickles by
reference and loads anywhere ``kfops`` is installed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from kfops.coercion import (
    DATETIME_PARTS,
    JOINED_TOKEN_PATTERN,
    MISSING_CATEGORY,
    CoerceStep,
    Coercion,
    booleans,
    category_strings,
    numbers,
)
from kfops.coercion import datetime_parts as _datetime_parts
from kfops.contract_model import Contract
from kfops.errors import ConfigError, DataError

# Bounds that keep the feature matrix small and dense enough for every estimator.
TEXT_MAX_FEATURES = 200
MAX_CATEGORIES = 100


# --- legacy transformers ---------------------------------------------------------------------
# Model files written before the ``coerce`` step existed reference these functions by name from
# FunctionTransformers inside their pipelines; they stay so those files keep loading. They read
# values with the ``kfops.coercion`` rules. New pipelines do not use them.


def _frame(X: Any) -> pd.DataFrame:
    return X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)


def _stack(columns: list[np.ndarray], rows: int, dtype: Any = np.float64) -> np.ndarray:
    return np.column_stack(columns) if columns else np.empty((rows, 0), dtype=dtype)


def to_float_frame(X: Any) -> np.ndarray:
    """Legacy: numeric columns as float64, unreadable values NaN."""
    frame = _frame(X)
    return _stack([numbers(col) for _, col in frame.items()], len(frame))


def to_bool_float(X: Any) -> np.ndarray:
    """Legacy: boolean columns as 1.0/0.0, NaN for missing or unreadable values."""
    frame = _frame(X)
    return _stack([booleans(col) for _, col in frame.items()], len(frame))


def to_category_strings(X: Any) -> np.ndarray:
    """Legacy: categorical columns as strings with NaN for missing values."""
    frame = _frame(X)
    columns = []
    for _, col in frame.items():
        values = category_strings(col)
        values[values == MISSING_CATEGORY] = np.nan
        columns.append(values)
    return _stack(columns, len(frame), dtype=object)


def to_text(X: Any) -> np.ndarray:
    """Legacy: one text column as a 1-D array of strings, missing values as ""."""
    column = _frame(X).iloc[:, 0]
    return column.where(column.notna(), "").astype(str).to_numpy(dtype=object)


def datetime_parts(X: Any) -> np.ndarray:
    """Legacy: each datetime column as its five DATETIME_PARTS (NaN if missing)."""
    frame = _frame(X)
    return _stack([_datetime_parts(col) for _, col in frame.items()], len(frame))


def datetime_part_names(transformer: Any, input_features: Any) -> list[str]:
    """Legacy: output names for ``datetime_parts`` (FunctionTransformer feature_names_out)."""
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


def build_preprocessor(contract: Contract) -> Pipeline:
    """Raw feature columns (selected by name) -> dense feature matrix: ``coerce`` then ``encode``.

    Selection by name makes column order irrelevant and ignores columns outside the contract.
    ``encode`` holds standard transformers only, fitted on the coerced inputs (``f<i>`` names,
    see ``kfops.coercion``). The output is dense: bounded one-hot and TF-IDF widths keep it
    small, and some estimators (HistGradientBoosting) accept only dense input.
    """
    coercion = Coercion.from_contract(contract)
    transformers: list[tuple[str, Any, Any]] = []
    numeric = coercion.names_of("numeric")
    if numeric:
        transformers.append(
            (
                "numeric",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                        ("scale", StandardScaler()),
                    ]
                ),
                numeric,
            )
        )
    booleans_ = coercion.names_of("boolean")
    if booleans_:
        transformers.append(
            (
                "boolean",
                SimpleImputer(strategy="most_frequent", keep_empty_features=True),
                booleans_,
            )
        )
    categorical = coercion.names_of("categorical")
    if categorical:
        transformers.append(
            (
                "categorical",
                Pipeline(
                    [
                        (
                            "impute",
                            SimpleImputer(
                                strategy="most_frequent",
                                missing_values=MISSING_CATEGORY,
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
    for name in coercion.names_of("text"):
        # Tokens come from the coerce step (lower-case words joined by spaces); the vectorizer
        # only splits on spaces and learns the vocabulary. A scalar column gives it 1-D input.
        transformers.append(
            (
                f"text_{name}",
                StableTfidfVectorizer(
                    max_features=TEXT_MAX_FEATURES,
                    lowercase=False,
                    token_pattern=JOINED_TOKEN_PATTERN,
                ),
                name,
            )
        )
    datetimes = coercion.names_of("datetime")
    if datetimes:
        transformers.append(
            (
                "datetime",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                        ("scale", StandardScaler()),
                    ]
                ),
                datetimes,
            )
        )
    if not transformers:
        raise DataError("the contract has no features to train on")
    return Pipeline(
        [
            ("coerce", CoerceStep(coercion.features, coercion.formats)),
            ("encode", ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)),
        ]
    )
