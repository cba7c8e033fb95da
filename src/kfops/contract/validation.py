"""Validation: check a raw frame against its contract (pandera underneath).

``validate`` collects every problem at once into a ``ValidationReport`` of blocking errors
(missing columns, values of the wrong type, all-null columns, unseen target classes) and
warnings (nulls, out-of-range values and unseen categories); the pipeline's validate step and
the model server's batch checks both use it.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from kfops.contract._values import examples as examples_of
from kfops.contract._values import to_jsonable
from kfops.contract.coercion import LostValues, coerce_counting_losses
from kfops.contract_model import Contract
from kfops.errors import ContractError
from kfops.reports import fmt

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
            message = fmt.cell(v.message)
            lines.append(f"| {v.severity} | {v.column or ''} | {v.rule} | {v.count} | {message} |")
        return "\n".join(lines) + "\n"

    def raise_for_errors(self) -> None:
        errors = self.errors
        if errors:
            details = "; ".join(v.message for v in errors)
            raise ContractError(
                f"data violates the contract ({len(errors)} errors): {details}", report=self
            )


_KIND_WORDS = {"numeric": "numbers", "boolean": "booleans", "datetime": "dates"}


def _type_violation(lost: LostValues) -> Violation:
    return Violation(
        column=lost.column,
        rule="type",
        severity="error",
        message=(
            f"column {lost.column!r}: {lost.count} values cannot be read as "
            f"{_KIND_WORDS.get(lost.kind, lost.kind)}, e.g. {lost.examples}"
        ),
        count=lost.count,
        examples=lost.examples,
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
        examples = examples_of(values)
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
                f"target {name!r} has {count} values outside the training classes, "
                f"e.g. {fmt.values(examples)}"
            )
        elif check.startswith("isin"):
            spec = contract.feature(name)
            rule = "unseen_category"
            domain = "values" if spec.kind == "boolean" else "categories"
            msg = (
                f"column {name!r} has {count} values outside the training {domain}, "
                f"e.g. {fmt.values(examples)}"
            )
        elif check.startswith("in_range"):
            spec = contract.feature(name)
            rule = "out_of_range"
            msg = (
                f"column {name!r} has {count} values outside the training range "
                f"[{fmt.value(spec.min)}, {fmt.value(spec.max)}], e.g. {fmt.values(examples)}"
            )
        else:
            rule, msg = (
                check,
                f"column {name!r} fails {check} in {count} rows, e.g. {fmt.values(examples)}",
            )
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
    frame, losses = coerce_counting_losses(df, contract)
    type_failures = [_type_violation(lost) for lost in losses]
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
