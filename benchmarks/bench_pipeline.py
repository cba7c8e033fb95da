"""`make bench-pipeline`: one local training run vs the same steps as direct library calls.

For the bundled data and for a large synthetic table (default 1,000,000 rows x 50 columns) it
runs, each in a fresh process so peak memory is measured cleanly:

- pipeline: `kfops run` (kfp.local SubprocessRunner, one process per task);
- direct:   the same kfops.steps step functions called in one process.

and prints wall time, peak RSS and the orchestration overhead (pipeline / direct) side by side.

    python benchmarks/bench_pipeline.py [--rows 1000000] [--skip-large]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / ".bench"


def direct(data_uri: str, target: str, task: str, registry: str) -> None:
    """The pipeline's steps as plain calls, in the pipeline's order, in this process."""
    from kfops.steps import bless, deploy, evaluate, extract, prepare, register, train, validate
    from kfops.steps._run import RunContext

    work = Path(tempfile.mkdtemp(prefix="kfops-direct-"))
    ctx = RunContext.of(registry)
    names = ("snapshot", "contract", "train", "test", "model", "profile", "twin", "explainer")
    p = {n: work / n for n in (*names, "evaluation", "importance")}
    fp = extract.run(extract.ExtractInputs(data_uri, p["snapshot"]), ctx)
    validate.run(validate.ValidateInputs(p["snapshot"], target, task, "bench", p["contract"]), ctx)
    prepare.run(
        prepare.PrepareInputs(p["snapshot"], p["contract"], p["train"], p["test"], 0.2, 42), ctx
    )
    trained = train.run(
        train.TrainInputs(
            p["train"], p["contract"], "logistic_regression", 42, p["model"], p["profile"],
            p["twin"], p["explainer"],
        ),
        ctx,
    )  # fmt: skip
    evaluate.run(
        evaluate.EvaluateInputs(
            p["model"], p["test"], p["contract"], p["evaluation"], p["importance"], 42
        ),
        ctx,
    )
    decision = bless.run(bless.BlessInputs(p["evaluation"], p["test"], "bench", 0.01), ctx)
    if decision.blessed:
        version = register.run(
            register.RegisterInputs(
                "bench", p["model"], p["contract"], p["profile"], p["evaluation"],
                p["importance"], p["test"], p["twin"], trained.twin, p["explainer"],
                {"data_fingerprint": fp.sha256},
            ),
            ctx,
        )  # fmt: skip
        deploy.run(deploy.DeployInputs(Path(registry), "bench", version.version))


def bench(label: str, data: str, target: str, task: str) -> dict[str, object]:
    rows = {}
    for mode in ("direct", "pipeline"):
        registry = tempfile.mkdtemp(prefix=f"kfops-bench-{mode}-") + "/registry"
        if mode == "pipeline":
            cmd = [sys.executable, "-m", "kfops", "run", "--data", data, "--target", target,
                   "--task", task, "--registry", registry, "--model-name", "bench",
                   "--threshold", "f1_macro=0"]  # fmt: skip
        else:
            cmd = [sys.executable, __file__, "--direct", data, target, task, registry]
        # RUSAGE_CHILDREN's peak is cumulative over all children: measure each in its own
        # short-lived parent so one figure does not leak into the next.
        probe = [sys.executable, "-c", MEASURE_CHILD, json.dumps(cmd)]
        out = subprocess.run(probe, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(out.stdout[-3000:] + out.stderr[-3000:])
        wall, peak = json.loads(out.stdout.strip().splitlines()[-1])
        rows[mode] = (wall, peak)
    return {"data": label, **{f"{m}_{k}": v for m, (w, p) in rows.items()
                              for k, v in (("s", w), ("mib", p))}}  # fmt: skip


MEASURE_CHILD = """
import json, resource, subprocess, sys, time
cmd = json.loads(sys.argv[1])
start = time.perf_counter()
proc = subprocess.run(cmd, capture_output=True, text=True)
wall = time.perf_counter() - start
if proc.returncode:
    sys.exit(proc.stdout[-3000:] + proc.stderr[-3000:])
print(json.dumps([wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024]))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--direct", nargs=4, metavar=("DATA", "TARGET", "TASK", "REGISTRY"))
    args = parser.parse_args()
    if args.direct:
        direct(*args.direct)
        return

    from kfops import datasets

    cases = [("penguins (344 rows x 8)", str(datasets.default_data_path()), "species")]
    if not args.skip_large:
        BENCH_DIR.mkdir(exist_ok=True)
        path = BENCH_DIR / f"synthetic-{args.rows}x50.parquet"
        if not path.exists():
            frame = datasets.make_synthetic(args.rows, n_numeric=40, n_categorical=10, seed=1)
            datasets.write_table(frame, path)
        cases.append((f"synthetic ({args.rows:,} rows x 50)", str(path), "target"))

    results = [bench(label, data, target, "classification") for label, data, target in cases]
    header = f"{'data':32} {'direct s':>9} {'pipeline s':>11} {'overhead':>9} "
    header += f"{'direct MiB':>11} {'pipeline MiB':>13}"
    print(header)
    for r in results:
        d_s, p_s = float(r["direct_s"]), float(r["pipeline_s"])  # type: ignore[arg-type]
        print(
            f"{r['data']:32} {d_s:9.1f} {p_s:11.1f} {p_s / d_s:8.2f}x "
            f"{float(r['direct_mib']):11.0f} {float(r['pipeline_mib']):13.0f}"  # type: ignore[arg-type]
        )


if __name__ == "__main__":
    main()
