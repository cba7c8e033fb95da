"""Task inference: classification or regression, decided from the target column, with the reason.

``kfops run`` calls ``infer_task`` when ``--task`` is not given and prints the reason, so a user
sees why (and how to override it). The rules:

- booleans and text labels -> classification;
- numbers with a fractional part (2.5, 18.2) -> regression: they are measurements, not labels;
- whole numbers with at most ``MAX_INTEGER_CLASSES`` distinct values, on average at least
  ``MIN_ROWS_PER_CLASS`` rows per value and none seen only once (0/1 flags, ratings, cylinder
  counts) -> classification;
- whole numbers with more distinct values, too few rows per value, or values seen once (a
  class of one row can be neither learned nor tested: counts, prices, ages) -> regression.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from kfops.errors import DataError

MAX_INTEGER_CLASSES = 20  # more distinct whole numbers than this is a quantity
MIN_ROWS_PER_CLASS = 5  # fewer rows per distinct whole number on average is a quantity


@dataclass(frozen=True)
class TaskChoice:
    """The task for a target and the sentence that explains it."""

    task: str
    reason: str


def infer_task(column: pd.Series, name: str) -> TaskChoice:
    """Classification or regression for target ``column`` (named ``name``), with the reason."""
    values = column.dropna()
    if len(values) == 0:
        raise DataError(f"target column {name!r} has only null values")
    rows = len(values)
    try:
        distinct = int(values.nunique())
    except TypeError:  # unhashable cells (lists from nested JSON)
        raise DataError(f"target column {name!r} holds values that are not scalars") from None
    if ptypes.is_bool_dtype(column.dtype):
        return TaskChoice("classification", f"target {name!r} is boolean: classification")
    if not ptypes.is_numeric_dtype(column.dtype):
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.notna().all():  # numbers stored as text (Parquet strings, mixed sources)
            values = numeric
        else:
            return TaskChoice(
                "classification",
                f"target {name!r} holds text labels ({distinct} distinct values): classification",
            )
    floats = values.astype("float64").to_numpy()
    if not np.all(np.isfinite(floats)):
        raise DataError(f"target column {name!r} holds infinite values")
    if not np.all(floats == np.round(floats)):
        return TaskChoice(
            "regression",
            f"target {name!r} is numeric with {distinct} distinct values, not all whole "
            "numbers: regression",
        )
    if distinct > MAX_INTEGER_CLASSES:
        return TaskChoice(
            "regression",
            f"target {name!r} is numeric with {distinct} distinct whole-number values (more "
            f"than {MAX_INTEGER_CLASSES}): regression",
        )
    if distinct > 2 and rows / distinct < MIN_ROWS_PER_CLASS:
        return TaskChoice(
            "regression",
            f"target {name!r} is numeric with {distinct} distinct values in {rows} rows (fewer "
            f"than {MIN_ROWS_PER_CLASS} rows per value): regression",
        )
    once = int((values.value_counts() == 1).sum())
    if distinct > 2 and once:
        return TaskChoice(
            "regression",
            f"target {name!r} is numeric with {distinct} distinct whole-number values, {once} "
            "of them seen only once (too rare to learn as classes): regression",
        )
    return TaskChoice(
        "classification",
        f"target {name!r} has {distinct} distinct whole-number values in {rows} rows: "
        "classification (use --task regression if it is a quantity)",
    )
