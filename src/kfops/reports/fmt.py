"""The one number formatter of every report: how a metric, a score or a p-value is shown."""

from __future__ import annotations

import math
from typing import Any

METRIC = ".4f"  # metrics and drift scores: 0.9581
SHORT = ".3f"  # numbers inside a sentence (blessing reasons): 0.958
SIGNIFICANT = ".4g"  # values of any scale (data statistics, tuning scores): 3750, 0.0001234
P_VALUE = ".3g"  # p-values: 0.000123, 0.05
VALUE = ".6g"  # data values (examples, bounds): 7349.999999999999 -> 7350, 48.6 -> 48.6
SHARE = ".1%"  # shares (null share, importance): 4.0%


def number(value: float | None, spec: str = METRIC, missing: str = "") -> str:
    """``value`` formatted with ``spec``; ``missing`` for None and NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    return format(value, spec)


def value(item: Any) -> str:
    """A data value as a person reads it: floats rounded to 6 significant digits (float noise
    such as ``7349.999999999999`` gone), everything else as ``str``; None as ``null``."""
    if item is None:
        return "null"
    if isinstance(item, float):
        return number(item, VALUE, missing="nan")
    return str(item)


def values(items: Any) -> str:
    """A list of data values: ``[7350, 'Dream', null]``."""
    return "[" + ", ".join(repr(i) if isinstance(i, str) else value(i) for i in items) + "]"


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")
