"""kfops.serving.limits: the ASGI middleware on fake receive/send channels (exact, no sockets),
the uvicorn configuration hook, and the validation of values that cannot be represented."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from kfops.errors import ConfigError
from kfops.serving.limits import (
    KfopsHttpProtocol,
    LimitsMiddleware,
    ServingLimits,
    configure_uvicorn,
)
from kfops.serving.metrics import CLIENT_CLOSED, MetricsMiddleware

LIMITS = ServingLimits(max_body_bytes=100, max_buffered_bytes=150, body_timeout=0.5)


class App:
    """The inner app: records what body it saw and answers 200."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def scope(path: str = "/v1/models/m:predict", method: str = "POST", length: int | None = None
          ) -> dict[str, Any]:  # fmt: skip
    headers = [] if length is None else [(b"content-length", str(length).encode())]
    return {"type": "http", "path": path, "method": method, "headers": headers, "state": {}}


def channel(*messages: dict[str, Any], stall: bool = False) -> Callable[[], Awaitable[Any]]:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        if queue:
            return queue.pop(0)
        if stall:
            await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    return receive


def run(middleware: Any, sc: dict[str, Any], receive: Any) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(middleware(sc, receive, send))
    return sent


def status(sent: list[dict[str, Any]]) -> int | None:
    return next((m["status"] for m in sent if m["type"] == "http.response.start"), None)


def test_declared_oversize_is_413_before_reading_and_closes() -> None:
    app = App()
    read: list[int] = []

    async def receive() -> dict[str, Any]:
        read.append(1)
        return {"type": "http.request", "body": b"x" * 200}

    sent = run(LimitsMiddleware(app, LIMITS), scope(length=10**9), receive)
    assert status(sent) == 413 and read == [] and app.bodies == []
    assert (b"connection", b"close") in sent[0]["headers"]


def test_streamed_oversize_is_413_once_it_passes_the_limit() -> None:
    app = App()
    chunks = [{"type": "http.request", "body": b"x" * 60, "more_body": True}] * 5
    sent = run(LimitsMiddleware(app, LIMITS), scope(), channel(*chunks))
    assert status(sent) == 413 and app.bodies == []


def test_a_body_within_limits_reaches_the_app_whole() -> None:
    app = App()
    parts = [
        {"type": "http.request", "body": b"a" * 40, "more_body": True},
        {"type": "http.request", "body": b"b" * 40, "more_body": False},
    ]
    sent = run(LimitsMiddleware(app, LIMITS), scope(length=80), channel(*parts))
    assert status(sent) == 200 and app.bodies == [b"a" * 40 + b"b" * 40]


def test_a_client_that_disconnects_mid_body_is_counted_499_not_500() -> None:
    from prometheus_client import REGISTRY

    from kfops.serving.metrics import UNKNOWN_MODEL, get_metrics

    get_metrics()

    def count(code: str) -> float:
        labels = {
            "model": UNKNOWN_MODEL,
            "version": "",
            "protocol": "v1",
            "endpoint": "predict",
            "status": code,
        }
        return REGISTRY.get_sample_value("kfops_requests_total", labels) or 0.0

    before = count("499"), count("500")
    app = App()
    sc = scope(length=90)
    middleware = MetricsMiddleware(LimitsMiddleware(app, LIMITS), predictors={})
    sent = run(middleware, sc, channel({"type": "http.request", "body": b"x", "more_body": True}))
    assert sent == [] and app.bodies == [] and sc["state"]["kfops_disconnected"]
    assert (count("499"), count("500")) == (before[0] + 1, before[1])
    assert CLIENT_CLOSED == 499


def test_a_stalled_body_is_408_at_the_deadline() -> None:
    app = App()
    part = {"type": "http.request", "body": b"x", "more_body": True}
    sent = run(LimitsMiddleware(app, LIMITS), scope(length=50), channel(part, stall=True))
    assert status(sent) == 408


def test_wrong_or_lying_content_length_is_400() -> None:
    sent = run(LimitsMiddleware(App(), LIMITS), scope(length=None) | {
        "headers": [(b"content-length", b"ten")]}, channel())  # fmt: skip
    assert status(sent) == 400
    short = {"type": "http.request", "body": b"x" * 5, "more_body": False}
    assert status(run(LimitsMiddleware(App(), LIMITS), scope(length=50), channel(short))) == 400


def test_the_budget_makes_concurrent_bodies_wait_for_each_other() -> None:
    middleware = LimitsMiddleware(App(), LIMITS)  # 150 bytes buffered at most

    async def both() -> list[int | None]:
        out: list[int | None] = []

        async def one() -> None:
            sent: list[dict[str, Any]] = []

            async def send(m: dict[str, Any]) -> None:
                sent.append(m)

            async def receive() -> dict[str, Any]:
                await asyncio.sleep(0.05)
                assert middleware.budget.used <= 150
                return {"type": "http.request", "body": b"x" * 100}

            await middleware(scope(length=100), receive, send)
            out.append(status(sent))

        await asyncio.gather(one(), one())
        return out

    assert asyncio.run(both()) == [200, 200]
    assert middleware.budget.used == 0


def test_model_repository_routes_are_not_served_unless_enabled() -> None:
    app = App()
    sent = run(LimitsMiddleware(app, LIMITS), scope("/v2/repository/models/m/unload"), channel())
    assert status(sent) == 404 and app.bodies == []
    allowed = ServingLimits(allow_model_repository=True)
    sent = run(LimitsMiddleware(app, allowed), scope("/v2/repository/models/m/unload", length=0),
               channel({"type": "http.request", "body": b""}))  # fmt: skip
    assert status(sent) == 200


def test_gets_pass_through_untouched() -> None:
    app = App()
    sent = run(LimitsMiddleware(app, LIMITS), scope("/v2/health/ready", "GET"),
               channel({"type": "http.request", "body": b""}))  # fmt: skip
    assert status(sent) == 200


def test_configure_uvicorn_sets_host_limits_and_a_picklable_protocol() -> None:
    import uvicorn

    config = uvicorn.Config("kserve.model_server:app", host="0.0.0.0", port=1)
    limits = ServingLimits(keep_alive_timeout=7, max_connections=3)
    configure_uvicorn(config, "127.0.0.1", limits)
    assert config.host == "127.0.0.1" and config.timeout_keep_alive == 7
    assert config.http is KfopsHttpProtocol and KfopsHttpProtocol is not None
    # --workers N pickles the config into spawned workers.
    again = pickle.loads(pickle.dumps(config))
    assert again.http is KfopsHttpProtocol and again.kfops_limits == limits


def test_bad_limits_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="--max-body-bytes"):
        ServingLimits(max_body_bytes=0)
    with pytest.raises(ConfigError, match="--header-timeout"):
        ServingLimits(header_timeout=0)
    assert ServingLimits(max_body_bytes=10, max_buffered_bytes=1).max_buffered_bytes == 10


# --- values that cannot be represented ----------------------------------------------------------


def _v2(data: list[Any], shape: list[int] | None = None) -> Any:
    from types import SimpleNamespace

    tensor = SimpleNamespace(name="x", shape=shape or [1, 7], data=data)
    return SimpleNamespace(inputs=[tensor], parameters=None, request_outputs=None, id=None)


@pytest.mark.parametrize("huge", [10**400, -(10**400), 10**5000], ids=["1e400", "-1e400", "1e5000"])
def test_integers_beyond_any_float_are_4xx_naming_the_field(huge: int) -> None:
    from kfops.contract_model import Contract
    from kfops.serving.validation import RequestError, RequestSchema
    from tests.unit.test_serving_fixtures import artifacts, valid_row

    schema = RequestSchema(Contract.load(artifacts()["contract.json"]))
    names = schema.names
    for feature in ("bill_length_mm", "island"):
        row = [valid_row()[n] for n in names]
        row[names.index(feature)] = huge
        with pytest.raises(RequestError) as info:
            schema.parse_v2(_v2(row))
        assert 400 <= info.value.status < 500
        (error,) = info.value.errors
        assert error.field == f"inputs['x'][0].{feature}" and "digits" in error.message
        str(info.value)  # the message itself can be rendered (no 4,300-digit limit hit)
    with pytest.raises(RequestError) as info:
        schema.parse_v2(_v2([valid_row()[n] for n in names], shape=[huge, 7]))
    assert info.value.errors[0].field == "inputs['x'].shape"
