"""The retraining trigger: Alertmanager webhooks in, training runs out.

``kfops trigger`` serves ``POST /alerts`` (the Alertmanager webhook format, version 4). For each
model named by a firing alert's ``model`` label it decides, and logs why:

- ``duplicate``: every alert of the notification (fingerprint + start time) was already acted
  on; Alertmanager re-sends firing alerts every ``repeat_interval``.
- ``in_flight``: a run for the model is still going (at most one per model).
- ``cooldown``: the last run for the model started less than ``cooldown`` seconds ago.
- otherwise it starts a run through its ``Launcher``: the training pipeline on Kubeflow when a
  KFP host is configured, else locally (``kfops.local_runner.run_training``) on fresh data.

An alert storm therefore makes one run, not hundreds. When a run cannot be submitted (e.g. the
Kubeflow host is unreachable) the trigger logs a clear error and answers 503, so Alertmanager
retries the notification: nothing is lost, the alert stays firing. Malformed JSON is a 400.

``GET /metrics`` exports kfops_trigger_webhooks_total, kfops_trigger_runs_total{outcome},
kfops_trigger_skipped_total{reason} and kfops_trigger_runs_in_flight; ``GET /status`` returns
the per-model state as JSON; ``GET /healthz`` answers ok.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)

from kfops.defaults import IMAGE, MONITORING_WINDOW_HOURS
from kfops.errors import ConfigError, KfopsError
from kfops.params import TrainingParams

log = logging.getLogger(__name__)

MAX_BODY = 4 << 20  # Alertmanager caps a notification far below this
DEFAULT_COOLDOWN = 3600.0
DEFAULT_DEDUP_TTL = 7 * 86400.0

# Outcomes of kfops_trigger_runs_total.
STARTED, SUBMIT_FAILED, SUCCEEDED, FAILED = "started", "submit_failed", "succeeded", "failed"
# Reasons of kfops_trigger_skipped_total.
DUPLICATE, IN_FLIGHT, COOLDOWN, RESOLVED, NO_MODEL = (
    "duplicate",
    "in_flight",
    "cooldown",
    "resolved",
    "no_model",
)


class BadRequest(KfopsError):
    """A webhook body that is not an Alertmanager notification (answered with 400)."""


@dataclass(frozen=True)
class RetrainRequest:
    """One run to start: the model and the alerts that asked for it."""

    model: str
    alerts: tuple[str, ...]  # "AlertName{feature=x}" descriptions, for logs and run records
    run_id: str


@dataclass
class RunOutcome:
    """How a started run ended. ``blessed``/``version`` are known for local runs only."""

    succeeded: bool
    detail: str
    blessed: bool | None = None
    version: str | None = None
    reasons: list[str] = field(default_factory=list)


class Launcher(Protocol):
    """Starts training runs. ``submit`` must be quick and raise KfopsError when it cannot
    submit (the webhook then answers 503); ``wait`` runs in a worker thread until the run ends."""

    where: str

    def submit(self, request: RetrainRequest) -> str: ...

    def wait(self, request: RetrainRequest, handle: str) -> RunOutcome: ...


def new_run_id() -> str:
    from kfops.tracking import new_run_id as _new

    return _new()


# ----------------------------------------------------------------------------------------------
# Launchers


class LocalLauncher:
    """Runs the training pipeline on this machine with kfp.local.

    The training data is ``data_uri`` when given, else the model's captured traffic of the last
    ``window_hours`` joined with its late labels; the run is the retrain step
    (``kfops.steps.retrain``), which repeats the champion's target, task and estimator. Runs are
    serialised: kfp.local keeps global state.
    """

    where = "local"
    _lock = threading.Lock()

    def __init__(
        self,
        registry_root: str | Path,
        *,
        data_uri: str | None = None,
        capture_dir: str | Path | None = None,
        labels_dir: str | Path | None = None,
        window_hours: float = MONITORING_WINDOW_HOURS,
        runner: str = "subprocess",
        work_dir: str | Path | None = None,
    ) -> None:
        if data_uri is None and (capture_dir is None or labels_dir is None):
            raise ConfigError(
                "local retraining needs --data-uri, or --capture-dir and --labels-dir to train "
                "on labelled captured traffic"
            )
        self.registry_root = Path(registry_root)
        self.data_uri = data_uri
        self.capture_dir = capture_dir
        self.labels_dir = labels_dir
        self.window_hours = window_hours
        self.runner = runner
        self.work_dir = Path(work_dir) if work_dir else self.registry_root.parent / "retrain-data"

    def submit(self, request: RetrainRequest) -> str:
        # Local runs cannot fail to "submit": the work happens in wait(), in the worker thread.
        return request.run_id

    def training_data(self, request: RetrainRequest) -> str:
        """``data_uri``, else the last ``window_hours`` of captured traffic with labels."""
        if self.data_uri is not None:
            return self.data_uri
        from kfops.monitoring import default_window
        from kfops.steps import retrain

        assert self.capture_dir is not None and self.labels_dir is not None
        start, end = default_window(self.window_hours)
        path, rows = retrain.labelled_window(
            self.registry_root,
            request.model,
            self.capture_dir,
            self.labels_dir,
            start,
            end,
            self.work_dir / request.model / f"{request.run_id}.parquet",
        )
        log.info("%s: training data of run %s: %d labelled rows", request.model, request.run_id,
                 rows)  # fmt: skip
        return str(path)

    def wait(self, request: RetrainRequest, handle: str) -> RunOutcome:
        from kfops.steps import retrain

        with self._lock:
            summary = retrain.run(
                retrain.RetrainInputs(
                    model_name=request.model,
                    registry_root=self.registry_root,
                    data_uri=self.training_data(request),
                    runner=self.runner,
                    run_id=handle,
                    trigger={"alerts": list(request.alerts)},
                )
            )
        verdict = "blessed" if summary.blessed else "rejected"
        return RunOutcome(
            succeeded=True,
            detail=f"run {summary.run_id} {verdict}"
            + (f" as {summary.version}" if summary.version else "")
            + (f": {'; '.join(summary.reasons)}" if summary.reasons else ""),
            blessed=summary.blessed,
            version=summary.version,
            reasons=list(summary.reasons),
        )


class KubeflowLauncher:
    """Submits the training pipeline to Kubeflow Pipelines (kfops.submit) on ``data_uri``.

    The target and task come from the flags or, when absent, the local registry's champion.
    An unreachable or refusing host raises ClusterError from ``submit`` (the webhook -> 503).
    """

    where = "kubeflow"

    def __init__(
        self,
        target: Any,  # kfops.submit.KfpTarget
        data_uri: str,
        registry_root: str | Path,
        *,
        training_target: str | None = None,
        task: str | None = None,
        image: str = IMAGE,
        deploy: Mapping[str, Any] | None = None,
        wait_timeout: float = 6 * 3600.0,
        poll_seconds: float = 15.0,
    ) -> None:
        self.target = target
        # Pipeline parameters for the deploy step, e.g. deploy_target and namespace.
        self.deploy = dict(deploy or {})
        self.data_uri = data_uri
        self.registry_root = str(registry_root)
        self.training_target = training_target
        self.task = task
        self.image = image
        self.wait_timeout = wait_timeout
        self.poll_seconds = poll_seconds
        self._package: Path | None = None
        self._tmp: Any = None

    def _params(self, request: RetrainRequest) -> TrainingParams:
        from kfops.steps.retrain import training_params

        if self.training_target and self.task:
            return TrainingParams(
                data_uri=self.data_uri,
                target=self.training_target,
                task=self.task,
                model_name=request.model,
                registry_root=self.registry_root,
            )
        return training_params(self.registry_root, request.model, self.data_uri)

    def _compiled(self) -> Path:
        import tempfile

        from kfops.submit import compile_package

        if self._package is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="kfops-trigger-")
            self._package = compile_package(
                "training", Path(self._tmp.name) / "training.yaml", self.image
            )
        return self._package

    def submit(self, request: RetrainRequest) -> str:
        from kfops.submit import submit_run

        arguments = {**self._params(request).pipeline_arguments(request.run_id), **self.deploy}
        result = submit_run(
            self.target,
            self._compiled(),
            arguments=arguments,
            run_name=f"kfops-retrain-{request.model}",
        )
        log.info("%s: Kubeflow run %s: %s", request.model, result.run_id, result.url)
        return str(result.run_id)

    def wait(self, request: RetrainRequest, handle: str) -> RunOutcome:
        from kfops.submit import make_client, wait_for_run

        client = make_client(self.target)
        state = wait_for_run(
            client, self.target, handle, timeout=self.wait_timeout, poll_seconds=self.poll_seconds
        )
        ok = state.upper() == "SUCCEEDED"
        return RunOutcome(succeeded=ok, detail=f"Kubeflow run {handle} ended {state}")


# ----------------------------------------------------------------------------------------------
# Decisions


@dataclass
class ModelState:
    in_flight: str | None = None  # run id
    last_started: float | None = None
    last_run: str | None = None
    last_outcome: str | None = None
    last_detail: str | None = None
    runs: int = 0


@dataclass(frozen=True)
class Decision:
    model: str
    action: str  # "started", "skipped", "failed"
    reason: str  # outcome/skip reason label
    message: str
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _describe(alert: dict[str, Any]) -> str:
    labels = alert.get("labels") or {}
    name = labels.get("alertname", "?")
    extra = ",".join(
        f"{k}={v}" for k, v in sorted(labels.items()) if k in ("feature", "class", "version")
    )
    return f"{name}{{{extra}}}" if extra else str(name)


def _alert_key(alert: dict[str, Any]) -> str:
    """One alert instance: its fingerprint (label set) and when it started firing."""
    labels = alert.get("labels") or {}
    fingerprint = alert.get("fingerprint") or json.dumps(labels, sort_keys=True)
    return f"{fingerprint}@{alert.get('startsAt', '')}"


def parse_notification(body: bytes) -> dict[str, Any]:
    """The webhook JSON, checked just enough to act on it; BadRequest names what is wrong."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise BadRequest("body must be a JSON object (an Alertmanager notification)")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise BadRequest("field 'alerts' must be a list")
    for i, alert in enumerate(alerts):
        if not isinstance(alert, dict):
            raise BadRequest(f"alerts[{i}] must be an object")
        if not isinstance(alert.get("labels", {}), dict):
            raise BadRequest(f"alerts[{i}].labels must be an object")
    return payload


class RetrainTrigger:
    """De-duplication, cooldown and one-run-in-flight per model, around a Launcher."""

    def __init__(
        self,
        launcher: Launcher,
        *,
        cooldown: float = DEFAULT_COOLDOWN,
        dedup_ttl: float = DEFAULT_DEDUP_TTL,
        clock: Callable[[], float] = time.time,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if cooldown < 0:
            raise ConfigError(f"cooldown must not be negative, got {cooldown}")
        self.launcher = launcher
        self.cooldown = cooldown
        self.dedup_ttl = dedup_ttl
        self.clock = clock
        self.registry = registry or CollectorRegistry()
        self._lock = threading.Lock()
        self._models: dict[str, ModelState] = {}
        self._seen: dict[str, float] = {}  # alert key -> when acted on
        self._keys_of_run: dict[str, list[str]] = {}
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kfops-run")
        self._futures: set[Any] = set()
        self.webhooks = Counter(
            "kfops_trigger_webhooks", "Alertmanager notifications received.", ["status"],
            registry=self.registry,
        )  # fmt: skip
        self.runs = Counter(
            "kfops_trigger_runs", "Training runs by outcome.", ["outcome"], registry=self.registry
        )
        self.skipped = Counter(
            "kfops_trigger_skipped", "Alerts not acted on, by reason.", ["reason"],
            registry=self.registry,
        )  # fmt: skip
        self.in_flight = Gauge(
            "kfops_trigger_runs_in_flight", "Training runs in progress.", registry=self.registry
        )
        # Every label value shows up (as 0) before it first happens: dashboards need no absent().
        for outcome in (STARTED, SUBMIT_FAILED, SUCCEEDED, FAILED):
            self.runs.labels(outcome)
        for reason in (DUPLICATE, IN_FLIGHT, COOLDOWN, RESOLVED, NO_MODEL):
            self.skipped.labels(reason)
        for status in ("accepted", "bad_request", "retry"):
            self.webhooks.labels(status)

    # -- state ---------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "launcher": self.launcher.where,
                "cooldown_seconds": self.cooldown,
                "models": {m: asdict(s) for m, s in sorted(self._models.items())},
            }

    def wait_idle(self, timeout: float = 600.0) -> bool:
        """Block until no run is in flight (tests, shutdown). False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not any(s.in_flight for s in self._models.values()):
                    return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- the webhook ---------------------------------------------------------------------------

    def handle(self, body: bytes) -> tuple[int, dict[str, Any]]:
        """Act on one notification; returns (HTTP status, JSON body)."""
        try:
            payload = parse_notification(body)
        except BadRequest as exc:
            self.webhooks.labels("bad_request").inc()
            log.warning("rejected webhook: %s", exc)
            return HTTPStatus.BAD_REQUEST, {"error": str(exc)}
        decisions = self.decide(payload)
        failed = [d for d in decisions if d.action == "failed"]
        self.webhooks.labels("retry" if failed else "accepted").inc()
        body_out: dict[str, Any] = {"decisions": [d.to_dict() for d in decisions]}
        if failed:
            body_out["error"] = "; ".join(d.message for d in failed)
            return HTTPStatus.SERVICE_UNAVAILABLE, body_out
        return HTTPStatus.OK, body_out

    def decide(self, payload: dict[str, Any]) -> list[Decision]:
        by_model: dict[str, list[dict[str, Any]]] = {}
        for alert in payload["alerts"]:
            labels = alert.get("labels") or {}
            if alert.get("status", payload.get("status")) != "firing":
                self.skipped.labels(RESOLVED).inc()
                log.info("ignoring resolved alert %s", _describe(alert))
                continue
            model = labels.get("model")
            if not isinstance(model, str) or not model:
                self.skipped.labels(NO_MODEL).inc()
                log.warning("ignoring alert %s: it has no 'model' label", _describe(alert))
                continue
            by_model.setdefault(model, []).append(alert)
        return [self._decide_model(model, alerts) for model, alerts in sorted(by_model.items())]

    def _decide_model(self, model: str, alerts: list[dict[str, Any]]) -> Decision:
        now = self.clock()
        keys = [_alert_key(a) for a in alerts]
        names = tuple(sorted({_describe(a) for a in alerts}))
        with self._lock:
            self._prune(now)
            state = self._models.setdefault(model, ModelState())
            fresh = [k for k in keys if k not in self._seen]
            if not fresh:
                return self._skip(model, DUPLICATE, f"{', '.join(names)} already acted on")
            if state.in_flight:
                self._mark(fresh, now, state.in_flight)
                return self._skip(
                    model, IN_FLIGHT, f"run {state.in_flight} is in flight for {', '.join(names)}"
                )
            if state.last_started is not None and now - state.last_started < self.cooldown:
                left = self.cooldown - (now - state.last_started)
                # After a good run the alert is covered by it; after a failed one it may retry
                # once the cooldown is over.
                if state.last_outcome != FAILED:
                    self._mark(fresh, now, state.last_run)
                return self._skip(
                    model, COOLDOWN,
                    f"last run {state.last_run} started {now - state.last_started:.0f}s ago; "
                    f"cooldown {self.cooldown:.0f}s ({left:.0f}s left)",
                )  # fmt: skip
            request = RetrainRequest(model, names, new_run_id())
            # Reserve the model before submitting outside the lock (submit may be a slow call
            # to Kubeflow): concurrent webhooks for it now see a run in flight.
            state.in_flight = request.run_id
            self._mark(fresh, now, request.run_id)
        try:
            handle = self.launcher.submit(request)
        except Exception as exc:  # KfopsError (e.g. ClusterError) or a bug: never a 500
            if not isinstance(exc, KfopsError):
                log.exception("%s: submitting a run crashed", model)
            with self._lock:
                # Not remembered: Alertmanager retries on our 503 and we try again.
                state.in_flight = None
                for key in self._keys_of_run.pop(request.run_id, []):
                    self._seen.pop(key, None)
            self.runs.labels(SUBMIT_FAILED).inc()
            log.error("%s: could not start a training run for %s: %s", model,
                      ", ".join(names), exc)  # fmt: skip
            return Decision(model, "failed", SUBMIT_FAILED, str(exc))
        with self._lock:
            state.in_flight, state.last_started, state.last_run = handle, now, handle
            state.last_outcome, state.last_detail = STARTED, None
            state.runs += 1
            if handle != request.run_id:
                self._keys_of_run[handle] = self._keys_of_run.pop(request.run_id, [])
            self.runs.labels(STARTED).inc()
            self.in_flight.inc()
        log.info("%s: started %s training run %s for %s", model, self.launcher.where, handle,
                 ", ".join(names))  # fmt: skip
        future = self._pool.submit(self._follow, request, handle)
        self._futures.add(future)
        future.add_done_callback(self._futures.discard)
        return Decision(model, "started", STARTED, f"{self.launcher.where} run {handle}", handle)

    def _skip(self, model: str, reason: str, message: str) -> Decision:
        self.skipped.labels(reason).inc()
        log.info("%s: not triggering (%s): %s", model, reason, message)
        return Decision(model, "skipped", reason, message)

    def _mark(self, keys: list[str], now: float, run: str | None) -> None:
        for key in keys:
            self._seen[key] = now
        if run is not None:
            self._keys_of_run.setdefault(run, []).extend(keys)

    def _prune(self, now: float) -> None:
        stale = [k for k, t in self._seen.items() if now - t > self.dedup_ttl]
        for key in stale:
            del self._seen[key]

    def _follow(self, request: RetrainRequest, handle: str) -> None:
        try:
            outcome = self.launcher.wait(request, handle)
        except Exception as exc:  # a run failing must never kill the service
            outcome = RunOutcome(False, f"run {handle} failed: {exc}")
            if not isinstance(exc, KfopsError):
                log.exception("%s: run %s crashed", request.model, handle)
        with self._lock:
            state = self._models[request.model]
            state.in_flight = None
            state.last_outcome = SUCCEEDED if outcome.succeeded else FAILED
            state.last_detail = outcome.detail
            keys = self._keys_of_run.pop(handle, [])
            if not outcome.succeeded:
                # Let the still-firing alert, re-sent after the cooldown, try again.
                for key in keys:
                    self._seen.pop(key, None)
            self.runs.labels(state.last_outcome).inc()
            self.in_flight.dec()
        level = logging.INFO if outcome.succeeded else logging.ERROR
        log.log(level, "%s: %s", request.model, outcome.detail)


# ----------------------------------------------------------------------------------------------
# HTTP


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
