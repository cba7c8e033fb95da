"""`make bench-pipeline`: one local training run vs the same steps as direct library calls.

For the bundled data and for a large synthetic table (default 1,000,000 rows x 50 columns) two
sides do the same work, each run in a fresh process:

- pipeline: `kfops run` (kfp.local SubprocessRunner, one process per task);
- direct:   the same steps in one process (`direct` below): the same library calls, the same
            reports and dashboard files (statistics, validation, evaluation HTML with its plots,
            ROC/confusion data, blessing decision), register and deploy (champion alias).

Each run is measured from a fresh short-lived probe process that samples the run's whole process
tree (psutil, every --sample-interval seconds):

- tree peak RSS: the largest SUM of the RSS of all processes of the tree alive at one sample
  (what the machine had to hold at once; pages shared between processes count once per process,
  and a spike shorter than the interval can be missed);
- largest process: the highest peak RSS of any single process of the tree (exact: the kernel's
  ru_maxrss over all waited-for descendants, RUSAGE_CHILDREN of the probe).

Neither side runs anything in parallel: kfp.local runs a pipeline's tasks one at a time outside
a ParallelFor (kfp 2.17.3, kfp/local/orchestrator/enhanced_dag_orchestrator.py), and the
training pipeline has none when tuning is off. Wall time is the run's own, from start to exit.
Figures are medians over --rounds alternating rounds after --warmup untimed runs per side, with
[min-max]; the overhead column is the per-round ratio pipeline / direct, then its median.

    python benchmarks/bench_pipeline.py [--rows 1000000] [--skip-large] [--rounds 3] [--warmup 1]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from _protocol import Protocol, median, spread

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / ".bench"
MODEL_NAME = "bench"
THRESHOLDS = {"f1_macro": 0.0}  # both sides bless, register and deploy
SEED, TEST_SIZE, MAX_REGRESSION, ESTIMATOR = 42, 0.2, 0.01, "logistic_regression"


def direct(data_uri: str, target: str, task: str, registry_root: str) -> None:
    """The training pipeline as plain calls, in its order, in this process: each step
    (kfops.steps) plus what its component writes (components/*.py) and the run record
    kfops.local_runner keeps. Every call into kfops is in this one function."""
    from kfops import tracking
    from kfops.io import read_json, write_json_atomic, write_text_atomic
    from kfops.reports.evaluation import render_report
    from kfops.reports.validation import validation_markdown
    from kfops.steps import bless, deploy, evaluate, extract, prepare, register, train, validate
    from kfops.steps._run import RunContext

    registry = Path(registry_root)
    registry.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="direct-", dir=registry.parent))
    names = ("snapshot", "contract", "train", "test", "model", "profile", "twin", "explainer")
    f = {n: work / n for n in (*names, "importance")}
    ctx = RunContext.of(registry)
    tracking.record_step(
        registry, ctx.run_id, "params", {"data_uri": data_uri, "model": MODEL_NAME}
    )

    fp = extract.run(extract.ExtractInputs(data_uri, f["snapshot"]), ctx)
    valid = validate.run(
        validate.ValidateInputs(f["snapshot"], target, task, MODEL_NAME, f["contract"]), ctx
    )
    write_text_atomic(work / "statistics.md", valid.statistics_markdown)
    write_text_atomic(
        work / "validation.md",
        validation_markdown(valid.report, valid.contract, valid.champion_version),
    )
    prepare.run(
        prepare.PrepareInputs(f["snapshot"], f["contract"], f["train"], f["test"], TEST_SIZE, SEED),
        ctx,
    )
    trained = train.run(
        train.TrainInputs(
            f["train"],
            f["contract"],
            ESTIMATOR,
            SEED,
            f["model"],
            f["profile"],
            f["twin"],
            f["explainer"],
        ),
        ctx,
    )
    evaluation = work / "evaluation.json"
    result = evaluate.run(
        evaluate.EvaluateInputs(
            f["model"], f["test"], f["contract"], evaluation, f["importance"], SEED
        ),
        ctx,
    )
    write_json_atomic(
        work / "dashboard.json",
        {"metrics": result.evaluation.metrics,
         "curves": asdict(result.curves) if result.curves else None},
    )  # fmt: skip
    write_text_atomic(
        work / "evaluation.html", render_report(result.evaluation, "Evaluation", None)
    )
    decision = bless.run(
        bless.BlessInputs(evaluation, f["test"], MODEL_NAME, MAX_REGRESSION, THRESHOLDS), ctx
    )
    write_json_atomic(work / "decision.json", decision.to_dict())
    write_text_atomic(work / "decision.md", decision.to_markdown())
    if not decision.blessed:
        raise SystemExit(f"direct: not blessed: {decision.to_dict()}")
    lineage = {
        "data_uri": data_uri, "data_fingerprint": fp.sha256, "snapshot_uri": str(f["snapshot"]),
        "estimator": ESTIMATOR, "params": trained.params, "seed": SEED, "test_size": TEST_SIZE,
        "blessing": read_json(work / "decision.json"), "kfp_job_id": "", "tuning": {},
    }  # fmt: skip
    version = register.run(
        register.RegisterInputs(
            MODEL_NAME,
            f["model"],
            f["contract"],
            f["profile"],
            evaluation,
            f["importance"],
            f["test"],
            f["twin"],
            trained.twin,
            f["explainer"],
            lineage,
        ),
        ctx,
    )
    # The training pipeline's deploy step, with its defaults (target local: the champion alias).
    deploy.run(deploy.DeployInputs(registry, MODEL_NAME, version.version), ctx)
    tracking.finish_run(registry, ctx.run_id, "succeeded")


def side_command(side: str, data: str, target: str, task: str, registry: str) -> list[str]:
    if side == "pipeline":
        return [
            sys.executable, "-m", "kfops", "run", "--data", data, "--target", target,
            "--task", task, "--registry", registry, "--model", MODEL_NAME,
            "--estimator", ESTIMATOR, "--seed", str(SEED), "--test-size", str(TEST_SIZE),
            "--max-regression", str(MAX_REGRESSION),
            *(f"--threshold={k}={v}" for k, v in THRESHOLDS.items()),
        ]  # fmt: skip
    return [sys.executable, __file__, "--direct", data, target, task, registry]


# --- measuring ---------------------------------------------------------------------------------


def probe(cmd: list[str], log: Path, interval: float) -> dict[str, float]:
    """Run ``cmd`` and sample its process tree (this runs in a fresh probe process, so
    RUSAGE_CHILDREN covers that one tree only)."""
    import resource
    import threading
    import time

    import psutil  # a kserve dependency, pinned in constraints.txt

    with open(log, "wb") as out:
        start = time.perf_counter()
        proc = psutil.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        peak = {"tree": 0, "samples": 0}
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                total = 0
                try:
                    tree = [proc, *proc.children(recursive=True)]
                except psutil.NoSuchProcess:
                    break
                for p in tree:  # a process may exit between listing and reading
                    with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                        total += p.memory_info().rss
                peak["tree"] = max(peak["tree"], total)
                peak["samples"] += 1
                done.wait(interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = proc.wait()
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
    if code:
        sys.exit(f"{' '.join(cmd[:5])} ... failed ({code}):\n{log.read_text()[-3000:]}")
    largest = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux
    mib = 1024 * 1024
    return {
        "wall_s": wall,
        "tree_mib": peak["tree"] / mib,
        "largest_mib": largest / mib,
        "samples": peak["samples"],
    }


def measure(side: str, data: str, target: str, task: str, interval: float) -> dict[str, float]:
    """One run of ``side`` in a fresh temp dir (removed after), measured by a fresh probe."""
    tmp = Path(tempfile.mkdtemp(prefix=f"kfops-bench-{side}-"))
    try:
        cmd = side_command(side, data, target, task, str(tmp / "registry"))
        out = subprocess.run(
            [sys.executable, __file__, "--probe", json.dumps(cmd), str(tmp / "run.log"),
             str(interval)],
            capture_output=True, text=True,
        )  # fmt: skip
        if out.returncode != 0:
            sys.exit(out.stdout[-3000:] + out.stderr[-3000:])
        registry = tmp / "registry" / "models" / MODEL_NAME
        if not registry.is_dir():
            sys.exit(f"{side}: no model registered under {registry}")
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass(frozen=True)
class Case:
    label: str
    data: str
    target: str
    task: str = "classification"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (sides alternate)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per side first")
    parser.add_argument("--sample-interval", type=float, default=0.1, help="RSS sampling, s")
    parser.add_argument("--out", default=None, help="JSON results (default build/bench/)")
    parser.add_argument("--direct", nargs=4, metavar=("DATA", "TARGET", "TASK", "REGISTRY"))
    parser.add_argument("--probe", nargs=3, metavar=("CMD_JSON", "LOG", "INTERVAL"))
    args = parser.parse_args()
    if args.direct:
        direct(*args.direct)
        return
    if args.probe:
        cmd, log, interval = args.probe
        print(json.dumps(probe(json.loads(cmd), Path(log), float(interval))))
        return

    from kfops import datasets

    cases = [Case("penguins (344 rows x 8)", str(datasets.default_data_path()), "species")]
    if not args.skip_large:
        BENCH_DIR.mkdir(exist_ok=True)
        path = BENCH_DIR / f"synthetic-{args.rows}x50.parquet"
        if not path.exists():
            frame = datasets.make_synthetic(args.rows, n_numeric=40, n_categorical=10, seed=1)
            datasets.write_table(frame, path)
        cases.append(Case(f"synthetic ({args.rows:,} rows x 50)", str(path), "target"))

    sides = ("direct", "pipeline")
    protocol = Protocol(
        sides=(
            "direct = the steps as library calls in one process",
            "pipeline = `kfops run` (kfp.local SubprocessRunner, a process per task)",
        ),
        rounds=args.rounds,
        warmup=args.warmup,
        work=f"{ESTIMATOR}: extract, validate, prepare, train, evaluate, bless, register, "
        "deploy locally, with every report and dashboard file; fresh registry per run",
        parallelism="none on either side (kfp.local runs these tasks one at a time); "
        f"memory sampled every {args.sample_interval:g} s",
    )
    print(protocol.header(), flush=True)
    runs: dict[str, dict[str, list[dict[str, float]]]] = {}
    for case in cases:
        runs[case.label] = {s: [] for s in sides}
        for w in range(args.warmup):
            for side in protocol.order(w, sides):
                print(f"{case.label}: warm-up {side} ...", file=sys.stderr, flush=True)
                measure(side, case.data, case.target, case.task, args.sample_interval)
        for i in range(args.rounds):
            for side in protocol.order(i, sides):
                m = measure(side, case.data, case.target, case.task, args.sample_interval)
                print(
                    f"{case.label}: round {i + 1} {side}: {m['wall_s']:.1f} s, tree "
                    f"{m['tree_mib']:.0f} MiB, largest {m['largest_mib']:.0f} MiB",
                    file=sys.stderr,
                    flush=True,
                )
                runs[case.label][side].append(m)

    print()
    print(
        "| data | side | wall s | overhead (pipeline/direct) | tree peak RSS MiB (sum) "
        "| largest process MiB |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    summary = []
    for label, by_side in runs.items():
        # Ratios per round (both sides ran in the same round), then their median.
        pairs = list(zip(by_side["pipeline"], by_side["direct"], strict=True))
        ratio = {key: [p[key] / d[key] for p, d in pairs] for key in ("wall_s", "tree_mib")}
        for side in sides:
            r = by_side[side]
            over = f"{spread(ratio['wall_s'], '.2f')}x" if side == "pipeline" else ""
            print(
                f"| {label} | {side} | {spread([x['wall_s'] for x in r])} | {over} "
                f"| {spread([x['tree_mib'] for x in r], '.0f')} "
                f"| {spread([x['largest_mib'] for x in r], '.0f')} |"
            )
        summary.append(
            f"{label}: pipeline/direct wall {median(ratio['wall_s']):.2f}x, "
            f"tree peak memory {median(ratio['tree_mib']):.2f}x"
        )
    print("\n" + "\n".join(summary))
    out = Path(args.out or ROOT / "build" / "bench" / "pipeline.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"protocol": protocol.header(), "runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
