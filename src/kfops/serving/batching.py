"""Draining a worker queue into one batch: the capture writer and the drift counter both move
their work off the request path this way."""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def drain(
    source: queue.Queue[Any],
    batch: list[T],
    *,
    limit: int | None = None,
    size: Callable[[T], int] = lambda _item: 1,
) -> bool:
    """Move what is queued now into ``batch`` until the queue is empty or the batch holds
    ``limit`` units of ``size``. Returns True when the stop sentinel (None) was taken."""
    held = sum(size(item) for item in batch)
    while limit is None or held < limit:
        try:
            item = source.get_nowait()
        except queue.Empty:
            return False
        if item is None:
            return True
        batch.append(item)
        held += size(item)
    return False
