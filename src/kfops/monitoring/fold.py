"""Folding captured rows into window counts, one chunk at a time.

A monitoring window is never held in memory: every chunk of captured rows
(``kfops.monitoring.capture.iter_capture``) is folded into counts that merge by addition,

- ``WindowFold``: the monitored version's rows of one UTC hour (or of a whole window): their
  drift profile (``kfops.drift.WindowProfile``), their data-quality counts (``QualityCounts``)
  and the number of rows other versions served;
- ``StreamingLabelJoin``: the captured rows that have a late label (labels are indexed by id, rows
  stream past; only joined rows are kept, so memory follows the labels, not the window).

Merging is exact: the folds of a window's chunks (or of its hours) give the same profile,
the same ``ValidationReport`` and the same joins as reading the window at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from kfops.contract._values import MAX_EXAMPLES, to_jsonable
from kfops.contract_model import Contract
from kfops.drift import ReferenceProfile, WindowProfile, profile_window
from kfops.errors import DataError
from kfops.monitoring.capture import META_COLUMNS, CaptureChunk
from kfops.monitoring.labels import Labels

_Key = tuple[str | None, str, str]  # (column, rule, severity)


@dataclass
class QualityCounts:
    """A window's data-quality findings in a form that merges by addition.

    ``to_report`` gives the ``ValidationReport`` that ``kfops.contract.validate`` gives on the
    whole window: each chunk is validated alone with all-null columns allowed (so no finding is
    hidden), per-rule counts add up, and the window-level rules (a contract column missing from
    every row, a column with no value in any row) are decided on the totals. Examples keep the
    first five distinct failing values met; a whole-window read may show five others of the
    same values (pandera orders failure cases its own way).
    """

    rows: int = 0
    columns: list[str] = field(default_factory=list)  # raw columns seen, first seen first
    nonnull: dict[str, int] = field(default_factory=dict)  # contract feature -> readable values
    findings: dict[_Key, tuple[int, list[Any]]] = field(default_factory=dict)

    @classmethod
    def of_frame(cls, frame: pd.DataFrame, present: list[str], contract: Contract) -> QualityCounts:
        """Counts of one chunk; ``frame`` has every contract feature (absent ones all-null),
        ``present`` the columns the captured rows really had."""
        from kfops.contract import validate

        out = cls(rows=len(frame), columns=list(present))
        if not len(frame):
            return out
        report = validate(frame, contract, check_target=False, allow_all_null=True)
        lost = {v.column: v.count for v in report.violations if v.rule == "type"}
        for name in contract.feature_names:
            out.nonnull[name] = int(frame[name].notna().sum()) - lost.get(name, 0)
        for v in report.violations:
            key = (v.column, v.rule, v.severity)
            out.findings[key] = (v.count, [to_jsonable(e) for e in v.examples])
        return out

    def merge(self, other: QualityCounts) -> QualityCounts:
        columns = self.columns + [c for c in other.columns if c not in set(self.columns)]
        nonnull = dict(self.nonnull)
        for name, n in other.nonnull.items():
            nonnull[name] = nonnull.get(name, 0) + n
        findings = dict(self.findings)
        for key, (count, examples) in other.findings.items():
            if key in findings:
                had, seen = findings[key]
                merged = list(seen)
                for e in examples:
                    if len(merged) >= MAX_EXAMPLES:
                        break
                    if e not in merged:
                        merged.append(e)
                findings[key] = (had + count, merged)
            else:
                findings[key] = (count, list(examples))
        return QualityCounts(self.rows + other.rows, columns, nonnull, findings)

    def to_report(self, contract: Contract) -> Any:
        """The window's ``ValidationReport`` (errors first, then type errors, then warnings)."""
        from kfops.contract.validation import ValidationReport, Violation, violation

        report = ValidationReport(rows=self.rows, columns=len(self.columns))
        if self.rows == 0:
            report.violations.append(Violation(None, "empty", "error", "the data has no rows"))
            return report
        seen = set(self.columns)
        missing = [n for n in contract.feature_names if n not in seen]
        all_null = [n for n in contract.feature_names if n in seen and not self.nonnull.get(n)]
        errors = [violation(n, "missing_column", "error", 0, [], contract) for n in missing]
        errors += [violation(n, "all_null", "error", 0, [], contract) for n in all_null]
        types, warns = [], []
        for (column, rule, severity), (count, examples) in self.findings.items():
            if column in missing:
                continue  # its rows were filled with nulls only to count them
            if rule == "type":
                types.append(violation(column, rule, "error", count, examples, contract))
            elif column not in all_null or rule == "unexpected_column":
                warns.append(violation(column, rule, severity, count, examples, contract))  # type: ignore[arg-type]
        order = {n: i for i, n in enumerate(contract.feature_names)}
        types.sort(key=lambda v: order.get(v.column or "", len(order)))
        report.violations = errors + types + warns
        return report

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "columns": list(self.columns),
            "nonnull": dict(self.nonnull),
            "findings": [
                {"column": c, "rule": r, "severity": s, "count": n, "examples": e}
                for (c, r, s), (n, e) in self.findings.items()
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QualityCounts:
        try:
            return cls(
                rows=int(data["rows"]),
                columns=[str(c) for c in data["columns"]],
                nonnull={str(k): int(v) for k, v in dict(data["nonnull"]).items()},
                findings={
                    (f["column"], str(f["rule"]), str(f["severity"])): (
                        int(f["count"]),
                        list(f["examples"]),
                    )
                    for f in data["findings"]
                },
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"malformed quality counts: {exc}") from exc


@dataclass
class WindowFold:
    """The monitored version's rows of a window (or of one hour of it), as counts."""

    profile: WindowProfile
    quality: QualityCounts
    other_version_rows: int = 0

    @property
    def rows(self) -> int:
        return self.profile.rows

    @classmethod
    def empty(cls, reference: ReferenceProfile) -> WindowFold:
        return cls(reference.empty_window(), QualityCounts())

    def merge(self, other: WindowFold) -> WindowFold:
        return WindowFold(
            self.profile.merge(other.profile),
            self.quality.merge(other.quality),
            self.other_version_rows + other.other_version_rows,
        )

    def window_profile(self) -> WindowProfile:
        """The drift profile; features no captured row had are left out (reported missing)."""
        seen = set(self.quality.columns)
        counts = {n: c for n, c in self.profile.counts.items() if n in seen}
        return WindowProfile(self.profile.profile_id, self.profile.rows, counts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile.to_dict(),
            "quality": self.quality.to_dict(),
            "other_version_rows": self.other_version_rows,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowFold:
        try:
            return cls(
                WindowProfile.from_dict(data["profile"]),
                QualityCounts.from_dict(data["quality"]),
                int(data["other_version_rows"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"malformed window fold: {exc}") from exc


def served_mask(meta: pd.DataFrame, version: str) -> np.ndarray:
    """Rows the monitored version served (rows without a version count as served by it)."""
    return (meta["version"].fillna(version) == version).to_numpy()


def fold_chunk(
    chunk: CaptureChunk, reference: ReferenceProfile, contract: Contract, version: str
) -> dict[float, WindowFold]:
    """One chunk's folds, by the UTC hour of each row."""
    served = served_mask(chunk.meta, version)
    hours = np.floor(chunk.meta["ts"].to_numpy(np.float64) / 3600) * 3600
    present = list(chunk.features.columns)
    wanted = present + [n for n in contract.feature_names if n not in set(present)]
    out: dict[float, WindowFold] = {}
    for hour in np.unique(hours):
        in_hour = hours == hour
        rows = in_hour & served
        frame = chunk.features[rows].reindex(columns=wanted)
        out[float(hour)] = WindowFold(
            profile_window(frame, reference),
            QualityCounts.of_frame(frame, present, contract),
            int((in_hour & ~served).sum()),
        )
    return out


class StreamingLabelJoin:
    """Captured rows with a late label, joined as they stream past.

    The labels are indexed once (by id; the last label of an id wins, as in ``read_labels``);
    each chunk keeps only its labelled rows. ``joined`` has the columns of
    ``kfops.monitoring.labels.join_labels`` (id, ts, version, prediction, proba, label) indexed by
    the row's position among the window's monitored rows; ``features`` (when ``keep_features``)
    the same rows' captured features, for a training table. As in ``labels.match_labels``, an
    id captured more than once in the window is ambiguous and none of its rows is joined; only
    labelled ids are counted, so memory follows the labels, not the window.
    """

    def __init__(self, labels: Labels, keep_features: bool = False) -> None:
        self.labels = labels
        self.index = pd.Index(labels.frame["id"].astype(str))
        self.values = labels.frame["label"].reset_index(drop=True)
        self.keep_features = keep_features
        self.captured = np.zeros(len(self.index), dtype=np.int64)  # rows per labelled id
        self.example_id: str | None = None  # a captured id, to show what ids look like
        self._meta: list[pd.DataFrame] = []
        self._features: list[pd.DataFrame] = []
        self._offset = 0

    def add(self, features: pd.DataFrame, meta: pd.DataFrame) -> None:
        """Join one chunk's monitored rows (features and meta aligned, in window order)."""
        if self.example_id is None:
            ids = meta["id"].dropna()
            self.example_id = None if ids.empty else str(ids.iloc[0])
        pos = self.index.get_indexer(meta["id"])
        hit = pos >= 0
        if hit.any():
            np.add.at(self.captured, pos[hit], 1)
            part = meta[hit].copy()
            part.index = pd.RangeIndex(self._offset, self._offset + len(meta))[hit]
            part["label"] = self.values.to_numpy()[pos[hit]]
            self._meta.append(part)
            if self.keep_features:
                self._features.append(features[hit].set_axis(part.index))
        self._offset += len(meta)

    def _ambiguous(self) -> set[str]:
        return set(self.index[self.captured > 1])

    @property
    def joined(self) -> pd.DataFrame:
        if not self._meta:
            return pd.DataFrame(columns=[*META_COLUMNS, "label"]).rename_axis("row")
        frame = pd.concat(self._meta).rename_axis("row")
        ambiguous = self._ambiguous()
        return frame[~frame["id"].isin(ambiguous)] if ambiguous else frame

    @property
    def features(self) -> pd.DataFrame:
        if not self._features:
            return pd.DataFrame()
        return pd.concat(self._features).loc[self.joined.index]

    def stats(self) -> dict[str, Any]:
        """The same record as ``labels.LabelJoin.stats()`` (read, joined, ambiguous, ...)."""
        ambiguous = self.captured > 1
        return {
            "files": self.labels.files,
            "lines": self.labels.lines,
            "malformed": self.labels.malformed,
            "read": len(self.index),
            "joined": len(self.joined),
            "ambiguous_ids": int(ambiguous.sum()),
            "ambiguous_rows": int(self.captured[ambiguous].sum()),
            "unmatched": int((self.captured == 0).sum()),
            "example_id": self.example_id,
        }


def hour_folds_merge(folds: dict[float, WindowFold], into: dict[float, WindowFold]) -> None:
    """Add ``folds`` (by hour) into ``into``."""
    for hour, fold in folds.items():
        into[hour] = into[hour].merge(fold) if hour in into else fold


__all__ = [
    "QualityCounts",
    "StreamingLabelJoin",
    "WindowFold",
    "fold_chunk",
    "hour_folds_merge",
    "served_mask",
]
