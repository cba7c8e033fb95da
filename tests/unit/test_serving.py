"""Serving unit tests: request validation, loading/verification, predictor calls, hot swap,
payload capture. The predictor is called in-process (its async ``__call__``); the HTTP server is
exercised in tests/integration/test_server.py."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput

from kfops.contract_model import Contract
from kfops.errors import ContractError, RegistryError
from kfops.registry import Registry
from kfops.serving.capture import CaptureItem, CaptureSink, PayloadCapture, records
from kfops.serving.metrics import get_metrics, route_of
from kfops.serving.model import ModelSource, load_version
from kfops.serving.predictor import KfopsPredictor, ServingOptions
from kfops.serving.validation import RequestError, RequestSchema
from tests.unit.test_serving_fixtures import (
    MODEL,
    artifacts,
    make_registry,
    register_version,
    tamper,
    valid_row,
)

NAMES = list(valid_row())


@pytest.fixture(scope="module")
def schema() -> RequestSchema:
    return RequestSchema(Contract.load(artifacts()["contract.json"]), max_rows=5)


@pytest.fixture(scope="module")
def strict() -> RequestSchema:
    return RequestSchema(
        Contract.load(artifacts()["contract.json"]), max_rows=5, strict_categories=True
    )


def reasons(exc: pytest.ExceptionInfo[RequestError]) -> dict[str, str]:
    return {e.field: e.reason for e in exc.value.errors}


# --- validation ---------------------------------------------------------------------------------


def test_v1_rows_and_objects_give_columns_in_contract_order(schema: RequestSchema) -> None:
    row = valid_row()
    batch = schema.parse_v1({"instances": [list(row.values()), dict(reversed(row.items()))]})
    assert batch.rows == 2
    assert batch.columns[schema.names.index("island")] == ["Torgersen", "Torgersen"]
    assert batch.columns[schema.names.index("year")] == [2007, 2007]
    assert not batch.probabilities


def test_v1_nullable_numeric_null_becomes_nan(schema: RequestSchema) -> None:
    batch = schema.parse_v1({"instances": [{**valid_row(), "bill_length_mm": None}]})
    value = batch.columns[schema.names.index("bill_length_mm")][0]
    assert value != value  # NaN


def test_v1_every_bad_field_is_named(strict: RequestSchema) -> None:
    bad = {**valid_row(), "island": "Mars", "year": "2007 AD", "colour": "red"}
    del bad["sex"]
    bad["body_mass_g"] = True
    with pytest.raises(RequestError) as exc:
        strict.parse_v1({"instances": [valid_row(), bad, [1, 2]]})
    assert exc.value.status == 422
    assert reasons(exc) == {
        "instances[1].island": "out_of_domain",
        "instances[1].year": "wrong_type",
        "instances[1].colour": "unknown_feature",
        "instances[1].sex": "missing_feature",
        "instances[1].body_mass_g": "wrong_type",
        "instances[2]": "bad_shape",
    }
    body = exc.value.body()
    assert json.loads(json.dumps(body))["errors"][0]["field"].startswith("instances[1]")


def test_v1_null_where_not_nullable(schema: RequestSchema) -> None:
    with pytest.raises(RequestError) as exc:
        schema.parse_v1({"instances": [{**valid_row(), "island": None, "year": None}]})
    assert set(reasons(exc).values()) == {"null_not_allowed"}


@pytest.mark.parametrize(
    ("body", "field", "reason", "status"),
    [
        ([1, 2], "body", "malformed_request", 400),
        ({"inputs": []}, "inputs", "malformed_request", 400),
        ({"instances": {}}, "instances", "malformed_request", 400),
        ({"instances": []}, "instances", "bad_shape", 400),
        ({"instances": [valid_row()] * 6}, "instances", "batch_too_large", 422),
        ({"instances": [valid_row()], "parameters": 3}, "parameters", "bad_parameter", 400),
        (
            {"instances": [valid_row()], "parameters": {"probabilities": "yes"}},
            "parameters.probabilities",
            "bad_parameter",
            400,
        ),
        ({"instances": ["x"]}, "instances[0]", "bad_shape", 422),
    ],
)
def test_v1_malformed_requests(
    schema: RequestSchema, body: Any, field: str, reason: str, status: int
) -> None:
    with pytest.raises(RequestError) as exc:
        schema.parse_v1(body)
    assert reasons(exc) == {field: reason}
    assert exc.value.status == status


def v2(inputs: list[InferInput], **kwargs: Any) -> InferRequest:
    return InferRequest(model_name=MODEL, infer_inputs=inputs, request_id="r1", **kwargs)


def test_v2_single_tensor_flat_and_nested(schema: RequestSchema) -> None:
    row = list(valid_row().values())
    flat = schema.parse_v2(v2([InferInput("input-0", [2, 7], "BYTES", row + row)]))
    nested = schema.parse_v2(v2([InferInput("input-0", [2, 7], "BYTES", [row, row])]))
    assert flat.columns == nested.columns and flat.rows == 2
    assert flat.request_id == "r1"


def test_v2_one_input_per_feature(schema: RequestSchema) -> None:
    inputs = [InferInput(n, [1], "BYTES", [v]) for n, v in valid_row().items()]
    batch = schema.parse_v2(v2(inputs, parameters={"probabilities": True}))
    assert batch.rows == 1 and batch.probabilities


def test_v2_requested_output_turns_on_probabilities(schema: RequestSchema) -> None:
    row = list(valid_row().values())
    req = v2(
        [InferInput("x", [1, 7], "BYTES", row)],
        request_outputs=[RequestedOutput("probabilities")],
    )
    assert schema.parse_v2(req).probabilities


def test_v2_errors(schema: RequestSchema) -> None:
    row = list(valid_row().values())
    with pytest.raises(RequestError) as exc:
        schema.parse_v2(v2([InferInput("x", [2, 7], "BYTES", row)]))
    assert reasons(exc) == {"inputs['x'].data": "bad_shape"}
    with pytest.raises(RequestError) as exc:
        schema.parse_v2(v2([InferInput("x", [1, 6], "BYTES", row[:6])]))
    assert reasons(exc) == {"inputs['x'].shape": "bad_shape"}
    named = [InferInput(n, [1], "BYTES", [v]) for n, v in valid_row().items() if n != "sex"]
    named.append(InferInput("colour", [1], "BYTES", ["red"]))
    with pytest.raises(RequestError) as exc:
        schema.parse_v2(v2(named))
    assert reasons(exc) == {
        "inputs['colour']": "unknown_feature",
        "inputs['sex']": "missing_feature",
    }
    with pytest.raises(RequestError) as exc:
        schema.parse_v2(v2([]))
    assert reasons(exc) == {"inputs": "bad_shape"}


# --- loading and verification -------------------------------------------------------------------


def test_tampered_file_refuses_to_load(tmp_path: Path) -> None:
    registry = make_registry(tmp_path)
    tamper(registry.resolve(MODEL, "v1").path)
    with pytest.raises(RegistryError, match=r"model\.joblib"):
        load_version(registry.resolve(MODEL, "v1").path)


def test_missing_contract_refuses_to_load(tmp_path: Path) -> None:
    mv = register_version(tmp_path, without=("contract.json",))
    with pytest.raises(ContractError, match=r"contract\.json"):
        load_version(mv.path)


def test_predictor_not_ready_on_tampered_version(tmp_path: Path, caplog: Any) -> None:
    registry = make_registry(tmp_path)
    tamper(registry.resolve(MODEL, "v1").path, "contract.json")
    p = KfopsPredictor("tampered", ModelSource(registry_root=tmp_path, model=MODEL))
    assert p.load() is False and p.ready is False
    assert "contract.json" in (p.load_error or "")
    assert any("NOT ready" in r.getMessage() for r in caplog.records)


def test_unknown_alias(tmp_path: Path) -> None:
    make_registry(tmp_path)
    p = KfopsPredictor("x", ModelSource(registry_root=tmp_path, model=MODEL, ref="nope"))
    assert not p.load()
    assert "unknown version or alias 'nope'" in (p.load_error or "")


# --- predictor ----------------------------------------------------------------------------------


def call(p: KfopsPredictor, body: Any) -> Any:
    return asyncio.run(p(body, headers={"x-request-id": "req-1"}))[0]


def test_predictor_v1_and_v2_with_probabilities(tmp_path: Path) -> None:
    make_registry(tmp_path / "reg")
    p = KfopsPredictor(
        "pv", ModelSource(registry_root=tmp_path / "reg", model=MODEL), ServingOptions(drift=False)
    )
    assert p.load()
    out = call(p, {"instances": [valid_row()], "parameters": {"probabilities": True}})
    assert out["predictions"] == ["Adelie"] and out["model_version"] == "v1"
    assert set(out["probabilities"][0]) == {"Adelie", "Chinstrap", "Gentoo"}
    assert abs(sum(out["probabilities"][0].values()) - 1) < 1e-9
    req = v2([InferInput("x", [1, 7], "BYTES", list(valid_row().values()))])
    rest, _ = call(p, req).to_rest()
    assert rest["outputs"][0]["data"] == ["Adelie"]
    assert [o["name"] for o in rest["outputs"]] == ["predict"]
    raw = call(p, json.dumps({"instances": [valid_row()]}).encode())
    assert raw["predictions"] == ["Adelie"]
    with pytest.raises(RequestError, match=r"^body: the body is not valid JSON"):
        call(p, b"{not json")


def test_predictor_fills_kserves_stages_so_each_is_timed(tmp_path: Path) -> None:
    from prometheus_client import REGISTRY

    make_registry(tmp_path / "reg")
    p = KfopsPredictor(
        "stages",
        ModelSource(registry_root=tmp_path / "reg", model=MODEL),
        ServingOptions(drift=False),
    )
    assert p.load()

    def counts() -> list[float]:
        names = (
            "request_preprocess_seconds",
            "request_predict_seconds",
            "request_postprocess_seconds",
        )
        return [
            REGISTRY.get_sample_value(f"{n}_count", {"model_name": "stages"}) or 0.0 for n in names
        ]

    assert counts() == [0.0, 0.0, 0.0]
    call(p, {"instances": [valid_row(), valid_row()]})
    call(p, v2([InferInput("x", [1, 7], "BYTES", list(valid_row().values()))]))
    assert counts() == [2.0, 2.0, 2.0]
    # A bad request fails in preprocess: the model is never called.
    with pytest.raises(RequestError):
        call(p, {"instances": [{**valid_row(), "island": [3]}]})
    assert counts() == [3.0, 2.0, 2.0]


def test_serving_modules_import_without_a_cycle() -> None:
    import ast

    import kfops.serving.predictor as predictor
    import kfops.serving.server as server

    def imports(module: Any) -> set[str]:
        tree = ast.parse(Path(module.__file__).read_text())
        return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}

    assert "kfops.serving.server" not in imports(predictor)
    assert "kfops.serving.predictor" in imports(server)


def test_hot_swap_and_bad_new_version_keeps_old(tmp_path: Path) -> None:
    root = tmp_path / "reg"
    registry = make_registry(root)
    p = KfopsPredictor(
        "hs", ModelSource(registry_root=root, model=MODEL), ServingOptions(drift=False)
    )
    assert p.load()
    before = p.served
    register_version(root, estimator="decision_tree")
    registry.set_alias(MODEL, "champion", "v2")
    assert p.check_alias() is True
    assert p.served is not None and p.served.version == "v2"
    assert before is not None and before.version == "v1"  # in-flight holders keep v1
    v3 = register_version(root)
    tamper(v3.path)
    registry.set_alias(MODEL, "champion", "v3")  # a new alias file: a new inode, seen at once
    failures = get_metrics().model_load_failures.labels("hs")._value.get()
    assert p.check_alias() is False
    assert p.served.version == "v2" and p.ready
    assert get_metrics().model_load_failures.labels("hs")._value.get() == failures + 1


def test_drift_gauges_published(tmp_path: Path) -> None:
    make_registry(tmp_path / "reg")
    p = KfopsPredictor(
        "dr",
        ModelSource(registry_root=tmp_path / "reg", model=MODEL),
        ServingOptions(drift_publish_interval=0.05),
    )
    assert p.load()
    for _ in range(20):
        call(p, {"instances": [{**valid_row(), "bill_length_mm": 58.0}]})
    assert p.served is not None and p.served.drift is not None
    p.served.drift.stop()
    gauge = get_metrics().drift_psi.labels("dr", "v1", "bill_length_mm")._value.get()
    assert gauge > 0.5  # all traffic in the top bin: strong drift


# --- capture ------------------------------------------------------------------------------------


def item(n: int = 1, request_id: str = "r") -> CaptureItem:
    row = valid_row()
    return CaptureItem(
        model=MODEL,
        version="v1",
        request_id=request_id,
        ts=1764133200.0,
        names=NAMES,
        columns=[[row[k]] * n for k in NAMES],
        predictions=["Adelie"] * n,
        proba=[[0.9, 0.05, 0.05]] * n,
        classes=["Adelie", "Chinstrap", "Gentoo"],
    )


def test_capture_record_format() -> None:
    recs = records(item(2))
    assert recs[1]["id"] == "r:1"
    assert recs[0]["features"] == valid_row()
    assert recs[0]["proba"] == {"Adelie": 0.9, "Chinstrap": 0.05, "Gentoo": 0.05}
    assert set(recs[0]) == {"id", "ts", "model", "version", "features", "prediction", "proba"}


def test_capture_writes_documented_layout(tmp_path: Path) -> None:
    cap = PayloadCapture(str(tmp_path), flush_interval=0.05)
    for i in range(3):
        assert cap.submit(item(2, f"q{i}"))
    cap.close()
    files = list(tmp_path.glob(f"{MODEL}/2025-11-26/05-*-0.jsonl"))
    assert len(files) == 1
    lines = [json.loads(x) for x in files[0].read_text().splitlines()]
    assert [x["id"] for x in lines] == ["q0:0", "q0:1", "q1:0", "q1:1", "q2:0", "q2:1"]
    assert cap.written == 6 and cap.dropped == 0


def test_capture_object_store_writes_one_object_per_flush() -> None:
    import fsspec

    sink = CaptureSink("memory://kfops-capture-test")
    sink.write(MODEL, 1764133200.0, b"{}\n")
    sink.write(MODEL, 1764133200.0, b"{}\n")
    fs = fsspec.filesystem("memory")
    found = fs.ls(f"/kfops-capture-test/{MODEL}/2025-11-26", detail=False)
    names = sorted(p.rsplit("/", 1)[1] for p in found)
    assert len(names) == 2 and names[0].endswith("-0.jsonl") and names[1].endswith("-1.jsonl")


def test_capture_overload_drops_and_counts_without_blocking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sink hangs (a stuck disk or object store) until the test lets it go: submit must
    # still return for every item, dropping and counting what the full queue cannot hold.
    release = threading.Event()
    write = CaptureSink.write

    def stuck_write(self: CaptureSink, model: str, ts: float, lines: bytes) -> str:
        release.wait(120)
        return write(self, model, ts, lines)

    monkeypatch.setattr(CaptureSink, "write", stuck_write)
    cap = PayloadCapture(str(tmp_path), max_queue=4, flush_interval=0.05)
    before = get_metrics().capture_dropped.labels(MODEL)._value.get()
    accepted: list[bool] = []
    submitter = threading.Thread(
        target=lambda: accepted.extend(cap.submit(item(1, f"q{i}")) for i in range(20_000)),
        daemon=True,
    )
    submitter.start()
    submitter.join(60)  # a deadline for what must happen, not a bound on how fast
    finished = not submitter.is_alive()
    release.set()
    assert finished, "submit waited for the stuck writer"
    cap.close(timeout=60)
    assert cap.dropped > 0 and sum(accepted) + cap.dropped == 20_000
    assert cap.written == sum(accepted)
    assert get_metrics().capture_dropped.labels(MODEL)._value.get() - before == cap.dropped


def test_capture_sampling_rate() -> None:
    cap = PayloadCapture("memory://unused", sample_rate=0.25, seed=1)
    share = sum(cap.sampled() for _ in range(4000)) / 4000
    assert 0.2 < share < 0.3
    assert not PayloadCapture("memory://unused", sample_rate=0.0).sampled()


def test_route_of() -> None:
    assert route_of("/v1/models/penguins:predict") == ("penguins", "v1", "predict")
    assert route_of("/v1/models/penguins:explain") == ("penguins", "v1", "explain")
    assert route_of("/v2/models/penguins/infer") == ("penguins", "v2", "predict")
    assert route_of("/v2/models/penguins/versions/3/infer") == ("penguins", "v2", "predict")
    assert route_of("/metrics") is None and route_of("/v1/models/penguins") is None
    assert route_of("/v1/models/penguins:fit") is None


def test_registry_is_untouched_by_serving(tmp_path: Path) -> None:
    registry = make_registry(tmp_path)
    p = KfopsPredictor("ro", ModelSource(registry_root=tmp_path, model=MODEL))
    assert p.load()
    Registry.verify_dir(registry.resolve(MODEL, "v1").path)


def test_regression_model_serves_values_and_histogram(tmp_path: Path) -> None:
    from kfops.contract import infer_contract
    from kfops.training import save_model, train
    from tests.unit.test_serving_fixtures import penguins

    df = penguins().drop(columns=["species"])
    contract = infer_contract(df, "body_mass_g", "regression")
    save_model(train(df, contract), tmp_path / "model.joblib")
    contract.save(tmp_path / "contract.json")
    Registry(tmp_path / "reg").register(
        "mass",
        {"model.joblib": tmp_path / "model.joblib", "contract.json": tmp_path / "contract.json"},
        {},
        aliases=("champion",),
    )
    p = KfopsPredictor("mass", ModelSource(registry_root=tmp_path / "reg", model="mass"))
    assert p.load()
    row = {k: v for k, v in valid_row().items() if k != "body_mass_g"}
    out = call(p, {"instances": [row, row]})
    assert len(out["predictions"]) == 2 and 2500 < out["predictions"][0] < 6500
    with pytest.raises(RequestError) as exc:
        call(p, {"instances": [row], "parameters": {"probabilities": True}})
    assert reasons(exc) == {"parameters.probabilities": "bad_parameter"}
    rest, _ = call(p, v2([InferInput("x", [1, 6], "BYTES", list(row.values()))])).to_rest()
    assert rest["outputs"][0]["datatype"] == "FP64"
    assert get_metrics().prediction_value.labels("mass", "v1")._sum.get() > 5000
