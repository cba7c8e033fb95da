"""The kfops predictor: a ``kserve.Model`` that checks every request against the data contract.

It fills kserve's stages, so kserve times each one (``request_preprocess_seconds``,
``request_predict_seconds``, ``request_postprocess_seconds``):

- ``preprocess``: pick up the current ``ServedVersion`` (one attribute read) and check the
  request's values into column lists (``validation``: no pandas);
- ``predict``: one DataFrame, one model call;
- ``postprocess``: counters, a non-blocking hand-off to capture and drift threads, and the
  V1 or V2 response, which carries the id the rows were captured under
  (``kfops.serving.request_ids``).

``:explain`` runs the same ``preprocess`` (same contract checks and 4xx), then ``explain``
(``kfops.serving.explaining``) instead of ``predict``.

Client mistakes raise ``RequestError``, which ``app.install_app_hooks`` maps to 400/422 with a
JSON body naming every bad field.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import kserve
import orjson
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from kfops.errors import KfopsError
from kfops.serving import app, metadata, request_ids
from kfops.serving.capture import CaptureItem, PayloadCapture
from kfops.serving.explaining import DEFAULT_MAX_EXPLAIN_ROWS, Explained, Explainers
from kfops.serving.limits import ServingLimits
from kfops.serving.metrics import get_metrics
from kfops.serving.model import ModelSource, ServedVersion, load_version
from kfops.serving.validation import (
    DEFAULT_MAX_ROWS,
    PROBA_OUTPUT,
    Batch,
    FieldError,
    RequestError,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingOptions:
    max_rows: int = DEFAULT_MAX_ROWS
    capture_uri: str | None = None
    capture_sample_rate: float = 1.0
    capture_queue: int = 1000
    poll_interval: float = 1.0  # seconds between cheap stat() calls on the alias file
    drift: bool = True
    drift_window: int = 10_000
    drift_publish_interval: float = 2.0
    access_log: bool = False
    limits: ServingLimits = field(default_factory=ServingLimits)
    max_explain_rows: int = DEFAULT_MAX_EXPLAIN_ROWS
    runtime: str = "auto"  # auto | onnx | sklearn (kfops.serving.model.load_twin)
    strict_categories: bool = False  # 422 for categories the model never saw


LOAD_WAIT_SECONDS = 120.0


@dataclass(frozen=True)
class Parsed:
    """A request checked against the version that will answer it (preprocess -> predict)."""

    served: ServedVersion
    batch: Batch
    request: InferRequest | None  # the V2 request; None for V1
    request_id: str = ""  # the id the rows are captured and answered under


@dataclass(frozen=True)
class Predicted:
    """The model's answer to a parsed request (predict -> postprocess)."""

    parsed: Parsed
    labels: list[Any]
    proba: list[list[float]] | None


class KfopsPredictor(kserve.Model):
    def __init__(self, name: str, source: ModelSource, options: ServingOptions | None = None):
        # Response headers: every prediction answer carries its capture id (x-request-id).
        super().__init__(name, return_response_headers=True)
        self.source = source
        self.options = options or ServingOptions()
        self.explainers = Explainers(self.options.max_explain_rows)
        self.served: ServedVersion | None = None
        self.load_error: str | None = None
        self.capture = (
            PayloadCapture(
                self.options.capture_uri,
                self.options.capture_sample_rate,
                max_queue=self.options.capture_queue,
            )
            if self.options.capture_uri
            else None
        )
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()
        self._alias_stat: tuple[int, int, int] | None = None
        self._loaded: threading.Event | None = None  # set in spawn workers (background load)
        app.register(name, self)

    # --- loading and hot swap ------------------------------------------------------------------

    def _load_served(self) -> ServedVersion:
        o = self.options
        return load_version(
            self.source.resolve(),
            max_rows=o.max_rows,
            drift=o.drift,
            drift_window=o.drift_window,
            drift_publish_interval=o.drift_publish_interval,
            served_name=self.name,
            runtime=o.runtime,
            strict_categories=o.strict_categories,
        )

    def load(self) -> bool:
        """Load and verify the version; on failure stay not-ready and log one clear line."""
        self._alias_stat = self._stat_alias()
        try:
            served = self._load_served()
        except KfopsError as exc:
            self.ready = False
            self.load_error = str(exc)
            get_metrics().model_load_failures.labels(self.name).inc()
            log.error("model %r is NOT ready: %s", self.name, exc)
            return False
        self._activate(served)
        self.ready = True
        self.load_error = None
        log.info(
            "serving %s version %s (sha256 %s) from %s with the %s runtime (%s)",
            self.name, served.version, served.sha256[:12], served.path, served.runtime,
            _runtime_reason(served, self.options.runtime),
        )  # fmt: skip
        if self.source.follows_alias:
            self._start_watcher()
        return True

    def _activate(self, served: ServedVersion) -> None:
        m = get_metrics()
        old = self.served
        m.model_info.labels(self.name, served.version, served.sha256, served.runtime).set(1)
        # The metrics first: a client answered by the new version that then scrapes sees it.
        same = old is not None and (old.version, old.sha256, old.runtime) == (
            served.version,
            served.sha256,
            served.runtime,
        )
        if old is not None and old is not served and not same:
            m.model_info.labels(self.name, old.version, old.sha256, old.runtime).set(0)
        # One reference assignment: requests already running keep the object they read.
        self.served = served
        if old is not None and old is not served and old.drift is not None:
            old.drift.stop()

    def _stat_alias(self) -> tuple[int, int, int] | None:
        path = self.source.alias_file()
        if path is None:
            return None
        try:
            st = path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _start_watcher(self) -> None:
        if self._watcher is not None:
            return
        self._stop.clear()
        self._watcher = threading.Thread(target=self._watch, name="kfops-alias", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.options.poll_interval):
            self.check_alias()

    def check_alias(self) -> bool:
        """Swap to the alias's version if it moved; True when a swap happened.

        Loading and verification run here (watcher thread), off the request path; a version
        that fails them is logged and counted, and the current one keeps serving.
        """
        stat = self._stat_alias()
        if stat is None or stat == self._alias_stat:
            return False
        self._alias_stat = stat
        try:
            target = self.source.resolve()
            current = self.served
            if current is not None and target.resolve() == current.path.resolve():
                return False
            served = self._load_served()
        except KfopsError as exc:
            get_metrics().model_load_failures.labels(self.name).inc()
            log.error(
                "alias %r moved but the new version cannot be served: %s", self.source.ref, exc
            )
            return False
        previous = self.served.version if self.served else None
        # Counted before the swap: a client that gets an answer from the new version and then
        # scrapes must find the swap counted (the watcher thread may not run again for a while
        # on a busy core once requests are being answered by the new version).
        get_metrics().model_swaps.labels(self.name).inc()
        self._activate(served)
        self.ready = True
        log.info(
            "hot-swapped %s from %s to %s (%s runtime)",
            self.name, previous, served.version, served.runtime,
        )  # fmt: skip
        return True

    def stop(self) -> None:
        self._stop.set()
        if self.capture is not None:
            self.capture.close()
        if self.served is not None and self.served.drift is not None:
            self.served.drift.stop()
        super().stop()

    def current_version(self) -> str:
        served = self.served
        return served.version if served is not None else ""

    # --- pickling into kserve's spawn workers (--workers N) -------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        drop = (
            "served",
            "_watcher",
            "_stop",
            "_loaded",
            "_http_client_instance",
            "_grpc_client_stub",
        )
        for key in drop:
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Runs in each worker: register, hook the worker's app, load and verify on its own.
        self.__dict__.update(state)
        self.served = None
        self._watcher = None
        self._stop = threading.Event()
        self._http_client_instance = None
        self._grpc_client_stub = None
        app.register(self.name, self)
        app.quiet_logging(self.options.access_log)
        app.install_app_hooks(self.options.limits)
        # kserve's parent pings each worker and kills one that does not answer within 5 s;
        # unpickling happens before the worker can answer, so load (imports, sha256, unpickle)
        # in the background. The parent already proved the version loads; requests that
        # arrive meanwhile wait for it instead of failing.
        self.ready = True
        self._loaded = threading.Event()
        threading.Thread(target=self._background_load, name="kfops-load", daemon=True).start()

    def _background_load(self) -> None:
        try:
            self.load()
        finally:
            if self._loaded is not None:
                self._loaded.set()

    # --- inference: kserve's stages -------------------------------------------------------------

    async def preprocess(
        self, payload: dict[str, Any] | InferRequest | bytes, headers: dict[str, str] | None = None
    ) -> Parsed:
        served = self.served
        if served is None and self._loaded is not None and not self._loaded.is_set():
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self._loaded.wait, LOAD_WAIT_SECONDS)
            served = self.served
        if served is None:
            from kserve.errors import ModelNotReady

            raise ModelNotReady(self.name, self.load_error or "")
        if isinstance(payload, InferRequest):
            request: InferRequest | None = payload
            body: Any = payload
        else:
            request = None
            # kserve leaves non-JSON content types undecoded.
            body = _json_body(payload) if isinstance(payload, bytes | bytearray) else payload
        try:
            v2 = request is not None
            batch = served.schema.parse_v2(body) if v2 else served.schema.parse_v1(body)
            rid = request_ids.issue(headers, batch.request_id)
        except RequestError as exc:
            exc.model, exc.version = self.name, served.version  # type: ignore[attr-defined]
            raise
        return Parsed(served, batch, request, rid)

    def validate(self, payload: Parsed) -> Parsed:
        """kserve's check of raw V1/V2 dictionaries; ``preprocess`` has already checked the
        request against the model's contract, field by field."""
        return payload

    async def predict(
        self,
        payload: Parsed,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> Predicted:
        labels, proba = payload.served.predict(payload.batch.columns, payload.batch.probabilities)
        return Predicted(payload, labels, proba)

    async def postprocess(
        self,
        result: Predicted | Explained,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict[str, Any] | InferResponse:
        if isinstance(result, Explained):
            return self._explain_response(result)
        parsed = result.parsed
        served, batch, labels, proba = parsed.served, parsed.batch, result.labels, result.proba
        rid = parsed.request_id
        self._observe(served, batch.columns, labels, proba, rid, batch.unseen)
        if response_headers is not None:
            response_headers[request_ids.HEADER] = rid
        if parsed.request is not None:
            return self._v2_response(served, parsed.request, labels, proba, batch, rid)
        response: dict[str, Any] = {
            "predictions": labels,
            "model_name": self.name,
            "model_version": served.version,
            "id": rid,
        }
        if batch.probabilities and proba is not None and served.classes is not None:
            classes = [str(c) for c in served.classes]
            response["probabilities"] = [dict(zip(classes, p, strict=True)) for p in proba]
        return response

    async def explain(self, payload: Parsed, headers: dict[str, str] | None = None) -> Explained:
        """kserve's explain stage (``POST /v1/models/<name>:explain``, kfops.serving.routes)."""
        served = payload.served
        try:
            return await self.explainers.explain(served, payload.batch.columns, payload.batch.rows)
        except RequestError as exc:
            exc.model, exc.version = self.name, served.version  # type: ignore[attr-defined]
            raise

    def _explain_response(self, result: Explained) -> dict[str, Any]:
        explanations = result.explanations
        get_metrics().explained_rows.labels(
            self.name, result.served.version, explanations.method
        ).inc(len(explanations.rows))
        return result.response(self.name)

    # --- V2 model metadata (GET /v2/models/<name>) from the contract ----------------------------

    def get_input_types(self) -> list[dict[str, Any]]:
        served = self.served
        return metadata.input_types(served.contract) if served is not None else []

    def get_output_types(self) -> list[dict[str, Any]]:
        served = self.served
        if served is None:
            return []
        return metadata.output_types(served.contract, served.classes, served.has_proba)

    def _observe(
        self,
        served: ServedVersion,
        columns: list[list[Any]],
        labels: list[Any],
        proba: list[list[float]] | None,
        request_id: str,
        batch_unseen: dict[str, int] | None = None,
    ) -> None:
        m = get_metrics()
        n = len(labels)
        m.rows.labels(self.name, served.version).inc(n)
        for feature, count in (batch_unseen or {}).items():
            m.unseen_categories.labels(self.name, served.version, feature).inc(count)
        if served.classes is not None:
            if n == 1:
                m.predictions.labels(self.name, served.version, str(labels[0])).inc()
            else:
                counts: dict[str, int] = {}
                for label in labels:
                    key = str(label)
                    counts[key] = counts.get(key, 0) + 1
                for key, count in counts.items():
                    m.predictions.labels(self.name, served.version, key).inc(count)
        else:
            hist = m.prediction_value.labels(self.name, served.version)
            for value in labels:
                hist.observe(float(value))
        if served.drift is not None:
            served.drift.submit(columns)
        capture = self.capture
        if capture is not None and capture.sampled():
            capture.submit(
                CaptureItem(
                    model=self.name,
                    version=served.version,
                    request_id=request_id,
                    ts=time.time(),
                    names=served.names,
                    columns=columns,
                    predictions=labels,
                    proba=proba,
                    classes=served.classes,
                )
            )

    def _v2_response(
        self,
        served: ServedVersion,
        request: InferRequest,
        labels: list[Any],
        proba: list[list[float]] | None,
        batch: Batch,
        request_id: str,
    ) -> InferResponse:
        n = len(labels)
        wanted = batch.outputs or (
            ["predict", PROBA_OUTPUT] if batch.probabilities else ["predict"]
        )
        outputs = []
        if "predict" in wanted:
            if labels and isinstance(labels[0], str):
                datatype = "BYTES"
            elif labels and isinstance(labels[0], bool):
                datatype = "BOOL"
            elif labels and isinstance(labels[0], int):
                datatype = "INT64"
            else:
                datatype = "FP64"
            outputs.append(InferOutput("predict", [n], datatype, data=labels))
        if PROBA_OUTPUT in wanted and proba is not None and served.classes is not None:
            width = len(served.classes)
            outputs.append(
                InferOutput(
                    PROBA_OUTPUT,
                    [n, width],
                    "FP64",
                    data=[p for row in proba for p in row],
                    parameters={"classes": ",".join(str(c) for c in served.classes)},
                )
            )
        return InferResponse(
            response_id=request_id,
            model_name=self.name,
            model_version=served.version,
            infer_outputs=outputs,
        )


def _runtime_reason(served: ServedVersion, wanted: str) -> str:
    if served.runtime == "onnx":
        return "its verified ONNX twin"
    if wanted == "sklearn":
        return "--runtime sklearn"
    return "no verified ONNX twin in this version"


def _json_body(raw: bytes | bytearray) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RequestError(
            [FieldError("body", "malformed_request", f"the body is not valid JSON: {exc}")], 400
        ) from None
