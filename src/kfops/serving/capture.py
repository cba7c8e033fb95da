"""Payload capture: a sample of predictions written as JSONL for batch monitoring.

The request path only draws a random number and puts one tuple on a bounded queue
(``put_nowait``); a daemon thread turns tuples into records (docs/ARCHITECTURE.md, "Payload
capture") and writes them in batches. A full queue or a failing sink drops rows and counts them
in ``kfops_capture_dropped_total``; a request never waits for or fails because of capture.

Layout: ``<sink>/<model>/<YYYY-MM-DD>/<HH>-<pid>-<seq>.jsonl`` (UTC). On a local directory a
process appends to its hourly file; on an object store (any other fsspec URI), which cannot
append, every flush writes a new object with the next ``seq``.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import fsspec
import orjson

from kfops.serving.batching import drain
from kfops.serving.metrics import get_metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaptureItem:
    """What the request path hands over; expanded to one record per row by the writer."""

    model: str
    version: str
    request_id: str
    ts: float
    names: Sequence[str]
    columns: Sequence[Sequence[Any]]
    predictions: Sequence[Any]
    proba: Sequence[Sequence[float]] | None
    classes: Sequence[Any] | None


def records(item: CaptureItem) -> list[dict[str, Any]]:
    """One JSON object per predicted row, in the documented capture format.

    NaN feature values (nullable numerics sent as null) become JSON null when dumped (orjson).
    """
    names = list(item.names)
    classes = [str(c) for c in item.classes] if item.classes is not None else None
    proba = item.proba if classes is not None else None
    out = []
    prefix = f"{item.request_id}:"
    rows = zip(*item.columns, strict=True)
    for r, (row, prediction) in enumerate(zip(rows, item.predictions, strict=True)):
        record: dict[str, Any] = {
            "id": prefix + str(r),
            "ts": item.ts,
            "model": item.model,
            "version": item.version,
            "features": dict(zip(names, row, strict=True)),
            "prediction": prediction,
        }
        if proba is not None and classes is not None:
            record["proba"] = dict(zip(classes, proba[r], strict=True))
        out.append(record)
    return out


class CaptureSink:
    """Writes lines to ``<root>/<model>/<date>/<HH>-<pid>-<seq>.jsonl`` on any fsspec target."""

    def __init__(self, uri: str, max_file_bytes: int = 64 << 20) -> None:
        self.uri = uri
        self.fs, self.root = fsspec.core.url_to_fs(uri)
        self.local = "file" in _protocols(self.fs)
        self.max_file_bytes = max_file_bytes
        self.pid = os.getpid()
        self.seq = 0
        self._current: dict[tuple[str, str, str], str] = {}

    def write(self, model: str, ts: float, lines: bytes) -> str:
        tm = time.gmtime(ts)
        day, hour = time.strftime("%Y-%m-%d", tm), time.strftime("%H", tm)
        folder = f"{self.root.rstrip('/')}/{model}/{day}"
        if self.local:
            key = (model, day, hour)
            path = self._current.get(key)
            exists = path is not None and self.fs.exists(path)
            if path is None or (exists and self.fs.size(path) > self.max_file_bytes):
                if path is not None:
                    self.seq += 1
                path = f"{folder}/{hour}-{self.pid}-{self.seq}.jsonl"
            if not exists:
                # Every time the file is not there yet: after a failed makedirs (or a folder
                # removed under us) the next batch must try again, not fail until the hour ends.
                self.fs.makedirs(folder, exist_ok=True)
            self._current = {key: path}
            # One write() per batch in append mode: a reader sees whole batches, or at worst a
            # truncated last line (which readers skip and count).
            with self.fs.open(path, "ab") as fh:
                fh.write(lines)
            return str(path)
        path = f"{folder}/{hour}-{self.pid}-{self.seq}.jsonl"
        self.seq += 1
        with self.fs.open(path, "wb") as fh:
            fh.write(lines)
        return path


def _protocols(fs: Any) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


class PayloadCapture:
    """Samples requests and writes them asynchronously through a bounded queue."""

    def __init__(
        self,
        sink: str,
        sample_rate: float = 1.0,
        max_queue: int = 1000,
        flush_interval: float = 0.5,
        max_batch_rows: int = 5000,
        seed: int | None = None,
    ) -> None:
        if not 0.0 <= sample_rate <= 1.0:
            from kfops.errors import ConfigError

            raise ConfigError(f"capture sample rate {sample_rate} must be between 0 and 1")
        self.sink_uri = sink
        self.sample_rate = sample_rate
        self.max_queue = max_queue
        self.flush_interval = flush_interval
        self.max_batch_rows = max_batch_rows
        self._random = random.Random(seed)
        self._queue: queue.Queue[CaptureItem | None] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._sink: CaptureSink | None = None
        self._start_lock = threading.Lock()
        self.written = 0
        self.dropped = 0

    def sampled(self) -> bool:
        rate = self.sample_rate
        return rate >= 1.0 or (rate > 0.0 and self._random.random() < rate)

    def submit(self, item: CaptureItem) -> bool:
        """Queue ``item`` without blocking; False (and counted) when it had to be dropped."""
        if self._thread is None:
            self._start()
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            self._drop(item.model, len(item.predictions))
            return False

    def _drop(self, model: str, rows: int) -> None:
        self.dropped += rows
        get_metrics().capture_dropped.labels(model).inc(rows)

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                # Created here, not in __init__, so a predictor pickled into kserve's spawn
                # workers starts its own writer in each worker.
                self._sink = CaptureSink(self.sink_uri)
                thread = threading.Thread(target=self._run, name="kfops-capture", daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        stop = False
        while not stop:
            try:
                first = self._queue.get(timeout=self.flush_interval)
            except queue.Empty:
                continue
            batch: list[CaptureItem] = []
            if first is None:
                stop = True
            else:
                # Let a flush interval's worth of rows gather: one append per interval, not one
                # open/write per request on the serving CPU.
                time.sleep(self.flush_interval)
                batch.append(first)
            taken_stop = drain(
                self._queue, batch, limit=self.max_batch_rows, size=lambda i: len(i.predictions)
            )
            stop = stop or taken_stop
            if batch:
                self._write(batch)

    def _write(self, batch: list[CaptureItem]) -> None:
        assert self._sink is not None
        by_model: dict[str, list[CaptureItem]] = {}
        for item in batch:
            by_model.setdefault(item.model, []).append(item)
        for model, items in by_model.items():
            lines = [orjson.dumps(rec) for item in items for rec in records(item)]  # NaN -> null
            try:
                self._sink.write(model, items[0].ts, b"\n".join(lines) + b"\n")
            except Exception as exc:  # a broken sink must not kill the writer thread
                log.warning("payload capture to %s failed: %s", self.sink_uri, exc)
                self._drop(model, len(lines))
                continue
            self.written += len(lines)
            get_metrics().capture_records.labels(model).inc(len(lines))

    def close(self, timeout: float = 5.0) -> None:
        """Flush what is queued and stop the writer (used by tests and at shutdown)."""
        thread = self._thread
        if thread is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self._queue.put(None, timeout=0.1)
                break
            except queue.Full:
                continue
        thread.join(max(0.0, deadline - time.monotonic()))
        self._thread = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("_queue", "_thread", "_sink", "_start_lock", "_random"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._random = random.Random()
        self._queue = queue.Queue(maxsize=self.max_queue)
        self._thread = None
        self._sink = None
        self._start_lock = threading.Lock()
