"""Routes kfops adds to kserve's app: ``:explain`` without kserve's header echo, and 405 for a
wrong method on a model route.

- ``:explain``. kserve (0.20.0 and 0.21.0 alike) registers ``POST /v1/models/{name}:explain`` in
  ``kserve/protocol/rest/v1_endpoints.py`` (``register_v1_endpoints``), and its handler runs
  ``kserve.Model.__call__`` with ``InferenceVerb.EXPLAIN`` (preprocess -> ``explain`` ->
  postprocess). But ``DataPlane.explain`` (``kserve/protocol/dataplane.py``) starts its response
  headers as ``response_headers = headers if headers else {}``: the request's own headers, which
  ``V1Endpoints.explain`` then sends back (only ``content-length`` is dropped). Every request
  header (``authorization``, ``cookie``, ``host``, a client's ``transfer-encoding`` next to the
  response's ``content-length``) would come back in the response. So kfops registers the same
  path first (Starlette matches routes in order) with a handler that calls the same
  ``kserve.Model.__call__(..., verb=InferenceVerb.EXPLAIN)`` (kserve's stage timing included)
  and answers with the model's response headers only.
- 405. kserve registers ``GET /v1/models/{model_name}`` (model ready), and ``{model_name}``
  matches ``penguins:predict`` too: a GET on ``:predict`` is answered "model
  ``penguins:predict`` not found" (404). ``MethodGuard`` answers a wrong method on any model
  route with 405 and an ``Allow`` header before routing.
"""

# No ``from __future__ import annotations``: FastAPI reads the explain handler's annotations
# (``Request``, imported where the route is made) at run time.
import re
from collections.abc import MutableMapping
from typing import Any

import orjson

# Model routes and the methods kserve serves on them (HEAD goes wherever GET does).
_NAME = r"[^/]+"
_VERSION = r"(?:/versions/[^/]+)?"
MODEL_ROUTES: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = (
    (re.compile(rf"^/v1/models/{_NAME}:(?:predict|explain)$"), ("POST",)),
    (re.compile(r"^/v1/models/[^/:]+$"), ("GET",)),
    (re.compile(rf"^/v2/models/{_NAME}{_VERSION}/infer$"), ("POST",)),
    (re.compile(rf"^/v2/models/{_NAME}{_VERSION}/ready$"), ("GET",)),
    (re.compile(rf"^/v2/models/{_NAME}{_VERSION}$"), ("GET",)),
)


def allowed_methods(path: str) -> tuple[str, ...] | None:
    """The methods served on a model route, None for any other path."""
    for pattern, methods in MODEL_ROUTES:
        if pattern.match(path):
            return methods
    return None


class MethodGuard:
    """Pure ASGI middleware: 405 with ``Allow`` for a wrong method on a model route."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path, method = scope.get("path", ""), scope.get("method", "")
            allowed = allowed_methods(path)
            if allowed is not None and not (
                method in allowed or (method == "HEAD" and "GET" in allowed)
            ):
                await _method_not_allowed(send, method, path, allowed)
                return
        await self.app(scope, receive, send)


async def _method_not_allowed(send: Any, method: str, path: str, allowed: tuple[str, ...]) -> None:
    body = orjson.dumps(
        {"error": f"method {method} is not allowed on {path[:200]}; use {', '.join(allowed)}"}
    )
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"allow", ", ".join(allowed).encode()),
    ]
    await send({"type": "http.response.start", "status": 405, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def add_explain_route(app: Any, predictors: MutableMapping[str, Any]) -> None:
    """Put kfops' ``POST /v1/models/{model_name}:explain`` ahead of kserve's (see above)."""
    from fastapi import Request
    from fastapi.responses import ORJSONResponse
    from fastapi.routing import APIRoute
    from kserve.errors import ModelNotFound, ModelNotReady
    from kserve.model import InferenceVerb

    async def explain(model_name: str, request: Request) -> ORJSONResponse:
        model = predictors.get(model_name)
        if model is None:
            raise ModelNotFound(model_name)
        if not model.ready:
            raise ModelNotReady(model_name)
        body = await request.body()
        response, headers = await model(
            body, headers=dict(request.headers.items()), verb=InferenceVerb.EXPLAIN
        )
        return ORJSONResponse(content=response, headers=headers)

    route = APIRoute(
        "/v1/models/{model_name}:explain", explain, methods=["POST"], response_model=None
    )
    app.router.routes.insert(0, route)
