"""Reference and window profiles: the fixed binning that every drift statistic is computed on.

Binning (documented, fixed at training time, stored as ``reference_profile.json``):

- numeric: ``fine_bins`` (default 100) quantile cut points of the finite training values,
  deduplicated. Bins are right-closed, ``(e[i-1], e[i]]``, and the two outer bins are open-ended,
  so every future value (also beyond the training range, or +-inf) has a bin. The ``bins``
  (default 10) coarse cut points used for PSI and the drift test are every
  ``fine_bins // bins``-th fine cut point, so coarse counts are sums of fine counts: a window
  stores fine counts only. The KS distance is computed on the fine counts (a 1 % CDF grid of
  the reference), which makes it mergeable. Missing or non-numeric values count in a separate
  null slot, which drift leaves out: it compares the non-null distributions, and the null
  share is checked on its own (monitoring's missing-value check).
- categorical/boolean: the ``max_categories`` most frequent training values (ties by value),
  then an ``__other__`` slot for everything else (values unseen in training land there), then a
  null slot.
- text/datetime: only non-null and null counts (no drift test: free text and time stamps always
  move).

A window's counts for a feature are one integer vector in the slot layout above, so windows
merge by adding vectors (a day is the merge of its hours). Both the batch path
(``profile_window``) and the model server's streaming path (``kfops.drift.streaming``) bin with
``FeatureBins.count`` / ``FeatureBins.slot``; these are the only binning code.
"""

from __future__ import annotations

import hashlib
import json
import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kfops.contract_model import FEATURE_KINDS, Contract
from kfops.errors import ConfigError, DataError
from kfops.io import read_json, write_json_atomic

PROFILE_SCHEMA_VERSION = 1
PROFILE_FILE = "reference_profile.json"
OTHER = "__other__"
DEFAULT_BINS = 10
DEFAULT_FINE_BINS = 100
DEFAULT_MAX_CATEGORIES = 50

NUMERIC = "numeric"
CATEGORICAL_KINDS = ("categorical", "boolean")
UNTESTED_KINDS = ("text", "datetime")


def _is_null_scalar(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


def _as_python(value: Any) -> Any:
    """numpy scalars -> python scalars, so categories are JSON-serialisable."""
    return value.item() if isinstance(value, np.generic) else value


def as_float_array(values: Any) -> np.ndarray:
    """Values as float64 with NaN for missing or non-numeric entries (None, "abc", pd.NA).

    Same rule as ``float(value)`` in ``FeatureBins.slot``: "1.5" -> 1.5, True -> 1.0.
    """
    if isinstance(values, pd.Series) and pd.api.types.is_numeric_dtype(values.dtype):
        # Also nullable Int64/Float64/boolean columns, whose pd.NA numpy cannot cast.
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    arr = _to_numpy(values)
    if arr.dtype.kind in "fiub":
        return arr.astype(np.float64, copy=False)
    try:
        return np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError):
        return pd.to_numeric(pd.Series(arr, copy=False), errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )


def _to_numpy(values: Any) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values.reshape(1) if values.ndim == 0 else values
    if isinstance(values, pd.Series | pd.Index):
        return values.to_numpy()
    if isinstance(values, list | tuple):
        # object dtype keeps python types as they are (np.asarray([1, "a"]) would give "1").
        return np.asarray(values, dtype=object)
    arr = np.asarray(values)
    return arr.reshape(1) if arr.ndim == 0 else arr


@dataclass(frozen=True, eq=False)
class FeatureBins:
    """How one feature is binned. ``slots`` is the length of its count vector."""

    name: str
    kind: str
    edges: tuple[float, ...] = ()  # numeric: fine cut points
    coarse_edges: tuple[float, ...] = ()  # numeric: subset of ``edges`` used for PSI
    categories: tuple[Any, ...] = ()  # categorical/boolean

    @property
    def tested(self) -> bool:
        return self.kind == NUMERIC or self.kind in CATEGORICAL_KINDS

    @cached_property
    def slots(self) -> int:
        if self.kind == NUMERIC:
            return len(self.edges) + 2  # bins + null
        if self.kind in CATEGORICAL_KINDS:
            return len(self.categories) + 2  # categories + other + null
        return 2  # non-null, null

    @cached_property
    def _edges_array(self) -> np.ndarray:
        return np.asarray(self.edges, dtype=np.float64)

    @cached_property
    def _lookup(self) -> dict[Any, int]:
        return {value: i for i, value in enumerate(self.categories)}

    @cached_property
    def _index(self) -> pd.Index:
        return pd.Index(list(self.categories), dtype=object)

    @cached_property
    def coarse_of_fine(self) -> np.ndarray:
        """Coarse bin of each fine bin: fine bin i = (e[i-1], e[i]] lies in one coarse bin."""
        coarse = np.asarray(self.coarse_edges, dtype=np.float64)
        rights = np.append(self._edges_array, np.inf)
        return np.searchsorted(coarse, rights, side="left")

    def count(self, values: Any) -> np.ndarray:
        """Count vector (int64, length ``slots``) of an array-like of values."""
        arr = _to_numpy(values)
        counts = np.zeros(self.slots, dtype=np.int64)
        if arr.size == 0:
            return counts
        if self.kind == NUMERIC:
            x = as_float_array(values if isinstance(values, pd.Series) else arr)
            null = np.isnan(x)
            # side="left" makes bins right-closed: edges[i-1] < x <= edges[i] -> bin i.
            idx = np.searchsorted(self._edges_array, x[~null], side="left")
            counts[: len(self.edges) + 1] = np.bincount(idx, minlength=len(self.edges) + 1)
            counts[-1] = int(null.sum())
            return counts
        if self.kind in CATEGORICAL_KINDS:
            # Look everything up first: nulls never match a category (training values exclude
            # them), so only the rare misses need the (slow, on strings) null check.
            codes = self._index.get_indexer(arr.astype(object, copy=False))
            miss = codes < 0
            if miss.any():
                codes[miss] = np.where(pd.isna(arr[miss]), self.slots - 1, len(self.categories))
            return np.bincount(codes, minlength=self.slots)
        null = np.asarray(pd.isna(arr), dtype=bool)
        counts[1] = int(null.sum())
        counts[0] = arr.size - counts[1]
        return counts

    def slot(self, value: Any) -> int:
        """Slot of one python scalar; the same rule as ``count`` without numpy call overhead."""
        return self.slot_function(value)

    @cached_property
    def slot_function(self) -> Callable[[Any], int]:
        """A closure value -> slot for this feature, specialised by kind (the fast path)."""
        null = self.slots - 1
        if self.kind == NUMERIC:
            edges = list(self.edges)

            def numeric(value: Any) -> int:
                try:
                    x = float(value)
                except (TypeError, ValueError):
                    return null
                # bisect_left == searchsorted(side="left"); NaN compares False -> null.
                return bisect_left(edges, x) if x == x else null

            return numeric
        if self.kind in CATEGORICAL_KINDS:
            lookup, other = self._lookup, len(self.categories)

            def categorical(value: Any) -> int:
                if _is_null_scalar(value):
                    return null
                try:
                    return lookup.get(value, other)
                except TypeError:  # unhashable: a 0-d array is unwrapped, else not a category
                    if isinstance(value, np.ndarray) and value.ndim == 0:
                        return categorical(value.item())
                    return other

            return categorical

        def untested(value: Any) -> int:
            return null if _is_null_scalar(value) else 0

        return untested

    def psi_counts(self, counts: np.ndarray) -> np.ndarray:
        """The vector PSI is computed on: the NON-NULL distribution, coarse bins (numeric) or
        categories + other. A change in the share of missing values is a data-quality finding
        of its own (``kfops.monitoring.quality.check_null_shares``), not distribution drift."""
        if self.kind != NUMERIC:
            return counts[:-1]
        return np.bincount(
            self.coarse_of_fine, weights=counts[:-1], minlength=len(self.coarse_edges) + 1
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.kind == NUMERIC:
            data["edges"] = list(self.edges)
            data["coarse_edges"] = list(self.coarse_edges)
        elif self.kind in CATEGORICAL_KINDS:
            data["categories"] = list(self.categories)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureBins:
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            edges=tuple(float(e) for e in data.get("edges", ())),
            coarse_edges=tuple(float(e) for e in data.get("coarse_edges", ())),
            categories=tuple(data.get("categories", ())),
        )


def numeric_bins(
    name: str, values: Any, bins: int = DEFAULT_BINS, fine_bins: int = DEFAULT_FINE_BINS
) -> FeatureBins:
    """Quantile binning of one numeric column (see the module docstring)."""
    x = as_float_array(values)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return FeatureBins(name, NUMERIC)  # one open bin: only the null rate is informative
    step = fine_bins // bins
    fine = np.quantile(x, np.arange(1, fine_bins) / fine_bins)
    coarse = fine[step - 1 :: step][: bins - 1]
    return FeatureBins(
        name,
        NUMERIC,
        edges=tuple(np.unique(fine).tolist()),
        coarse_edges=tuple(np.unique(coarse).tolist()),
    )


def categorical_bins(
    name: str, values: Any, kind: str = "categorical", max_categories: int = DEFAULT_MAX_CATEGORIES
) -> FeatureBins:
    """The ``max_categories`` most frequent values, most frequent first (ties by value)."""
    freq = pd.Series(_to_numpy(values)).value_counts(dropna=True)
    ranked = sorted(
        ((int(n), _as_python(v)) for v, n in freq.items()), key=lambda t: (-t[0], str(t[1]))
    )
    return FeatureBins(name, kind, categories=tuple(v for _, v in ranked[:max_categories]))


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(eq=False)
class WindowProfile:
    """Counts of a window of data in a reference profile's slots; windows merge by addition.

    A feature absent from ``counts`` was missing from the window's data.
    """

    profile_id: str
    rows: int
    counts: dict[str, np.ndarray] = field(default_factory=dict)

    def merge(self, other: WindowProfile) -> WindowProfile:
        if other.profile_id != self.profile_id:
            raise DataError(
                f"cannot merge windows of different reference profiles "
                f"({self.profile_id[:12]} and {other.profile_id[:12]})"
            )
        counts = {name: c.copy() for name, c in self.counts.items()}
        for name, c in other.counts.items():
            counts[name] = counts[name] + c if name in counts else c.copy()
        return WindowProfile(self.profile_id, self.rows + other.rows, counts)

    __add__ = merge

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WindowProfile):
            return NotImplemented
        return (
            self.profile_id == other.profile_id
            and self.rows == other.rows
            and self.counts.keys() == other.counts.keys()
            and all(np.array_equal(c, other.counts[n]) for n, c in self.counts.items())
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile_id": self.profile_id,
            "rows": self.rows,
            "counts": {name: c.tolist() for name, c in self.counts.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WindowProfile:
        try:
            return cls(
                profile_id=str(data["profile_id"]),
                rows=int(data["rows"]),
                counts={
                    str(n): np.asarray(c, dtype=np.int64) for n, c in dict(data["counts"]).items()
                },
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"malformed window profile: {exc}") from exc

    def save(self, path: str | Path) -> None:
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> WindowProfile:
        return cls.from_dict(_read(path, "window profile"))


def merge_windows(windows: Iterable[WindowProfile]) -> WindowProfile:
    """The merge of several windows (e.g. a day from its hours); at least one is needed."""
    items = list(windows)
    if not items:
        raise DataError("no window profiles to merge")
    out = items[0]
    for w in items[1:]:
        out = out.merge(w)
    return out


@dataclass(eq=False)
class ReferenceProfile:
    """Binning of every contract feature plus the training data's counts in those bins."""

    features: dict[str, FeatureBins]
    reference: WindowProfile
    bins: int = DEFAULT_BINS
    fine_bins: int = DEFAULT_FINE_BINS

    @property
    def rows(self) -> int:
        return self.reference.rows

    @property
    def profile_id(self) -> str:
        return self.reference.profile_id

    def empty_window(self) -> WindowProfile:
        return WindowProfile(self.profile_id, 0, {})

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": PROFILE_SCHEMA_VERSION,
            "profile_id": self.profile_id,
            "bins": self.bins,
            "fine_bins": self.fine_bins,
            "rows": self.rows,
            "features": [
                {**fb.to_dict(), "counts": self.reference.counts[name].tolist()}
                for name, fb in self.features.items()
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        if data.get("schema_version") != PROFILE_SCHEMA_VERSION:
            raise DataError(
                f"reference profile schema_version {data.get('schema_version')!r} is not "
                f"supported (expected {PROFILE_SCHEMA_VERSION})"
            )
        try:
            features = {f["name"]: FeatureBins.from_dict(f) for f in data["features"]}
            counts = {f["name"]: np.asarray(f["counts"], dtype=np.int64) for f in data["features"]}
            bad = [n for n, fb in features.items() if counts[n].shape != (fb.slots,)]
            if bad:
                raise ValueError(f"counts do not match the bins of {bad}")
            profile_id = binning_id(features.values())
            if data.get("profile_id") not in (None, profile_id):
                raise ValueError("profile_id does not match its bins")
            return cls(
                features=features,
                reference=WindowProfile(profile_id, int(data["rows"]), counts),
                bins=int(data.get("bins", DEFAULT_BINS)),
                fine_bins=int(data.get("fine_bins", DEFAULT_FINE_BINS)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"malformed reference profile: {exc}") from exc

    def save(self, path: str | Path) -> None:
        """Write JSON; ``path`` may be a model version directory (uses reference_profile.json)."""
        target = Path(path)
        if target.is_dir():
            target = target / PROFILE_FILE
        write_json_atomic(target, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> ReferenceProfile:
        target = Path(path)
        if target.is_dir():
            target = target / PROFILE_FILE
        return cls.from_dict(_read(target, "reference profile"))


def _read(path: str | Path, what: str) -> Any:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no {what} at {path}")
    try:
        return read_json(path)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{what} {path} is not valid JSON: {exc}") from exc


def binning_id(features: Iterable[FeatureBins]) -> str:
    """sha256 of the binning: windows may only be compared/merged under the same binning."""
    return hashlib.sha256(_canonical([f.to_dict() for f in features]).encode()).hexdigest()


def build_reference_profile(
    df: pd.DataFrame,
    contract: Contract | Mapping[str, str],
    bins: int = DEFAULT_BINS,
    fine_bins: int = DEFAULT_FINE_BINS,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
) -> ReferenceProfile:
    """Bin every contract feature on the training frame ``df`` and count it.

    ``contract`` may also be a mapping column -> kind (e.g. ``{"prediction": "categorical"}``)
    to profile columns that are not model features, such as the model's predictions.
    """
    if not isinstance(contract, Contract):
        bad = {n: k for n, k in contract.items() if k not in FEATURE_KINDS}
        if bad:
            raise ConfigError(f"unknown column kinds {bad}; kinds are {list(FEATURE_KINDS)}")
        kinds = dict(contract)
    else:
        kinds = {f.name: f.kind for f in contract.features}
    if bins < 2 or fine_bins < bins or fine_bins % bins:
        raise ConfigError(
            f"bins={bins}, fine_bins={fine_bins}: need bins >= 2 and fine_bins a multiple of bins"
        )
    if max_categories < 1:
        raise ConfigError(f"max_categories must be at least 1, got {max_categories}")
    if len(df) == 0:
        raise DataError("cannot build a reference profile from a frame with no rows")
    missing = [n for n in kinds if n not in df.columns]
    if missing:
        raise DataError(f"training frame lacks contract features {missing}")
    features: dict[str, FeatureBins] = {}
    for name, kind in kinds.items():
        if kind == NUMERIC:
            features[name] = numeric_bins(name, df[name], bins, fine_bins)
        elif kind in CATEGORICAL_KINDS:
            features[name] = categorical_bins(name, df[name], kind, max_categories)
        else:
            features[name] = FeatureBins(name, kind)
    profile_id = binning_id(features.values())
    counts = {name: fb.count(df[name]) for name, fb in features.items()}
    return ReferenceProfile(features, WindowProfile(profile_id, len(df), counts), bins, fine_bins)


def profile_window(
    df: pd.DataFrame | Mapping[str, Any], reference: ReferenceProfile
) -> WindowProfile:
    """Count a window of current data (a frame or column -> values) in the reference's bins.

    Features absent from the data are left out of the window (``detect_drift`` reports them).
    """
    if isinstance(df, pd.DataFrame):
        rows = len(df)
        columns: Mapping[str, Any] = df
    else:
        columns = {k: _to_numpy(v) for k, v in df.items()}
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise DataError(f"window columns have different lengths {sorted(lengths)}")
        rows = lengths.pop() if lengths else 0
    counts = {
        name: fb.count(columns[name]) for name, fb in reference.features.items() if name in columns
    }
    return WindowProfile(reference.profile_id, rows, counts)
