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
    """Late labels by request id (``<request_id>:<row>``); the last label of an id wins."""

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


def join_labels(window: CaptureWindow, labels: Labels) -> pd.DataFrame:
    """Window rows that have a label: the window's index, meta columns and ``label``."""
    meta = window.meta.reset_index(names="row")
    joined = meta.merge(labels.frame, on="id", how="inner")
    return joined.set_index("row")


def cast_labels(values: pd.Series, classes: tuple[Any, ...] | None) -> pd.Series:
    """Labels from CSV are strings; map them onto the contract's class values where they match."""
    if not classes:
        return values
    by_text = {str(c): c for c in classes}
    return values.map(lambda v: by_text.get(str(v), v))
