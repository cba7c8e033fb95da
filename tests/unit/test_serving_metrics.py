"""The serving metrics middleware counts a request before the client can read the answer.

A client that reads its response and then scrapes /metrics (with --workers N, possibly from the
other worker) must see its own request counted. These tests drive the ASGI middleware directly
and look at the counters at the moment each message is handed to the server.
"""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import pytest

from kfops.serving.metrics import MetricsMiddleware, get_metrics

MODEL = "mw"


class Served:
    def current_version(self) -> str:
        return "v7"


def requests_counted(status: str, protocol: str = "v1") -> float:
    return get_metrics().requests.labels(MODEL, "v7", protocol, "predict", status)._value.get()


def latency_count(protocol: str = "v1") -> float:
    hist = get_metrics().latency.labels(MODEL, "v7", protocol, "predict")
    return sum(bucket.get() for bucket in hist._buckets)


def malformed_counted() -> float:
    m = get_metrics().validation_failures.labels(MODEL, "v7", "malformed_request")
    return m._value.get()


def scope(path: str = f"/v1/models/{MODEL}:predict") -> dict[str, Any]:
    return {"type": "http", "path": path, "method": "POST", "state": {}}


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"{}", "more_body": False}


def run(app: Any, path: str = f"/v1/models/{MODEL}:predict") -> list[tuple[str, float, float]]:
    """Run ``app`` behind the middleware; for each message sent: (type, 200s, 500s) counted
    at the moment the server received it."""
    seen: list[tuple[str, float, float]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        seen.append((message["type"], requests_counted("200"), requests_counted("500")))

    asyncio.run(MetricsMiddleware(app, {MODEL: Served()})(scope(path), _receive, send))
    return seen


def test_request_is_counted_before_the_last_body_chunk_is_sent() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    before, timed = requests_counted("200"), latency_count()
    seen = run(app)
    assert seen == [
        ("http.response.start", before, requests_counted("500")),
        ("http.response.body", before + 1, requests_counted("500")),
    ]
    assert requests_counted("200") == before + 1  # once, not again when the app returns
    assert latency_count() == timed + 1


def test_streamed_body_is_counted_once_at_its_last_chunk() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"[", "more_body": True})
        await send({"type": "http.response.body", "body": b"]", "more_body": False})

    before = requests_counted("200")
    counts = [ok for _, ok, _ in run(app)]
    assert counts == [before, before, before + 1]
    assert requests_counted("200") == before + 1


def test_client_error_counted_as_malformed_before_the_body() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 400, "headers": []})
        assert malformed_counted() == before
        await send({"type": "http.response.body", "body": b"{}"})

    before = malformed_counted()
    bad_before = requests_counted("400")
    seen: list[float] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        seen.append(malformed_counted())

    asyncio.run(MetricsMiddleware(app, {MODEL: Served()})(scope(), _receive, send))
    assert seen == [before, before + 1]
    assert requests_counted("400") == bad_before + 1


def test_app_crash_without_a_response_is_counted_as_500_once() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    before = requests_counted("500")
    with pytest.raises(RuntimeError, match="boom"):
        run(app)
    # Starlette's error middleware (outside this one) sends the 500 after this: counted first.
    assert requests_counted("500") == before + 1


def test_other_paths_are_not_counted() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    before = requests_counted("200")
    run(app, path="/metrics")
    run(app, path=f"/v1/models/{MODEL}")
    assert requests_counted("200") == before
