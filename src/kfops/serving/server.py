"""Start kserve's ModelServer with the kfops predictor (`kfops serve`, `python -m kfops.serving`).

kserve parses ``sys.argv`` when it is first imported (module-level ``parse_known_args``), so it
is imported here with a neutral argv: our own flags (``--model v3``) would otherwise be read as
abbreviations of kserve's (``--model_name``). The process-wide log config and app hooks are
``kfops.serving.app`` (``quiet_logging`` stays importable from here).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from kfops.errors import ConfigError, KfopsError
from kfops.serving.app import install_app_hooks, quiet_logging

if TYPE_CHECKING:
    from kfops.serving.model import ModelSource
from kfops.serving.explaining import DEFAULT_MAX_EXPLAIN_ROWS
from kfops.serving.limits import ServingLimits

log = logging.getLogger(__name__)

DEFAULT_PORT = 8080
# Locally the server listens on loopback; the image and the manifests pass --host 0.0.0.0.
DEFAULT_HOST = "127.0.0.1"


@contextlib.contextmanager
def _neutral_argv() -> Iterator[None]:
    saved = sys.argv
    sys.argv = [saved[0] if saved else "kfops"]
    try:
        yield
    finally:
        sys.argv = saved


def import_kserve() -> ModuleType:
    with _neutral_argv():
        import kserve

    return kserve


def check_port(port: int, host: str = "0.0.0.0") -> None:
    """Fail with one clear message when ``port`` is taken (uvicorn would only log and exit 1)."""
    if not 0 < port < 65536:
        raise ConfigError(f"--port {port} is not a valid TCP port")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ConfigError(f"--host {host!r} cannot be resolved: {exc}") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"port {port} is already in use ({exc.strerror}); pick another with --port"
                ) from None
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def add_serving_arguments(
    parser: argparse.ArgumentParser, capture_default: str = "off if unset"
) -> None:
    """Flags shared by ``kfops serve`` and ``python -m kfops.serving`` (``capture_default``
    says in ``--help`` where each captures without ``--capture``)."""
    parser.add_argument(
        "--port",
        "--http-port",
        "--http_port",
        dest="port",
        type=int,
        default=DEFAULT_PORT,
        help="HTTP port (default %(default)s)",
    )
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="address to listen on (default %(default)s; 0.0.0.0 for every interface)",
    )
    limits = parser.add_argument_group("limits (what one client can cost)")
    defaults = ServingLimits()
    limits.add_argument(
        "--max-body-bytes",
        type=int,
        default=defaults.max_body_bytes,
        help="largest request body; larger ones get 413 unread (default %(default)s)",
    )
    limits.add_argument(
        "--header-timeout",
        type=float,
        default=defaults.header_timeout,
        help="seconds a connection has to send a request head (default %(default)s)",
    )
    limits.add_argument(
        "--keep-alive-timeout",
        type=int,
        default=defaults.keep_alive_timeout,
        help="seconds an idle keep-alive connection stays open (default %(default)s)",
    )
    limits.add_argument(
        "--max-connections",
        type=int,
        default=defaults.max_connections,
        help="open connections per process; past it the longest idle one is closed "
        "(default %(default)s)",
    )
    limits.add_argument(
        "--enable-model-repository",
        action="store_true",
        help="serve kserve's /v2/repository load/unload routes (off: anyone who reaches the "
        "port could take the model offline)",
    )
    parser.add_argument(
        "--endpoint-name",
        "--model_name",  # kserve's own spelling
        dest="model_name",
        default=None,
        metavar="NAME",
        help="name on the endpoint path, /v1/models/NAME:predict (default: the model name)",
    )
    from kfops.cli._flags import deprecated

    deprecated(parser, "--model-name", "--endpoint-name", "model_name")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes; metrics stay exact (prometheus multiprocess)",
    )
    parser.add_argument(
        "--max-rows",
        type=int,
        default=10_000,
        help="largest batch accepted per request (default %(default)s)",
    )
    parser.add_argument(
        "--max-explain-rows",
        type=int,
        default=DEFAULT_MAX_EXPLAIN_ROWS,
        help="largest batch accepted per :explain request (explanations cost more than "
        "predictions; default %(default)s)",
    )
    parser.add_argument(
        "--capture",
        dest="capture_uri",
        default=None,
        help=f"payload capture sink: a directory or an fsspec URI ({capture_default})",
    )
    parser.add_argument(
        "--capture-sample-rate",
        type=float,
        default=1.0,
        help="share of requests captured, 0..1 (default %(default)s)",
    )
    parser.add_argument(
        "--capture-queue",
        type=int,
        default=1000,
        help="bounded capture queue length; overflow is dropped and counted",
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=1.0,
        help="seconds between checks of the alias file (hot swap)",
    )
    parser.add_argument(
        "--runtime",
        choices=("auto", "onnx", "sklearn"),
        default="auto",
        help="what answers requests: auto (the version's verified ONNX twin when it has one, "
        "else the sklearn pipeline), onnx (refuse a version without a verified twin) or "
        "sklearn (default %(default)s)",
    )
    parser.add_argument(
        "--strict-categories",
        action="store_true",
        help="refuse (422) category values the model never saw in training; by default they "
        "are served (the encoder ignores them) and counted in kfops_unseen_category_total",
    )
    parser.add_argument(
        "--no-drift", dest="drift", action="store_false", help="do not compute online drift scores"
    )
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument(
        "--metrics-dir",
        default=None,
        help="PROMETHEUS_MULTIPROC_DIR for --workers > 1 (default: a temp dir)",
    )


def serve(args: argparse.Namespace, source: ModelSource, default_name: str) -> int:
    """Load, verify and serve until interrupted. KfopsError for anything the user can fix."""
    if args.workers < 1:
        raise ConfigError(f"--workers {args.workers} must be at least 1")
    if args.max_rows < 1:
        raise ConfigError(f"--max-rows {args.max_rows} must be at least 1")
    if args.max_explain_rows < 1:
        raise ConfigError(f"--max-explain-rows {args.max_explain_rows} must be at least 1")
    limits = serving_limits(args)
    check_port(args.port, args.host)
    if args.workers > 1:
        from kfops.serving.metrics import MULTIPROC_ENV, prepare_multiprocess_dir

        metrics_dir = (
            args.metrics_dir
            or os.environ.get(MULTIPROC_ENV)
            or tempfile.mkdtemp(prefix="kfops-metrics-")
        )
        prepare_multiprocess_dir(metrics_dir)
    kserve = import_kserve()
    if args.workers > 1:
        from kfops.serving.workers import install_patient_workers

        install_patient_workers()
    from kfops.serving.predictor import KfopsPredictor, ServingOptions

    quiet_logging(args.access_log)
    options = ServingOptions(
        max_rows=args.max_rows,
        capture_uri=args.capture_uri,
        capture_sample_rate=args.capture_sample_rate,
        capture_queue=args.capture_queue,
        poll_interval=args.poll_interval,
        drift=args.drift,
        access_log=args.access_log,
        limits=limits,
        max_explain_rows=args.max_explain_rows,
        runtime=args.runtime,
        strict_categories=args.strict_categories,
    )
    name = args.model_name or default_name
    predictor = KfopsPredictor(name, source, options)
    if not predictor.load():
        raise ServingError(
            f"model {name!r} from {source.describe()} cannot be served: {predictor.load_error}"
        )
    install_app_hooks(limits)
    server = limited_model_server(kserve, args.host, limits)(
        http_port=args.port,
        workers=args.workers,
        enable_grpc=False,
        enable_latency_logging=False,
    )
    log.info(
        "kfops serving %r on http://%s:%d (V1 /v1/models/%s:predict and :explain, V2 "
        "/v2/models/%s/infer, /metrics) with the %s runtime; bodies up to %d bytes, model "
        "repository routes %s",
        name,
        args.host,
        args.port,
        name,
        name,
        predictor.served.runtime if predictor.served else "?",
        limits.max_body_bytes,
        "ON" if limits.allow_model_repository else "off",
    )
    server.start([predictor])
    return 0


def serving_limits(args: argparse.Namespace) -> ServingLimits:
    return ServingLimits(
        max_body_bytes=args.max_body_bytes,
        max_buffered_bytes=4 * args.max_body_bytes,
        header_timeout=args.header_timeout,
        keep_alive_timeout=args.keep_alive_timeout,
        max_connections=args.max_connections,
        allow_model_repository=args.enable_model_repository,
    )


def limited_model_server(kserve: Any, host: str, limits: ServingLimits) -> type:
    """kserve's ModelServer with ``host`` and ``limits`` applied to the uvicorn config it
    builds. kserve 0.21.0 ``ModelServer.start`` (kserve/model_server.py) creates its
    RESTServer (or RESTServerMultiProcess) and then calls ``setup_event_loop()`` before
    serving: the one point where that config exists and nothing listens yet."""
    from kfops.serving.limits import configure_uvicorn

    class LimitedModelServer(kserve.ModelServer):  # type: ignore[misc,name-defined]
        def setup_event_loop(self) -> None:
            rest = self._rest_server
            if rest is None and self._rest_multiprocess_server is not None:
                rest = self._rest_multiprocess_server._rest_server
            if rest is not None:
                configure_uvicorn(rest.config, host, limits)
            super().setup_event_loop()

    return LimitedModelServer


class ServingError(KfopsError):
    """The model cannot be served (unknown alias, missing contract, tampered file, ...)."""


def main(argv: list[str] | None = None) -> int:
    """``python -m kfops.serving``: the container entry point (``--model-dir /mnt/models``)."""
    from kfops.registry import CHAMPION
    from kfops.serving.model import ModelSource

    parser = argparse.ArgumentParser(
        prog="python -m kfops.serving", description="Serve one kfops model version with KServe."
    )
    parser.add_argument(
        "--model-dir",
        "--model_dir",
        dest="model_dir",
        default=None,
        help="a registry version directory (on a cluster: /mnt/models)",
    )
    parser.add_argument("--registry", default=None, help="registry root (instead of --model-dir)")
    parser.add_argument("--model", default=None, help="model name in the registry")
    parser.add_argument(
        "--version", default=CHAMPION, help="version or alias to serve (default champion)"
    )
    from kfops.cli._flags import deprecated

    deprecated(parser, "--ref", "--version", "version")
    add_serving_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.registry:
            if not args.model:
                raise ConfigError("--registry needs --model (the model name)")
            source = ModelSource(
                registry_root=Path(args.registry), model=args.model, ref=args.version
            )
            default = args.model
        else:
            source = ModelSource(model_dir=Path(args.model_dir or "/mnt/models"))
            default = "model"
        return serve(args, source, default)
    except KfopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
