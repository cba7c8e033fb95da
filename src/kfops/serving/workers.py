"""Worker supervision for ``--workers N``: give spawned workers time to start.

kserve 0.21.0 (kserve/kserve, python/kserve/kserve/protocol/rest/multiprocess/server.py)
supervises its workers from the parent every 0.5 s with ``RESTServerProcess.is_alive``, which
sends a ping through a pipe and kills and respawns the worker unless a pong comes back within
5 s. The worker starts answering only once its ``target`` runs, that is after the ``spawn``
start method has imported kserve, scikit-learn and pandas in the new interpreter: several
seconds, and more than 5 on a busy node. Such a worker is killed before it can answer, and so is
its replacement (seen on a loaded 2-core machine: six respawns over 40 s before a second worker
stayed up; with enough load, never).

``PatientProcess`` keeps kserve's check once a worker has answered its first ping, and before
that waits for the first answer without blocking the parent for up to ``STARTUP_GRACE`` seconds.
A worker that dies is still replaced at once (``process.is_alive()`` is False).
"""

from __future__ import annotations

import time
from typing import Any

from kserve.protocol.rest.multiprocess import server as _kserve_multiprocess

# Long enough for the imports of a cold start under CPU pressure; a worker that has not
# answered by then is hung and is replaced as kserve would.
STARTUP_GRACE = 120.0


class PatientProcess(_kserve_multiprocess.RESTServerProcess):  # type: ignore[misc]
    """kserve's worker handle, patient with a worker that has not answered yet. Defined at module
    level: the worker's target is a bound method, so the spawn start method pickles this class."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._started_at: float | None = None
        self._answered = False
        self._first_ping_sent = False

    def start(self) -> None:
        self._started_at = time.monotonic()
        super().start()

    def is_alive(self, timeout: float = 5) -> bool:
        if self._answered:
            return bool(super().is_alive(timeout))
        if not self._process.is_alive():
            return False
        if not self._first_ping_sent:  # one ping, one pong: the pipe protocol stays paired
            self._parent_conn.send(b"ping")
            self._first_ping_sent = True
        if self._parent_conn.poll(0):
            self._parent_conn.recv()
            self._answered = True
            return True
        started = self._started_at if self._started_at is not None else time.monotonic()
        return time.monotonic() - started < STARTUP_GRACE


def install_patient_workers() -> None:
    """Make kserve's multiprocess server use :class:`PatientProcess` (parent process only)."""
    _kserve_multiprocess.RESTServerProcess = PatientProcess
