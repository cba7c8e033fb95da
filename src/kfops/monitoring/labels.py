"""Late labels: ground truth that arrives after the prediction, joined by request id."""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from kfops.errors import DataError
from kfops.monitoring.capture import CaptureWindow, iter_lines, open_fs

log = logging.getLogger("kfops.monitoring")


@dataclass
class Labels:
    """Late labels by capture id (``<x-request-id>:<row>``); the last label of an id wins."""

    frame: pd.DataFrame  # id, label
    files: int = 0
    lines: int = 0
    malformed: int = 0


def read_labels(labels_dir: str | Path) -> Labels:
    """Read ``*.jsonl`` (``{"id", "label"}``) and ``*.csv`` (``id,label``) label files."""
    fs, root = open_fs(labels_dir)
    result = Labels(pd.DataFrame(columns=["id", "label"]))
    if not fs.exists(root):
        raise DataError(f"labels directory {labels_dir} does not exist")
    paths = [root] if fs.isfile(root) else sorted(fs.ls(root, detail=False))
    rows: list[tuple[str, Any]] = []
    for path in paths:
        if path.endswith(".jsonl"):
            result.files += 1
            for raw in iter_lines(fs, path):
                if not raw.strip():
                    continue
                result.lines += 1
                try:
                    rec = json.loads(raw)
                    rows.append((str(rec["id"]), rec["label"]))
                except (ValueError, TypeError, KeyError):
                    result.malformed += 1
        elif path.endswith(".csv"):
            result.files += 1
            with fs.open(path, "rb") as fh:
                text = fh.read().decode("utf-8", errors="replace")
            for rec in csv.DictReader(io.StringIO(text)):
                result.lines += 1
                if rec.get("id") and rec.get("label") not in (None, ""):
                    rows.append((str(rec["id"]), rec["label"]))
                else:
                    result.malformed += 1
    if rows:
        frame = pd.DataFrame(rows, columns=["id", "label"])
        result.frame = frame.drop_duplicates("id", keep="last").reset_index(drop=True)
    if result.malformed:
        log.warning("labels: skipped %d malformed of %d lines", result.malformed, result.lines)
    return result


@dataclass
class LabelJoin:
    """Window rows joined with their late labels, and what a user needs to see about the join.

    A label joins a captured row when their ids are equal. An id captured more than once in the
    window (two requests sent with the same client id, before the server made repeated ids
    unique) is ambiguous: its label could belong to either row, so none of them is joined.
    """

    frame: pd.DataFrame  # the window's index (``row``), meta columns and ``label``
    read: int  # distinct label ids read
    files: int
    lines: int
    malformed: int
    ambiguous_ids: int = 0  # labelled ids captured more than once: not joined
    ambiguous_rows: int = 0  # the captured rows behind them
    unmatched: int = 0  # labels whose id is not in the window
    example_id: str | None = None  # a captured id, to show what ids look like

    @property
    def joined(self) -> int:
        return len(self.frame)

    def stats(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "lines": self.lines,
            "malformed": self.malformed,
            "read": self.read,
            "joined": self.joined,
            "ambiguous_ids": self.ambiguous_ids,
            "ambiguous_rows": self.ambiguous_rows,
            "unmatched": self.unmatched,
            "example_id": self.example_id,
        }


def label_summary(stats: dict[str, Any]) -> str:
    """One line for a person: labels read, joined, ambiguous, and what an id looks like."""
    text = (
        f"labels: {stats['read']} read from {stats['files']} file"
        + ("" if stats["files"] == 1 else "s")
        + (f" ({stats['malformed']} malformed lines skipped)" if stats["malformed"] else "")
        + f", {stats['joined']} joined to captured rows"
    )
    if stats.get("ambiguous_ids"):
        text += (
            f", {stats['ambiguous_ids']} ids ambiguous (captured {stats['ambiguous_rows']} "
            "times in all: not joined)"
        )
    if stats["joined"] == 0 and stats["read"]:
        example = stats.get("example_id")
        text += (
            f"; no label id matches a captured id: ids are <x-request-id>:<row>, e.g. {example!r}"
            if example
            else "; the window has no captured ids"
        )
    return text


def match_labels(window: CaptureWindow, labels: Labels) -> LabelJoin:
    """Join ``labels`` to ``window``'s rows by id, leaving ambiguous ids out (see LabelJoin)."""
    meta = window.meta.reset_index(names="row")
    ids = meta["id"].dropna()
    counts = ids.value_counts()
    repeated = set(counts.index[counts > 1])
    labelled = set(labels.frame["id"])
    ambiguous = repeated & labelled
    unique = meta[~meta["id"].isin(repeated)]
    joined = unique.merge(labels.frame, on="id", how="inner").set_index("row")
    example = None if ids.empty else str(ids.iloc[0])
    if ambiguous:
        log.warning(
            "labels: %d ids were captured more than once in the window (e.g. %r): not joined",
            len(ambiguous), sorted(ambiguous)[0],
        )  # fmt: skip
    return LabelJoin(
        joined,
        read=len(labels.frame),
        files=labels.files,
        lines=labels.lines,
        malformed=labels.malformed,
        ambiguous_ids=len(ambiguous),
        ambiguous_rows=int(counts[list(ambiguous)].sum()) if ambiguous else 0,
        unmatched=len(labelled - set(ids)),
        example_id=example,
    )


def join_labels(window: CaptureWindow, labels: Labels) -> pd.DataFrame:
    """Window rows that have an unambiguous label: the window's index, meta and ``label``."""
    return match_labels(window, labels).frame


def cast_labels(values: pd.Series, classes: tuple[Any, ...] | None) -> pd.Series:
    """Labels from CSV are strings; map them onto the contract's class values where they match."""
    if not classes:
        return values
    by_text = {str(c): c for c in classes}
    return values.map(lambda v: by_text.get(str(v), v))
