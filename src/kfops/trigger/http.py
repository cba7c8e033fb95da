"""The trigger's HTTP service: POST /alerts (Alertmanager webhooks), GET /metrics, /status,
/healthz, on a threaded stdlib server."""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kfops.trigger.decisions import RetrainTrigger

log = logging.getLogger("kfops.trigger")

MAX_BODY = 4 << 20  # Alertmanager caps a notification far below this


def make_server(trigger: RetrainTrigger, host: str, port: int) -> ThreadingHTTPServer:
    """A threaded stdlib HTTP server; ``server_address`` holds the bound port (port 0 = any)."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "kfops-trigger"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s %s", self.address_string(), format % args)

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, data: dict[str, Any]) -> None:
            self._send(status, (json.dumps(data) + "\n").encode(), "application/json")

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(HTTPStatus.OK, generate_latest(trigger.registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._json(HTTPStatus.OK, {"status": "ok"})
            elif path == "/status":
                self._json(HTTPStatus.OK, trigger.status())
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no route {path}"})

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            if path != "/alerts":
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no route {path}; POST /alerts"})
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY:
                self._json(HTTPStatus.BAD_REQUEST, {"error": "bad or missing Content-Length"})
                return
            status, data = trigger.handle(self.rfile.read(length))
            self._json(status, data)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        # The default listen backlog of 5 resets connections in an alert storm.
        request_queue_size = 256

    return Server((host, port), Handler)


def serve(trigger: RetrainTrigger, host: str = "0.0.0.0", port: int = 8080) -> None:
    server = make_server(trigger, host, port)
    bound = server.server_address
    log.info(
        "kfops trigger listening on http://%s:%s (POST /alerts, GET /metrics), %s runs, "
        "cooldown %.0fs", bound[0], bound[1], trigger.launcher.where, trigger.cooldown,
    )  # fmt: skip
    try:
        server.serve_forever()
    finally:
        server.server_close()
        trigger.close()
