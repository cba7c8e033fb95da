"""Check a twin against the sklearn pipeline it was made from, on every row of a held-out split.

Passing means: identical labels on every row (classification: the class with the highest
probability, which is what both serving paths return), and every probability or regression
value within ``|twin - sklearn| <= atol + rtol * |sklearn|``.

Why a tolerance at all: the graph computes in float64 like scikit-learn, except that onnxruntime's
tree-ensemble operators return float32 in every ``ai.onnx.ml`` opset (their thresholds and leaf
values are float64, see ``kfops.twin.converters``). Rounding a result to float32 changes it by
up to 2**-24 relative (6e-8); measured on the unit-test data: at most 9.3e-8 absolute on a
probability and 5.4e-8 relative on a regression value. The defaults leave about two orders of
magnitude of headroom (other CPUs, other data) and stay far below any difference a person
would call a different prediction. The absolute term for regression is scaled to the target's
training range, so a target in the millions is judged like one in units.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from kfops.coercion import Coercion
from kfops.contract import to_jsonable
from kfops.contract_model import Contract
from kfops.errors import DataError
from kfops.features import feature_frame
from kfops.twin.convert import Twin
from kfops.twin.runtime import TwinRuntime

PROBA_TOLERANCE = (1e-5, 1e-5)  # (atol, rtol) for class probabilities
VALUE_TOLERANCE = (1e-6, 1e-5)  # (atol per unit of the target's scale, rtol) for regression


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float

    @classmethod
    def default(cls, contract: Contract) -> Tolerance:
        if contract.task == "classification":
            return cls(*PROBA_TOLERANCE)
        atol, rtol = VALUE_TOLERANCE
        bounds = [contract.target.min, contract.target.max]
        scale = max([1.0, *(abs(float(b)) for b in bounds if b is not None)])
        return cls(atol * scale, rtol)


@dataclass(frozen=True)
class Verdict:
    """The outcome of one verification, as it goes into lineage and the run summary."""

    passed: bool
    rows: int
    compared: str  # "probabilities" or "values"
    tolerance: Tolerance
    max_abs_diff: float
    max_rel_diff: float
    outside_tolerance: int  # values (not rows) beyond the tolerance
    label_mismatches: int  # classification only; 0 for regression
    reason: str  # "" when passed; else one sentence with the first offending row

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("max_abs_diff", "max_rel_diff"):
            value = data[key]
            data[key] = None if math.isnan(value) else value  # JSON has no NaN
        return data


def _max(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.max()) if finite.size else 0.0


def compare(
    sklearn_out: np.ndarray,
    twin_out: np.ndarray,
    tolerance: Tolerance,
    classes: list[Any] | None = None,
) -> Verdict:
    """Compare two outputs of the same rows: (n, k) probabilities with ``classes``, else (n,)."""
    expected = np.asarray(sklearn_out, dtype=np.float64)
    actual = np.asarray(twin_out, dtype=np.float64)
    rows = int(expected.shape[0]) if expected.ndim else 0
    compared = "probabilities" if classes is not None else "values"
    if actual.shape != expected.shape:
        return Verdict(
            False, rows, compared, tolerance, math.nan, math.nan, rows, 0,
            f"the twin returned shape {list(actual.shape)}, sklearn {list(expected.shape)}",
        )  # fmt: skip
    diff = np.abs(actual - expected)
    both_nan = np.isnan(actual) & np.isnan(expected)
    diff = np.where(both_nan, 0.0, diff)
    one_nan = np.isnan(actual) ^ np.isnan(expected)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(expected != 0, diff / np.abs(expected), np.where(diff == 0, 0.0, np.inf))
    outside = (diff > tolerance.atol + tolerance.rtol * np.abs(expected)) | one_nan
    mismatches = 0
    reason = ""
    if classes is not None and rows:
        expected_idx = expected.argmax(axis=1)
        actual_idx = actual.argmax(axis=1)
        differ = np.flatnonzero(expected_idx != actual_idx)
        mismatches = int(differ.size)
        if mismatches:
            r = int(differ[0])
            reason = (
                f"{mismatches} of {rows} labels differ (first at row {r}: twin "
                f"{to_jsonable(classes[actual_idx[r]])!r}, sklearn "
                f"{to_jsonable(classes[expected_idx[r]])!r})"
            )
    count = int(outside.sum())
    if count and not reason:
        flat = int(np.flatnonzero(outside.reshape(rows, -1).any(axis=1))[0])
        reason = (
            f"{count} {compared} differ by more than atol={tolerance.atol:g} + "
            f"rtol={tolerance.rtol:g} x |sklearn| (first at row {flat}; largest absolute "
            f"difference {_max(diff):.3g})"
        )
    return Verdict(
        passed=not reason,
        rows=rows,
        compared=compared,
        tolerance=tolerance,
        max_abs_diff=_max(diff),
        max_rel_diff=_max(rel),
        outside_tolerance=count,
        label_mismatches=mismatches,
        reason=reason,
    )


def verify(
    pipeline: Pipeline,
    twin: Twin | TwinRuntime | bytes,
    frame: pd.DataFrame,
    contract: Contract,
    tolerance: Tolerance | None = None,
) -> Verdict:
    """Run ``frame`` (raw feature columns, e.g. the whole held-out split) through both and
    compare. The twin gets ``Coercion.coerce`` of the same raw columns the pipeline reads."""
    if len(frame) == 0:
        raise DataError("cannot verify a twin on an empty split")
    runtime = (
        twin
        if isinstance(twin, TwinRuntime)
        else TwinRuntime(twin.onnx if isinstance(twin, Twin) else twin)
    )
    tolerance = tolerance or Tolerance.default(contract)
    X = feature_frame(frame, contract)
    inputs = Coercion.from_contract(contract).coerce({name: X[name] for name in X.columns})
    actual = runtime.run(inputs)
    if contract.task == "classification":
        classes = list(pipeline.classes_)
        if runtime.classes is not None and [to_jsonable(c) for c in runtime.classes] != [
            to_jsonable(c) for c in classes
        ]:
            return Verdict(
                False, len(X), "probabilities", tolerance, math.nan, math.nan, 0, len(X),
                f"the twin's classes {runtime.classes} are not the pipeline's {classes}",
            )  # fmt: skip
        expected = np.asarray(pipeline.predict_proba(X), dtype=np.float64)
        return compare(expected, actual, tolerance, classes)
    expected = np.asarray(pipeline.predict(X), dtype=np.float64).reshape(-1)
    return compare(expected, actual, tolerance)
