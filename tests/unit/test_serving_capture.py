"""Payload capture when the sink fails: rows are dropped and counted, the writer survives, and
it writes again once the sink is back. A real directory made unwritable in a way root cannot
bypass either: a regular file where the model's folder has to go."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from kfops.serving.capture import PayloadCapture
from kfops.serving.metrics import get_metrics
from tests.conftest import wait_for
from tests.unit.test_serving import item
from tests.unit.test_serving_fixtures import MODEL


def dropped() -> float:
    return get_metrics().capture_dropped.labels(MODEL)._value.get()


def written() -> float:
    return get_metrics().capture_records.labels(MODEL)._value.get()


def test_failing_sink_drops_and_counts_then_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / MODEL
    blocker.write_text("not a directory")  # makedirs(<root>/<model>/<day>) fails
    cap = PayloadCapture(str(tmp_path), flush_interval=0.01)
    dropped_before, written_before = dropped(), written()
    with caplog.at_level(logging.WARNING, logger="kfops.serving.capture"):
        assert all(cap.submit(item(2, f"lost{i}")) for i in range(3))  # queued: accepted
        wait_for(lambda: cap.dropped == 6, 30, "6 rows dropped by the failing sink")
    assert cap.written == 0
    assert dropped() - dropped_before == 6 and written() == written_before
    assert f"payload capture to {tmp_path} failed" in caplog.text

    blocker.unlink()  # the sink is back: the same writer thread carries on
    assert cap.submit(item(2, "kept"))
    wait_for(lambda: cap.written == 2, 30, "2 rows written after the sink recovered")
    cap.close()
    ids = [
        json.loads(line)["id"]
        for f in tmp_path.glob(f"{MODEL}/*/*.jsonl")
        for line in f.read_text().splitlines()
    ]
    assert ids == ["kept:0", "kept:1"]
    assert cap.dropped == 6 and dropped() - dropped_before == 6
    assert written() - written_before == 2
