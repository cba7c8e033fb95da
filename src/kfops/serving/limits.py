"""What one client can cost the model server: body size, slow or idle connections, and which
of kserve's routes are served at all.

kserve 0.21.0 exposes none of this: ``kserve/protocol/rest/server.py`` builds its
``uvicorn.Config(app, host="0.0.0.0", port=..., timeout_keep_alive=...)`` itself (no host, no
concurrency or header limits), and ``ModelServer.__init__`` takes only ``timeout_keep_alive``
(``kserve/model_server.py``). uvicorn 0.54 in turn has no deadline for a connection that never
sends its request head (``HttpToolsProtocol.connection_made`` arms no timer; the keep-alive
timer starts only after a response) and no header size limit with httptools. So:

- ``LimitsMiddleware`` (ASGI, every worker): kserve's model repository routes
  (``/v2/repository/models/{name}/load|unload``, which take the model offline while
  ``/v2/health/ready`` still says ready) answer 404 unless ``--enable-model-repository``; a body
  larger than ``max_body_bytes`` is a 413 before any of it is read (Content-Length) or as soon
  as a streamed body passes the limit; bodies are read here under one byte budget per process
  (``max_buffered_bytes``: N concurrent big bodies wait for each other instead of adding up) and
  a deadline (408); a client that disconnects mid-body gets no response and the request is
  counted as status 499, not 500 (kfops.serving.metrics).
- ``KfopsHttpProtocol`` (uvicorn's httptools protocol, subclassed): a connection must deliver
  each request head within ``header_timeout`` seconds of connecting or of starting it, heads
  larger than ``max_header_bytes`` are a 431, and past ``max_connections`` the connection that
  has waited longest without a request in progress is closed to make room. Idle and slow
  clients therefore cannot pile up until file descriptors run out or probes time out.
- ``configure_uvicorn`` applies these and ``--host`` / the keep-alive timeout to the
  ``uvicorn.Config`` kserve built, from ``KfopsModelServer.setup_event_loop`` (which kserve's
  ``ModelServer.start`` calls after it built its REST server and before it serves).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

log = logging.getLogger(__name__)

MiB = 1 << 20
REPOSITORY_PREFIXES = ("/v2/repository/",)
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True)
class ServingLimits:
    max_body_bytes: int = 16 * MiB
    # Bodies buffered at once per process; a body waits (up to body_timeout) for room.
    max_buffered_bytes: int = 64 * MiB
    body_timeout: float = 30.0
    header_timeout: float = 10.0
    max_header_bytes: int = 64 << 10
    keep_alive_timeout: int = 15
    max_connections: int = 1000
    allow_model_repository: bool = False

    def __post_init__(self) -> None:
        from kfops.errors import ConfigError

        for name in ("max_body_bytes", "max_header_bytes", "max_connections"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
        for name in ("body_timeout", "header_timeout", "keep_alive_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive")
        if self.max_buffered_bytes < self.max_body_bytes:
            object.__setattr__(self, "max_buffered_bytes", self.max_body_bytes)


# --- ASGI middleware ----------------------------------------------------------------------------


class ByteBudget:
    """Bytes of request bodies held at once in this process; acquire waits for room."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._cond: asyncio.Condition | None = None

    async def acquire(self, n: int, deadline: float) -> bool:
        if self._cond is None:
            self._cond = asyncio.Condition()
        async with self._cond:
            while self.used + n > self.limit:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                try:
                    await asyncio.wait_for(self._cond.wait(), left)
                except TimeoutError:
                    return False
            self.used += n
            return True

    async def release(self, n: int) -> None:
        if n <= 0 or self._cond is None:
            return
        async with self._cond:
            self.used -= n
            self._cond.notify_all()


def _header(scope: MutableMapping[str, Any], name: bytes) -> bytes | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return bytes(value)
    return None


async def _respond(send: Any, status: int, error: str, close: bool = True, **extra: str) -> None:
    body = orjson.dumps({"error": error})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        # The rest of an unread body would follow on this connection: end it instead.
        headers.append((b"connection", b"close"))
    headers += [(k.replace("_", "-").encode(), v.encode()) for k, v in extra.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class LimitsMiddleware:
    """Route blocking and bounded, deadline-bound body reading (see the module docstring)."""

    def __init__(self, app: Any, limits: ServingLimits) -> None:
        self.app = app
        self.limits = limits
        self.budget = ByteBudget(limits.max_buffered_bytes)

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path.startswith(REPOSITORY_PREFIXES) and not self.limits.allow_model_repository:
            await _respond(
                send, 404, "model repository routes (load/unload) are disabled on this server",
                close=False,
            )  # fmt: skip
            return
        if scope.get("method") not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        await self._with_body(scope, receive, send)

    async def _with_body(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        limit = self.limits.max_body_bytes
        raw = _header(scope, b"content-length")
        declared: int | None = None
        if raw is not None:
            try:
                declared = int(raw)
            except ValueError:
                declared = -1
            if declared < 0:
                await _respond(send, 400, f"bad Content-Length {raw[:40]!r}")
                return
            if declared > limit:
                await _respond(
                    send, 413, f"request body of {declared} bytes exceeds the limit of {limit}"
                )
                return
        deadline = time.monotonic() + self.limits.body_timeout
        reserved = declared if declared is not None else 0
        if reserved and not await self.budget.acquire(reserved, deadline):
            await _respond(send, 503, "server busy reading other requests", Retry_After="1")
            return
        try:
            body = await self._read(scope, receive, send, declared, deadline)
            if body is None:
                return
            reserved = max(reserved, len(body))
            replayed = False

            async def replay() -> MutableMapping[str, Any]:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                message: MutableMapping[str, Any] = await receive()
                return message

            await self.app(scope, replay, send)
        finally:
            await self.budget.release(reserved)

    async def _read(
        self,
        scope: MutableMapping[str, Any],
        receive: Any,
        send: Any,
        declared: int | None,
        deadline: float,
    ) -> bytes | None:
        """The whole body, or None when a response (413/408/503) was sent or the client left."""
        limit = self.limits.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        streamed = 0  # budget taken chunk by chunk for bodies without a Content-Length
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                message = await asyncio.wait_for(receive(), left)
                if message["type"] == "http.disconnect":
                    scope.setdefault("state", {})["kfops_disconnected"] = True
                    return None
                chunk = message.get("body", b"")
                if chunk:
                    size += len(chunk)
                    if size > limit:
                        await _respond(send, 413, f"request body exceeds the limit of {limit}")
                        return None
                    if declared is None:
                        if not await self.budget.acquire(len(chunk), deadline):
                            await _respond(send, 503, "server busy reading other requests",
                                           Retry_After="1")  # fmt: skip
                            return None
                        streamed += len(chunk)
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        except TimeoutError:
            await _respond(send, 408, f"request body not received within "
                           f"{self.limits.body_timeout:.0f}s")  # fmt: skip
            return None
        finally:
            await self.budget.release(streamed)
        if declared is not None and size != declared:
            await _respond(send, 400, f"body has {size} bytes, Content-Length said {declared}")
            return None
        return b"".join(chunks)


# --- uvicorn connection handling ----------------------------------------------------------------

# Connections with no request in progress, oldest first (per process: one event loop each).
_IDLE: OrderedDict[int, Any] = OrderedDict()


class _HeadTooLarge(Exception):
    pass


def _protocol_class() -> type | None:
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # no httptools: uvicorn falls back to h11 (see configure_uvicorn)
        return None

    class KfopsHttpProtocol(HttpToolsProtocol):  # type: ignore[misc]
        """uvicorn's httptools protocol with a request-head deadline, a head size limit and a
        connection cap that evicts the longest-idle connection."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.kfops_limits: ServingLimits = getattr(self.config, "kfops_limits", ServingLimits())
            self._head_timer: asyncio.TimerHandle | None = None
            self._head_bytes = 0
            self._head_too_large = False

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if len(self.connections) > self.kfops_limits.max_connections:
                victim = next((p for p in _IDLE.values() if p is not self), None)
                if victim is None:
                    log.warning("connection cap %d reached and none idle: refusing a connection",
                                self.kfops_limits.max_connections)  # fmt: skip
                    transport.close()
                    return
                _IDLE.pop(id(victim), None)
                victim.transport.close()
            self._idle()
            self._arm_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            _IDLE.pop(id(self), None)
            super().connection_lost(exc)

        def _idle(self) -> None:
            _IDLE[id(self)] = self
            _IDLE.move_to_end(id(self))

        def _arm_head_timer(self) -> None:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(
                    self.kfops_limits.header_timeout, self._head_timeout
                )

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                self.transport.close()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._head_bytes = 0
            self._arm_head_timer()

        def _count(self, n: int) -> None:
            self._head_bytes += n
            if self._head_bytes > self.kfops_limits.max_header_bytes:
                self._head_too_large = True
                raise _HeadTooLarge

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value) + 4)
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._cancel_head_timer()
            _IDLE.pop(id(self), None)
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._idle()

        def send_400_response(self, msg: str) -> None:
            if not self._head_too_large:
                super().send_400_response(msg)
                return
            text = b"request head too large"
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
                b"content-length: " + str(len(text)).encode() + b"\r\n\r\n" + text
            )
            self.transport.close()

    # Importable by name: --workers N pickles the uvicorn config (and this class) into workers.
    KfopsHttpProtocol.__qualname__ = "KfopsHttpProtocol"
    return KfopsHttpProtocol


KfopsHttpProtocol = _protocol_class()


def configure_uvicorn(config: Any, host: str, limits: ServingLimits) -> None:
    """Apply ``host`` and ``limits`` to the ``uvicorn.Config`` kserve built (before it serves;
    for ``--workers N`` the config is pickled into each spawned worker with these values)."""
    config.host = host
    config.timeout_keep_alive = limits.keep_alive_timeout
    config.kfops_limits = limits
    if KfopsHttpProtocol is not None:
        config.http = KfopsHttpProtocol
    else:  # h11 bounds the head size itself; without httptools there is no head deadline
        config.http = "h11"
        config.h11_max_incomplete_event_size = limits.max_header_bytes
        log.warning("httptools is not installed: no request-head deadline on idle connections")
