"""Describe: a Markdown data-statistics table of a frame under its contract (for dashboards)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from pandas.api import types as ptypes

from kfops.contract._values import to_jsonable
from kfops.contract.coercion import coerce_frame
from kfops.contract_model import Contract
from kfops.reports import fmt


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return fmt.number(value, fmt.SIGNIFICANT)
    return "" if value is None else str(value)


def describe(df: pd.DataFrame, contract: Contract) -> str:
    """A Markdown data-statistics table (one row per contract column) for dashboards."""
    frame = coerce_frame(df, contract)
    lines = [
        "## Data statistics",
        "",
        f"{len(df)} rows, {len(df.columns)} columns; task {contract.task}, "
        f"target `{contract.target.name}`.",
        "",
        "| column | kind | nulls | min | mean | max | top values |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    rows: list[tuple[str, str]] = [(f.name, f.kind) for f in contract.features]
    target_kind = "numeric" if contract.target.kind == "numeric" else "categorical"
    rows.append((contract.target.name, f"target ({target_kind})"))
    for name, kind in rows:
        if name not in frame.columns:
            lines.append(f"| {name} | {kind} | missing |  |  |  |  |")
            continue
        col = frame[name]
        nulls = int(col.isna().sum())
        lo = mean = hi = top = ""
        if kind in ("numeric", "target (numeric)", "boolean") and ptypes.is_numeric_dtype(col):
            lo, mean, hi = _fmt(col.min()), _fmt(col.mean()), _fmt(col.max())
        elif kind == "datetime":
            nonnull = col.dropna()
            if len(nonnull):
                lo, hi = nonnull.min().isoformat(), nonnull.max().isoformat()
        elif kind == "text":
            lengths = col.dropna().astype(str).str.len()
            mean = f"{lengths.mean():.1f} chars" if len(lengths) else ""
        if kind in ("categorical", "boolean", "target (categorical)"):
            counts = col.value_counts(dropna=True).head(3)
            top = ", ".join(f"{to_jsonable(k)} ({v})" for k, v in counts.items())
            top = top.replace("|", "\\|")
        lines.append(f"| {name} | {kind} | {nulls} | {lo} | {mean} | {hi} | {top} |")
    if contract.dropped:
        lines += ["", "Dropped columns:", ""]
        lines += [f"- `{d['name']}`: {d['reason']}" for d in contract.dropped]
    return "\n".join(lines) + "\n"
