"""JSON-safe values and short example lists, shared by inference, validation and describe."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

MAX_EXAMPLES = 5


def to_jsonable(value: Any) -> Any:
    """A plain Python value for JSON: numpy scalars unwrapped, NaN -> None, dates -> ISO."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bool | int | str):
        return value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def sorted_domain(values: Iterable[Any]) -> tuple[Any, ...]:
    items = {to_jsonable(v) for v in values}
    items.discard(None)
    try:
        return tuple(sorted(items))
    except TypeError:  # mixed python types: order by type name, then text
        return tuple(sorted(items, key=lambda v: (type(v).__name__, str(v))))


def examples(values: pd.Series, limit: int = MAX_EXAMPLES) -> list[Any]:
    out: list[Any] = []
    for value in pd.unique(values.to_numpy()):
        out.append(to_jsonable(value))
        if len(out) >= limit:
            break
    return out
