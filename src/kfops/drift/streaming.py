"""Streaming drift for the model server: counts only, bounded memory, cheap per request.

The live window is a ring of ``buckets`` tumbling sub-windows of ``window_size // buckets`` rows
each; when the newest sub-window is full the oldest is dropped, so scores follow the last
``window_size`` rows (give or take one sub-window) and memory is ``buckets`` count vectors per
feature, whatever the traffic. Binning (``FeatureBins.count``/``slot``), PSI and the verdict
are the batch code from ``kfops.drift.profile``/``stats``/``report``: ``scores`` is the
bias-corrected PSI of ``DriftReport.scores`` and ``report`` the full batch verdict.

``update`` takes a pandas frame, or a mapping column -> numpy array/list (a batch, the model
server passes lists of columns), or a mapping column -> scalar (one row; decided by the first
value). Rows and small batches are binned value by value in python (``FeatureBins.slot``),
which avoids numpy/pandas per-call overhead; large batches use ``FeatureBins.count``.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from kfops.drift.profile import ReferenceProfile, WindowProfile
from kfops.drift.report import DriftPolicy, DriftReport, detect_drift
from kfops.drift.stats import chi2_statistic, corrected_psi
from kfops.errors import ConfigError

_SCALARS = (int, float, str, bool, np.generic, type(None))
SMALL_BATCH = 64  # batches up to this many rows are binned value by value
FLUSH_ROWS = 4096  # pending slot lists are folded into counts at least this often


class StreamingDrift:
    def __init__(
        self,
        reference: ReferenceProfile,
        window_size: int = 10_000,
        buckets: int = 4,
        small_batch: int = SMALL_BATCH,
    ):
        if window_size < 1 or buckets < 1 or window_size < buckets:
            raise ConfigError(
                f"window_size={window_size}, buckets={buckets}: need window_size >= buckets >= 1"
            )
        self.reference = reference
        self.window_size = window_size
        self.bucket_rows = window_size // buckets
        self.small_batch = small_batch
        # Every feature is counted (so the live window gives a full report); tested ones scored.
        self._all = list(reference.features.items())
        self._features = [(n, fb) for n, fb in self._all if fb.tested]
        self._ref_psi = {
            n: fb.psi_counts(reference.reference.counts[n]) for n, fb in self._features
        }
        self._lock = threading.Lock()
        # Completed sub-windows, oldest first; the current one is filled in place.
        self._done: deque[WindowProfile] = deque(maxlen=buckets - 1)
        self._current = self._new_bucket()
        # Slots of rows counted one by one are appended to python lists (an append is ~20x
        # cheaper than a numpy item update) and folded into the counts with one bincount.
        self._pending: dict[str, list[int]] = {n: [] for n, _ in self._all}
        self._plan = [(n, fb.slot_function, self._pending[n]) for n, fb in self._all]
        self._pending_rows = 0
        self.total_rows = 0  # rows ever seen (a counter for metrics)

    def _new_bucket(self) -> WindowProfile:
        counts = {n: np.zeros(fb.slots, dtype=np.int64) for n, fb in self._all}
        return WindowProfile(self.reference.profile_id, 0, counts)

    def _flush(self) -> None:
        self._pending_rows = 0
        counts = self._current.counts
        for name, fb in self._all:
            pending = self._pending[name]
            if pending:
                counts[name] += np.bincount(pending, minlength=fb.slots)
                pending.clear()

    def update(self, data: pd.DataFrame | Mapping[str, Any]) -> None:
        """Count one row (mapping of scalars) or a batch (frame or mapping of arrays)."""
        if isinstance(data, pd.DataFrame):
            rows, single = len(data), False
        elif not data:
            return
        else:
            first = next(iter(data.values()))
            single = isinstance(first, _SCALARS) or np.ndim(first) == 0
            rows = 1 if single else len(first)
        if rows == 0:
            return
        with self._lock:
            if single:
                for name, slot, pending in self._plan:
                    if name in data:
                        pending.append(slot(data[name]))
            elif rows <= self.small_batch:
                # Small batches: per-value python binning beats numpy's per-call overhead.
                for name, slot, pending in self._plan:
                    if name in data:
                        pending.extend(map(slot, _as_list(data[name])))
            else:
                counts = self._current.counts
                for name, fb in self._all:
                    if name in data:
                        counts[name] += fb.count(data[name])
            self._current.rows += rows
            self.total_rows += rows
            self._pending_rows += rows
            if self._pending_rows >= FLUSH_ROWS:
                self._flush()
            if self._current.rows >= self.bucket_rows:
                self._flush()
                if self._done.maxlen:
                    self._done.append(self._current)
                self._current = self._new_bucket()

    def window(self) -> WindowProfile:
        """The live window: the merge of the kept sub-windows and the current one."""
        with self._lock:
            self._flush()
            parts = [*self._done, self._current]
            return WindowProfile(
                self.reference.profile_id,
                sum(p.rows for p in parts),
                {n: sum((p.counts[n] for p in parts[1:]), parts[0].counts[n].copy())
                 for n, _ in self._all},
            )  # fmt: skip

    @property
    def rows(self) -> int:
        """Rows in the live window."""
        with self._lock:
            return self._current.rows + sum(p.rows for p in self._done)

    def scores(self) -> dict[str, float]:
        """Bias-corrected PSI per tested feature over the live window (as
        ``DriftReport.scores``; 0.0 while the window is empty). A small window of unchanged
        traffic scores about 0, where its raw PSI would be about (bins - 1) / rows."""
        win = self.window()
        return {
            n: corrected_psi(*chi2_statistic(self._ref_psi[n], fb.psi_counts(win.counts[n])))
            for n, fb in self._features
        }

    def report(self, policy: DriftPolicy | None = None) -> DriftReport:
        """The full batch verdict (corrected tests + effect sizes) on the live window."""
        return detect_drift(self.reference, self.window(), policy)


def _as_list(values: Any) -> list[Any]:
    if isinstance(values, np.ndarray | pd.Series):
        return values.tolist()  # python scalars: the slot functions' fast input
    return list(values)
