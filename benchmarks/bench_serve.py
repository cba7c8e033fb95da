"""Serving benchmark: kfops (ONNX twin, sklearn) vs a bare kserve.Model vs MLServer, one run.

    make bench-serve  (= .venv/bin/python benchmarks/bench_serve.py [--requests N] [--rounds 5]
                       [--no-mlserver])

Each server runs alone in its own process pinned to CPU 0 with `taskset -c 0` (the load
generator, an aiohttp client with keep-alive connections, runs on CPU 1), against 127.0.0.1
only, with bounded request counts. All serve the same registered penguins version (logistic
regression; its verified ONNX twin, `model.onnx`, and `explainer.json` made as the pipeline's
train and register steps make them). Servers (`SERVERS`, one entry each; each endpoint of a
server is one row of the table):
  - bare: a minimal kserve.Model (DataFrame from rows -> the version's model.joblib predict)
    under the same ModelServer settings as kfops (one worker, no gRPC, no latency log, quiet
    access log, per-request warnings off);
  - kfops (ONNX): `kfops serve --runtime onnx` with validation, metrics, drift and payload
    capture on (every request captured);
  - kfops (sklearn): `kfops serve --runtime sklearn`, the same otherwise. A kfops without the
    `--runtime` flag (before the ONNX serving path is merged) is detected: the ONNX side is
    left out, said so in the output, and the sklearn side runs plain `kfops serve`;
  - MLServer 1.7.1 + mlserver-sklearn in its own venv (.bench/mlserver-venv, created here; it
    cannot share kserve 0.21's environment), parallel_workers=0, pandas codec (the model takes
    named columns), V2 only;
  - kfops :explain, linear and tree ensemble: `kfops serve` of the logistic regression and of a
    100-tree random forest of the same data, measured on `:explain` only (own processes, so the
    predict servers' memory does not include shap).
Scenarios (`SCENARIOS`, one entry each; each is a group of columns): single-row requests at 1
and 8 concurrent connections (req/s, p50, p99), 100-row batches at 1 connection (rows/s), and
one-row `:explain` at 1 connection (req/s, p50, p99). Resident memory (RSS, with children) of
each server after its last run. The issue-12 goals are printed beside the figures with a
verdict each (kfops ONNX >= 5x bare kserve single-row at 1 connection, p99 < 2 ms, >= 10x
rows/s on 100-row batches).

Protocol (printed first): every endpoint runs every scenario with the same untimed warm-up
requests and the same timed request count, in --rounds rounds whose endpoint order alternates;
figures are medians over the rounds. After each run the benchmark waits until the server is idle
again, so background work (kfops' capture writer and drift thread) is not billed to the next
server; for a server that captures payloads it then reads the capture back and prints rows sent
vs captured vs dropped (kfops_capture_dropped_total), and exits non-zero if any row was lost
without being counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from _protocol import Protocol

REPO = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO / ".bench"
MLSERVER_VENV = BENCH_DIR / "mlserver-venv"
MLSERVER_PINS = [
    "mlserver==1.7.1",
    "mlserver-sklearn==1.7.1",
    "uvloop<0.22",  # 0.23 breaks MLServer's worker start ("no current event loop")
    "httptools",
]
MODEL = "penguins"
FOREST = "penguins-forest"  # the tree ensemble explained
SERVER_CPU, CLIENT_CPU = {0}, {1}
PIN = True
# Goals of issue 12 for kfops (ONNX) against the bare kserve.Model, from the median figures.
GOAL_SINGLE_ROW_SPEEDUP = 5.0  # req/s, single row, 1 connection
GOAL_P99_MS = 2.0  # single row, 1 connection
GOAL_BATCH_SPEEDUP = 10.0  # rows/s, 100-row batches


# --- model ----------------------------------------------------------------------------------------


def register_model(root: Path, name: str, estimator: str | None = None) -> tuple[Path, str]:
    """Train and register one penguins version as the pipeline's train and register steps do
    (model, contract, profile, explainer.json, and model.onnx when its twin verifies); returns
    the version dir and the twin's one-line verdict."""
    from kfops.contract import infer_contract
    from kfops.datasets import default_data_path
    from kfops.drift import build_reference_profile
    from kfops.explain.contributions import EXPLAINER_FILE, write_explainer_file
    from kfops.registry import Registry
    from kfops.training import save_model, train
    from kfops.twin import Twin, TwinRecord, convert
    from kfops.twin.record import TWIN_FILE, judge

    df = pd.read_csv(default_data_path())
    contract = infer_contract(df, "species", "classification")
    files = root / f"files-{name}"
    files.mkdir(parents=True)
    model = train(df, contract, estimator=estimator)
    save_model(model, files / "model.joblib")
    contract.save(files / "contract.json")
    build_reference_profile(df, contract).save(files / "reference_profile.json")
    write_explainer_file(files / EXPLAINER_FILE, model, df)
    converted = convert(model, contract)
    names = ["model.joblib", "contract.json", "reference_profile.json", EXPLAINER_FILE]
    record = TwinRecord.from_conversion(converted.to_dict())
    if isinstance(converted, Twin):
        (files / TWIN_FILE).write_bytes(converted.onnx)
        # The benchmark has no held-out split: the twin is compared on every row.
        record = judge(record, model, files / TWIN_FILE, df, contract)
        if record.verified:
            names.append(TWIN_FILE)
    mv = Registry(root / "registry").register(
        name, {n: files / n for n in names}, {"benchmark": True, "twin": record.to_dict()},
        aliases=["champion"],
    )  # fmt: skip
    return mv.path, record.summary()


def make_model(root: Path) -> tuple[Path, list[str], list[dict[str, Any]]]:
    """Register the served model (and the forest that is only explained); returns the served
    version dir, feature names, sample rows."""
    from kfops.contract import infer_contract
    from kfops.datasets import default_data_path

    path, twin = register_model(root, MODEL)
    # (The benchmark's "held-out rows" are every row of the data: it has no split.)
    print(f"{MODEL} (logistic regression) onnx twin: {twin}", flush=True)
    _, twin = register_model(root, FOREST, "random_forest")
    print(f"{FOREST} (100-tree random forest, explained only): onnx twin {twin}", flush=True)
    df = pd.read_csv(default_data_path())
    names = infer_contract(df, "species", "classification").feature_names
    sample = df[names].dropna().head(100)
    rows = [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
        for r in sample.to_dict("records")
    ]
    return path, names, rows


# --- servers -----------------------------------------------------------------------------------

BARE_SERVER = textwrap.dedent(
    """
    import sys, warnings, joblib, pandas as pd
    sys.argv = sys.argv[:1]
    warnings.filterwarnings("ignore")  # fastapi warns on every request otherwise
    import kserve
    from kfops.serving.server import quiet_logging

    class Bare(kserve.Model):
        def __init__(self, name, path, names):
            super().__init__(name)
            self.path, self.names = path, names
        def load(self):
            self.model = joblib.load(self.path)
            self.ready = True
            return True
        def predict(self, payload, headers=None):
            # Column lists -> DataFrame: the cheapest frame construction (same as kfops).
            X = pd.DataFrame(dict(zip(self.names, map(list, zip(*payload["instances"])))))
            return {"predictions": self.model.predict(X).tolist()}

    path, names, port = sys.argv_saved[1], sys.argv_saved[2].split(","), int(sys.argv_saved[3])
    quiet_logging()
    m = Bare("penguins", path, names)
    m.load()
    kserve.ModelServer(http_port=port, enable_grpc=False, enable_latency_logging=False).start([m])
    """
)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    def __init__(
        self,
        name: str,
        cmd: list[str],
        port: int,
        ready_path: str,
        log: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name, self.port, self.ready_path = name, port, ready_path
        self.log = log
        if PIN:  # one core for the server (and any process it starts)
            cmd = ["taskset", "-c", ",".join(map(str, sorted(SERVER_CPU))), *cmd]
        self.proc = subprocess.Popen(
            cmd,
            stdout=open(log, "wb"),  # noqa: SIM115 - the child owns it
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )

    def rss_mb(self) -> float:
        """Resident memory of the server and its children, MB."""
        import psutil

        proc = psutil.Process(self.proc.pid)
        return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 1e6

    def wait_ready(self, timeout: float = 180.0) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.port}{self.ready_path}", timeout=1
                ):
                    return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(
            f"{self.name} not ready after {timeout}s: {self.log.read_text()[-2000:]}"
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def ensure_mlserver_venv() -> Path:
    python = MLSERVER_VENV / "bin" / "python"
    marker = MLSERVER_VENV / ".kfops-ready"
    if marker.exists():
        return python
    print(f"creating {MLSERVER_VENV} (MLServer cannot share kserve's environment) ...", flush=True)
    shutil.rmtree(MLSERVER_VENV, ignore_errors=True)
    BENCH_DIR.mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(MLSERVER_VENV)], check=True)
    # The model pickles kfops.features functions: install kfops (no deps) plus the exact
    # numpy/pandas/scikit-learn of the main venv so the pickle loads identically.
    pins = [
        p
        for p in (REPO / "constraints.txt").read_text().splitlines()
        if p.split("==")[0].strip().lower() in {"numpy", "pandas", "scikit-learn", "scipy"}
    ]
    log = BENCH_DIR / "mlserver-install.log"
    with open(log, "wb") as out:
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *MLSERVER_PINS, *pins],
            check=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--no-deps", str(REPO)],
            check=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    marker.write_text("ok\n")
    return python


# --- the servers and what the table shows --------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """What every server is started from: one trained, registered penguins model."""

    work: Path
    version_dir: Path
    names: list[str]
    rows: list[dict[str, Any]]

    def capture_dir(self, server: str) -> Path:
        return self.work / f"capture-{server}"


def bare_command(setup: Setup, key: str, port: int) -> list[str]:
    code = "import sys; sys.argv_saved = list(sys.argv); " + BARE_SERVER
    model, names = str(setup.version_dir / "model.joblib"), ",".join(setup.names)
    return [sys.executable, "-c", code, model, names, str(port)]


def runtime_flag() -> bool:
    """True when this kfops has `kfops serve --runtime {auto,onnx,sklearn}`."""
    out = subprocess.run(
        [sys.executable, "-m", "kfops", "serve", "--help"], capture_output=True, text=True
    )
    return "--runtime" in out.stdout


RUNTIME_FLAG = False  # set by main(): runtime_flag()
NO_RUNTIME_FLAG = (
    "kfops (ONNX) not measured: this kfops has no `kfops serve --runtime` flag yet (the ONNX "
    "serving path is not merged); the kfops (sklearn) side runs plain `kfops serve`"
)


def kfops_command(
    *flags: str, model: str = MODEL, runtime: str | None = None
) -> Callable[[Setup, str, int], list[str]]:
    """`kfops serve` capturing every request, plus ``flags`` (a variant); ``--runtime`` when
    this kfops has it."""

    def command(setup: Setup, key: str, port: int) -> list[str]:
        chosen = ["--runtime", runtime] if runtime and RUNTIME_FLAG else []
        return [
            sys.executable, "-m", "kfops", "serve", "--registry", str(setup.work / "registry"),
            "--name", model, "--port", str(port), *chosen,
            "--capture", str(setup.capture_dir(key)), "--capture-sample-rate", "1", *flags,
        ]  # fmt: skip

    return command


def mlserver_command(setup: Setup, key: str, port: int) -> list[str]:
    python = ensure_mlserver_venv()
    folder = setup.work / "mlserver"
    model_dir = folder / MODEL
    model_dir.mkdir(parents=True)
    shutil.copy(setup.version_dir / "model.joblib", model_dir / "model.joblib")
    settings = {
        "name": MODEL,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib"},
    }
    (model_dir / "model-settings.json").write_text(json.dumps(settings))
    server = {
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "parallel_workers": 0,
        "host": "127.0.0.1",
    }
    (folder / "settings.json").write_text(json.dumps(server))
    return [str(python.parent / "mlserver"), "start", str(folder)]


def v1_body(names: list[str], rows: list[dict[str, Any]]) -> bytes:
    return json.dumps({"instances": [[r[k] for k in names] for r in rows]}).encode()


def v2_body(names: list[str], rows: list[dict[str, Any]], pandas_codec: bool = False) -> bytes:
    inputs = []
    for k in names:
        values = [r[k] for r in rows]
        datatype = "BYTES" if isinstance(values[0], str) else "FP64"
        inputs.append({"name": k, "shape": [len(rows)], "datatype": datatype, "data": values})
    body: dict[str, Any] = {"inputs": inputs}
    if pandas_codec:
        body["parameters"] = {"content_type": "pd"}
    return json.dumps(body).encode()


@dataclass(frozen=True)
class Wire:
    """A request protocol: the path of each verb ({model}: the served name) and how a body is
    made from rows."""

    paths: dict[str, str]  # verb -> path; a verb a protocol lacks shows as n/a
    body: Callable[[list[str], list[dict[str, Any]]], bytes]


WIRES = {
    "v1": Wire({"predict": "/v1/models/{model}:predict"}, v1_body),
    "v1-explain": Wire({"explain": "/v1/models/{model}:explain"}, v1_body),
    "v2": Wire({"predict": "/v2/models/{model}/infer"}, v2_body),
    "v2-pandas": Wire(
        {"predict": "/v2/models/{model}/infer"}, lambda n, r: v2_body(n, r, pandas_codec=True)
    ),
}


@dataclass(frozen=True)
class Endpoint:
    label: str  # the row's name in the table
    wire: str  # key of WIRES
    model: str = MODEL


@dataclass(frozen=True)
class Server:
    """One server process under test. A new variant is one more entry in SERVERS."""

    key: str
    command: Callable[[Setup, str, int], list[str]]  # (setup, key, port) -> argv that serves
    ready_path: str
    endpoints: tuple[Endpoint, ...]
    captures: bool = False  # writes payload capture to setup.capture_dir(key): check it
    optional: str = ""  # a --no-<optional> flag leaves it out
    needs_runtime_flag: bool = False  # left out (and said so) without `kfops serve --runtime`


SERVERS = (
    Server(
        "bare", bare_command, f"/v1/models/{MODEL}", (Endpoint("bare kserve.Model (V1)", "v1"),)
    ),
    Server(
        "kfops-onnx",
        kfops_command(runtime="onnx"),
        f"/v1/models/{MODEL}",
        (Endpoint("kfops (ONNX) V1, validation, metrics, drift, capture on", "v1"),),
        captures=True,
        needs_runtime_flag=True,
    ),
    Server(
        "kfops-sklearn",
        kfops_command(runtime="sklearn"),
        f"/v1/models/{MODEL}",
        (Endpoint("kfops (sklearn) V1, the same", "v1"),),
        captures=True,
    ),
    Server(
        "mlserver",
        mlserver_command,
        f"/v2/models/{MODEL}/ready",
        (Endpoint("MLServer 1.7.1 sklearn V2 (pandas codec)", "v2-pandas"),),
        optional="mlserver",
    ),
    Server(
        "explain-linear",
        kfops_command(runtime="sklearn"),
        f"/v1/models/{MODEL}",
        (Endpoint("kfops :explain, logistic regression (linear)", "v1-explain"),),
    ),
    Server(
        "explain-tree",
        kfops_command(model=FOREST, runtime="sklearn"),
        f"/v1/models/{FOREST}",
        (Endpoint("kfops :explain, 100-tree random forest", "v1-explain", FOREST),),
    ),
)


@dataclass(frozen=True)
class Scenario:
    """One group of table columns. A new column is one more entry in SCENARIOS."""

    key: str
    title: str
    rows: int  # rows per request
    connections: int
    share: float  # timed requests = share x --requests (at least `least`)
    warmup: int  # untimed requests first
    unit: str  # "req/s" or "rows/s" (requests x rows)
    verb: str = "predict"
    least: int = 50

    def requests(self, n: int) -> int:
        return max(self.least, int(n * self.share))


SCENARIOS = (
    Scenario("c1", "1 conn", rows=1, connections=1, share=1.0, warmup=50, unit="req/s"),
    Scenario("c8", "8 conn", rows=1, connections=8, share=2.0, warmup=50, unit="req/s"),
    Scenario("b100", "100-row batch", rows=100, connections=1, share=0.2, warmup=10, unit="rows/s"),
    # The first :explain builds the explainer (imports shap): the warm-up pays for it.
    Scenario(
        "x1",
        ":explain 1 row",
        rows=1,
        connections=1,
        share=0.4,
        warmup=20,
        unit="req/s",
        verb="explain",
    ),
)


# --- load generator ----------------------------------------------------------------------------


async def _load(url: str, bodies: list[bytes], concurrency: int) -> tuple[float, list[float], int]:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    queue = list(reversed(bodies))
    headers = {"content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal errors
            while queue:
                body = queue.pop()
                start = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start, latencies, errors


def run_load(url: str, body: bytes, n: int, concurrency: int, warmup: int) -> dict[str, float]:
    for count in (warmup, n):  # the last pass is the timed one
        elapsed, lat, errors = asyncio.run(_load(url, [body] * count, concurrency))
        if errors:
            raise RuntimeError(f"{errors} of {count} requests to {url} failed")
    q = statistics.quantiles(lat, n=100)
    return {"rps": n / elapsed, "p50_ms": q[49] * 1000, "p99_ms": q[98] * 1000}


def measure(base: str, endpoint: Endpoint, setup: Setup, n: int) -> tuple[dict[str, Any], int]:
    """Every scenario against one endpoint; returns (figures, rows sent including warm-up)."""
    wire = WIRES[endpoint.wire]
    result: dict[str, Any] = {}
    sent = 0
    for sc in SCENARIOS:
        path = wire.paths.get(sc.verb)
        if path is None:
            continue
        body = wire.body(setup.names, setup.rows[: sc.rows])
        url = base + path.format(model=endpoint.model)
        r = run_load(url, body, sc.requests(n), sc.connections, sc.warmup)
        if sc.verb == "predict":  # what payload capture must account for
            sent += (sc.warmup + sc.requests(n)) * sc.rows
        rate = r["rps"] * (sc.rows if sc.unit == "rows/s" else 1)
        result[sc.key] = {"rate": rate, "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"]}
    brief = {k: round(v["rate"]) for k, v in result.items()}
    print(f"  {endpoint.label}: {json.dumps(brief)}", flush=True)
    return result, sent


# --- after each run: idle server, capture accounted for ----------------------------------------


def settle(pid: int, timeout: float = 15.0, busy: float = 0.05) -> bool:
    """Wait until the server process (and children) uses under ``busy`` of a core for 0.25 s."""
    import psutil  # a kserve dependency, pinned in constraints.txt

    def cpu() -> float:
        proc = psutil.Process(pid)
        total = 0.0
        for p in [proc, *proc.children(recursive=True)]:
            t = p.cpu_times()
            total += t.user + t.system
        return total

    deadline = time.monotonic() + timeout
    last = cpu()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = cpu()
        if now - last < busy * 0.25:
            return True
        last = now
    return False


def capture_metrics(port: int) -> tuple[float, float]:
    """(rows written, rows dropped) of MODEL from the server's own /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    got = {"kfops_capture_records_total": 0.0, "kfops_capture_dropped_total": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in got and sample.labels.get("model") == MODEL:
                got[sample.name] += sample.value
    return got["kfops_capture_records_total"], got["kfops_capture_dropped_total"]


def check_capture(port: int, capture: Path, sent: int, since: float) -> dict[str, Any]:
    """Wait (bounded) until every sent row is written or counted as dropped, then read the
    capture back as `kfops monitor` does. Exits non-zero when a row is lost silently."""
    from kfops.monitoring import read_capture

    deadline = time.monotonic() + 30.0
    written, dropped = capture_metrics(port)
    while written + dropped < sent and time.monotonic() < deadline:
        time.sleep(0.2)
        written, dropped = capture_metrics(port)
    window = read_capture(capture, MODEL, start=since - 60, end=time.time() + 60)
    captured = window.rows
    distinct = int(window.meta["id"].nunique()) if captured else 0
    lost = sent - captured - int(dropped)
    line = (
        f"    capture: sent {sent} rows, captured {captured} (read back, {distinct} distinct ids, "
        f"{window.malformed} malformed), written metric {written:.0f}, dropped {dropped:.0f} "
        f"(kfops_capture_dropped_total), lost {lost}"
    )
    print(line, flush=True)
    if lost or captured != written or distinct != captured or window.malformed:
        raise SystemExit(
            f"payload capture lost or garbled rows without counting them:\n{line}\n"
            "(sent = captured + dropped must hold, every captured row once)"
        )
    return {"sent": sent, "captured": captured, "dropped": int(dropped)}


# --- report ------------------------------------------------------------------------------------


def table(results: dict[str, dict[str, Any]], rss: dict[str, float]) -> str:
    """Predict scenarios (rate, p50, p99), the explain scenario, and RSS per row; a figure a
    row does not have (a verb its server lacks) is n/a."""
    head = "| server |"
    rule = "| --- |"
    for sc in SCENARIOS:
        head += f" {sc.title} {sc.unit} | p50 ms | p99 ms |"
        rule += " ---: | ---: | ---: |"
    head += " RSS MB |"
    rule += " ---: |"
    lines = [head, rule]
    for label, r in results.items():
        cells = []
        for sc in SCENARIOS:
            v = r.get(sc.key)
            cells += (
                [f"{v['rate']:.0f}", f"{v['p50_ms']:.2f}", f"{v['p99_ms']:.2f}"]
                if v
                else ["n/a"] * 3
            )
        cells.append(f"{rss[label]:.0f}" if label in rss else "n/a")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def goals(results: dict[str, dict[str, Any]], onnx: str, bare: str) -> list[str]:
    """The issue-12 goals beside the figures (medians), each with met / MISSED."""
    if onnx not in results:
        return [f"goals not checked: {NO_RUNTIME_FLAG}"]
    o, b = results[onnx], results[bare]
    single = o["c1"]["rate"] / b["c1"]["rate"]
    batch = o["b100"]["rate"] / b["b100"]["rate"]
    p99 = o["c1"]["p99_ms"]
    checks = [
        (f"single-row req/s at 1 connection >= {GOAL_SINGLE_ROW_SPEEDUP:g}x bare kserve",
         f"{single:.1f}x ({o['c1']['rate']:.0f} vs {b['c1']['rate']:.0f} req/s)",
         single >= GOAL_SINGLE_ROW_SPEEDUP),
        (f"single-row p99 at 1 connection < {GOAL_P99_MS:g} ms", f"{p99:.2f} ms",
         p99 < GOAL_P99_MS),
        (f"100-row batch rows/s >= {GOAL_BATCH_SPEEDUP:g}x bare kserve",
         f"{batch:.1f}x ({o['b100']['rate']:.0f} vs {b['b100']['rate']:.0f} rows/s)",
         batch >= GOAL_BATCH_SPEEDUP),
    ]  # fmt: skip
    return [
        f"goal: {what}: measured {got}: {'met' if ok else 'MISSED'}" for what, got, ok in checks
    ]


def combine(runs: list[dict[str, Any]], pick: str) -> dict[str, Any]:
    """Per scenario and figure: the median over rounds, or the best round ('best': highest
    rate, lowest latency, the least disturbed run)."""
    out: dict[str, Any] = {}
    for sc in SCENARIOS:
        if sc.key not in runs[0]:
            continue
        figures = {}
        for fig in ("rate", "p50_ms", "p99_ms"):
            values = [r[sc.key][fig] for r in runs]
            if pick == "median":
                figures[fig] = statistics.median(values)
            else:
                figures[fig] = max(values) if fig == "rate" else min(values)
        out[sc.key] = figures
    return out


def ratios(results: dict[str, dict[str, Any]]) -> list[str]:
    (base_label, base), *others = results.items()
    lines = []
    for label, r in others:
        parts = [
            f"{100 * r[sc.key]['rate'] / base[sc.key]['rate']:.0f}% at {sc.title}"
            for sc in SCENARIOS
            if sc.key in r and sc.key in base
        ]
        if parts:
            lines.append(f"{label}: " + ", ".join(parts) + f" of {base_label}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=500, help="single-row requests per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (endpoint order alternates)")
    for name in sorted({s.optional for s in SERVERS if s.optional}):
        parser.add_argument(f"--no-{name}", action="store_true", help=f"leave out {name}")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server/client CPUs")
    parser.add_argument("--out", default=None, help="JSON results (default build/bench/)")
    args = parser.parse_args()
    global PIN, RUNTIME_FLAG
    PIN = not args.no_pin and len(os.sched_getaffinity(0)) >= 2
    if PIN:
        os.sched_setaffinity(0, CLIENT_CPU)
    RUNTIME_FLAG = runtime_flag()
    notes: list[str] = []
    if not RUNTIME_FLAG:
        notes.append(NO_RUNTIME_FLAG)
    servers = [
        s
        for s in SERVERS
        if not (s.optional and getattr(args, f"no_{s.optional}"))
        and (RUNTIME_FLAG or not s.needs_runtime_flag)
    ]
    if "mlserver" in {s.key for s in servers}:
        try:
            ensure_mlserver_venv()
        except (subprocess.CalledProcessError, OSError) as exc:
            log = BENCH_DIR / "mlserver-install.log"
            tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
            notes.append(
                f"MLServer not measured: it could not be installed in {MLSERVER_VENV} ({exc}); "
                f"last lines of {log}: {' / '.join(tail)}"
            )
            servers = [s for s in servers if s.key != "mlserver"]
    for note in notes:
        print(f"note: {note}", flush=True)
    rows_ = [(s, e) for s in servers for e in s.endpoints]
    protocol = Protocol(
        sides=tuple(e.label for _, e in rows_),
        rounds=args.rounds,
        warmup=0,
        warmup_text="untimed warm-up requests before every timed run ("
        + ", ".join(f"{sc.title}: {sc.warmup}" for sc in SCENARIOS)
        + ")",
        work="the same penguins model and rows; timed requests per run "
        f"({', '.join(f'{sc.title}: {sc.requests(args.requests)}' for sc in SCENARIOS)}); "
        "the server just measured goes idle before the next run",
        summary="figures are medians over the rounds; a second table takes each figure's "
        "best round",
        parallelism="each server one process pinned to CPU 0 (taskset -c 0), the load "
        "generator on CPU 1"
        if PIN
        else "not pinned (--no-pin or a single CPU)",
    )
    print(protocol.header(), flush=True)

    work = Path(tempfile.mkdtemp(prefix="kfops-bench-serve-"))
    procs: dict[str, Proc] = {}
    runs: dict[str, list[dict[str, Any]]] = {e.label: [] for _, e in rows_}
    sent: dict[str, int] = {s.key: 0 for s in servers}
    captures: list[dict[str, Any]] = []
    rss: dict[str, float] = {}
    since = time.time()
    try:
        version_dir, names, sample = make_model(work)
        setup = Setup(work, version_dir, names, sample)
        for s in servers:
            port = free_port()
            procs[s.key] = Proc(
                s.key, s.command(setup, s.key, port), port, s.ready_path, work / f"{s.key}.log"
            )
        for proc in procs.values():
            proc.wait_ready()
        for i in range(args.rounds):
            print(f"round {i + 1}/{args.rounds}", flush=True)
            for server, endpoint in protocol.order(i, rows_):
                proc = procs[server.key]
                result, rows_sent = measure(
                    f"http://127.0.0.1:{proc.port}", endpoint, setup, args.requests
                )
                runs[endpoint.label].append(result)
                sent[server.key] += rows_sent
                if not settle(proc.proc.pid):
                    print(f"    warning: {server.key} still busy 15 s after its run", flush=True)
                rss[endpoint.label] = proc.rss_mb()  # the last: after all of its runs
                if server.captures:
                    check = check_capture(
                        proc.port, setup.capture_dir(server.key), sent[server.key], since
                    )
                    captures.append({"server": server.key, "round": i + 1, **check})
    finally:
        for proc in procs.values():
            proc.stop()
        shutil.rmtree(work, ignore_errors=True)

    medians = {label: combine(r, "median") for label, r in runs.items()}
    best = {label: combine(r, "best") for label, r in runs.items()}
    for title, results in (
        (f"median of {args.rounds} rounds", medians),
        (f"best of {args.rounds} rounds", best),
    ):
        print(f"\n{title}:\n")
        print(table(results, rss))
        print()
        print("\n".join(ratios(results)))
    label = {s.key: s.endpoints[0].label for s in SERVERS}
    print()
    print("\n".join(goals(medians, label["kfops-onnx"], label["bare"])))
    for note in notes:
        print(f"note: {note}")
    print()
    for s in servers:
        if s.captures:
            last = [c for c in captures if c["server"] == s.key][-1]
            print(
                f"{s.key} payload capture over the whole run: sent {last['sent']} rows, "
                f"captured {last['captured']}, dropped {last['dropped']} (counted), lost 0"
            )
    out = Path(args.out or REPO / "build" / "bench" / f"serve{'' if PIN else '-unpinned'}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "protocol": protocol.header(),
        "median": medians,
        "rss_mb": rss,
        "goals": goals(medians, label["kfops-onnx"], label["bare"]),
        "notes": notes,
        "runs": runs,
        "capture": captures,
        "cpus": os.cpu_count(),
        "requests": args.requests,
        "rounds": args.rounds,
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
