"""The model server as a real process over HTTP: V1/V2, 4xx bodies, metrics (also through a real
Prometheus), payload capture, a hypothesis fuzz of bad requests, hot swap under load, exact
counts with --workers 2, and startup errors (port in use, tampered file, unknown alias)."""

from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kfops.parsing import NA_STRINGS
from kfops.registry import Registry
from tests.conftest import free_port, require_binary, stop_process, wait_for
from tests.unit.test_serving_fixtures import (
    MODEL,
    make_registry,
    register_version,
    tamper,
    valid_row,
)

pytestmark = pytest.mark.integration

JSON = {"content-type": "application/json"}
MAX_ROWS = 50


class Server:
    def __init__(self, tmp: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"server-{self.port}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kfops.serving", "--port", str(self.port), *args],
            stdout=open(self.log, "wb"),  # noqa: SIM115 - closed with the process
            stderr=subprocess.STDOUT,
            cwd=tmp,
        )

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: {self.output()}")
            try:
                if requests.get(f"{self.url}/v1/models/{MODEL}", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"server not ready after {timeout}s: {self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        stop_process(self.proc)

    def v1(self, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
        data = body if isinstance(body, bytes) else json.dumps(body)
        return requests.post(
            f"{self.url}/v1/models/{MODEL}:predict", data=data, headers=headers or JSON, timeout=30
        )

    def v2(self, body: Any) -> requests.Response:
        data = body if isinstance(body, bytes) else json.dumps(body)
        return requests.post(
            f"{self.url}/v2/models/{MODEL}/infer", data=data, headers=JSON, timeout=30
        )

    def metrics(self) -> str:
        return requests.get(f"{self.url}/metrics", timeout=10).text


def sample_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture(scope="module")
def registry_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("server") / "registry"
    make_registry(root)
    return root


@pytest.fixture(scope="module")
def server(registry_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The fixture version has a verified ONNX twin: this server answers with it (runtime auto).
    Strict categories, so that a category the model never saw is a contract violation (422)
    in the tests and the fuzz below; the default (served and counted) is tested on its own."""
    tmp = tmp_path_factory.mktemp("served")
    srv = Server(
        tmp,
        "--registry",
        str(registry_root),
        "--model",
        MODEL,
        "--capture",
        str(tmp / "capture"),
        "--max-rows",
        str(MAX_ROWS),
        "--strict-categories",
    )
    srv.capture_dir = tmp / "capture"  # type: ignore[attr-defined]
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


# --- protocol ----------------------------------------------------------------------------------


def test_v1_rows_objects_and_probabilities(server: Server) -> None:
    row = valid_row()
    r = server.v1({"instances": [list(row.values()), row], "parameters": {"probabilities": True}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["predictions"] == ["Adelie", "Adelie"] and body["model_version"] == "v1"
    assert math.isclose(sum(body["probabilities"][0].values()), 1.0)


def test_v2_tensor_and_named_inputs(server: Server) -> None:
    row = valid_row()
    tensor = {
        "inputs": [{"name": "x", "shape": [1, 7], "datatype": "BYTES", "data": list(row.values())}],
        "parameters": {"probabilities": True},
    }
    r = server.v2(tensor)
    assert r.status_code == 200, r.text
    outputs = {o["name"]: o for o in r.json()["outputs"]}
    assert outputs["predict"]["data"] == ["Adelie"]
    assert outputs["probabilities"]["shape"] == [1, 3]
    named = {
        "inputs": [
            {
                "name": k,
                "shape": [1],
                "datatype": "BYTES" if isinstance(v, str) else "FP64",
                "data": [v],
            }
            for k, v in row.items()
        ]
    }
    r = server.v2(named)
    assert r.status_code == 200, r.text
    assert r.json()["model_version"] == "v1"


def test_bad_requests_get_4xx_naming_each_field(server: Server) -> None:
    bad = {**valid_row(), "island": "Atlantis", "body_mass_g": "heavy"}
    r = server.v1({"instances": [bad]})
    assert r.status_code == 422
    fields = {e["field"]: e["reason"] for e in r.json()["errors"]}
    assert fields == {
        "instances[0].island": "out_of_domain",
        "instances[0].body_mass_g": "wrong_type",
    }
    r = server.v1(b"{not json")
    assert r.status_code == 400 and "error" in r.json()
    r = server.v1({"instances": [valid_row()] * (MAX_ROWS + 1)})
    assert r.status_code == 422 and r.json()["errors"][0]["reason"] == "batch_too_large"
    r = server.v2({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2]}]})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "inputs['x'].shape"
    r = server.v2({"inputs": [{"name": "x", "shape": "oops"}]})
    assert r.status_code == 422 and r.json()["errors"]
    assert requests.get(f"{server.url}/v1/models/{MODEL}", timeout=5).status_code == 200


def test_metrics_on_metrics_endpoint(server: Server) -> None:
    # Exact deltas: requests are counted before their response is sent, so a scrape right
    # after the last answer sees every one of them (and a double count would show).
    before = server.metrics()
    for _ in range(3):
        assert server.v1({"instances": [valid_row()]}).status_code == 200
    assert server.v1({"instances": [{**valid_row(), "sex": "other"}]}).status_code == 422
    text = server.metrics()

    def delta(name: str, **labels: str) -> float:
        return sample_value(text, name, **labels) - sample_value(before, name, **labels)

    assert delta("kfops_requests_total", model=MODEL, protocol="v1", status="200") == 3
    assert delta("kfops_requests_total", model=MODEL, protocol="v1", status="422") == 1
    assert delta("kfops_validation_failures_total", reason="out_of_domain") == 1
    assert delta("kfops_predictions_total", **{"class": "Adelie"}) == 3
    assert delta("kfops_predicted_rows_total", model=MODEL) == 3
    assert delta("kfops_request_duration_seconds_count", model=MODEL) == 4
    sha = Registry(server_registry(server)).resolve(MODEL, "v1").model_sha256
    assert sample_value(text, "kfops_model_info", version="v1", sha256=str(sha)) == 1

    def with_drift() -> str | None:
        text = server.metrics()
        return text if "kfops_feature_drift_psi{" in text else None

    # Drift scores are published by a background thread every few seconds: wait for them.
    text = wait_for(with_drift, 60, "drift gauges on /metrics")
    assert 'feature="bill_length_mm"' in text


def server_registry(server: Server) -> Path:
    args = server.proc.args
    assert isinstance(args, list)
    return Path(args[args.index("--registry") + 1])


def test_payload_capture_files(server: Server) -> None:
    r = server.v1(
        {"instances": [valid_row(), valid_row()]}, headers={**JSON, "x-request-id": "cap-1"}
    )
    assert r.status_code == 200
    # The rows are captured under the id the answer carries: the client's, made unique.
    rid = r.json()["id"]
    assert rid.startswith("cap-1.") and r.headers["x-request-id"] == rid
    capture_dir: Path = server.capture_dir  # type: ignore[attr-defined]

    def captured() -> list[dict[str, Any]] | None:
        found = [
            json.loads(line)
            for f in capture_dir.glob(f"{MODEL}/*/*-*-*.jsonl")
            for line in f.read_text().splitlines()
            if line.startswith(f'{{"id":"{rid}:')
        ]
        return found if len(found) >= 2 else None

    # The writer thread flushes in batches after the answer: wait for the rows.
    found = wait_for(captured, 30, "the 2 rows of request cap-1 in the capture files")
    assert sorted(x["id"] for x in found) == [f"{rid}:0", f"{rid}:1"]
    assert found[0]["features"] == valid_row() and found[0]["version"] == "v1"
    assert set(found[0]["proba"]) == {"Adelie", "Chinstrap", "Gentoo"}


# --- fuzz --------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)
ROW = valid_row()
# The target may come along with a row (a row of the training file has it): not an error.
IGNORED = {"species"}
NON_NULLABLE = ["island", "year"]
# Text that is never a number, a boolean word, a date or a missing value (read_csv's NA strings).
WORDS = st.text(alphabet="qwxzQWXZ", min_size=1, max_size=6)
DOMAINS = {"island": ["Biscoe", "Dream", "Torgersen"], "sex": ["female", "male"]}


@st.composite
def bad_row(draw: st.DrawFn) -> Any:
    row = dict(ROW)
    kind = draw(st.sampled_from(["type", "domain", "missing", "unknown", "null", "length"]))
    name = draw(st.sampled_from(list(ROW)))
    if kind == "type":
        if name in DOMAINS:
            row[name] = draw(
                st.lists(json_values, max_size=2)
                | st.dictionaries(st.text(), json_values, max_size=2)
                | st.integers()
            )
        else:
            row[name] = draw(WORDS | st.booleans() | st.lists(st.integers(), max_size=2))
    elif kind == "domain":
        field = draw(st.sampled_from(list(DOMAINS)))
        row[field] = draw(
            st.text(max_size=10).filter(lambda s: s not in DOMAINS[field] and s not in NA_STRINGS)
        )
    elif kind == "missing":
        del row[name]
    elif kind == "unknown":
        key = draw(st.text(min_size=1, max_size=8).filter(lambda s: s not in {*ROW, *IGNORED}))
        row[key] = draw(json_values)
    elif kind == "null":
        row[draw(st.sampled_from(NON_NULLABLE))] = None
    else:
        values = list(ROW.values())
        return draw(st.sampled_from([values[:-1], [*values, 1], []]))
    return row


@st.composite
def bad_request(draw: st.DrawFn) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["v1-row", "v1-any", "v1-bytes", "v2-any", "v2-tensor", "big"]))
    if kind == "v1-row":
        rows = [*draw(st.lists(st.just(ROW), max_size=3)), draw(bad_row())]
        params = draw(st.none() | st.fixed_dictionaries({"probabilities": st.booleans()}))
        body: dict[str, Any] = {"instances": draw(st.permutations(rows))}
        if params is not None:
            body["parameters"] = params
        return "v1", json.dumps(body).encode()
    if kind == "v1-any":
        value = draw(json_values.filter(lambda v: not (isinstance(v, dict) and "instances" in v)))
        return "v1", json.dumps(value).encode()
    if kind == "v1-bytes":
        return "v1", draw(st.binary(max_size=64).filter(lambda b: not b.strip().startswith(b"{")))
    if kind == "v2-any":
        return "v2", json.dumps(draw(json_values)).encode()
    if kind == "v2-tensor":
        tensor = {
            "name": draw(st.text(max_size=6)),
            "shape": draw(st.lists(st.integers(-2, 9), max_size=3)),
            "datatype": draw(
                st.sampled_from(["FP32", "FP64", "BYTES", "INT64", "BOOL", "FP16", "X"])
            ),
            "data": draw(st.lists(json_values, max_size=10)),
        }
        return "v2", json.dumps(
            {"inputs": draw(st.lists(st.just(tensor), min_size=1, max_size=2))}
        ).encode()
    n = draw(st.integers(MAX_ROWS + 1, MAX_ROWS + 20))
    return "v1", json.dumps({"instances": [ROW] * n}).encode()


FUZZ = settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)


@pytest.fixture
def fuzz_results() -> Counter[int]:
    """Status codes of one fuzz campaign, owned by the test that runs it (no shared state)."""
    return Counter()


def test_fuzz_bad_requests_never_5xx(server: Server, fuzz_results: Counter[int]) -> None:
    @FUZZ
    @given(request=bad_request())
    def one(request: tuple[str, bytes]) -> None:
        protocol, data = request
        r = server.v1(data) if protocol == "v1" else server.v2(data)
        fuzz_results[r.status_code] += 1
        assert 400 <= r.status_code < 500, f"{r.status_code} for {data[:300]!r}: {r.text[:300]}"
        assert "error" in r.json() or "detail" in r.json()

    before = sample_value(server.metrics(), "kfops_requests_total", model=MODEL)
    one()
    # It ran the whole campaign against this server, and the server is still well.
    assert sum(fuzz_results.values()) >= 1000, fuzz_results
    assert all(400 <= code < 500 for code in fuzz_results), fuzz_results
    assert requests.get(f"{server.url}/v2/health/ready", timeout=5).status_code == 200
    assert server.v1({"instances": [valid_row()]}).status_code == 200
    text = server.metrics()
    assert sample_value(text, "kfops_requests_total", status="500") == 0
    # Every fuzz request that reached a known model's route was counted (one 200 above).
    counted = sample_value(text, "kfops_requests_total", model=MODEL) - before
    assert counted == sum(fuzz_results.values()) + 1


# --- real Prometheus ---------------------------------------------------------------------------


def test_prometheus_scrapes_the_server(server: Server, tmp_path: Path) -> None:
    binary = require_binary("prometheus")
    for _ in range(5):
        server.v1({"instances": [valid_row()]})
    server.v1({"instances": [{**valid_row(), "year": None}]})
    text = server.metrics()
    expected = sample_value(text, "kfops_requests_total", model=MODEL)
    expected_failures = sample_value(
        text, "kfops_validation_failures_total", reason="null_not_allowed"
    )
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: kfops\n    static_configs: [{{targets: ['127.0.0.1:{server.port}']}}]\n"
    )
    prom = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api = f"http://127.0.0.1:{port}/api/v1/query"

    def query(q: str) -> list[dict[str, Any]]:
        return requests.get(api, params={"query": q}, timeout=5).json()["data"]["result"]

    def ready() -> bool:  # the query API answers 503 until the TSDB is open
        try:
            return requests.get(f"http://127.0.0.1:{port}/-/ready", timeout=5).status_code == 200
        except requests.ConnectionError:
            return False  # not listening yet

    def scraped_total() -> float | None:
        result = query(f'sum(kfops_requests_total{{model="{MODEL}"}})')
        return float(result[0]["value"][1]) if result else None

    try:
        wait_for(ready, 60, "Prometheus to be ready")
        wait_for(lambda: scraped_total() == expected, 60, f"Prometheus to scrape {expected}")
        info = query("kfops_model_info == 1")
        assert info and info[0]["metric"]["version"] == "v1" and info[0]["metric"]["sha256"]
        failures = query('sum(kfops_validation_failures_total{reason="null_not_allowed"})')
        assert float(failures[0]["value"][1]) == expected_failures >= 1
        assert query("kfops_feature_drift_psi")
        # A latency quantile needs traffic between two scrapes: send some while it scrapes.
        for _ in range(20):
            assert server.v1({"instances": [valid_row()]}).status_code == 200
        rate = "rate(kfops_request_duration_seconds_bucket[1m])"
        p99 = f"histogram_quantile(0.99, sum by (le) ({rate}))"

        def p99_seconds() -> float | None:
            result = query(p99)
            value = float(result[0]["value"][1]) if result else math.nan
            return value if math.isfinite(value) else None

        seconds = wait_for(p99_seconds, 60, "a finite p99 latency in Prometheus")
        assert 0 < seconds <= 10.0  # within the histogram's finite buckets
    finally:
        prom.terminate()
        prom.wait(20)


# --- hot swap -----------------------------------------------------------------------------------


def test_hot_swap_under_load_has_no_failures(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    registry = make_registry(root)
    srv = Server(tmp_path, "--registry", str(root), "--model", MODEL, "--poll-interval", "0.2")
    stop = threading.Event()
    try:
        srv.wait_ready()
        results: list[list[tuple[int, str]]] = [[], []]

        def client(out: list[tuple[int, str]]) -> None:
            with requests.Session() as session:
                while not stop.is_set():
                    try:
                        r = session.post(
                            f"{srv.url}/v1/models/{MODEL}:predict",
                            data=json.dumps({"instances": [valid_row()]}),
                            headers=JSON,
                            timeout=30,
                        )
                        out.append((r.status_code, r.json().get("model_version", "")))
                    except requests.RequestException as exc:
                        out.append((0, str(exc)))

        threads = [threading.Thread(target=client, args=(out,), daemon=True) for out in results]
        for t in threads:
            t.start()
        # Both clients under way on v1, then the alias moves while they keep sending.
        wait_for(lambda: all(len(out) >= 20 for out in results), 60, "20 answers per client")
        register_version(root, estimator="decision_tree")
        registry.set_alias(MODEL, "champion", "v2")

        def after_swap(out: list[tuple[int, str]]) -> int:
            versions = [v for _, v in out]
            return len(versions) - versions.index("v2") if "v2" in versions else 0

        wait_for(lambda: all(after_swap(out) >= 20 for out in list(results)), 60,
                 "20 answers from v2 per client")  # fmt: skip
        stop.set()
        for t in threads:
            t.join(30)
        every = [x for out in results for x in out]
        assert every and all(code == 200 for code, _ in every), [x for x in every if x[0] != 200][
            :5
        ]
        for out in results:
            versions = [v for _, v in out]
            assert versions[0] == "v1" and versions[-1] == "v2"
            first_v2 = versions.index("v2")
            assert set(versions[first_v2:]) == {"v2"}  # no flapping back
        text = srv.metrics()
        assert sample_value(text, "kfops_model_swaps_total", model=MODEL) == 1
        assert sample_value(text, "kfops_model_info", version="v1") == 0
        assert sample_value(text, "kfops_model_info", version="v2") == 1
    finally:
        stop.set()  # also when a wait above failed: the clients must not outlive the test
        srv.stop()


# --- workers -----------------------------------------------------------------------------------


def _until_both_workers_served(send: Any, served_pids: Any, what: str, wave: int = 40) -> list[Any]:
    """Send waves of ``wave`` requests, 8 at a time on new connections, until ``served_pids()``
    names two worker processes; return every result. (Which worker accepts a connection is up
    to the kernel and to how busy each one is: a slow start of one worker only means another
    wave.)"""
    results: list[Any] = []

    def one_wave() -> bool:
        start = len(results)
        with ThreadPoolExecutor(8) as pool:
            results.extend(pool.map(send, range(start, start + wave)))
        return len(served_pids()) >= 2

    wait_for(one_wave, 180, f"both workers to serve ({what})", every=0.5)
    return results


def test_workers_keep_counts_exact(registry_root: Path, tmp_path: Path) -> None:
    srv = Server(
        tmp_path,
        "--registry",
        str(registry_root),
        "--model",
        MODEL,
        "--workers",
        "2",
        "--metrics-dir",
        str(tmp_path / "prom"),
        "--strict-categories",
    )
    try:
        srv.wait_ready()

        def send(i: int) -> int:
            row = {**valid_row(), "island": "Mars"} if i % 4 == 0 else valid_row()
            return srv.v1({"instances": [row]}).status_code

        def pids() -> set[str]:  # a worker's counter file appears with its first count
            return {p.name.rsplit("_", 1)[-1] for p in (tmp_path / "prom").glob("counter_*.db")}

        codes = _until_both_workers_served(send, pids, "counts")
        ok, bad = codes.count(200), codes.count(422)
        assert bad == len(range(0, len(codes), 4)) and ok + bad == len(codes)
        for _ in range(3):  # every scrape, whichever worker answers, sees all of them at once
            text = srv.metrics()
            assert sample_value(text, "kfops_requests_total", model=MODEL, status="200") == ok
            assert (
                sample_value(text, "kfops_validation_failures_total", reason="out_of_domain") == bad
            )
            assert sample_value(text, "kfops_model_info", version="v1") == 1
    finally:
        srv.stop()


def test_workers_capture_every_row_exactly_once(registry_root: Path, tmp_path: Path) -> None:
    capture = tmp_path / "capture"
    srv = Server(
        tmp_path, "--registry", str(registry_root), "--model", MODEL, "--workers", "2",
        "--metrics-dir", str(tmp_path / "prom"), "--capture", str(capture),
    )  # fmt: skip
    try:
        srv.wait_ready()

        def send(i: int) -> tuple[str, int]:
            body = {"instances": [valid_row()] * (1 + i % 3)}
            r = srv.v1(body, headers={**JSON, "x-request-id": f"w{i}"})
            assert r.status_code == 200
            return r.json()["id"], 1 + i % 3

        def files() -> list[Path]:
            return list(capture.glob(f"{MODEL}/*/*.jsonl"))

        def writer_pids() -> set[str]:  # <HH>-<pid>-<seq>.jsonl
            return {f.name.split("-")[1] for f in files()}

        rows = _until_both_workers_served(send, writer_pids, "capture")
        sent = {f"{rid}:{row}" for rid, n in rows for row in range(n)}

        def captured() -> list[str]:
            return [json.loads(x)["id"] for f in files() for x in f.read_text().splitlines()]

        # Each worker's writer thread flushes after the answers: wait until every row is there.
        wait_for(lambda: len(captured()) >= len(sent), 60, f"{len(sent)} captured rows")
        assert sorted(captured()) == sorted(sent)  # each row once: none lost, none twice

        def records_counted() -> bool:
            return sample_value(srv.metrics(), "kfops_capture_records_total") == len(sent)

        # Counted just after each write, in the writer thread: wait for that too.
        wait_for(records_counted, 30, f"kfops_capture_records_total == {len(sent)}")
        assert sample_value(srv.metrics(), "kfops_capture_dropped_total") == 0
    finally:
        srv.stop()


# --- startup errors ------------------------------------------------------------------------------


def run_server(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kfops.serving", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def test_port_in_use_is_a_clear_error(registry_root: Path, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen()
        port = sock.getsockname()[1]
        out = run_server(
            tmp_path, "--registry", str(registry_root), "--model", MODEL, "--port", str(port)
        )
    assert out.returncode == 2
    assert f"port {port} is already in use" in out.stderr


def test_tampered_unknown_alias_and_missing_contract(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    registry = make_registry(root)
    port = str(free_port())
    out = run_server(
        tmp_path, "--registry", str(root), "--model", MODEL, "--version", "nope", "--port", port
    )
    assert out.returncode == 2 and "unknown version or alias 'nope'" in out.stderr
    mv = register_version(root, without=("contract.json",))
    out = run_server(tmp_path, "--model-dir", str(mv.path), "--port", port)
    assert out.returncode == 2 and "contract.json" in out.stderr
    tamper(registry.resolve(MODEL, "v1").path)
    out = run_server(tmp_path, "--registry", str(root), "--model", MODEL, "--port", port)
    assert out.returncode == 2 and "verification failed: model.joblib" in out.stderr


# --- the training file's own rows; the ONNX twin and the sklearn pipeline (issues 11, 12) --------


def _start(tmp: Path, *args: str) -> Server:
    srv = Server(tmp, *args)
    try:
        srv.wait_ready()
    except BaseException:
        srv.stop()
        raise
    return srv


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and math.isnan(value) else value


def test_rows_of_the_training_file_as_written_all_get_200(
    registry_root: Path, tmp_path: Path
) -> None:
    """Defaults (runtime auto, categories not strict): every row of the training CSV, as the
    csv module reads it (all strings, "NA" included) and as pandas reads it, with the target."""
    import csv

    import pandas as pd

    from kfops.datasets import default_data_path

    path = default_data_path()
    with open(path, newline="") as fh:
        as_written = list(csv.DictReader(fh))
    as_pandas = [{k: _plain(v) for k, v in r.items()} for r in pd.read_csv(path).to_dict("records")]
    assert any("NA" in r.values() for r in as_written)  # the file has NA cells
    srv = _start(tmp_path, "--registry", str(registry_root), "--model", MODEL, "--no-drift")
    try:
        for rows in (as_written, as_pandas):
            codes = Counter(srv.v1({"instances": [row]}).status_code for row in rows)
            assert codes == Counter({200: len(rows)}), codes
        before = srv.metrics()
        unseen = {**as_written[0], "island": "Atlantis"}
        r = srv.v1({"instances": [unseen, unseen]})
        assert r.status_code == 200, r.text
        text = srv.metrics()
        labels = {"model": MODEL, "feature": "island"}
        counted = sample_value(text, "kfops_unseen_category_total", **labels)
        assert counted - sample_value(before, "kfops_unseen_category_total", **labels) == 2
        assert sample_value(text, "kfops_model_info", version="v1", runtime="onnx") == 1
        assert "with the onnx runtime (its verified ONNX twin)" in srv.output()
    finally:
        srv.stop()


def test_onnx_and_sklearn_runtimes_agree_on_the_held_out_split(
    registry_root: Path, tmp_path: Path
) -> None:
    from kfops.contract_model import Contract
    from kfops.features import split
    from kfops.twin.verify import PROBA_TOLERANCE
    from tests.unit.test_serving_fixtures import penguins

    version = Registry(registry_root).resolve(MODEL, "v1")
    contract = Contract.load(version.path / "contract.json")
    _, held_out = split(penguins(), contract, test_size=0.2, seed=7)
    rows = [
        {name: _plain(row[name]) for name in contract.feature_names}
        for _, row in held_out.iterrows()
    ]
    answers = {}
    for runtime in ("onnx", "sklearn"):
        srv = _start(
            tmp_path, "--registry", str(registry_root), "--model", MODEL, "--runtime", runtime,
            "--no-drift",
        )  # fmt: skip
        try:
            r = srv.v1({"instances": rows, "parameters": {"probabilities": True}})
            assert r.status_code == 200, r.text
            answers[runtime] = r.json()
            text = srv.metrics()
            assert sample_value(text, "kfops_model_info", version="v1", runtime=runtime) == 1
            assert f"with the {runtime} runtime" in srv.output()
        finally:
            srv.stop()
    onnx, sklearn = answers["onnx"], answers["sklearn"]
    assert len(onnx["predictions"]) == len(rows) > 20
    assert onnx["predictions"] == sklearn["predictions"]
    atol, rtol = PROBA_TOLERANCE
    for a, b in zip(onnx["probabilities"], sklearn["probabilities"], strict=True):
        assert a.keys() == b.keys()
        for cls in a:
            assert math.isclose(a[cls], b[cls], rel_tol=rtol, abs_tol=atol), (cls, a, b)


def test_runtime_onnx_refuses_a_version_without_a_verified_twin(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    version = register_version(root, aliases=("champion",), twin=False)
    port = str(free_port())
    out = run_server(
        tmp_path, "--registry", str(root), "--model", MODEL, "--runtime", "onnx", "--port", port
    )
    assert out.returncode == 2
    assert "no verified ONNX twin to serve with --runtime onnx" in out.stderr
    assert str(version.path) in out.stderr


def test_corrupt_or_missing_twin_is_not_ready_naming_the_file(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    registry = make_registry(root)
    path = registry.resolve(MODEL, "v1").path
    port = str(free_port())
    tamper(path, "model.onnx")
    out = run_server(tmp_path, "--registry", str(root), "--model", MODEL, "--port", port)
    assert out.returncode == 2 and "verification failed: model.onnx" in out.stderr
    (path / "model.onnx").unlink()
    out = run_server(tmp_path, "--registry", str(root), "--model", MODEL, "--port", port)
    assert out.returncode == 2 and "model.onnx" in out.stderr
