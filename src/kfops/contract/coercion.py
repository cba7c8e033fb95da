"""Coercion: put a raw frame (CSV, Parquet, JSON records) into the dtypes its contract expects.

Training calls it before fitting (and the fitted pipeline again, inside), serving and
validation before checking, so raw features always reach the model with the same dtypes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from kfops.contract._values import examples
from kfops.contract_model import BOOL_WORDS, Contract
from kfops.parsing import parse_datetime_column


@dataclass(frozen=True)
class LostValues:
    """Values of one column that could not be coerced to its kind (they became null)."""

    column: str
    kind: str
    count: int
    examples: list[Any]


def parse_datetimes(values: pd.Series, formats: Sequence[str] = ()) -> pd.Series:
    """Parse to naive UTC ``datetime64[ns]``; unparseable values become NaT.

    ``kfops.parsing.parse_datetime_column`` (the recorded ``formats`` first, then pandas'
    inference, then a per-value pass), the reading serving shares.
    """
    out = parse_datetime_column(values, formats)
    return out.dt.tz_localize(None).astype("datetime64[ns]")


def _all_str(col: pd.Series) -> bool:
    return ptypes.infer_dtype(col, skipna=True) in ("string", "empty")


def _as_object(col: pd.Series, as_text: bool) -> pd.Series:
    out = col.astype(object) if col.dtype != object else col
    if as_text and not _all_str(out):
        out = out.map(lambda v: v if isinstance(v, str) or v is None or v != v else str(v))
    # One null marker (np.nan) whatever the source used (None, pd.NA, NaN).
    return out.where(out.notna(), np.nan)


def _coerce_column(
    col: pd.Series, kind: str, categories: Sequence[Any] | None, formats: Sequence[str] = ()
) -> pd.Series:
    if kind == "numeric":
        if ptypes.is_bool_dtype(col.dtype) or ptypes.is_numeric_dtype(col.dtype):
            return col.astype("float64")
        return pd.to_numeric(col, errors="coerce").astype("float64")
    if kind == "boolean":
        if ptypes.is_bool_dtype(col.dtype):
            return col.astype("float64")
        if ptypes.is_numeric_dtype(col.dtype):
            num = col.astype("float64")
            return num.where(num.isin([0.0, 1.0]))
        return col.astype(str).str.strip().str.lower().map(BOOL_WORDS).astype("float64")
    if kind == "datetime":
        return parse_datetimes(col, formats)
    if kind == "categorical":
        as_text = categories is None or all(isinstance(c, str) for c in categories)
        return _as_object(col, as_text)
    return _as_object(col, True)  # text


def coerce_frame(df: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """Put a raw frame (CSV, Parquet, JSON records) into the dtypes the contract expects.

    numeric -> float64; boolean -> float64 0/1 (NaN unknown); datetime -> naive UTC
    datetime64[ns]; categorical/text -> object with np.nan for missing. Values that cannot be
    coerced become null (``validate`` reports them). Columns not in the contract pass through;
    missing contract columns are not added. The input is not modified.
    """
    return _coerce(df, contract, None)


def coerce_counting_losses(
    df: pd.DataFrame, contract: Contract
) -> tuple[pd.DataFrame, list[LostValues]]:
    """``coerce_frame`` plus, per column, the values it could not coerce (for validation)."""
    lost: list[LostValues] = []
    return _coerce(df, contract, lost), lost


def _coerce(df: pd.DataFrame, contract: Contract, losses: list[LostValues] | None) -> pd.DataFrame:
    out = df.copy(deep=False)
    specs: list[tuple[str, str, Sequence[Any] | None, Sequence[str]]] = [
        (f.name, f.kind, f.categories, f.formats or ()) for f in contract.features
    ]
    target = contract.target
    if target.kind == "numeric":
        specs.append((target.name, "numeric", None, ()))
    elif target.classes is not None and all(isinstance(c, str) for c in target.classes):
        specs.append((target.name, "categorical", target.classes, ()))
    for name, kind, categories, formats in specs:
        if name not in out.columns:
            continue
        before = out[name]
        after = _coerce_column(before, kind, categories, formats)
        if losses is not None:
            lost = after.isna() & before.notna()
            count = int(lost.sum())
            if count:
                losses.append(LostValues(name, kind, count, examples(before[lost])))
        out[name] = after
    return out
