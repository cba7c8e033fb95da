"""Data contracts: infer one from training data, coerce raw frames to it, validate against it.

The contract (``contract.json``, see docs/ARCHITECTURE.md) records what a model expects: each
feature's kind, nullability, training range or category domain, and the target. Three users:

- training calls ``infer_contract`` then ``coerce_frame`` (also inside the fitted pipeline), so
  raw features always reach the model with the same dtypes;
- the pipeline's validate step and the model server call ``validate`` (pandera underneath) and
  get a ``ValidationReport`` of blocking errors and warnings;
- dashboards show ``ValidationReport.to_markdown()`` and ``describe()``.
"""

from __future__ import annotations

import difflib
import logging
import math
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from kfops.contract_model import (
    BOOL_WORDS,
    FEATURE_KINDS,
    SCHEMA_VERSION,
    TASKS,
    Contract,
    FeatureSpec,
    TargetSpec,
)
from kfops.errors import ConfigError, ContractError, DataError

__all__ = [
    "FEATURE_KINDS",
    "SCHEMA_VERSION",
    "TASKS",
    "Contract",
    "FeatureSpec",
    "TargetSpec",
    "ValidationReport",
    "Violation",
    "coerce_frame",
    "describe",
    "drop_null_target",
    "infer_contract",
    "validate",
]

log = logging.getLogger(__name__)

# Inference thresholds. Kept as module constants so tests and docs can name them.
SAMPLE_SIZE = 5000  # object columns: kind detection looks at this many non-null values
MIXED_NUMERIC_SHARE = 0.8  # at least this share numeric (but not all) -> "mixed types" error
DATETIME_SHARE = 0.9  # this share of values parse as dates -> datetime
TEXT_MIN_WORDS = 3  # median words per value for free text
TEXT_MIN_DISTINCT = 50
IDENTIFIER_UNIQUE_SHARE = 0.95  # near-unique single-token strings are identifiers
IDENTIFIER_MIN_ROWS = 20
MAX_CATEGORIES = 1000  # more distinct strings than this is not a usable categorical
MAX_EXAMPLES = 5

_DATE_LIKE = re.compile(
    r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}"  # 2021-03-04, 04/03/2021, 4.3.21
    r"|[A-Za-z]{3,9}\.? \d{1,2},? \d{2,4}"  # March 4, 2021
    r"|\d{1,2} [A-Za-z]{3,9}\.? \d{2,4}"  # 4 Mar 2021
)
_ID_NAME = re.compile(r"(^|_)(id|uuid|key)$|Id$|ID$", re.IGNORECASE)


# ----------------------------------------------------------------------------------------------
# JSON-safe values


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


def _sorted_domain(values: Iterable[Any]) -> tuple[Any, ...]:
    items = {to_jsonable(v) for v in values}
    items.discard(None)
    try:
        return tuple(sorted(items))
    except TypeError:  # mixed python types: order by type name, then text
        return tuple(sorted(items, key=lambda v: (type(v).__name__, str(v))))


def _examples(values: pd.Series, limit: int = MAX_EXAMPLES) -> list[Any]:
    out: list[Any] = []
    for value in pd.unique(values.to_numpy()):
        out.append(to_jsonable(value))
        if len(out) >= limit:
            break
    return out


# ----------------------------------------------------------------------------------------------
# Inference


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


def _parse_datetimes(values: pd.Series) -> pd.Series:
    """Parse to naive UTC ``datetime64[ns]``; unparseable values become NaT.

    One inferred format first (vectorized, fast); values that do not fit it get a second,
    per-value pass (``format="mixed"``) so mixed date styles still parse.
    """
    if ptypes.is_datetime64_any_dtype(values.dtype):
        out = values
    else:
        text = values.where(values.isna(), values.astype(str))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "could not infer format" is expected here
            out = pd.to_datetime(text, errors="coerce", utc=True)
            retry = out.isna() & text.notna()
            if retry.any():
                second = pd.to_datetime(text[retry], errors="coerce", utc=True, format="mixed")
                out = out.copy()
                out[retry] = second
    if getattr(out.dt, "tz", None) is not None:
        out = out.dt.tz_convert("UTC").dt.tz_localize(None)
    return out.astype("datetime64[ns]")


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
            f"not numbers, e.g. {_examples(bad)}; clean them or drop the column"
        )

    text = sample.astype(str)
    if text.str.contains(_DATE_LIKE).mean() >= DATETIME_SHARE:
        parsed = _parse_datetimes(sample)
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


def _feature_spec(name: str, col: pd.Series) -> tuple[FeatureSpec | None, str | None]:
    """A FeatureSpec for one column, or (None, drop reason). Raises _ColumnProblem."""
    nonnull = col.dropna()
    if len(nonnull) == 0:
        raise _ColumnProblem(
            f"column {name!r} has only null values; drop it with --drop-columns {name}"
        )
    nullable = len(nonnull) < len(col)
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
        parsed = _parse_datetimes(col).dropna()
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
                name, "datetime", "datetime64[ns]", nullable, lo_ts.isoformat(), hi_ts.isoformat()
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
        domain = _sorted_domain(bool(v) for v in distinct_values)
        return FeatureSpec(name, "boolean", str(dtype), nullable, categories=domain), None
    return (
        FeatureSpec(
            name, "categorical", "object", nullable, categories=_sorted_domain(distinct_values)
        ),
        None,
    )


def _target_spec(df: pd.DataFrame, target: str, task: str) -> TargetSpec:
    col = df[target]
    nonnull = col.dropna()
    rows = len(nonnull)
    if task == "classification":
        classes = _sorted_domain(pd.unique(nonnull.to_numpy()))
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
            f"{_examples(nonnull, 3)}); use --task classification"
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
            spec, reason = _feature_spec(name, train[name])
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


# ----------------------------------------------------------------------------------------------
# Coercion


def _all_str(col: pd.Series) -> bool:
    return ptypes.infer_dtype(col, skipna=True) in ("string", "empty")


def _as_object(col: pd.Series, as_text: bool) -> pd.Series:
    out = col.astype(object) if col.dtype != object else col
    if as_text and not _all_str(out):
        out = out.map(lambda v: v if isinstance(v, str) or v is None or v != v else str(v))
    # One null marker (np.nan) whatever the source used (None, pd.NA, NaN).
    return out.where(out.notna(), np.nan)


def _coerce_column(col: pd.Series, kind: str, categories: Sequence[Any] | None) -> pd.Series:
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
        return _parse_datetimes(col)
    if kind == "categorical":
        as_text = categories is None or all(isinstance(c, str) for c in categories)
        return _as_object(col, as_text)
    return _as_object(col, True)  # text


def _coerce(
    df: pd.DataFrame, contract: Contract, failures: list[Violation] | None = None
) -> pd.DataFrame:
    out = df.copy(deep=False)
    specs: list[tuple[str, str, Sequence[Any] | None]] = [
        (f.name, f.kind, f.categories) for f in contract.features
    ]
    target = contract.target
    if target.kind == "numeric":
        specs.append((target.name, "numeric", None))
    elif target.classes is not None and all(isinstance(c, str) for c in target.classes):
        specs.append((target.name, "categorical", target.classes))
    for name, kind, categories in specs:
        if name not in out.columns:
            continue
        before = out[name]
        after = _coerce_column(before, kind, categories)
        if failures is not None:
            lost = after.isna() & before.notna()
            count = int(lost.sum())
            if count:
                what = {"numeric": "numbers", "boolean": "booleans", "datetime": "dates"}
                failures.append(
                    Violation(
                        column=name,
                        rule="type",
                        severity="error",
                        message=(
                            f"column {name!r}: {count} values cannot be read as "
                            f"{what.get(kind, kind)}, e.g. {_examples(before[lost])}"
                        ),
                        count=count,
                        examples=_examples(before[lost]),
                    )
                )
        out[name] = after
    return out


def coerce_frame(df: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """Put a raw frame (CSV, Parquet, JSON records) into the dtypes the contract expects.

    numeric -> float64; boolean -> float64 0/1 (NaN unknown); datetime -> naive UTC
    datetime64[ns]; categorical/text -> object with np.nan for missing. Values that cannot be
    coerced become null (``validate`` reports them). Columns not in the contract pass through;
    missing contract columns are not added. The input is not modified.
    """
    return _coerce(df, contract)


# ----------------------------------------------------------------------------------------------
# Validation


Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Violation:
    column: str | None
    rule: str
    severity: Severity
    message: str
    count: int = 0
    examples: list[Any] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
            "count": self.count,
            "examples": [to_jsonable(e) for e in self.examples],
        }


@dataclass
class ValidationReport:
    violations: list[Violation] = field(default_factory=list)
    rows: int = 0
    columns: int = 0

    @property
    def errors(self) -> list[Violation]:
        return [v for v in self.violations if v.severity == "error"]

    @property
    def warnings(self) -> list[Violation]:
        return [v for v in self.violations if v.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "columns": self.columns,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "violations": [v.to_dict() for v in self.violations],
        }

    def to_markdown(self) -> str:
        status = "OK" if self.ok else "FAILED"
        lines = [
            f"## Data validation: {status}",
            "",
            f"{self.rows} rows, {self.columns} columns: {len(self.errors)} errors, "
            f"{len(self.warnings)} warnings.",
            "",
        ]
        if not self.violations:
            lines.append("No violations.")
            return "\n".join(lines) + "\n"
        lines += [
            "| severity | column | rule | count | message |",
            "| --- | --- | --- | ---: | --- |",
        ]
        for v in sorted(self.violations, key=lambda v: (v.severity != "error", v.column or "")):
            message = v.message.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {v.severity} | {v.column or ''} | {v.rule} | {v.count} | {message} |")
        return "\n".join(lines) + "\n"

    def raise_for_errors(self) -> None:
        errors = self.errors
        if errors:
            details = "; ".join(v.message for v in errors)
            raise ContractError(
                f"data violates the contract ({len(errors)} errors): {details}", report=self
            )


def _build_schemas(contract: Contract, check_target: bool, allow_all_null: bool) -> tuple[Any, Any]:
    """(errors schema, warnings schema) as pandera DataFrameSchemas over a coerced frame."""
    import pandera.pandas as pa

    not_all_null = pa.Check(
        lambda s: bool(s.notna().any()), element_wise=False, name="not_all_null"
    )
    err_cols: dict[str, Any] = {}
    warn_cols: dict[str, Any] = {}
    for spec in contract.features:
        err_cols[spec.name] = pa.Column(
            checks=[] if allow_all_null else [not_all_null], nullable=True, required=True
        )
        checks = []
        if spec.kind == "numeric" and spec.min is not None and spec.max is not None:
            checks.append(pa.Check.in_range(float(spec.min), float(spec.max)))
        elif spec.kind == "datetime" and spec.min is not None and spec.max is not None:
            checks.append(pa.Check.in_range(pd.Timestamp(spec.min), pd.Timestamp(spec.max)))
        elif spec.kind == "categorical" and spec.categories is not None:
            checks.append(pa.Check.isin(list(spec.categories)))
        elif spec.kind == "boolean" and spec.categories is not None:
            checks.append(pa.Check.isin([float(bool(c)) for c in spec.categories]))
        # A column that was all-null is reported as an error already; skip the warning then.
        warn_cols[spec.name] = pa.Column(checks=checks, nullable=spec.nullable, required=False)
    target = contract.target
    if check_target:
        tchecks = [] if target.classes is None else [pa.Check.isin(list(target.classes))]
        err_cols[target.name] = pa.Column(checks=tchecks, nullable=False, required=True)
        warn_cols[target.name] = pa.Column(required=False, nullable=True)
    else:
        warn_cols[target.name] = pa.Column(required=False, nullable=True)
    for item in contract.dropped:
        warn_cols[item["name"]] = pa.Column(required=False, nullable=True)
    return (
        pa.DataFrameSchema(err_cols, strict=False),
        pa.DataFrameSchema(warn_cols, strict=True),
    )


def _run_schema(schema: Any, frame: pd.DataFrame) -> pd.DataFrame:
    from pandera.errors import SchemaErrors

    try:
        with warnings.catch_warnings():
            # pandera's failure-case concat trips a pandas FutureWarning; not ours to act on.
            warnings.simplefilter("ignore", FutureWarning)
            schema.validate(frame, lazy=True, inplace=True)
    except SchemaErrors as exc:
        return exc.failure_cases
    return pd.DataFrame()


def _violations_from_failures(
    cases: pd.DataFrame, severity: Severity, contract: Contract, skip: set[str]
) -> list[Violation]:
    out: list[Violation] = []
    if cases.empty:
        return out
    target = contract.target.name
    for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=False):
        check = str(check)
        col = (
            None
            if column is None or (isinstance(column, float) and math.isnan(column))
            else (str(column))
        )
        values = group["failure_case"]
        count = len(group)
        if check == "column_in_dataframe":
            for name in values:
                what = "target column" if name == target else "column"
                out.append(
                    Violation(str(name), "missing_column", severity, f"{what} {name!r} is missing")
                )
            continue
        if check == "column_in_schema":
            for name in values:
                out.append(
                    Violation(
                        str(name),
                        "unexpected_column",
                        severity,
                        f"unexpected column {name!r} (not in the contract; it is ignored)",
                    )
                )
            continue
        if col in skip:
            continue
        examples = _examples(values)
        name = col or ""
        if check == "not_all_null":
            rule, msg, count = "all_null", f"column {name!r} has only null values", 0
        elif check == "not_nullable":
            examples = []
            if col == target:
                rule, msg = "target_null", f"target {name!r} has {count} null values"
            else:
                rule = "nulls"
                msg = f"column {name!r} has {count} null values but had none in training"
        elif check.startswith("isin") and col == target:
            rule = "unseen_class"
            msg = (
                f"target {name!r} has {count} values outside the training classes, e.g. {examples}"
            )
        elif check.startswith("isin"):
            spec = contract.feature(name)
            rule = "unseen_category"
            domain = "values" if spec.kind == "boolean" else "categories"
            msg = (
                f"column {name!r} has {count} values outside the training {domain}, e.g. {examples}"
            )
        elif check.startswith("in_range"):
            spec = contract.feature(name)
            rule = "out_of_range"
            msg = (
                f"column {name!r} has {count} values outside the training range "
                f"[{spec.min}, {spec.max}], e.g. {examples}"
            )
        else:
            rule, msg = check, f"column {name!r} fails {check} in {count} rows, e.g. {examples}"
        out.append(Violation(col, rule, severity, msg, count, examples))
    return out


def _discount_type_failures(warns: list[Violation], failures: list[Violation]) -> list[Violation]:
    """Values that failed coercion became null; report them once (as type errors), not as nulls."""
    lost = {v.column: v.count for v in failures}
    out: list[Violation] = []
    for v in warns:
        if v.rule == "nulls" and v.column in lost:
            count = v.count - lost[v.column]
            if count <= 0:
                continue
            v = Violation(
                v.column,
                v.rule,
                v.severity,
                f"column {v.column!r} has {count} null values but had none in training",
                count,
            )
        out.append(v)
    return out


def validate(
    df: pd.DataFrame,
    contract: Contract,
    *,
    check_target: bool = True,
    allow_all_null: bool = False,
    allow_null_target: bool = True,
) -> ValidationReport:
    """Check a raw frame against a contract; collect every problem (pandera, lazy).

    Errors (block training/scoring): empty frame, missing columns, values that cannot be
    coerced to the expected type, a column with only nulls (unless ``allow_all_null``, which a
    model server scoring a single row wants), and with ``check_target`` unseen classes or
    values that are not numbers in the target. Nulls in the target are a warning by default,
    because training leaves those rows out (``drop_null_target``), as ``infer_contract`` does;
    ``allow_null_target=False`` makes them an error (e.g. for labelled evaluation data).
    Warnings: unexpected columns, nulls in columns that had none in training, values outside
    the training range and categories outside the training domain.
    """
    report = ValidationReport(rows=len(df), columns=len(df.columns))
    if len(df) == 0:
        report.violations.append(Violation(None, "empty", "error", "the data has no rows"))
        return report
    duplicated = df.columns[df.columns.duplicated()].unique().tolist()
    if duplicated:
        report.violations.append(
            Violation(
                None,
                "duplicate_columns",
                "error",
                f"duplicate column names {duplicated}: every column needs its own name",
            )
        )
        return report
    type_failures: list[Violation] = []
    frame = _coerce(df, contract, type_failures)
    if not check_target:
        type_failures = [v for v in type_failures if v.column != contract.target.name]
    err_schema, warn_schema = _build_schemas(contract, check_target, allow_all_null)
    errors = _violations_from_failures(_run_schema(err_schema, frame), "error", contract, set())
    all_null = {v.column for v in errors if v.rule == "all_null" and v.column}
    warns = _violations_from_failures(
        _run_schema(warn_schema, frame), "warning", contract, all_null
    )
    warns = _discount_type_failures(warns, type_failures)
    if allow_null_target:
        errors, moved = (
            [v for v in errors if v.rule != "target_null"],
            [
                Violation(
                    v.column,
                    v.rule,
                    "warning",
                    f"{v.message}; those rows are excluded from training",
                    v.count,
                )
                for v in errors
                if v.rule == "target_null"
            ],
        )
        warns = moved + warns
    report.violations = errors + type_failures + warns
    return report


# ----------------------------------------------------------------------------------------------
# Statistics report


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def describe(df: pd.DataFrame, contract: Contract) -> str:
    """A Markdown data-statistics table (one row per contract column) for dashboards."""
    frame = _coerce(df, contract)
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
