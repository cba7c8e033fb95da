"""Coercion: the one place raw feature values become model input (training and serving alike).

Everything that is kfops' own reading of raw values happens here, on plain Python/numpy values,
before any fitted transformer sees them: numbers from text, booleans from words, dates to parts,
category values to strings, free text to lower-case word tokens. What is fitted (imputation,
scaling, one-hot, TF-IDF vocabulary) stays in standard scikit-learn transformers, which is what
lets skl2onnx convert the fitted preprocessing (``kfops.twin``).

Three users share exactly these functions, so there is no training/serving skew:

- the first step of every fitted pipeline (``CoerceStep``), i.e. training, evaluation, tuning and
  the sklearn serving path, which pass raw frames to ``pipeline.predict``;
- the ONNX twin's serving path: ``Coercion.coerce`` on the validated request columns, then the
  graph (``kfops.twin.runtime``);
- twin verification (``kfops.twin.verify``).

Output: one 2-D ``(n, 1)`` array per graph input, keyed by input name (``f<i>`` for feature
``i`` in contract order; a datetime feature gives five inputs ``f<i>_<part>``). Names are
positional so that any column name a CSV carries is safe as an ONNX input name. Numbers are
float64 with NaN for missing; strings are ``object`` arrays of ``str`` where a missing category
is ``MISSING_CATEGORY`` (ONNX string tensors have no null) and missing text is "".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from sklearn.base import BaseEstimator, TransformerMixin

from kfops.contract_model import BOOL_WORDS, Contract
from kfops.errors import DataError
from kfops.parsing import ISO_DATETIME, category_key, parse_datetime_column

# Bump when a rule below changes what a value becomes: twins record it (``kfops.twin``).
COERCION_VERSION = 1
DATETIME_PARTS: tuple[str, ...] = ("year", "month", "day", "dayofweek", "epoch")
# A missing category reaches the imputer as this string (ONNX string tensors cannot hold None).
# An empty CSV cell is already missing, so an empty string sent by a client means the same.
MISSING_CATEGORY = ""
# scikit-learn's default token pattern; applied here (Python ``re``, Unicode-aware) rather than
# inside the graph, whose tokenizer (re2) reads \w and \b as ASCII only and whose lower-casing
# needs an installed en_US.UTF-8 locale.
TOKEN_PATTERN = re.compile(r"(?u)\b\w\w+\b")
# How the fitted TF-IDF splits the tokens joined above: a plain space, read alike by Python's
# re and onnxruntime's re2.
JOINED_TOKEN_PATTERN = r"[^ ]+"

GraphType = Literal["double", "string"]
_GRAPH_TYPE: dict[str, GraphType] = {
    "numeric": "double",
    "boolean": "double",
    "datetime": "double",
    "categorical": "string",
    "text": "string",
}


@dataclass(frozen=True)
class GraphInput:
    """One input of the fitted preprocessing (and of the ONNX graph): a (n, 1) column."""

    name: str
    feature: str
    kind: str  # the feature's contract kind
    type: GraphType
    part: str | None = None  # datetime part, for datetime features


# --- per-kind readers: values (list, ndarray or Series) -> 1-D array ---------------------------


def _array(values: Any) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values
    if isinstance(values, pd.Series | pd.Index):
        return values.to_numpy()
    return np.asarray(values, dtype=object)


def _items(values: Any) -> list[Any]:
    """Plain Python values (the request path hands over lists already: no copy then)."""
    return values if isinstance(values, list) else _array(values).tolist()


def numbers(values: Any) -> np.ndarray:
    """Float64; values that are not numbers (after reading text) become NaN."""
    if isinstance(values, pd.Series) and (
        ptypes.is_numeric_dtype(values.dtype) or ptypes.is_bool_dtype(values.dtype)
    ):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)  # nullable dtypes too
    if not isinstance(values, list):
        arr = _array(values)
        if arr.dtype.kind in "biuf":
            return arr.astype(np.float64)
    items = _items(values)
    if not any(isinstance(v, str) for v in items):
        # JSON numbers and None (the request path): numpy reads None as NaN.
        try:
            return np.array(items, dtype=np.float64).reshape(len(items))
        except (TypeError, ValueError):
            pass
    series = pd.Series(items, dtype=object)
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _bool_value(value: Any) -> float:
    if value is None:
        return np.nan
    if isinstance(value, bool | np.bool_):
        return 1.0 if value else 0.0
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value) if value in (0, 1) else np.nan  # NaN is not in (0, 1)
    return BOOL_WORDS.get(str(value).strip().lower(), np.nan)


def booleans(values: Any) -> np.ndarray:
    """1.0/0.0 with NaN for missing or unreadable values; True/"yes"/"t"/1 read as 1.0."""
    if isinstance(values, pd.Series) and (
        ptypes.is_bool_dtype(values.dtype) or ptypes.is_numeric_dtype(values.dtype)
    ):
        arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        arr = values if isinstance(values, list) else _array(values)
        if isinstance(arr, np.ndarray) and arr.dtype.kind in "biuf":
            arr = arr.astype(np.float64)
        else:
            items = _items(values)
            return np.fromiter((_bool_value(v) for v in items), dtype=np.float64, count=len(items))
    return np.where((arr == 0.0) | (arr == 1.0), arr, np.nan)


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # array-like cells are not missing, they are values
        return False


def _category_string(value: Any) -> str:
    if _is_missing(value):
        return MISSING_CATEGORY
    if isinstance(value, np.generic):
        value = value.item()
    return category_key(value)


def category_strings(values: Any) -> np.ndarray:
    """Every value by its string form (``object`` array); missing values as MISSING_CATEGORY."""
    items = _items(values)
    out = np.empty(len(items), dtype=object)
    out[:] = [v if type(v) is str else _category_string(v) for v in items]
    return out


def _tokens(value: Any) -> str:
    if _is_missing(value):
        return ""
    return " ".join(TOKEN_PATTERN.findall(str(value).lower()))


def text_tokens(values: Any) -> np.ndarray:
    """Free text as its lower-case word tokens joined by single spaces ("" when missing).

    The same tokens scikit-learn's TfidfVectorizer finds by default (lower-case, then
    ``(?u)\\b\\w\\w+\\b``), so the fitted vectorizer only has to split on spaces.
    """
    items = _items(values)
    out = np.empty(len(items), dtype=object)
    out[:] = [_tokens(v) for v in items]
    return out


def utc_datetimes(values: Any, formats: Sequence[str] = ()) -> pd.Series:
    """Parse to tz-aware UTC (naive values are taken as UTC); unreadable values become NaT.

    ``kfops.parsing.parse_datetime_column``: the contract's recorded formats first, then one
    inferred format (vectorised), then a per-value pass so mixed date styles still parse.
    """
    col = values if isinstance(values, pd.Series) else pd.Series(_array(values), dtype=object)
    return parse_datetime_column(col, formats)


# ISO 8601 forms that ``datetime.fromisoformat`` and pandas read as the same instant (up to
# microseconds; within pandas' nanosecond range, checked by year below).
_ISO_DATETIME = ISO_DATETIME
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FAST_YEARS = range(1700, 2201)


def _iso_parts(items: list[Any]) -> np.ndarray | None:
    """``datetime_parts`` without pandas when every value is ISO 8601 or missing, else None.

    pandas costs milliseconds per call for a single value; this path gives the same numbers
    (the epoch as pandas computes it: float64(nanoseconds) / 1e9) and is what a one-row request
    takes. A column with any other value goes through pandas whole, as before.
    """
    out = np.full((len(items), len(DATETIME_PARTS)), np.nan)
    for r, value in enumerate(items):
        if type(value) is not str:
            if _is_missing(value):
                continue
            return None
        if not _ISO_DATETIME.fullmatch(value):
            return None
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        if moment.year not in _FAST_YEARS:
            return None
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        delta = moment - _EPOCH
        nanos = (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000
        out[r] = (moment.year, moment.month, moment.day, moment.weekday(), float(nanos) / 1e9)
    return out


def datetime_parts(values: Any, formats: Sequence[str] = ()) -> np.ndarray:
    """(n, 5) float64: year, month, day, dayofweek and epoch seconds; NaN where missing.
    ``formats``: the contract's recorded formats of this column (``FeatureSpec.formats``)."""
    if not (isinstance(values, pd.Series) and ptypes.is_datetime64_any_dtype(values.dtype)):
        fast = _iso_parts(_items(values))
        if fast is not None:
            return fast
    parsed = utc_datetimes(values, formats)
    epoch = (parsed - pd.Timestamp("1970-01-01", tz="UTC")) / pd.Timedelta(seconds=1)
    parts = (parsed.dt.year, parsed.dt.month, parsed.dt.day, parsed.dt.dayofweek, epoch)
    return np.column_stack([p.to_numpy(dtype=np.float64, na_value=np.nan) for p in parts])


# --- the contract's features -> graph inputs ------------------------------------------------------


@dataclass(frozen=True)
class Coercion:
    """The coercion of one contract's features, built once (per model version) and reused."""

    features: tuple[tuple[str, str], ...]  # (name, kind) in contract order
    # (name, formats) of datetime features whose contract records the formats training saw
    formats: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @classmethod
    def from_contract(cls, contract: Contract) -> Coercion:
        return cls(
            tuple((f.name, f.kind) for f in contract.features),
            tuple((f.name, tuple(f.formats)) for f in contract.features if f.formats),
        )

    @property
    def inputs(self) -> tuple[GraphInput, ...]:
        out: list[GraphInput] = []
        for i, (name, kind) in enumerate(self.features):
            if kind == "datetime":
                out += [
                    GraphInput(f"f{i}_{part}", name, kind, "double", part)
                    for part in DATETIME_PARTS
                ]
            else:
                out.append(GraphInput(f"f{i}", name, kind, _GRAPH_TYPE[kind]))
        return tuple(out)

    def names_of(self, *kinds: str) -> list[str]:
        """Input names of the features of these kinds, in contract order."""
        return [g.name for g in self.inputs if g.kind in kinds]

    def inputs_of(self, feature: str) -> tuple[GraphInput, ...]:
        """The inputs coerced from one raw feature (five for a datetime, else one), so that
        whoever reads the fitted preprocessing (explanations) maps its columns back to the
        column the user sent without parsing input names."""
        found = tuple(g for g in self.inputs if g.feature == feature)
        if not found:
            raise DataError(f"{feature!r} is not a feature of this coercion")
        return found

    def coerce(self, columns: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Feature name -> raw values (list, ndarray or Series, all the same length) in;
        input name -> (n, 1) array out. Extra columns are ignored."""
        out: dict[str, np.ndarray] = {}
        formats = dict(self.formats)
        for i, (name, kind) in enumerate(self.features):
            if name not in columns:
                raise DataError(f"feature column {name!r} is missing")
            values = columns[name]
            if kind == "datetime":
                parts = datetime_parts(values, formats.get(name, ()))
                for j, part in enumerate(DATETIME_PARTS):
                    out[f"f{i}_{part}"] = parts[:, j : j + 1]
                continue
            if kind == "numeric":
                column = numbers(values)
            elif kind == "boolean":
                column = booleans(values)
            elif kind == "categorical":
                column = category_strings(values)
            elif kind == "text":
                column = text_tokens(values)
            else:  # pragma: no cover - FeatureSpec.from_dict rejects unknown kinds
                raise DataError(f"feature {name!r} has unknown kind {kind!r}")
            out[f"f{i}"] = column.reshape(-1, 1)
        return out

    def frame(self, columns: Mapping[str, Any]) -> pd.DataFrame:
        """The coerced inputs as a DataFrame (what the fitted sklearn preprocessing reads)."""
        return pd.DataFrame({k: v[:, 0] for k, v in self.coerce(columns).items()}, copy=False)


def coerce(columns: Mapping[str, Any], contract: Contract) -> dict[str, np.ndarray]:
    """Raw feature columns (by feature name) -> graph inputs (by input name), see the module doc."""
    return Coercion.from_contract(contract).coerce(columns)


class CoerceStep(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """The first step of every kfops pipeline: raw feature frame -> coerced input frame.

    Stateless (nothing is fitted), so the same function runs before ``fit`` and before every
    prediction, in sklearn and in front of the ONNX twin. ``features`` is the contract's
    ``(name, kind)`` pairs; selection is by name, so column order and extra columns do not
    matter.
    """

    def __init__(
        self,
        features: Sequence[tuple[str, str]] = (),
        formats: Sequence[tuple[str, Sequence[str]]] = (),
    ) -> None:
        self.features = features
        self.formats = formats  # the contract's recorded date formats (Coercion.formats)

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("formats", ())  # model files from before formats were recorded
        super().__setstate__(state)

    def fit(self, X: Any, y: Any = None) -> CoerceStep:
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)
        return self.coercion.frame(frame)

    @property
    def coercion(self) -> Coercion:
        return Coercion(
            tuple((str(n), str(k)) for n, k in self.features),
            tuple((str(n), tuple(str(f) for f in fs)) for n, fs in self.formats),
        )

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray([g.name for g in self.coercion.inputs], dtype=object)
