"""Hourly profiles: one small file per model, version and closed UTC hour, next to the capture.

``<capture>/<model>/<YYYY-MM-DD>/<HH>.<version>.profile.json`` holds the ``WindowFold`` (drift
profile counts, data-quality counts, rows of other versions) of the rows the version served
with a time stamp in that hour, plus the lines and malformed lines of the hour's own files.
Monitoring a day merges its 24 hourly profiles instead of re-reading the raw rows; raw rows are
read only for hours without a valid profile, for the partial hours at the window's edges, and
for late labels (which arrive after any profile was written).

Rules:

- **Closed hours only.** An hour is compacted when it ended at least ``CLOSE_AFTER_S`` ago (the
  capture writer stamps a row, queues it and appends it within seconds; ten minutes is a wide
  margin) and the window being read covers it entirely (so every file that can hold its rows,
  those of the hour before and after included, was read).
- **Exact.** A profile is the same fold monitoring makes from raw rows, so a window merged from
  hourly profiles gives the same verdict as reading its rows (tested).
- **Atomic.** Written to a temporary name and renamed (local disk), or as one object (object
  stores write an object whole); a reader sees the old file, the new one or none.
- **Checked before use.** A profile records the sizes of the capture files of its hour and the
  hour before (where its rows are); if those files changed (a late writer, a backfill), or the
  version's reference profile (binning) is not the one it was counted in, it is not used and the
  hour is read raw and compacted again.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfops.errors import DataError
from kfops.io import dumps_json
from kfops.monitoring.capture import CaptureFile, open_fs
from kfops.monitoring.fold import WindowFold

log = logging.getLogger("kfops.monitoring")

SCHEMA_VERSION = 1
CLOSE_AFTER_S = 600  # an hour is closed this long after it ended
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def is_closed(hour: float, now: float | None = None) -> bool:
    """Whether the UTC hour starting at ``hour`` is closed (no row of it can still arrive)."""
    return hour + 3600 + CLOSE_AFTER_S <= (time.time() if now is None else now)


def full_hours(start: float, end: float) -> list[float]:
    """Starts of the UTC hours that lie entirely in [start, end)."""
    first = -(-start // 3600) * 3600
    return [float(h) for h in range(int(first), int(end) - 3600 + 1, 3600)]


def profile_path(capture_dir: str | Path, model: str, version: str, hour: float) -> str:
    _, root = open_fs(capture_dir)
    tm = time.gmtime(hour)
    day, hh = time.strftime("%Y-%m-%d", tm), time.strftime("%H", tm)
    return f"{root}/{model}/{day}/{hh}.{_UNSAFE.sub('_', version)}.profile.json"


def sources_of(files: list[CaptureFile], hour: float) -> dict[str, int]:
    """The files a profile of ``hour`` depends on (its hour's and the hour before), by size."""
    return {f.key: f.size for f in files if f.hour in (hour, hour - 3600)}


@dataclass
class HourProfile:
    model: str
    version: str
    hour: float
    fold: WindowFold
    sources: dict[str, int]
    lines: int = 0  # lines of the hour's own files
    malformed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "model": self.model,
            "version": self.version,
            "hour": self.hour,
            "hour_utc": time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime(self.hour)),
            "sources": dict(self.sources),
            "lines": self.lines,
            "malformed": self.malformed,
            "fold": self.fold.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HourProfile:
        if data.get("schema_version") != SCHEMA_VERSION:
            raise DataError(f"hourly profile schema_version {data.get('schema_version')!r}")
        try:
            return cls(
                model=str(data["model"]),
                version=str(data["version"]),
                hour=float(data["hour"]),
                fold=WindowFold.from_dict(data["fold"]),
                sources={str(k): int(v) for k, v in dict(data["sources"]).items()},
                lines=int(data["lines"]),
                malformed=int(data["malformed"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"malformed hourly profile: {exc}") from exc


def load(
    capture_dir: str | Path,
    model: str,
    version: str,
    hour: float,
    profile_id: str,
    files: list[CaptureFile],
) -> HourProfile | None:
    """The hour's profile when it exists and is still valid (see the module docstring)."""
    import json

    fs, _ = open_fs(capture_dir)
    path = profile_path(capture_dir, model, version, hour)
    try:
        with fs.open(path, "rb") as fh:
            profile = HourProfile.from_dict(json.loads(fh.read()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, DataError) as exc:  # unreadable: read the hour raw again
        log.warning("ignoring hourly profile %s: %s", path, exc)
        return None
    if (
        profile.model != model
        or profile.version != version
        or profile.hour != hour
        or profile.fold.profile.profile_id != profile_id
        or profile.sources != sources_of(files, hour)
    ):
        return None
    return profile


def save(capture_dir: str | Path, profile: HourProfile) -> str | None:
    """Write atomically; a capture store that cannot be written is logged, not fatal."""
    fs, _ = open_fs(capture_dir)
    path = profile_path(capture_dir, profile.model, profile.version, profile.hour)
    text = dumps_json(profile.to_dict())
    try:
        if "file" in ((fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)):
            folder = os.path.dirname(path)
            fd, tmp = tempfile.mkstemp(prefix=".profile.", dir=folder)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(text)
                os.chmod(tmp, 0o644)  # readable like the capture files (mkstemp makes 0600)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        else:
            with fs.open(path, "wb") as fh:  # one object, written whole on close
                fh.write(text.encode())
    except OSError as exc:
        log.warning("cannot write hourly profile %s: %s", path, exc)
        return None
    return path
