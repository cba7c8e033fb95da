"""``--workers N`` supervision: a worker that is still starting is not killed for not answering
kserve's 5-second ping (kfops.serving.workers); a dead or hung worker is still replaced."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kserve.protocol.rest.multiprocess import server as multiprocess

from kfops.serving import workers
from kfops.serving.workers import PatientProcess
from tests.conftest import wait_for


def serve_forever(sockets: list[Any]) -> None:  # the worker's target (picklable for spawn)
    time.sleep(600)


class Silent:
    """Stands in for the spawned interpreter while it is still importing: alive, no pong yet."""

    def __init__(self) -> None:
        self.alive = True

    def is_alive(self) -> bool:
        return self.alive


def silent(cls: type) -> Any:
    proc = cls([], serve_forever)
    proc._process = Silent()
    return proc


def test_kserve_alone_kills_a_worker_that_is_still_starting() -> None:
    """The failure being fixed: kserve's own check calls a silent, starting worker dead."""
    proc = silent(multiprocess.RESTServerProcess)
    assert proc.is_alive(timeout=0.05) is False


def test_a_starting_worker_gets_the_grace_period(monkeypatch: pytest.MonkeyPatch) -> None:
    proc = silent(PatientProcess)
    proc._started_at = time.monotonic()
    for _ in range(3):  # polled every 0.5 s by kserve: never blocks, never kills
        assert proc.is_alive() is True
    # Past the grace period without an answer: hung, replaced as kserve would.
    proc._started_at = time.monotonic() - workers.STARTUP_GRACE - 1
    assert proc.is_alive() is False


def test_after_its_first_answer_kserve_check_applies() -> None:
    proc = silent(PatientProcess)
    proc._started_at = time.monotonic()
    assert proc.is_alive() is True  # sends the one startup ping
    proc._child_conn.recv()  # the worker's pong thread, once it runs
    proc._child_conn.send(b"pong")
    assert proc.is_alive() is True
    assert proc._answered
    # From now on a worker that stops answering is hung: kserve's 5 s ping decides.
    assert proc.is_alive(timeout=0.05) is False
    proc._process.alive = False
    assert proc.is_alive() is False  # a dead worker is replaced at once


def test_a_real_spawned_worker_answers_and_is_kept() -> None:
    """Spawned for real (the class must pickle for the spawn start method)."""
    proc = PatientProcess([], serve_forever)
    proc.start()
    try:
        wait_for(lambda: proc.is_alive() and proc._answered, 120, "the worker's first pong")
        assert proc.is_alive(timeout=30) is True
    finally:
        proc.kill()


def test_install_replaces_the_class_kserve_instantiates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(multiprocess, "RESTServerProcess", multiprocess.RESTServerProcess)
    workers.install_patient_workers()
    assert multiprocess.RESTServerProcess is PatientProcess
