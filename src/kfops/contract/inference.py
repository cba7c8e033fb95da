"""Inference: a data contract from training data.

``infer_contract`` decides each column's kind (numeric, boolean, categorical, text, datetime),
nullability and training range or domain, drops identifiers and unusable columns with a reason,
and refuses data that cannot be trained on with one message naming every bad column.
"""

from __future__ import annotations

import difflib
import logging
import math
import re
from collections.abc import Sequence

import pandas as pd
from pandas.api import types as ptypes

from kfops.contract._values import examples, sorted_domain, to_jsonable
from kfops.contract.coercion import parse_datetimes
from kfops.contract_model import TASKS, Contract, FeatureSpec, TargetSpec
from kfops.errors import ConfigError, DataError
from kfops.parsing import date_formats

# The package's logger: callers filter "kfops.contract" whatever module inside it logs.
log = logging.getLogger("kfops.contract")

# Inference thresholds. Kept as module constants so tests and docs can name them.
SAMPLE_SIZE = 5000  # object columns: kind detection looks at this many non-null values
MIXED_NUMERIC_SHARE = 0.8  # at least this share numeric (but not all) -> "mixed types" error
DATETIME_SHARE = 0.9  # this share of values parse as dates -> datetime
TEXT_MIN_WORDS = 3  # median words per value for free text
TEXT_MIN_DISTINCT = 50
IDENTIFIER_UNIQUE_SHARE = 0.95  # near-unique single-token strings are identifiers
IDENTIFIER_MIN_ROWS = 20
MAX_CATEGORIES = 1000  # more distinct strings than this is not a usable categorical

_DATE_LIKE = re.compile(
    r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}"  # 2021-03-04, 04/03/2021, 4.3.21
    r"|[A-Za-z]{3,9}\.? \d{1,2},? \d{2,4}"  # March 4, 2021
    r"|\d{1,2} [A-Za-z]{3,9}\.? \d{2,4}"  # 4 Mar 2021
)
_ID_NAME = re.compile(r"(^|_)(id|uuid|key)$|Id$|ID$", re.IGNORECASE)


def _suggest(name: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    if not close:
        # Case-insensitive second chance: "Species" -> "species".
        lowered = {c.lower(): c for c in choices}
        close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
        close = [lowered[c] for c in close]
    return f"; did you mean {close[0]!r}?" if close else f"; columns are {list(choices)}"


def _sample(nonnull: pd.Series) -> pd.Series:
    if len(nonnull) <= SAMPLE_SIZE:
        return nonnull
    return nonnull.sample(SAMPLE_SIZE, random_state=0)


class _ColumnProblem(Exception):
    """One column cannot be used; collected so the user sees every bad column at once."""


def _object_kind(name: str, col: pd.Series, nonnull: pd.Series) -> tuple[str | None, str | None]:
    """Kind of an object/string column, or (None, reason) when it should be dropped."""
    sample = _sample(nonnull)
    inferred = ptypes.infer_dtype(sample, skipna=True)
    if inferred == "boolean":
        return "boolean", None

    numeric = pd.to_numeric(sample, errors="coerce")
    share = float(numeric.notna().mean())
    if share >= MIXED_NUMERIC_SHARE:
        full = pd.to_numeric(nonnull, errors="coerce")
        bad = nonnull[full.isna()]
        if len(bad) == 0:
            return "numeric", None
        raise _ColumnProblem(
            f"column {name!r} mixes numbers and text: {len(bad)} of {len(nonnull)} values are "
            f"not numbers, e.g. {examples(bad)}; clean them or drop the column"
        )

    text = sample.astype(str)
    if text.str.contains(_DATE_LIKE).mean() >= DATETIME_SHARE:
        parsed = parse_datetimes(sample)
        if parsed.notna().mean() >= DATETIME_SHARE:
            return "datetime", None

    distinct = int(nonnull.nunique())
    unique_share = distinct / len(nonnull)
    median_words = float(text.str.split().str.len().median())
    if median_words >= TEXT_MIN_WORDS and (distinct > TEXT_MIN_DISTINCT or unique_share > 0.5):
        return "text", None
    if unique_share >= IDENTIFIER_UNIQUE_SHARE and len(nonnull) >= IDENTIFIER_MIN_ROWS:
        return None, f"identifier: {math.floor(unique_share * 100)}% unique values"
    if distinct > MAX_CATEGORIES:
        return None, (f"high cardinality: {distinct} distinct values (more than {MAX_CATEGORIES})")
    return "categorical", None


def _feature_spec(
    name: str, col: pd.Series, null_elsewhere: bool = False
) -> tuple[FeatureSpec | None, str | None]:
    """A FeatureSpec for one column, or (None, drop reason). Raises _ColumnProblem.

    ``null_elsewhere``: the column is null in rows left out of training (a null target), so
    it is nullable: a row of the file is a valid request (the imputers fill it)."""
    nonnull = col.dropna()
    if len(nonnull) == 0:
        raise _ColumnProblem(
            f"column {name!r} has only null values; drop it with --drop-columns {name}"
        )
    nullable = len(nonnull) < len(col) or null_elsewhere
    dtype = col.dtype
    kind: str | None
    if ptypes.is_bool_dtype(dtype):
        kind = "boolean"
    elif ptypes.is_numeric_dtype(dtype):
        kind = "numeric"
    elif ptypes.is_datetime64_any_dtype(dtype):
        kind = "datetime"
    elif isinstance(dtype, pd.CategoricalDtype):
        kind = "categorical"
    else:
        try:
            kind, reason = _object_kind(name, col, nonnull)
        except TypeError as exc:  # unhashable cells: lists/dicts from nested JSON
            raise _ColumnProblem(
                f"column {name!r} holds values that are not scalars (lists or dicts), e.g. "
                f"{[str(v) for v in nonnull.head(2)]}; flatten it or drop it with "
                f"--drop-columns {name}"
            ) from exc
        if kind is None:
            return None, reason

    if kind == "numeric":
        values = pd.to_numeric(nonnull, errors="coerce").astype("float64")
        lo, hi = float(values.min()), float(values.max())
        if not nullable and lo == hi:
            raise _ColumnProblem(
                f"column {name!r} is constant (every value is {to_jsonable(nonnull.iloc[0])!r}); "
                f"drop it with --drop-columns {name}"
            )
        if (
            ptypes.is_integer_dtype(dtype)
            and _ID_NAME.search(name)
            and len(nonnull) >= IDENTIFIER_MIN_ROWS
            and nonnull.is_unique
        ):
            return None, "identifier: 100% unique integer ids"
        return FeatureSpec(name, "numeric", str(dtype), nullable, min=lo, max=hi), None

    if kind == "datetime":
        # The formats the text is written in: serving reads requests with them (no skew).
        formats = None if ptypes.is_datetime64_any_dtype(dtype) else date_formats(nonnull)
        parsed = parse_datetimes(col, formats or ()).dropna()
        if len(parsed) == 0:
            raise _ColumnProblem(f"column {name!r} has no parseable dates")
        lo_ts, hi_ts = parsed.min(), parsed.max()
        if not nullable and lo_ts == hi_ts:
            raise _ColumnProblem(
                f"column {name!r} is constant (every value is {lo_ts.isoformat()!r}); "
                f"drop it with --drop-columns {name}"
            )
        return (
            FeatureSpec(
                name,
                "datetime",
                "datetime64[ns]",
                nullable,
                lo_ts.isoformat(),
                hi_ts.isoformat(),
                formats=formats or None,
            ),
            None,
        )

    distinct_values = pd.unique(nonnull.to_numpy())
    if not nullable and len(distinct_values) == 1:
        raise _ColumnProblem(
            f"column {name!r} is constant (every value is {to_jsonable(distinct_values[0])!r}); "
            f"drop it with --drop-columns {name}"
        )
    if kind == "text":
        return FeatureSpec(name, "text", str(dtype), nullable), None
    if kind == "boolean":
        domain = sorted_domain(bool(v) for v in distinct_values)
        return FeatureSpec(name, "boolean", str(dtype), nullable, categories=domain), None
    return (
        FeatureSpec(
            name, "categorical", "object", nullable, categories=sorted_domain(distinct_values)
        ),
        None,
    )


def _target_spec(df: pd.DataFrame, target: str, task: str) -> TargetSpec:
    col = df[target]
    nonnull = col.dropna()
    rows = len(nonnull)
    if task == "classification":
        classes = sorted_domain(pd.unique(nonnull.to_numpy()))
        if len(classes) < 2:
            only = classes[0] if classes else None
            raise DataError(
                f"target {target!r} has only one class ({only!r}); classification needs at "
                "least two"
            )
        limit = max(2, min(MAX_CATEGORIES, rows // 2))
        if len(classes) > limit:
            raise DataError(
                f"target {target!r} has {len(classes)} distinct values in {rows} rows: too many "
                f"classes for classification (at most {limit}); if it is a quantity to "
                "predict, use --task regression"
            )
        dtype = "object" if col.dtype == object else str(col.dtype)
        return TargetSpec(target, "categorical", dtype, classes=classes)

    if ptypes.is_bool_dtype(col.dtype) or not ptypes.is_numeric_dtype(col.dtype):
        raise DataError(
            f"regression target {target!r} is not numeric (dtype {col.dtype}, e.g. "
            f"{examples(nonnull, 3)}); use --task classification"
        )
    values = nonnull.astype("float64")
    lo, hi = float(values.min()), float(values.max())
    if lo == hi:
        raise DataError(f"regression target {target!r} is constant ({lo}); nothing to learn")
    return TargetSpec(target, "numeric", str(col.dtype), min=lo, max=hi)


def infer_contract(
    df: pd.DataFrame,
    target: str,
    task: str,
    drop: Sequence[str] = (),
    *,
    fingerprint: str | None = None,
) -> Contract:
    """Infer a data contract from training data.

    Rows with a null target are ignored (logged as a warning); ``drop`` names columns to leave
    out. ``fingerprint`` defaults to ``kfops.data.fingerprint(df).sha256``.
    """
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}: expected one of {', '.join(TASKS)}")
    if len(df) == 0:
        raise DataError("the data has no rows")
    columns = [str(c) for c in df.columns]
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise DataError(f"duplicate column names {duplicated}: every column needs its own name")
    if target not in columns:
        raise DataError(f"target column {target!r} not found{_suggest(target, columns)}")
    drop = list(dict.fromkeys(drop))
    for name in drop:
        if name not in columns:
            raise DataError(f"cannot drop column {name!r}: not found{_suggest(name, columns)}")
    if target in drop:
        raise DataError(f"cannot drop the target column {target!r}")

    null_target = int(df[target].isna().sum())
    if null_target == len(df):
        raise DataError(f"target column {target!r} has only null values")
    train = df
    if null_target:
        log.warning(
            "target %r is null in %d of %d rows; those rows are excluded from training",
            target,
            null_target,
            len(df),
        )
        train = df[df[target].notna()]

    target_spec = _target_spec(train, target, task)

    features: list[FeatureSpec] = []
    dropped: list[dict[str, str]] = [
        {"name": name, "reason": "dropped by user (--drop-columns)"} for name in drop
    ]
    problems: list[str] = []
    for name in columns:
        if name == target or name in drop:
            continue
        try:
            null_elsewhere = train is not df and bool(df[name].isna().any())
            spec, reason = _feature_spec(name, train[name], null_elsewhere)
        except _ColumnProblem as exc:
            problems.append(str(exc))
            continue
        if spec is None:
            dropped.append({"name": name, "reason": reason or "unusable"})
        else:
            features.append(spec)
    if problems:
        raise DataError("; ".join(problems))
    if not features:
        raise DataError(
            f"no usable feature columns besides target {target!r} (dropped: "
            f"{[d['name'] for d in dropped]})"
        )
    if fingerprint is None:
        from kfops.data import fingerprint as compute_fingerprint

        fingerprint = compute_fingerprint(df).sha256
    return Contract(
        task=task,  # type: ignore[arg-type]
        target=target_spec,
        features=tuple(features),
        dropped=tuple(dropped),
        fingerprint=fingerprint,
    )


def drop_null_target(df: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """Rows usable for training: those whose target is not null (logs how many were left out)."""
    name = contract.target.name
    if name not in df.columns:
        raise DataError(f"target column {name!r} not found{_suggest(name, list(df.columns))}")
    mask = df[name].notna()
    missing = int((~mask).sum())
    if missing:
        log.warning("excluding %d rows whose target %r is null", missing, name)
        return df[mask]
    return df
