"""The one number formatter of every report: how a metric, a score or a p-value is shown."""

from __future__ import annotations

import math

METRIC = ".4f"  # metrics and drift scores: 0.9581
SHORT = ".3f"  # numbers inside a sentence (blessing reasons): 0.958
SIGNIFICANT = ".4g"  # values of any scale (data statistics, tuning scores): 3750, 0.0001234
P_VALUE = ".3g"  # p-values: 0.000123, 0.05


def number(value: float | None, spec: str = METRIC, missing: str = "") -> str:
    """``value`` formatted with ``spec``; ``missing`` for None and NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    return format(value, spec)


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")
