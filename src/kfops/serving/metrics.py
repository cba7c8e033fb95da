"""Prometheus metrics of the model server (``kfops_`` prefix, base units, bounded labels).

With ``--workers N`` kserve forks N spawn-started processes and each scrape would see one of them
(kserve#2979). The server therefore sets ``PROMETHEUS_MULTIPROC_DIR`` before the workers start;
every process writes its values to mmap files there and ``/metrics`` (kserve's handler, which
renders the default registry) is switched to a ``MultiProcessCollector`` that sums the files.
Gauges say how to combine: model info takes the max (1 for a served version), drift scores the
most recent value written by any worker.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNKNOWN_MODEL = "_unknown_"
# nginx's "client closed request": a client that disconnects is not a server error (5xx).
CLIENT_CLOSED = 499
# Single-row requests take ~1 ms; batches up to 10k rows take longer.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
)  # fmt: skip


class ServingMetrics:
    """All kfops serving metrics; one instance per process (see ``get_metrics``)."""

    def __init__(self, registry: CollectorRegistry | None = REGISTRY) -> None:
        model_version = ["model", "version"]
        # endpoint: "predict" (V1 :predict, V2 /infer) or "explain" (V1 :explain).
        self.requests = Counter(
            "kfops_requests",
            "Prediction and explanation requests by protocol, endpoint and HTTP status.",
            [*model_version, "protocol", "endpoint", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "kfops_request_duration_seconds",
            "Time from request to response for prediction and explanation requests.",
            [*model_version, "protocol", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.validation_failures = Counter(
            "kfops_validation_failures",
            "Rejected requests by reason (a request with several reasons counts once for each).",
            [*model_version, "reason"],
            registry=registry,
        )
        self.unseen_categories = Counter(
            "kfops_unseen_category",
            "Values of categorical (or boolean) features the model never saw in training, "
            "served anyway (the encoder ignores them; --strict-categories refuses them).",
            [*model_version, "feature"],
            registry=registry,
        )
        self.rows = Counter(
            "kfops_predicted_rows", "Rows predicted.", model_version, registry=registry
        )
        self.explained_rows = Counter(
            "kfops_explained_rows",
            "Rows explained (:explain), by explainer method (linear, tree).",
            [*model_version, "method"],
            registry=registry,
        )
        self.predictions = Counter(
            "kfops_predictions",
            "Predicted rows by predicted class (classification).",
            [*model_version, "class"],
            registry=registry,
        )
        self.prediction_value = Histogram(
            "kfops_prediction_value",
            "Distribution of predicted values (regression).",
            model_version,
            buckets=(float("-inf"), *[float(b) for b in range(-10, 11)]),
            registry=registry,
        )
        self.drift_psi = Gauge(
            "kfops_feature_drift_psi",
            "Population stability index of live traffic vs the version's training reference.",
            [*model_version, "feature"],
            multiprocess_mode="mostrecent",
            registry=registry,
        )
        self.drift_rows = Gauge(
            "kfops_feature_drift_window_rows",
            "Rows of live traffic behind the drift scores.",
            model_version,
            multiprocess_mode="mostrecent",
            registry=registry,
        )
        self.model_info = Gauge(
            "kfops_model_info",
            "1 for the model version being served (0 once replaced); runtime: onnx (its verified "
            "ONNX twin) or sklearn (the pipeline).",
            ["model", "version", "sha256", "runtime"],
            multiprocess_mode="max",
            registry=registry,
        )
        self.model_swaps = Counter(
            "kfops_model_swaps", "Hot swaps to a new model version.", ["model"], registry=registry
        )
        self.model_load_failures = Counter(
            "kfops_model_load_failures",
            "Model versions that failed to load or verify (the old version keeps serving).",
            ["model"],
            registry=registry,
        )
        self.capture_records = Counter(
            "kfops_capture_records",
            "Captured prediction rows written to the sink.",
            ["model"],
            registry=registry,
        )
        self.capture_dropped = Counter(
            "kfops_capture_dropped",
            "Captured rows dropped because the writer queue was full or the sink failed.",
            ["model"],
            registry=registry,
        )


_lock = threading.Lock()
_metrics: ServingMetrics | None = None
_multiprocess_installed = False


def get_metrics() -> ServingMetrics:
    """The process-wide metrics (created on first use, so nothing happens at import time)."""
    global _metrics
    if _metrics is None:
        with _lock:
            if _metrics is None:
                _metrics = ServingMetrics()
                if os.environ.get(MULTIPROC_ENV):
                    _install_multiprocess_collector()
    return _metrics


def _install_multiprocess_collector() -> None:
    """Make the default registry (rendered by kserve's /metrics) read all workers' files."""
    global _multiprocess_installed
    if _multiprocess_installed:
        return
    from prometheus_client import multiprocess

    # Every metric object (kserve's and ours) already writes to the mmap files in this mode;
    # leaving them registered would export this process's share a second time.
    for collector in list(REGISTRY._collector_to_names):
        REGISTRY.unregister(collector)
    multiprocess.MultiProcessCollector(REGISTRY)
    _multiprocess_installed = True


def prepare_multiprocess_dir(path: str) -> None:
    """Empty ``path`` (stale files would add old counts) and export it for the workers."""
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.unlink(os.path.join(path, name))
    os.environ[MULTIPROC_ENV] = path


def route_of(path: str) -> tuple[str, str, str] | None:
    """(model name, protocol, endpoint) of a prediction or explanation route, None for every
    other path."""
    if path.startswith("/v1/models/"):
        rest = path[len("/v1/models/") :]
        for endpoint in ("predict", "explain"):
            if rest.endswith(":" + endpoint):
                return rest[: -len(endpoint) - 1], "v1", endpoint
        return None
    if path.startswith("/v2/models/") and path.endswith("/infer"):
        rest = path[len("/v2/models/") : -len("/infer")]
        return rest.split("/", 1)[0], "v2", "predict"
    return None


ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


class MetricsMiddleware:
    """Pure ASGI middleware: counts every prediction and explanation request by status and
    times it.

    It sits outside kserve's handlers so it also sees requests kserve rejects before the
    predictor runs (malformed JSON, V2 schema errors), which it counts as ``malformed_request``.
    ``predictors`` maps served model names to objects with ``current_version()``.

    The request is counted before the last body chunk is handed to the server: uvicorn writes
    it to the socket at once, so counting after the app returns would let a client read the
    answer, scrape ``/metrics`` (possibly from another worker) and miss its own request.
    """

    def __init__(self, app: ASGIApp, predictors: Mapping[str, Any]) -> None:
        self.app = app
        self.predictors = predictors

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = route_of(scope["path"])
        if route is None:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status: int | None = None
        recorded = False

        def record() -> None:
            nonlocal recorded, status
            if recorded:
                return
            recorded = True
            if status is None:
                # No response: the client went away first (kfops.serving.limits marks it), or
                # the app crashed before answering (uvicorn then sends a 500 itself).
                state = scope.get("state") or {}
                status = CLIENT_CLOSED if state.get("kfops_disconnected") else 500
            self._record(scope, route, status, time.perf_counter() - start)

        async def send_status(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                record()  # before the client can have the complete answer
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # No complete response sent (an exception on its way to Starlette's 500 handler,
            # or a client that went away): count it as it stands.
            record()

    def _record(
        self,
        scope: MutableMapping[str, Any],
        route: tuple[str, str, str],
        status: int,
        took: float,
    ) -> None:
        name, protocol, endpoint = route
        current = self.predictors.get(name)
        if current is None:
            model, version = UNKNOWN_MODEL, ""
        else:
            model, version = name, current.current_version()
        m = get_metrics()
        m.requests.labels(model, version, protocol, endpoint, str(status)).inc()
        m.latency.labels(model, version, protocol, endpoint).observe(took)
        state = scope.get("state") or {}
        counted = state.get("kfops_counted") or status == CLIENT_CLOSED
        if 400 <= status < 500 and not counted and current is not None:
            m.validation_failures.labels(model, version, "malformed_request").inc()
