"""kserve's process-wide pieces, configured once per server process (and per spawn worker).

The ASGI app and the log config belong to the process, not to one predictor: this module
holds them, so the predictor (which must redo them in every ``--workers N`` spawn worker) and
the server entry point (which does them in the parent) share one place and neither imports the
other.

- ``quiet_logging``: kserve's log config minus per-request lines;
- ``install_app_hooks``: the metrics, limits and method middlewares, the 4xx handlers and the
  ``:explain`` route (``kfops.serving.routes``) on kserve's FastAPI app;
- ``PREDICTORS``: the predictors this process serves, by name (the middleware labels requests
  with their current version).
"""

from __future__ import annotations

import copy
import logging
from typing import Protocol

from kfops.serving.limits import LimitsMiddleware, ServingLimits
from kfops.serving.metrics import MetricsMiddleware, get_metrics
from kfops.serving.routes import MethodGuard, add_explain_route
from kfops.serving.validation import FieldError, RequestError


class Served(Protocol):
    """What the middleware needs of a predictor."""

    def current_version(self) -> str: ...


# name -> predictor, for the ASGI middleware (current version label) and the :explain route.
PREDICTORS: dict[str, Served] = {}
_installed = False


def register(name: str, predictor: Served) -> None:
    PREDICTORS[name] = predictor


def quiet_logging(access_log: bool = False) -> None:
    """kserve's log config minus the per-request access and trace lines (a third of the time)."""
    from kserve.logging import KSERVE_LOG_CONFIG, configure_logging

    config = copy.deepcopy(KSERVE_LOG_CONFIG)
    if not access_log:
        config["loggers"]["uvicorn.access"]["level"] = "WARNING"
        config["loggers"]["kserve.trace"]["level"] = "WARNING"
    config["loggers"]["kfops"] = {"handlers": ["kserve"], "level": "INFO", "propagate": False}
    configure_logging(config)
    logging.getLogger("kserve").addFilter(_client_error_one_line)


def _client_error_one_line(record: logging.LogRecord) -> bool:
    """kserve logs a full traceback for every malformed request (InvalidInput, a 400): keep one
    line, so bad clients cannot flood the log with stack traces."""
    exc = record.exc_info[1] if record.exc_info else None
    if exc is not None and type(exc).__name__ == "InvalidInput":
        record.msg, record.args = "rejected request (400): %s", (exc,)
        record.exc_info, record.exc_text = None, None
        record.levelno, record.levelname = logging.INFO, "INFO"
    return True


def install_app_hooks(limits: ServingLimits | None = None) -> None:
    """Add the metrics and limits middlewares and the 4xx handlers to kserve's app (once per
    process).

    Must run before the server starts: in the parent for a single worker, and in every spawn
    worker (from ``KfopsPredictor.__setstate__``) for ``--workers N``. Order, outermost first:
    metrics (so it sees every status, 413/408/405 included), limits, methods, kserve's routes
    (kfops' ``:explain`` first among them).
    """
    global _installed
    if _installed:
        return
    import warnings

    from fastapi import Request
    from fastapi.exceptions import FastAPIDeprecationWarning, RequestValidationError
    from fastapi.responses import ORJSONResponse
    from kserve.model_server import app

    # fastapi/kserve warn per request about deprecated usage; that costs time and log noise.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FastAPIDeprecationWarning)

    async def request_error_handler(request: Request, exc: Exception) -> ORJSONResponse:
        assert isinstance(exc, RequestError)
        model = getattr(exc, "model", None)
        if model is not None:
            m = get_metrics()
            for reason in exc.reasons:
                m.validation_failures.labels(model, exc.version, reason).inc()  # type: ignore[attr-defined]
            request.state.kfops_counted = True
        return ORJSONResponse(status_code=exc.status, content=exc.body())

    async def schema_error_handler(request: Request, exc: Exception) -> ORJSONResponse:
        # FastAPI's own validation of V2 bodies: same JSON shape as ours.
        assert isinstance(exc, RequestValidationError)
        errors = []
        for e in exc.errors()[:50]:
            loc = [str(p) for p in e.get("loc", ()) if p not in ("body", "InferenceRequest")]
            if loc[:1] == ["bytes"]:
                continue  # the alternative raw-bytes body type; its error says nothing useful
            errors.append(
                FieldError(".".join(loc) or "body", "malformed_request", str(e.get("msg", "")))
            )
        if not errors:
            errors.append(FieldError("body", "malformed_request", "not a V2 inference request"))
        return ORJSONResponse(status_code=422, content=RequestError(errors, 422).body())

    app.add_exception_handler(RequestError, request_error_handler)
    app.add_exception_handler(RequestValidationError, schema_error_handler)
    add_explain_route(app, PREDICTORS)
    # add_middleware puts the latest outermost.
    app.add_middleware(MethodGuard)  # type: ignore[arg-type]
    app.add_middleware(LimitsMiddleware, limits=limits or ServingLimits())  # type: ignore[arg-type]
    app.add_middleware(
        MetricsMiddleware,  # type: ignore[arg-type]
        predictors=PREDICTORS,
    )
    _installed = True
