"""The retraining trigger's HTTP side: who may call it, and what one caller can cost.

- Authentication: with a token file (``--webhook-token-file`` / ``KFOPS_WEBHOOK_TOKEN_FILE``),
  ``POST /alerts`` and ``GET /status`` need ``Authorization: Bearer <token>`` (compared with
  ``hmac.compare_digest``), checked before the body is read; anything else is a 401. The file
  is re-read when it changes, so a rotated Kubernetes Secret takes effect without a restart.
  ``GET /metrics`` and ``GET /healthz`` stay open (Prometheus scrapes, kubelet probes).
- Without a token the trigger listens on loopback only, and says so; asking it to listen on any
  other address without a token is a ConfigError. Loopback still trusts every local user.
- Bounded work: a fixed pool of worker threads plus a bounded queue of accepted connections;
  when both are full a new connection gets ``503`` with ``Retry-After`` at once and is closed
  (counted in kfops_trigger_connections_rejected_total). No thread per connection.
- Timeouts: the request line and headers must arrive within ``header_timeout`` seconds as a
  total deadline (a client dripping one byte at a time cannot hold a worker longer), the body
  within ``body_timeout`` (408). HTTP/1.0: one request per connection, no idle keep-alive.
- Body: ``POST`` needs a Content-Length (411) of at most ``max_body`` bytes (413, nothing read);
  JSON nested deeper than the parser's recursion limit is a 400 (kfops.trigger.decisions).
"""

from __future__ import annotations

import hmac
import io
import ipaddress
import json
import logging
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kfops.errors import ConfigError

if TYPE_CHECKING:
    from kfops.trigger.decisions import RetrainTrigger

log = logging.getLogger(__name__)

MIN_TOKEN_BYTES = 16
MAX_TOKEN_BYTES = 4096
WRITE_TIMEOUT = 10.0


@dataclass(frozen=True)
class HttpLimits:
    max_body: int = 4 << 20  # Alertmanager notifications are far smaller (max_alerts caps them)
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    workers: int = 8
    max_pending: int = 64


class WebhookAuth:
    """The bearer token Alertmanager must present; ``None`` path means no authentication."""

    def __init__(self, token_file: str | os.PathLike[str] | None) -> None:
        self.path = Path(token_file) if token_file is not None else None
        self._token = b""
        self._stat: tuple[int, int, int] | None = None
        self._lock = threading.Lock()
        if self.path is not None:
            self._token = self._read()

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def _read(self) -> bytes:
        assert self.path is not None
        try:
            st = self.path.stat()
            raw = self.path.read_bytes()[: MAX_TOKEN_BYTES + 1]
        except OSError as exc:
            raise ConfigError(f"webhook token file {self.path}: {exc.strerror or exc}") from None
        token = raw.strip()
        if len(raw) > MAX_TOKEN_BYTES or not token or b"\n" in token or b" " in token:
            raise ConfigError(
                f"webhook token file {self.path} must hold one token on one line "
                f"(at most {MAX_TOKEN_BYTES} bytes)"
            )
        if len(token) < MIN_TOKEN_BYTES:
            raise ConfigError(
                f"webhook token in {self.path} is {len(token)} bytes; use at least "
                f"{MIN_TOKEN_BYTES} random bytes, e.g. `openssl rand -hex 32`"
            )
        self._stat = (st.st_mtime_ns, st.st_size, st.st_ino)
        return token

    def _current(self) -> bytes:
        assert self.path is not None
        try:
            st = self.path.stat()
            key = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            return self._token  # a Secret being swapped: keep the last good token
        if key != self._stat:
            with self._lock:
                try:
                    self._token = self._read()
                    log.info("webhook token reloaded from %s", self.path)
                except ConfigError as exc:
                    log.error("keeping the previous webhook token: %s", exc)
                    self._stat = key
        return self._token

    def allows(self, header: str | None) -> bool:
        if self.path is None:
            return True
        if not header:
            return False
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(value.strip().encode("utf-8", "replace"), self._current())


def is_loopback(host: str) -> bool:
    """True when every address ``host`` stands for is a loopback address."""
    if not host:
        return False  # "" binds every interface
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def check_bind(host: str, auth: WebhookAuth) -> None:
    if auth.enabled or is_loopback(host):
        return
    raise ConfigError(
        f"refusing to listen on {host or 'every interface'!r} without a webhook token: anyone "
        "who can reach the port could start training runs. Set --webhook-token-file (or "
        "KFOPS_WEBHOOK_TOKEN_FILE) and give Alertmanager the same token, or listen on 127.0.0.1"
    )


class _DeadlineReader(io.RawIOBase):
    """Socket reads that share one deadline: a slow client runs out of time, not of patience."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.deadline = float("inf")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request deadline passed")
        self.sock.settimeout(left)
        return self.sock.recv_into(buffer)


def _handler_class(trigger: RetrainTrigger, auth: WebhookAuth, limits: HttpLimits) -> type:
    class Handler(BaseHTTPRequestHandler):
        server_version = "kfops-trigger"

        def setup(self) -> None:
            super().setup()
            self._reader = _DeadlineReader(self.connection)
            self._reader.deadline = time.monotonic() + limits.header_timeout
            self.rfile = io.BufferedReader(self._reader)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s %s", self.address_string(), format % args)

        def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
            self.connection.settimeout(WRITE_TIMEOUT)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, data: dict[str, Any], **headers: str) -> None:
            body = (json.dumps(data) + "\n").encode()
            self._send(status, body, "application/json", **headers)

        def handle_expect_100(self) -> bool:
            # Refuse before the client sends a body it was going to wait to send.
            is_alerts = self.command == "POST" and self.path.split("?", 1)[0] == "/alerts"
            if is_alerts and not (self._authorized() and self._length_ok()):
                return False
            return bool(super().handle_expect_100())

        def _length_ok(self) -> bool:
            raw = self.headers.get("Content-Length")
            if raw is None:
                trigger.webhooks.labels("bad_request").inc()
                self._json(HTTPStatus.LENGTH_REQUIRED, {"error": "Content-Length is required"})
                return False
            try:
                length = int(raw)
            except ValueError:
                length = -1
            if length < 0:
                trigger.webhooks.labels("bad_request").inc()
                self._json(HTTPStatus.BAD_REQUEST, {"error": f"bad Content-Length {raw[:40]!r}"})
                return False
            if length > limits.max_body:
                trigger.webhooks.labels("too_large").inc()
                self._json(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    {"error": f"body of {length} bytes exceeds the limit of {limits.max_body}"},
                )
                return False
            self._length = length
            return True

        def _authorized(self) -> bool:
            if auth.allows(self.headers.get("Authorization")):
                return True
            trigger.webhooks.labels("unauthorized").inc()
            log.warning("rejected %s %s from %s: missing or wrong bearer token",
                        self.command, self.path[:100], self.client_address[0])  # fmt: skip
            self._json(
                HTTPStatus.UNAUTHORIZED,
                {"error": "missing or wrong bearer token"},
                WWW_Authenticate='Bearer realm="kfops-trigger"',
            )
            return False

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(HTTPStatus.OK, generate_latest(trigger.registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._json(HTTPStatus.OK, {"status": "ok"})
            elif path == "/status":
                if self._authorized():
                    self._json(HTTPStatus.OK, trigger.status())
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no route {path[:100]}"})

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            if path != "/alerts":
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no route {path[:100]}; POST /alerts"})
                return
            if not self._authorized() or not self._length_ok():
                return
            length = self._length
            self._reader.deadline = time.monotonic() + limits.body_timeout
            try:
                body = self.rfile.read(length)
            except TimeoutError:
                trigger.webhooks.labels("bad_request").inc()
                self._json(HTTPStatus.REQUEST_TIMEOUT, {"error": "body not received in time"})
                return
            if len(body) < length:
                return  # the client went away mid-body: nobody to answer
            status, data = trigger.handle(body)
            self._json(status, data)

    return Handler


class BoundedHTTPServer(HTTPServer):
    """An HTTPServer whose requests run on a fixed pool; beyond the pool and a bounded queue,
    new connections are refused with 503 at once."""

    request_queue_size = 256  # the default backlog of 5 resets connections in an alert storm

    def __init__(
        self, address: tuple[str, int], handler: type, trigger: RetrainTrigger, limits: HttpLimits
    ) -> None:
        super().__init__(address, handler)
        self.trigger = trigger
        self._pool = ThreadPoolExecutor(limits.workers, thread_name_prefix="kfops-http")
        self._slots = threading.BoundedSemaphore(limits.workers + limits.max_pending)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.trigger.connections_rejected.inc()
            _refuse(request)
            self.shutdown_request(request)
            return
        try:
            self._pool.submit(self._work, request, client_address)
        except RuntimeError:  # shutting down
            self._slots.release()
            self.shutdown_request(request)

    def _work(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that resets or stalls is routine, not a traceback on stderr.
        log.debug("connection from %s ended with an error", client_address, exc_info=True)

    def server_close(self) -> None:
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)


def _refuse(request: socket.socket) -> None:
    try:
        request.settimeout(0.2)
        request.sendall(
            b"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n"
            b"Connection: close\r\n\r\n"
        )
    except OSError:
        pass


def make_server(
    trigger: RetrainTrigger,
    host: str,
    port: int,
    *,
    auth: WebhookAuth | None = None,
    limits: HttpLimits | None = None,
) -> BoundedHTTPServer:
    """The trigger's server; refuses a non-loopback ``host`` without a token (ConfigError)."""
    auth = auth or WebhookAuth(None)
    limits = limits or HttpLimits()
    check_bind(host, auth)
    return BoundedHTTPServer((host, port), _handler_class(trigger, auth, limits), trigger, limits)


def serve(
    trigger: RetrainTrigger,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    auth: WebhookAuth | None = None,
    limits: HttpLimits | None = None,
) -> None:
    auth = auth or WebhookAuth(None)
    server = make_server(trigger, host, port, auth=auth, limits=limits)
    bound = server.server_address
    if auth.enabled:
        access = f"POST /alerts needs the bearer token of {auth.path}"
    else:
        access = (
            "NO webhook token: listening on loopback only; any local user can start runs "
            "(set --webhook-token-file to listen elsewhere)"
        )
    log.info(
        "kfops trigger listening on http://%s:%s (POST /alerts, GET /metrics), %s runs, "
        "cooldown %.0fs; %s", bound[0], bound[1], trigger.launcher.where, trigger.cooldown, access,
    )  # fmt: skip

    def _stop(signum: int, frame: Any) -> None:
        # serve_forever returns, then the state file gets its last write (trigger.close()).
        threading.Thread(target=server.shutdown, daemon=True).start()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        trigger.close()
