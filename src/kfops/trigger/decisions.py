"""Decisions: which firing alerts start a run (de-duplication, cooldown, one run in flight per
model), and the counters that say what was decided and why."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from http import HTTPStatus
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from kfops.errors import ConfigError, KfopsError
from kfops.trigger.launchers import Launcher, RetrainRequest, RunOutcome, new_run_id
from kfops.trigger.state import (
    DEFAULT_MAX_KEYS,
    AlertLedger,
    ModelCatalog,
    StateStore,
    alert_key,
)

log = logging.getLogger("kfops.trigger")

DEFAULT_COOLDOWN = 3600.0
DEFAULT_DEDUP_TTL = 7 * 86400.0
FLUSH_SECONDS = 1.0  # de-duplication marks reach the state file within this
MAX_RESTORED_MODELS = 10_000

# Outcomes of kfops_trigger_runs_total.
STARTED, SUBMIT_FAILED, SUCCEEDED, FAILED = "started", "submit_failed", "succeeded", "failed"
# Reasons of kfops_trigger_skipped_total.
DUPLICATE, IN_FLIGHT, COOLDOWN, RESOLVED, NO_MODEL, UNKNOWN_MODEL = (
    "duplicate",
    "in_flight",
    "cooldown",
    "resolved",
    "no_model",
    "unknown_model",
)
INTERRUPTED = "interrupted"  # last_outcome of a run in flight when the trigger stopped
# Statuses of kfops_trigger_webhooks_total.
WEBHOOK_STATUSES = ("accepted", "bad_request", "retry", "unauthorized", "too_large")


class BadRequest(KfopsError):
    """A webhook body that is not an Alertmanager notification (answered with 400)."""


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
    return alert_key(str(fingerprint), str(alert.get("startsAt", "")))


def parse_notification(body: bytes) -> dict[str, Any]:
    """The webhook JSON, checked just enough to act on it; BadRequest names what is wrong."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    except RecursionError:  # json's C decoder refuses nesting past the recursion limit
        raise BadRequest(
            "body is not an Alertmanager notification: JSON nested too deeply"
        ) from None
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
        models: ModelCatalog | None = None,
        state: StateStore | None = None,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        """``models``: which model names may start runs (None accepts every valid name: for
        tests; ``kfops trigger`` always passes one). ``state``: where de-duplication and
        cooldowns persist (None: memory only)."""
        if cooldown < 0:
            raise ConfigError(f"cooldown must not be negative, got {cooldown}")
        self.launcher = launcher
        self.cooldown = cooldown
        self.dedup_ttl = dedup_ttl
        self.clock = clock
        self.registry = registry or CollectorRegistry()
        self.models = models
        self.state = state
        self._lock = threading.Lock()
        self._models: dict[str, ModelState] = {}
        self._ledger = AlertLedger(dedup_ttl, max_keys, on_evict=self._evicted)
        self._keys_of_run: dict[str, list[str]] = {}
        self._dirty = threading.Event()
        self._closed = threading.Event()
        self._flusher: threading.Thread | None = None
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
        self.dedup_keys = Gauge(
            "kfops_trigger_dedup_keys", "Alert keys remembered for de-duplication.",
            registry=self.registry,
        )  # fmt: skip
        self.dedup_evictions = Counter(
            "kfops_trigger_dedup_evictions",
            "Alert keys dropped before expiry because the de-duplication cap was reached.",
            registry=self.registry,
        )
        self.state_write_failures = Counter(
            "kfops_trigger_state_write_failures",
            "Failed writes of the trigger's state file (state then lives in memory only).",
            registry=self.registry,
        )
        self.connections_rejected = Counter(
            "kfops_trigger_connections_rejected",
            "Connections refused because every worker was busy.",
            registry=self.registry,
        )
        for outcome in (STARTED, SUBMIT_FAILED, SUCCEEDED, FAILED):
            self.runs.labels(outcome)
        for reason in (DUPLICATE, IN_FLIGHT, COOLDOWN, RESOLVED, NO_MODEL, UNKNOWN_MODEL):
            self.skipped.labels(reason)
        for status in WEBHOOK_STATUSES:
            self.webhooks.labels(status)
        if state is not None:
            self._restore(state.load())
            self._flusher = threading.Thread(
                target=self._flush_loop, name="kfops-trigger-state", daemon=True
            )
            self._flusher.start()

    # -- state ---------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "launcher": self.launcher.where,
                "cooldown_seconds": self.cooldown,
                "dedup_keys": len(self._ledger),
                "dedup_max_keys": self._ledger.max_keys,
                "acts_on": self.models.describe() if self.models else "any model name",
                "state_file": str(self.state.path) if self.state else None,
                "models": {m: asdict(s) for m, s in sorted(self._models.items())},
            }

    # -- persistence ---------------------------------------------------------------------------

    def _evicted(self, count: int) -> None:
        self.dedup_evictions.inc(count)
        log.warning("de-duplication cap of %d keys reached: dropped the %d oldest",
                    self._ledger.max_keys, count)  # fmt: skip

    def _snapshot(self) -> dict[str, Any]:
        # Caller holds self._lock.
        return {
            "saved_at": self.clock(),
            "models": {m: asdict(s) for m, s in self._models.items()},
            "seen": self._ledger.items(),
        }

    def _restore(self, data: dict[str, Any] | None) -> None:
        from kfops.registry import validate_model_name

        if not data:
            return
        now = self.clock()
        with self._lock:
            self._ledger.restore(data.get("seen") or [], now)
            models = data.get("models")
            if not isinstance(models, dict):
                models = {}
            for name, saved in list(models.items())[:MAX_RESTORED_MODELS]:
                try:
                    validate_model_name(name)
                except KfopsError:
                    continue
                if not isinstance(saved, dict):
                    continue
                state = ModelState()
                started = saved.get("last_started")
                state.last_started = float(started) if isinstance(started, int | float) else None
                for attr in ("last_run", "last_outcome", "last_detail"):
                    value = saved.get(attr)
                    setattr(state, attr, str(value) if value is not None else None)
                runs = saved.get("runs")
                state.runs = runs if isinstance(runs, int) else 0
                if saved.get("in_flight"):
                    # We cannot follow a run across a restart: its start still counts for the
                    # cooldown, and its alerts stay marked.
                    state.last_run = str(saved["in_flight"])
                    state.last_outcome = INTERRUPTED
                    state.last_detail = (
                        f"run {state.last_run} was in flight when the trigger stopped"
                    )
                self._models[name] = state
            self.dedup_keys.set(len(self._ledger))
        log.info("restored trigger state from %s: %d models, %d alert keys",
                 self.state.path if self.state else "?", len(self._models),
                 len(self._ledger))  # fmt: skip

    def _persist(self, now: bool = False) -> None:
        """Write the state file now (a run started or ended), or soon (alerts marked)."""
        if self.state is None:
            return
        if not now:
            self._dirty.set()
            return
        self._dirty.clear()
        with self._lock:
            snapshot = self._snapshot()
        if not self.state.save(snapshot):
            self.state_write_failures.inc()

    def _flush_loop(self) -> None:
        while not self._closed.is_set():
            if self._dirty.wait(FLUSH_SECONDS) and not self._closed.is_set():
                self._closed.wait(FLUSH_SECONDS)  # batch a storm's marks into one write
                self._persist(now=True)

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
        self._closed.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self.state is not None:
            self._persist(now=True)

    # -- the webhook ---------------------------------------------------------------------------

    def handle(self, body: bytes) -> tuple[int, dict[str, Any]]:
        """Act on one notification; returns (HTTP status, JSON body)."""
        try:
            payload = parse_notification(body)
        except BadRequest as exc:
            self.webhooks.labels("bad_request").inc()
            log.warning("rejected webhook: %s", exc)
            return HTTPStatus.BAD_REQUEST, {"error": str(exc)}
        decisions, ignored = self._decide(payload)
        failed = [d for d in decisions if d.action == "failed"]
        self.webhooks.labels("retry" if failed else "accepted").inc()
        body_out: dict[str, Any] = {"decisions": [d.to_dict() for d in decisions]}
        if ignored:
            body_out["ignored"] = ignored
        if failed:
            body_out["error"] = "; ".join(d.message for d in failed)
            return HTTPStatus.SERVICE_UNAVAILABLE, body_out
        return HTTPStatus.OK, body_out

    def decide(self, payload: dict[str, Any]) -> list[Decision]:
        return self._decide(payload)[0]

    def _decide(self, payload: dict[str, Any]) -> tuple[list[Decision], dict[str, Any]]:
        """Decisions for the known models an alert names, and what was ignored (counted,
        logged once per notification: a storm of junk costs one line, not one per alert)."""
        by_model: dict[str, list[dict[str, Any]]] = {}
        known = self.models.known() if self.models is not None else None
        unknown: dict[str, int] = {}
        resolved = no_model = 0
        for alert in payload["alerts"]:
            labels = alert.get("labels") or {}
            if alert.get("status", payload.get("status")) != "firing":
                resolved += 1
                continue
            model = labels.get("model")
            if not isinstance(model, str) or not model:
                no_model += 1
                continue
            if (known is not None and model not in known) or not _valid_name(model):
                unknown[model] = unknown.get(model, 0) + 1
                continue
            by_model.setdefault(model, []).append(alert)
        ignored: dict[str, Any] = {}
        if resolved:
            self.skipped.labels(RESOLVED).inc(resolved)
            ignored["resolved"] = resolved
        if no_model:
            self.skipped.labels(NO_MODEL).inc(no_model)
            ignored["no_model"] = no_model
            log.warning("ignoring %d alert(s) without a 'model' label", no_model)
        if unknown:
            count = sum(unknown.values())
            self.skipped.labels(UNKNOWN_MODEL).inc(count)
            shown = sorted(unknown)[:5]
            ignored["unknown_model"] = {"alerts": count, "models": len(unknown), "some": shown}
            log.warning(
                "ignoring %d alert(s) for %d model(s) this trigger does not serve (%s), e.g. %s",
                count, len(unknown), self.models.describe() if self.models else "?",
                ", ".join(repr(m[:64]) for m in shown),
            )  # fmt: skip
        decisions = [self._decide_model(m, alerts) for m, alerts in sorted(by_model.items())]
        return decisions, ignored

    def _decide_model(self, model: str, alerts: list[dict[str, Any]]) -> Decision:
        now = self.clock()
        keys = [_alert_key(a) for a in alerts]
        names = tuple(sorted({_describe(a) for a in alerts}))
        with self._lock:
            self._ledger.expire(now)
            state = self._models.setdefault(model, ModelState())
            fresh = [k for k in keys if k not in self._ledger]
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
                self._ledger.forget(self._keys_of_run.pop(request.run_id, []))
                self.dedup_keys.set(len(self._ledger))
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
        self._persist(now=True)  # a restart right after this must still see the cooldown
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
        self._ledger.mark(keys, now)
        self.dedup_keys.set(len(self._ledger))
        if run is not None:
            self._keys_of_run.setdefault(run, []).extend(keys)
        self._persist()

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
                self._ledger.forget(keys)
                self.dedup_keys.set(len(self._ledger))
            self.runs.labels(state.last_outcome).inc()
            self.in_flight.dec()
        self._persist(now=True)
        level = logging.INFO if outcome.succeeded else logging.ERROR
        log.log(level, "%s: %s", request.model, outcome.detail)


def _valid_name(model: str) -> bool:
    from kfops.registry import validate_model_name

    try:
        validate_model_name(model)
    except KfopsError:
        return False
    return True
