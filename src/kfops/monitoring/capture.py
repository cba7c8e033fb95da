"""Reading the payload capture: one model's captured rows in a time window, in chunks.

``iter_capture`` streams a window in chunks of at most ``CHUNK_ROWS`` parsed rows, so reading
costs the same memory for an hour or a week; ``read_capture`` concatenates them (small windows,
tests). Truncated or malformed lines (not JSON, not an object, no ``features`` object, no numeric
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

import numpy as np
import pandas as pd

from kfops.defaults import MONITORING_WINDOW_HOURS
from kfops.errors import ConfigError

log = logging.getLogger("kfops.monitoring")

MAX_EXAMPLES = 5  # malformed-line examples kept in a result
CHUNK_ROWS = 50_000  # rows parsed and held at once by a streaming read (about 50 MB)
FILE_SLACK_S = 60  # a row stamped in hour H may sit in the file of the hour before or after
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


def hour_of(ts: float) -> float:
    """Start (epoch seconds) of the UTC hour ``ts`` falls in."""
    return float(int(ts // 3600) * 3600)


@dataclass(frozen=True)
class CaptureFile:
    """One capture file: its path, the UTC hour its name says, and its size when listed."""

    path: str
    hour: float | None  # None: a .jsonl file without the HH- prefix (always read)
    size: int

    @property
    def key(self) -> str:
        """``<day>/<name>``: how hourly profiles name their source files."""
        return "/".join(self.path.rstrip("/").rsplit("/", 2)[-2:])


def list_capture_files(
    capture_dir: str | Path, model: str, intervals: list[tuple[float, float]]
) -> list[CaptureFile]:
    """Capture files whose hour (from the documented layout) can overlap any interval."""
    fs, root = open_fs(capture_dir)
    model_dir = f"{root}/{model}"
    if not intervals or not fs.isdir(model_dir):
        return []
    lo, hi = min(s for s, _ in intervals), max(e for _, e in intervals)
    out = []
    for day_path in sorted(fs.ls(model_dir, detail=False)):
        day = day_path.rstrip("/").rsplit("/", 1)[-1]
        if not _DAY_DIR.match(day):
            continue
        day_start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
        if day_start >= hi + FILE_SLACK_S or day_start + 86400 + FILE_SLACK_S <= lo:
            continue
        for info in sorted(fs.ls(day_path, detail=True), key=lambda i: i["name"]):
            path = info["name"]
            name = path.rsplit("/", 1)[-1]
            if not name.endswith(".jsonl") or info.get("type") == "directory":
                continue
            hour = _HOUR_FILE.match(name)
            h0 = day_start + 3600 * int(hour.group(1)) if hour else None
            # Rows are stamped before the file is chosen: allow a minute of slack.
            if h0 is not None and not any(
                h0 < e + FILE_SLACK_S and h0 + 3600 + FILE_SLACK_S > s for s, e in intervals
            ):
                continue
            out.append(CaptureFile(path, h0, int(info.get("size") or 0)))
    return out


def _capture_files(capture_dir: str | Path, model: str, start: float, end: float) -> list[str]:
    return [f.path for f in list_capture_files(capture_dir, model, [(start, end)])]


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


@dataclass
class CaptureScan:
    """What a read of the capture met: files and lines read, malformed lines (skipped), rows
    outside the window or model (skipped). Malformed-line examples are ``file:line: reason``."""

    files: int = 0
    lines: int = 0
    malformed: int = 0
    outside_window: int = 0
    examples: list[str] = field(default_factory=list)
    # Per file hour (the HH of the file's name): [lines, malformed], for hourly profiles.
    by_file_hour: dict[float | None, list[int]] = field(default_factory=dict)

    def add_malformed(self, where: str, reason: str, count: int = 1) -> None:
        self.malformed += count
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{where}: {reason}")


@dataclass
class CaptureChunk:
    """At most ``chunk_rows`` captured rows: features and prediction metadata, aligned."""

    features: pd.DataFrame  # one column per captured feature
    meta: pd.DataFrame  # id, ts, version, prediction, proba (dict or None)

    @property
    def rows(self) -> int:
        return len(self.meta)


META_COLUMNS = ["id", "ts", "version", "prediction", "proba"]


def _check(rec: Any) -> str | None:
    """Why a parsed line is not a capture record (None: it is one)."""
    # type() checks: JSON gives exactly dict/int/float (and bool is not a number here).
    if type(rec) is not dict:
        return "not a JSON object"
    if type(rec.get("features")) is not dict:
        return "no 'features' object"
    if type(rec.get("ts")) not in (int, float):
        return "no numeric 'ts'"
    return None


def _chunk(records: list[dict[str, Any]]) -> CaptureChunk:
    features = pd.DataFrame.from_records([r["features"] for r in records])
    meta = pd.DataFrame(
        {
            "id": [None if r.get("id") is None else str(r["id"]) for r in records],
            "ts": np.fromiter((float(r["ts"]) for r in records), np.float64, len(records)),
            "version": [None if r.get("version") is None else str(r["version"]) for r in records],
            "prediction": [r.get("prediction") for r in records],
            "proba": [p if isinstance(p := r.get("proba"), dict) else None for r in records],
        },
        columns=META_COLUMNS,
    )
    return CaptureChunk(features, meta)


def iter_capture(
    capture_dir: str | Path,
    model: str,
    start: float,
    end: float,
    *,
    chunk_rows: int = CHUNK_ROWS,
    scan: CaptureScan | None = None,
    files: list[CaptureFile] | None = None,
    skip_hours: frozenset[float] = frozenset(),
) -> Iterator[CaptureChunk]:
    """The captured rows of ``model`` with ``start <= ts < end``, in chunks of at most
    ``chunk_rows`` rows (the reader holds at most one chunk of parsed rows at a time).

    ``files`` (default: every file that can hold such rows) are read line by line; rows whose
    UTC hour is in ``skip_hours`` (hours an hourly profile already counts) are passed over.
    Truncated or malformed lines are skipped and counted in ``scan``.
    """
    if chunk_rows < 1:
        raise ConfigError(f"chunk_rows must be at least 1, got {chunk_rows}")
    if start >= end:
        raise ConfigError(f"window start {iso(start)} is not before its end {iso(end)}")
    scan = CaptureScan() if scan is None else scan
    fs, _ = open_fs(capture_dir)
    loads = _json_loader()
    if files is None:
        files = list_capture_files(capture_dir, model, [(start, end)])
    records: list[dict[str, Any]] = []
    previous: float | None = None
    for file in files:
        if records and file.hour != previous:
            # A chunk stays within one file hour: it is folded per hour, and each fold costs
            # a validation call (fixed overhead), so mixing hours in a chunk would double them.
            chunk, records = _chunk(records), []
            yield chunk
        previous = file.hour
        scan.files += 1
        tally = scan.by_file_hour.setdefault(file.hour, [0, 0])
        for number, raw in enumerate(iter_lines(fs, file.path), start=1):
            if not raw.strip():
                continue
            scan.lines += 1
            tally[0] += 1
            try:
                rec = loads(raw)
            except ValueError:  # orjson.JSONDecodeError and json's are ValueErrors
                reason: str | None = "not valid JSON (truncated?)"
            else:
                reason = _check(rec)
            if reason is not None:
                scan.add_malformed(f"{file.path}:{number}", reason)
                tally[1] += 1
                continue
            ts = float(rec["ts"])
            if not start <= ts < end or rec.get("model", model) != model:
                scan.outside_window += 1
                continue
            if skip_hours and hour_of(ts) in skip_hours:
                continue
            records.append(rec)
            if len(records) >= chunk_rows:
                chunk, records = _chunk(records), []  # parsed dicts freed before the fold
                yield chunk
    if records:
        yield _chunk(records)
    if scan.malformed:
        log.warning(
            "%s: skipped %d malformed of %d captured lines, e.g. %s",
            model,
            scan.malformed,
            scan.lines,
            scan.examples[0],
        )


def read_capture(
    capture_dir: str | Path,
    model: str,
    start: float | None = None,
    end: float | None = None,
) -> CaptureWindow:
    """Read the captured rows of ``model`` with ``start <= ts < end`` (default: last 24 hours)
    into memory at once. For small windows and tests; monitoring streams (``iter_capture``).

    Truncated or malformed lines (not JSON, not an object, no ``features`` object, no numeric
    ``ts``) are skipped and counted; they never fail the window.
    """
    end = time.time() if end is None else end
    start = end - MONITORING_WINDOW_HOURS * 3600 if start is None else start
    scan = CaptureScan()
    chunks = list(iter_capture(capture_dir, model, start, end, scan=scan))
    window = CaptureWindow(
        model,
        start,
        end,
        pd.concat([c.features for c in chunks], ignore_index=True) if chunks else pd.DataFrame(),
        pd.concat([c.meta for c in chunks], ignore_index=True)
        if chunks
        else pd.DataFrame(columns=META_COLUMNS),
    )
    window.files, window.lines, window.malformed = scan.files, scan.lines, scan.malformed
    window.outside_window, window.examples = scan.outside_window, scan.examples
    return window
