"""Serving benchmark: kfops predictor vs a bare kserve.Model vs MLServer, same model, one run.

    make bench-serve  (= .venv/bin/python benchmarks/bench_serve.py [--requests N] [--no-mlserver])

Each server runs alone in its own process pinned to CPU 0 (the load generator, an aiohttp client
with keep-alive connections, runs on CPU 1), against 127.0.0.1 only, with bounded request counts:
  - kfops: `python -m kfops.serving` with validation, metrics, drift and payload capture on;
  - bare: a minimal kserve.Model (DataFrame from rows -> predict) under the same ModelServer
    settings (one worker, no gRPC, no latency log, quiet access log, per-request warnings off);
  - MLServer 1.7.1 + mlserver-sklearn in its own venv (.bench/mlserver-venv, created here; it
    cannot share kserve 0.21's environment), parallel_workers=0, pandas codec (the model takes
    named columns).
Scenarios: single-row requests at 1 and 8 concurrent connections (req/s, p50, p99), and 100-row
batches at 1 connection (rows/s). kfops and bare use V1 rows; kfops V2 is measured too, as
MLServer speaks V2 only.
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
from pathlib import Path
from typing import Any

import pandas as pd

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
SERVER_CPU, CLIENT_CPU = {0}, {1}
PIN = True


# --- model ----------------------------------------------------------------------------------------


def make_model(root: Path) -> tuple[Path, list[str], list[dict[str, Any]]]:
    """Train and register the penguins model; returns version dir, feature names, sample rows."""
    from kfops.contract import infer_contract
    from kfops.datasets import default_data_path
    from kfops.drift import build_reference_profile
    from kfops.registry import Registry
    from kfops.training import save_model, train

    df = pd.read_csv(default_data_path())
    contract = infer_contract(df, "species", "classification")
    files = root / "files"
    files.mkdir(parents=True)
    save_model(train(df, contract), files / "model.joblib")
    contract.save(files / "contract.json")
    build_reference_profile(df, contract).save(files / "reference_profile.json")
    mv = Registry(root / "registry").register(
        MODEL,
        {n: files / n for n in ("model.joblib", "contract.json", "reference_profile.json")},
        {"benchmark": True},
        aliases=["champion"],
    )
    names = contract.feature_names
    sample = df[names].dropna().head(100)
    rows = [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
        for r in sample.to_dict("records")
    ]
    return mv.path, names, rows


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
        self.proc = subprocess.Popen(
            cmd,
            stdout=open(log, "wb"),  # noqa: SIM115 - the child owns it
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            preexec_fn=(lambda: os.sched_setaffinity(0, SERVER_CPU)) if PIN else None,
        )

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


def start_mlserver(version_dir: Path, work: Path) -> Proc:
    python = ensure_mlserver_venv()
    folder = work / "mlserver"
    model_dir = folder / MODEL
    model_dir.mkdir(parents=True)
    shutil.copy(version_dir / "model.joblib", model_dir / "model.joblib")
    (model_dir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": MODEL,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib"},
            }
        )
    )
    port = free_port()
    (folder / "settings.json").write_text(
        json.dumps(
            {
                "http_port": port,
                "grpc_port": free_port(),
                "metrics_port": free_port(),
                "parallel_workers": 0,
                "host": "127.0.0.1",
            }
        )
    )
    mlserver = str(python.parent / "mlserver")
    return Proc(
        "mlserver",
        [mlserver, "start", str(folder)],
        port,
        f"/v2/models/{MODEL}/ready",
        work / "mlserver.log",
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


def run_load(url: str, body: bytes, n: int, concurrency: int, warmup: int = 50) -> dict[str, float]:
    asyncio.run(_load(url, [body] * warmup, concurrency))
    elapsed, lat, errors = asyncio.run(_load(url, [body] * n, concurrency))
    if errors:
        raise RuntimeError(f"{errors} of {n} requests to {url} failed")
    q = statistics.quantiles(lat, n=100)
    return {"rps": n / elapsed, "p50_ms": q[49] * 1000, "p99_ms": q[98] * 1000}


def v1_body(names: list[str], rows: list[dict[str, Any]]) -> bytes:
    return json.dumps({"instances": [[r[k] for k in names] for r in rows]}).encode()


def v2_body(names: list[str], rows: list[dict[str, Any]], pandas_codec: bool) -> bytes:
    inputs = []
    for k in names:
        values = [r[k] for r in rows]
        datatype = "BYTES" if isinstance(values[0], str) else "FP64"
        inputs.append({"name": k, "shape": [len(rows)], "datatype": datatype, "data": values})
    body: dict[str, Any] = {"inputs": inputs}
    if pandas_codec:
        body["parameters"] = {"content_type": "pd"}
    return json.dumps(body).encode()


def measure(name: str, url: str, one: bytes, batch: bytes, n: int) -> dict[str, Any]:
    r1 = run_load(url, one, n, 1)
    r8 = run_load(url, one, n * 2, 8)
    rb = run_load(url, batch, max(50, n // 5), 1, warmup=10)
    result = {
        "server": name,
        "c1_rps": r1["rps"],
        "c1_p50_ms": r1["p50_ms"],
        "c1_p99_ms": r1["p99_ms"],
        "c8_rps": r8["rps"],
        "c8_p50_ms": r8["p50_ms"],
        "c8_p99_ms": r8["p99_ms"],
        "batch100_rows_per_s": rb["rps"] * 100,
    }
    print(
        f"  {name}: {json.dumps({k: round(v, 1) for k, v in result.items() if k != 'server'})}",
        flush=True,
    )
    return result


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| server | 1 conn req/s | p50 ms | p99 ms | 8 conn req/s | p50 ms | p99 ms "
        "| 100-row rows/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['server']} | {r['c1_rps']:.0f} | {r['c1_p50_ms']:.2f} | {r['c1_p99_ms']:.2f} | "
            f"{r['c8_rps']:.0f} | {r['c8_p50_ms']:.2f} | {r['c8_p99_ms']:.2f} | "
            f"{r['batch100_rows_per_s']:.0f} |"
        )
    return "\n".join(lines)


def median_result(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k in runs[0] if k != "server"]
    return {"server": name, **{k: statistics.median(r[k] for r in runs) for k in keys}}


def best_result(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Best round per column (highest throughput, lowest latency): the least disturbed run."""
    keys = [k for k in runs[0] if k != "server"]
    pick = {k: (min if k.endswith("_ms") else max) for k in keys}
    return {"server": name, **{k: pick[k](r[k] for r in runs) for k in keys}}


def ratios(results: list[dict[str, Any]]) -> list[str]:
    bare = results[0]
    return [
        f"{r['server']}: {100 * r['c1_rps'] / bare['c1_rps']:.0f}% of bare at 1 conn, "
        f"{100 * r['c8_rps'] / bare['c8_rps']:.0f}% at 8 conn, "
        f"{100 * r['batch100_rows_per_s'] / bare['batch100_rows_per_s']:.0f}% batch rows/s"
        for r in results[1:]
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=500, help="single-row requests per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (servers alternate)")
    parser.add_argument("--no-mlserver", action="store_true")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server/client CPUs")
    parser.add_argument("--out", default=None, help="JSON results (default build/bench/)")
    args = parser.parse_args()
    global PIN
    PIN = not args.no_pin and len(os.sched_getaffinity(0)) >= 2
    if PIN:
        os.sched_setaffinity(0, CLIENT_CPU)
    work = Path(tempfile.mkdtemp(prefix="kfops-bench-serve-"))
    procs: list[Proc] = []
    targets: list[tuple[str, str, bytes, bytes]] = []
    try:
        version_dir, names, rows = make_model(work)
        one_v1, batch_v1 = v1_body(names, rows[:1]), v1_body(names, rows)
        one_v2, batch_v2 = v2_body(names, rows[:1], False), v2_body(names, rows, False)
        py = sys.executable

        port = free_port()
        bare_cmd = [
            py,
            "-c",
            "import sys; sys.argv_saved = list(sys.argv); " + BARE_SERVER,
            str(version_dir / "model.joblib"),
            ",".join(names),
            str(port),
        ]
        procs.append(Proc("bare", bare_cmd, port, f"/v1/models/{MODEL}", work / "bare.log"))
        targets.append(
            (
                "bare kserve.Model (V1)",
                f"http://127.0.0.1:{port}/v1/models/{MODEL}:predict",
                one_v1,
                batch_v1,
            )
        )

        kport = free_port()
        kfops_cmd = [
            py,
            "-m",
            "kfops.serving",
            "--registry",
            str(work / "registry"),
            "--model",
            MODEL,
            "--port",
            str(kport),
            "--capture",
            str(work / "capture"),
        ]
        procs.append(Proc("kfops", kfops_cmd, kport, f"/v1/models/{MODEL}", work / "kfops.log"))
        base = f"http://127.0.0.1:{kport}"
        targets.append(
            (
                "kfops V1 (validation, metrics, drift, capture on)",
                f"{base}/v1/models/{MODEL}:predict",
                one_v1,
                batch_v1,
            )
        )
        targets.append(("kfops V2 (same)", f"{base}/v2/models/{MODEL}/infer", one_v2, batch_v2))

        if not args.no_mlserver:
            ml = start_mlserver(version_dir, work)
            procs.append(ml)
            targets.append(
                (
                    "MLServer 1.7.1 sklearn V2 (pandas codec)",
                    f"http://127.0.0.1:{ml.port}/v2/models/{MODEL}/infer",
                    v2_body(names, rows[:1], True),
                    v2_body(names, rows, True),
                )
            )
        for proc in procs:
            proc.wait_ready()
        # Idle servers cost nothing; alternating the order each round spreads the noise of a
        # shared machine over all servers instead of whichever ran during a busy minute.
        runs: dict[str, list[dict[str, Any]]] = {t[0]: [] for t in targets}
        for i in range(args.rounds):
            print(f"round {i + 1}/{args.rounds}", flush=True)
            order = targets if i % 2 == 0 else list(reversed(targets))
            for name, url, one, batch in order:
                runs[name].append(measure(name, url, one, batch, args.requests))
        captured = sum(1 for f in (work / "capture").rglob("*.jsonl") for _ in f.open())
        print(f"kfops captured {captured} rows", flush=True)
    finally:
        for proc in procs:
            proc.stop()
        shutil.rmtree(work, ignore_errors=True)

    results = [median_result(name, r) for name, r in runs.items()]
    best = [best_result(name, r) for name, r in runs.items()]
    for title, rows_ in (
        (f"median of {args.rounds} rounds", results),
        (f"best of {args.rounds} rounds", best),
    ):
        print(f"\n{title}:\n")
        print(table(rows_))
        print()
        print("\n".join(ratios(rows_)))
    out = Path(args.out or REPO / "build" / "bench" / f"serve{'' if PIN else '-unpinned'}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "median": results,
                "runs": runs,
                "cpus": os.cpu_count(),
                "requests": args.requests,
                "rounds": args.rounds,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
