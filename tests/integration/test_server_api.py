"""The serving API surface of `kfops serve` as a real process over HTTP: ``:explain`` (sums, 4xx,
metrics, bounded cost), the id every prediction is captured and answered under, V2 model
metadata from the contract, and 405 for a wrong method on a model route."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from kfops.contract_model import Contract
from kfops.monitoring import read_capture
from kfops.monitoring.labels import Labels, join_labels
from kfops.training import load_model
from tests.conftest import free_port, stop_process, wait_for
from tests.integration.test_server import sample_value
from tests.unit.test_serving_fixtures import (
    MODEL,
    REGRESSION_TARGET,
    penguins,
    register_version,
    valid_row,
)

pytestmark = pytest.mark.integration

JSON = {"content-type": "application/json"}
MAX_EXPLAIN_ROWS = 5
HEX32 = re.compile(r"[0-9a-f]{32}")


class Served:
    """`kfops serve` on one registry model, in its own process."""

    def __init__(self, tmp: Path, root: Path, model: str, *args: str) -> None:
        self.model = model
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.capture = tmp / f"capture-{model}"
        self.log = tmp / f"serve-{model}-{self.port}.log"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kfops",
                "serve",
                "--registry",
                str(root),
                "--model",
                model,
                "--port",
                str(self.port),
                "--capture",
                str(self.capture),
                "--max-explain-rows",
                str(MAX_EXPLAIN_ROWS),
                *args,
            ],
            stdout=open(self.log, "wb"),  # noqa: SIM115 - closed with the process
            stderr=subprocess.STDOUT,
            cwd=tmp,
        )

    def wait_ready(self, timeout: float = 120.0) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"kfops serve exited {self.proc.returncode}: {self.output()}")
            try:
                return requests.get(f"{self.url}/v1/models/{self.model}", timeout=1).ok
            except requests.ConnectionError:
                return False

        wait_for(ready, timeout, f"kfops serve {self.model} to be ready", every=0.2)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        stop_process(self.proc)

    def post(self, verb: str, body: Any, headers: dict[str, str] | None = None) -> Any:
        data = body if isinstance(body, bytes) else json.dumps(body)
        return requests.post(
            f"{self.url}/v1/models/{self.model}:{verb}",
            data=data,
            headers={**JSON, **(headers or {})},
            timeout=60,
        )

    def v2(self, body: Any) -> Any:
        return requests.post(
            f"{self.url}/v2/models/{self.model}/infer", json=body, headers=JSON, timeout=60
        )

    def metrics(self) -> str:
        return requests.get(f"{self.url}/metrics", timeout=10).text

    def pipeline(self) -> Any:
        version = self.root / "models" / self.model / "versions" / "v1"
        return load_model(version / "model.joblib")

    def contract(self) -> Contract:
        return Contract.load(
            self.root / "models" / self.model / "versions" / "v1" / "contract.json"
        )


# (model name, task, estimator): one server each, started together.
MODELS = {
    "cls-linear": ("classification", "logistic_regression"),
    "cls-forest": ("classification", "random_forest"),
    "reg-forest": ("regression", "random_forest"),
    "reg-linear": ("regression", "ridge"),
}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Served]]:
    tmp = tmp_path_factory.mktemp("serve-api")
    root = tmp / "registry"
    for name, (task, estimator) in MODELS.items():
        register_version(root, estimator=estimator, task=task, model=name, aliases=("champion",))
    started = {name: Served(tmp, root, name) for name in MODELS}
    try:
        for srv in started.values():
            srv.wait_ready()
        yield started
    finally:
        for srv in started.values():
            srv.stop()


def rows_of_the_data(task: str, n: int = 8) -> list[dict[str, Any]]:
    """Rows of the training file as written there (nulls included), without the target (the
    regression model was trained on the rows whose target is known)."""
    df = penguins()
    drop = ["species", REGRESSION_TARGET] if task == "regression" else ["species"]
    if task == "regression":
        df = df[df[REGRESSION_TARGET].notna()]
    sample = df.drop(columns=drop).iloc[[0, 3, 20, 100, 160, 200, 250, 340][:n]]
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in json.loads(sample.to_json(orient="records"))
    ]


def total(explanation: dict[str, Any]) -> float:
    return float(explanation["base_value"]) + sum(explanation["contributions"].values())


# --- :explain ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["reg-forest", "reg-linear"])
def test_explain_sums_to_the_regression_prediction(servers: dict[str, Served], name: str) -> None:
    srv = servers[name]
    rows = rows_of_the_data("regression", MAX_EXPLAIN_ROWS)
    predicted = srv.post("predict", {"instances": rows})
    explained = srv.post("explain", {"instances": rows})
    assert predicted.status_code == 200 and explained.status_code == 200, explained.text
    body = explained.json()
    assert body["output"] == "value" and body["exact"] is True
    assert body["method"] == ("tree" if "forest" in name else "linear")
    features = srv.contract().feature_names
    assert body["features"] == features
    for value, row in zip(predicted.json()["predictions"], body["explanations"], strict=True):
        assert sorted(row["contributions"]) == sorted(features)  # every column the user sent
        assert math.isclose(total(row), value, rel_tol=1e-6, abs_tol=1e-6)
        assert row["prediction"] == pytest.approx(value, rel=1e-9)


def test_explain_sums_to_the_predicted_class_probability(servers: dict[str, Served]) -> None:
    srv = servers["cls-forest"]
    rows = rows_of_the_data("classification", MAX_EXPLAIN_ROWS)
    predicted = srv.post("predict", {"instances": rows, "parameters": {"probabilities": True}})
    explained = srv.post("explain", {"instances": rows})
    assert explained.status_code == 200, explained.text
    body = explained.json()
    assert (body["method"], body["output"]) == ("tree", "probability")
    answer = predicted.json()
    for label, proba, row in zip(
        answer["predictions"], answer["probabilities"], body["explanations"], strict=True
    ):
        assert row["prediction"] == row["explained_class"] == label
        assert math.isclose(total(row), proba[label], rel_tol=1e-6, abs_tol=1e-9)


def test_explain_sums_to_the_predicted_class_margin(servers: dict[str, Served]) -> None:
    import pandas as pd

    srv = servers["cls-linear"]
    rows = rows_of_the_data("classification", MAX_EXPLAIN_ROWS)
    labels = srv.post("predict", {"instances": rows}).json()["predictions"]
    explained = srv.post("explain", {"instances": rows})
    assert explained.status_code == 200, explained.text
    body = explained.json()
    assert (body["method"], body["output"]) == ("linear", "margin")
    # The margin is the served pipeline's decision_function of the predicted class.
    pipeline = srv.pipeline()
    frame = pd.DataFrame(rows)[srv.contract().feature_names]
    margins = pipeline.decision_function(frame)
    classes = list(pipeline.classes_)
    for i, (label, row) in enumerate(zip(labels, body["explanations"], strict=True)):
        assert row["prediction"] == row["explained_class"] == label
        expected = margins[i][classes.index(label)]
        assert math.isclose(total(row), expected, rel_tol=1e-6, abs_tol=1e-9)
        assert math.isclose(row["output"], expected, rel_tol=1e-9, abs_tol=1e-12)


def test_explain_refuses_what_predict_refuses_with_the_same_4xx(
    servers: dict[str, Served],
) -> None:
    srv = servers["cls-linear"]
    # Refused whatever the server's category policy: wrong types and a missing column.
    row = {**valid_row(), "bill_depth_mm": "deep", "body_mass_g": "heavy"}
    del row["sex"]
    bad = {"instances": [row]}
    for body in (bad, {"inputs": []}, {"instances": []}, {"instances": [[1, 2]]}):
        predicted, explained = srv.post("predict", body), srv.post("explain", body)
        assert 400 <= explained.status_code < 500, explained.text
        assert explained.status_code == predicted.status_code
        assert explained.json()["errors"] == predicted.json()["errors"]
    # Not JSON: kserve's :predict route answers it before kfops sees it; both are a 400.
    predicted, explained = srv.post("predict", b"{not json"), srv.post("explain", b"{not json")
    assert predicted.status_code == explained.status_code == 400
    assert explained.json()["errors"][0]["field"] == "body"
    fields = {e["field"]: e["reason"] for e in srv.post("explain", bad).json()["errors"]}
    assert fields == {
        "instances[0].bill_depth_mm": "wrong_type",
        "instances[0].body_mass_g": "wrong_type",
        "instances[0].sex": "missing_feature",
    }
    # Its own row cap, below :predict's: one request cannot cost minutes.
    too_many = {"instances": [valid_row()] * (MAX_EXPLAIN_ROWS + 1)}
    r = srv.post("explain", too_many)
    assert r.status_code == 422 and r.json()["errors"][0]["reason"] == "batch_too_large"
    assert srv.post("predict", too_many).status_code == 200
    r = requests.post(f"{srv.url}/v1/models/nope:explain", json={"instances": []}, timeout=10)
    assert r.status_code == 404


def test_explain_answer_carries_no_request_header(servers: dict[str, Served]) -> None:
    # kserve's own :explain handler sends the request's headers back (see kfops.serving.routes).
    srv = servers["cls-linear"]
    r = srv.post(
        "explain",
        {"instances": [valid_row()]},
        headers={"authorization": "Bearer secret", "x-custom": "echo?"},
    )
    assert r.status_code == 200, r.text
    assert "authorization" not in r.headers and "x-custom" not in r.headers


def test_explanations_are_counted_on_their_own_endpoint_label(servers: dict[str, Served]) -> None:
    srv = servers["reg-linear"]
    rows = rows_of_the_data("regression", 3)
    before = srv.metrics()
    assert srv.post("explain", {"instances": rows}).status_code == 200
    bad = {"instances": [{**rows[0], "bill_length_mm": "long"}]}
    assert srv.post("explain", bad).status_code == 422
    assert srv.post("predict", {"instances": rows}).status_code == 200
    text = srv.metrics()

    def delta(name: str, **labels: str) -> float:
        return sample_value(text, name, **labels) - sample_value(before, name, **labels)

    explain = {"model": "reg-linear", "endpoint": "explain"}
    assert delta("kfops_requests_total", **explain, status="200") == 1
    assert delta("kfops_requests_total", **explain, status="422") == 1
    assert delta("kfops_requests_total", model="reg-linear", endpoint="predict") == 1
    assert delta("kfops_request_duration_seconds_count", **explain) == 2
    assert delta("kfops_explained_rows_total", model="reg-linear", method="linear") == 3
    assert delta("kfops_validation_failures_total", reason="wrong_type") == 1
    # Explanations are not predictions: no predicted rows, nothing captured.
    assert delta("kfops_predicted_rows_total", model="reg-linear") == 3


def test_a_version_without_its_explainer_file_says_so_and_still_predicts(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    register_version(root, aliases=("champion",), without=("explainer.json",))
    srv = Served(tmp_path, root, MODEL)
    try:
        srv.wait_ready()
        for _ in range(2):  # decided once per version, answered alike every time
            r = srv.post("explain", {"instances": [valid_row()]})
            assert r.status_code == 422, r.text
            error = r.json()["errors"][0]
            assert error["reason"] == "not_explainable" and "explainer.json" in error["message"]
        assert srv.post("predict", {"instances": [valid_row()]}).status_code == 200
        text = srv.metrics()
        assert sample_value(text, "kfops_validation_failures_total", reason="not_explainable") == 2
    finally:
        srv.stop()


# --- request ids ---------------------------------------------------------------------------------


def captured_ids(srv: Served) -> list[str]:
    return [
        json.loads(line)["id"]
        for f in srv.capture.glob(f"{srv.model}/*/*.jsonl")
        for line in f.read_text().splitlines()
    ]


def test_every_answer_carries_the_id_it_was_captured_under(servers: dict[str, Served]) -> None:
    srv = servers["cls-forest"]
    answers = [
        srv.post("predict", {"instances": [valid_row(), valid_row()]}, {"x-request-id": "order-7"})
        for _ in range(2)
    ]
    answers.append(srv.post("predict", {"instances": [valid_row()]}))  # no client id
    ids = []
    for r in answers:
        assert r.status_code == 200, r.text
        assert r.headers["x-request-id"] == r.json()["id"]
        ids.append(r.json()["id"])
    # A repeated client id is kept as a prefix and made unique; without one the server issues it.
    assert len(set(ids)) == 3
    assert all(i.startswith("order-7.") and HEX32.fullmatch(i.split(".", 1)[1]) for i in ids[:2])
    assert HEX32.fullmatch(ids[2])
    # V2: the response's id and header, from the body's id.
    r = srv.v2(
        {
            "id": "order-7",
            "inputs": [
                {
                    "name": "x",
                    "shape": [1, 7],
                    "datatype": "BYTES",
                    "data": list(valid_row().values()),
                }
            ],
        }
    )
    assert r.status_code == 200, r.text
    v2_id = r.json()["id"]
    assert v2_id == r.headers["x-request-id"] and v2_id.startswith("order-7.")
    assert v2_id not in ids
    expected = {
        f"{i}:{row}" for i, n in zip([*ids, v2_id], [2, 2, 1, 1], strict=True) for row in range(n)
    }

    # The capture files carry exactly these ids: each returned id's rows, once.
    def all_there() -> list[str] | None:
        found = [i for i in captured_ids(srv) if i in expected]
        return found if len(found) >= len(expected) else None

    found = wait_for(all_there, 30, f"the {len(expected)} rows in the capture files")
    assert sorted(found) == sorted(expected)

    # Labels written with the returned ids join each prediction once, never twice.
    window = read_capture(srv.capture, srv.model, start=time.time() - 600, end=time.time() + 60)
    import pandas as pd

    labels = Labels(
        pd.DataFrame({"id": [f"{ids[0]}:0", f"{ids[1]}:0"], "label": ["Adelie", "Gentoo"]})
    )
    joined = join_labels(window, labels)
    assert sorted(joined["label"]) == ["Adelie", "Gentoo"] and len(joined) == 2


def test_a_malformed_client_id_is_refused_and_nothing_captured(
    servers: dict[str, Served],
) -> None:
    srv = servers["cls-forest"]
    before = srv.metrics()
    for bad in ("x" * 129, "two words"):
        r = srv.post("predict", {"instances": [valid_row()]}, {"x-request-id": bad})
        assert r.status_code == 400, r.text
        assert r.json()["errors"][0]["field"] == "x-request-id"
    rows_before = sample_value(before, "kfops_predicted_rows_total", model="cls-forest")
    rows_after = sample_value(srv.metrics(), "kfops_predicted_rows_total", model="cls-forest")
    assert rows_after == rows_before


# --- V2 metadata and methods ---------------------------------------------------------------------


def test_v2_metadata_lists_the_contract(servers: dict[str, Served]) -> None:
    cls = requests.get(f"{servers['cls-forest'].url}/v2/models/cls-forest", timeout=10)
    assert cls.status_code == 200, cls.text
    body = cls.json()
    assert body["name"] == "cls-forest"
    inputs = {i["name"]: (i["datatype"], i["shape"]) for i in body["inputs"]}
    assert list(inputs) == servers["cls-forest"].contract().feature_names
    assert inputs["island"] == ("BYTES", [-1]) and inputs["bill_length_mm"] == ("FP64", [-1])
    assert {o["name"]: (o["datatype"], o["shape"]) for o in body["outputs"]} == {
        "predict": ("BYTES", [-1]),
        "probabilities": ("FP64", [-1, 3]),
    }
    reg = requests.get(f"{servers['reg-forest'].url}/v2/models/reg-forest", timeout=10).json()
    assert REGRESSION_TARGET not in {i["name"] for i in reg["inputs"]}
    assert reg["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1]}]
    # What the metadata says is what the server takes: one named input per feature.
    row = valid_row()
    named = {
        "inputs": [
            {"name": i["name"], "datatype": i["datatype"], "shape": [1], "data": [row[i["name"]]]}
            for i in body["inputs"]
        ]
    }
    assert servers["cls-forest"].v2(named).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/v1/models/{m}:predict", "POST"),
        ("GET", "/v1/models/{m}:explain", "POST"),
        ("PUT", "/v1/models/{m}:predict", "POST"),
        ("GET", "/v2/models/{m}/infer", "POST"),
        ("POST", "/v2/models/{m}", "GET"),
        ("DELETE", "/v2/models/{m}/ready", "GET"),
        ("POST", "/v1/models/{m}", "GET"),
    ],
)
def test_wrong_method_on_a_model_route_is_405_with_allow(
    servers: dict[str, Served], method: str, path: str, allow: str
) -> None:
    srv = servers["cls-linear"]
    r = requests.request(method, srv.url + path.format(m=srv.model), timeout=10)
    assert r.status_code == 405, r.text
    assert r.headers["allow"] == allow
    assert method in r.json()["error"]
