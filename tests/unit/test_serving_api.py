"""Pieces of the serving API without a server: capture ids, V2 metadata datatypes, the method
guard, and the bounds of ``:explain`` (row cap, explanations in progress) on a real loaded
version. Over HTTP: tests/integration/test_server_api.py."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest

from kfops.contract_model import FeatureSpec
from kfops.serving import request_ids
from kfops.serving.explaining import Explainers
from kfops.serving.metadata import input_datatype, output_types
from kfops.serving.model import load_version
from kfops.serving.routes import MethodGuard, allowed_methods
from kfops.serving.validation import RequestError
from tests.unit.test_serving_fixtures import MODEL, register_version, valid_row

HEX32 = re.compile(r"[0-9a-f]{32}")


# --- capture ids -------------------------------------------------------------------------------


def test_ids_are_issued_and_a_client_id_is_kept_as_a_unique_prefix() -> None:
    issued = {request_ids.issue(None) for _ in range(100)}
    assert len(issued) == 100 and all(HEX32.fullmatch(i) for i in issued)
    mine = [request_ids.issue({"x-request-id": "order-7"}) for _ in range(2)]
    assert mine[0] != mine[1] and all(m.startswith("order-7.") for m in mine)
    # The header wins over a V2 body id; the body id is used without one.
    assert request_ids.issue({"x-request-id": "h"}, "b").startswith("h.")
    assert request_ids.issue({}, "b").startswith("b.")


@pytest.mark.parametrize("bad", ["x" * 129, "two words", "tab\there", "é"])
def test_a_malformed_client_id_is_a_400_naming_where_it_came_from(bad: str) -> None:
    with pytest.raises(RequestError) as header:
        request_ids.issue({"x-request-id": bad})
    assert header.value.status == 400 and header.value.errors[0].field == "x-request-id"
    with pytest.raises(RequestError) as body:
        request_ids.issue(None, bad)
    assert body.value.errors[0].field == "id"


# --- V2 metadata -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "dtype", "datatype"),
    [
        ("numeric", "float64", "FP64"),
        ("numeric", "int64", "INT64"),
        ("numeric", "Int64", "INT64"),
        ("boolean", "bool", "BOOL"),
        ("categorical", "object", "BYTES"),
        ("categorical", "int64", "INT64"),
        ("text", "object", "BYTES"),
        ("datetime", "object", "BYTES"),
    ],
)
def test_input_datatypes_follow_the_contract(kind: Any, dtype: str, datatype: str) -> None:
    assert input_datatype(FeatureSpec("f", kind, dtype, True)) == datatype


def test_output_types_name_the_label_type_and_the_probability_width(tmp_path: Path) -> None:
    served = load_version(register_version(tmp_path / "r").path, drift=False)
    outputs = output_types(served.contract, served.classes, served.has_proba)
    assert outputs == [
        {"name": "predict", "datatype": "BYTES", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP64", "shape": [-1, 3]},
    ]
    assert output_types(served.contract, [0, 1], False)[0]["datatype"] == "INT64"


# --- 405 -----------------------------------------------------------------------------------------


def test_allowed_methods_of_model_routes() -> None:
    assert allowed_methods("/v1/models/m:predict") == ("POST",)
    assert allowed_methods("/v1/models/m:explain") == ("POST",)
    assert allowed_methods("/v1/models/m") == ("GET",)
    assert allowed_methods("/v2/models/m/versions/3/infer") == ("POST",)
    assert allowed_methods("/v2/models/m/ready") == ("GET",)
    assert allowed_methods("/v2/models/m") == ("GET",)
    assert allowed_methods("/metrics") is None and allowed_methods("/v2/health/ready") is None


def test_method_guard_answers_405_with_allow_and_passes_the_rest() -> None:
    reached: list[str] = []

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        reached.append(scope["path"])

    def call(method: str, path: str) -> list[MutableMapping[str, Any]]:
        sent: list[MutableMapping[str, Any]] = []

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": method, "path": path}
        asyncio.run(MethodGuard(app)(scope, None, send))
        return sent

    start, _body = call("GET", "/v1/models/m:predict")
    assert start["status"] == 405 and (b"allow", b"POST") in start["headers"]
    assert call("POST", "/v1/models/m:predict") == [] and reached == ["/v1/models/m:predict"]
    assert call("HEAD", "/v2/models/m") == []  # wherever GET goes
    assert call("GET", "/metrics") == []


# --- :explain bounds -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("explain") / "registry"
    return load_version(register_version(root, aliases=("champion",)).path, drift=False)


def columns(n: int) -> list[list[Any]]:
    row = valid_row()
    return [[row[name]] * n for name in row]


def test_explain_rows_beyond_the_cap_are_a_422_and_within_it_explained(served: Any) -> None:
    explainers = Explainers(max_rows=2)
    with pytest.raises(RequestError) as exc:
        asyncio.run(explainers.explain(served, columns(3), 3))
    assert exc.value.status == 422 and exc.value.reasons == ["batch_too_large"]
    done = asyncio.run(explainers.explain(served, columns(2), 2))
    assert len(done.explanations.rows) == 2
    assert done.response(MODEL)["model_version"] == served.version


def test_explanations_beyond_those_in_progress_get_429(served: Any) -> None:
    explainers = Explainers(max_pending=1)
    release = threading.Event()
    started = threading.Event()
    real = explainers._run

    def slow(*args: Any) -> Any:
        started.set()
        release.wait(30)
        return real(*args)

    explainers._run = slow  # type: ignore[method-assign]

    async def two() -> tuple[Any, BaseException | None]:
        first = asyncio.ensure_future(explainers.explain(served, columns(1), 1))
        while not started.is_set():
            await asyncio.sleep(0.01)
        try:
            await explainers.explain(served, columns(1), 1)
            refused = None
        except RequestError as exc:
            refused = exc
        release.set()
        return await first, refused

    done, refused = asyncio.run(two())
    assert isinstance(refused, RequestError) and refused.status == 429
    assert len(done.explanations.rows) == 1  # the one in progress finished
    # Once it finished, the next one is taken again.
    assert asyncio.run(explainers.explain(served, columns(1), 1)).explanations.rows
