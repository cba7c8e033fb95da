"""Reading the payload capture: one model's captured rows in a time window.

Truncated or malformed lines (not JSON, not an object, no ``features`` object, no numeric
``ts``) are skipped and counted; they never fail a window. Format: docs/ARCHITECTURE.md,
"Payload capture".
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from kfops.defaults import MONITORING_WINDOW_HOURS
from kfops.errors import ConfigError

log = logging.getLogger("kfops.monitoring")

MAX_EXAMPLES = 5  # malformed-line examples kept in a result
_HOUR_FILE = re.compile(r"^(\d{2})-")
_DAY_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass
class CaptureWindow:
    """Captured rows of one model in [start, end): features and prediction metadata, aligned."""

    model: str
    start: float
    end: float
    features: pd.DataFrame  # one column per captured feature
    meta: pd.DataFrame  # id, ts, version, prediction, proba (dict or None)
    files: int = 0
    lines: int = 0
    malformed: int = 0
    outside_window: int = 0
    examples: list[str] = field(default_factory=list)  # "file:line: reason"

    @property
    def rows(self) -> int:
        return len(self.meta)

    def stats(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "start": iso(self.start),
            "end": iso(self.end),
            "start_ts": self.start,
            "end_ts": self.end,
            "rows": self.rows,
            "files": self.files,
            "lines": self.lines,
            "malformed": self.malformed,
            "outside_window": self.outside_window,
            "malformed_examples": list(self.examples),
        }


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def parse_time(value: str | float | datetime | None, default: float) -> float:
    """A window bound: epoch seconds, ISO 8601 (naive = UTC), ``now`` or ``-2h``/``-30m``."""
    if value is None:
        return default
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    if text == "now":
        return time.time()
    rel = re.fullmatch(r"-(\d+(?:\.\d+)?)([smhd])", text)
    if rel:
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}[rel.group(2)]
        return time.time() - float(rel.group(1)) * unit
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"bad time {value!r}: use ISO 8601, epoch seconds, 'now' or '-2h'"
        ) from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def default_window(hours: float, end: float | None = None) -> tuple[float, float]:
    stop = time.time() if end is None else end
    return stop - timedelta(hours=hours).total_seconds(), stop


def open_fs(uri: str | Path) -> tuple[Any, str]:
    import fsspec

    fs, root = fsspec.core.url_to_fs(str(uri))
    return fs, root.rstrip("/")


def _capture_files(capture_dir: str | Path, model: str, start: float, end: float) -> list[str]:
    """Capture files whose hour (from the documented layout) can overlap [start, end)."""
    fs, root = open_fs(capture_dir)
    model_dir = f"{root}/{model}"
    if not fs.isdir(model_dir):
        return []
    out = []
    for day_path in sorted(fs.ls(model_dir, detail=False)):
        day = day_path.rstrip("/").rsplit("/", 1)[-1]
        if not _DAY_DIR.match(day):
            continue
        day_start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
        if day_start >= end or day_start + 86400 <= start:
            continue
        for path in sorted(fs.ls(day_path, detail=False)):
            name = path.rsplit("/", 1)[-1]
            if not name.endswith(".jsonl"):
                continue
            hour = _HOUR_FILE.match(name)
            if hour:
                h0 = day_start + 3600 * int(hour.group(1))
                # Rows are stamped before the file is chosen: allow a minute of slack.
                if h0 >= end + 60 or h0 + 3600 + 60 <= start:
                    continue
            out.append(path)
    return out


def _json_loader() -> Callable[[bytes], Any]:
    # orjson (a kserve dependency, so present wherever the server runs) parses faster.
    try:
        import orjson
    except ImportError:  # pragma: no cover
        return json.loads
    return orjson.loads


def iter_lines(fs: Any, path: str) -> Iterator[bytes]:
    with fs.open(path, "rb") as fh:
        yield from fh


def read_capture(
    capture_dir: str | Path,
    model: str,
    start: float | None = None,
    end: float | None = None,
) -> CaptureWindow:
    """Read the captured rows of ``model`` with ``start <= ts < end`` (default: last 24 hours).

    Truncated or malformed lines (not JSON, not an object, no ``features`` object, no numeric
    ``ts``) are skipped and counted; they never fail the window.
    """
    end = time.time() if end is None else end
    start = end - MONITORING_WINDOW_HOURS * 3600 if start is None else start
    if start >= end:
        raise ConfigError(f"window start {iso(start)} is not before its end {iso(end)}")
    window = CaptureWindow(model, start, end, pd.DataFrame(), pd.DataFrame())
    fs, _ = open_fs(capture_dir)
    loads = _json_loader()
    feats: list[dict[str, Any]] = []
    meta: list[dict[str, Any]] = []
    for path in _capture_files(capture_dir, model, start, end):
        window.files += 1
        for number, raw in enumerate(iter_lines(fs, path), start=1):
            if not raw.strip():
                continue
            window.lines += 1
            reason = None
            try:
                rec = loads(raw)
            except ValueError:  # orjson.JSONDecodeError and json's are ValueErrors
                reason = "not valid JSON (truncated?)"
            else:
                if not isinstance(rec, dict):
                    reason = "not a JSON object"
                elif not isinstance(rec.get("features"), dict):
                    reason = "no 'features' object"
                elif not isinstance(rec.get("ts"), int | float) or isinstance(rec["ts"], bool):
                    reason = "no numeric 'ts'"
            if reason is not None:
                window.malformed += 1
                if len(window.examples) < MAX_EXAMPLES:
                    window.examples.append(f"{path}:{number}: {reason}")
                continue
            ts = float(rec["ts"])
            if not start <= ts < end or rec.get("model", model) != model:
                window.outside_window += 1
                continue
            feats.append(rec["features"])
            proba = rec.get("proba")
            meta.append(
                {
                    "id": None if rec.get("id") is None else str(rec["id"]),
                    "ts": ts,
                    "version": None if rec.get("version") is None else str(rec["version"]),
                    "prediction": rec.get("prediction"),
                    "proba": proba if isinstance(proba, dict) else None,
                }
            )
    window.features = pd.DataFrame.from_records(feats) if feats else pd.DataFrame()
    window.meta = pd.DataFrame.from_records(
        meta, columns=["id", "ts", "version", "prediction", "proba"]
    )
    if window.malformed:
        log.warning(
            "%s: skipped %d malformed of %d captured lines, e.g. %s",
            model,
            window.malformed,
            window.lines,
            window.examples[0],
        )
    return window
