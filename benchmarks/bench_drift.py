"""`make bench-drift`: kfops.drift vs Evidently's default data drift report, in one run.

20 numeric + 5 categorical columns, 100k reference rows vs 100k current rows with drift planted
in known columns (mean shifts, a change of spread, a reweighted category). Each tool runs in its
own child processes on the same pickled frames (Evidently in .bench/evidently-venv, created here
if missing: evidently==0.7.*, pandas<3).

Protocol (the same for both tools, printed with the results): the same work (two frames in,
the per-column verdicts and the dataset verdict out, materialised as a dict); ``--rounds``
child processes per tool, alternating which tool goes first (ABBA...), each loading the frames,
doing ``--warmup`` untimed runs and then its share of ``--repeat`` timed runs; the median of
the timed runs is reported, and the first run of each process (cold: after imports and data
loading, before any warm-up) separately. Also reported: CPU time, peak RSS of the child process
(os.wait4) and the peak RSS growth during the computation, which columns each tool flags, and
its dataset verdict. kfops' check of a window against a STORED reference profile is timed with
the same protocol but has no Evidently counterpart (Evidently reads the reference rows every
time), so no ratio is printed for it. Then the per-row cost of StreamingDrift.update (the model
server's path) for single rows and 100-row batches.

    .venv/bin/python benchmarks/bench_drift.py [--rows 100000] [--repeat 4] [--rounds 2]
        [--warmup 1] [--no-evidently]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evidently_drift import reset_peak_rss, rss_mb  # stdlib-only helpers

REPO = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO / ".bench"
EVIDENTLY_VENV = BENCH_DIR / "evidently-venv"
EVIDENTLY_REQUIREMENTS = ["evidently==0.7.*", "pandas<3"]

N_NUMERIC, N_CATEGORICAL = 20, 5
CATEGORIES = [f"k{i}" for i in range(8)]
BASE_P = 1.0 / np.arange(1, 9) / np.sum(1.0 / np.arange(1, 9))
# column -> (kind of change, size): shifts are in standard deviations, scale multiplies spread.
PLANTED: dict[str, tuple[str, float]] = {
    "num_00": ("shift", 0.5),  # normal
    "num_05": ("scale", 1.5),  # lognormal, wider spread
    "num_10": ("shift", 0.3),  # uniform
    "num_15": ("shift", 0.5),  # poisson counts (ties)
    "cat_02": ("reweight", 0.8),
}


def make_frame(rows: int, seed: int, drift: dict[str, tuple[str, float]]) -> pd.DataFrame:
    """Mixed distributions (normal, lognormal, uniform, counts; 3 % nulls in a few columns)."""
    rng = np.random.default_rng(seed)
    data: dict[str, np.ndarray] = {}
    for i in range(N_NUMERIC):
        name = f"num_{i:02d}"
        kind = i % 4
        if kind == 0:
            col = rng.normal(50.0, 10.0, rows)
        elif kind == 1:
            col = rng.lognormal(1.0, 0.7, rows)
        elif kind == 2:
            col = rng.uniform(0.0, 100.0, rows)
        else:
            col = rng.poisson(6.0, rows).astype(np.float64)
        change, size = drift.get(name, ("", 0.0))
        if change == "shift":
            col = col + size * col.std()
        elif change == "scale":
            col = col.mean() + (col - col.mean()) * size
        if i % 7 == 6:
            col[rng.random(rows) < 0.03] = np.nan
        data[name] = col
    for j in range(N_CATEGORICAL):
        name = f"cat_{j:02d}"
        size = len(CATEGORIES) - j  # 8..4 categories
        p = BASE_P[:size] / BASE_P[:size].sum()
        change, strength = drift.get(name, ("", 0.0))
        if change == "reweight":
            p = p * np.exp(strength * np.linspace(0.0, 2.0, size))
            p = p / p.sum()
        data[name] = np.asarray(CATEGORIES[:size], dtype=object)[rng.choice(size, rows, p=p)]
    return pd.DataFrame(data)


def make_contract(df: pd.DataFrame) -> Any:
    from kfops.contract_model import Contract, FeatureSpec, TargetSpec

    feats = tuple(
        FeatureSpec(
            name,
            "numeric" if pd.api.types.is_numeric_dtype(df[name]) else "categorical",
            str(df[name].dtype),
            bool(df[name].isna().any()),
        )
        for name in df.columns
    )
    return Contract("classification", TargetSpec("y", "categorical", "int64", (0, 1)), feats)


# ------------------------------------------------------------------ child: kfops.drift


def run_kfops_child(data_dir: Path, repeat: int, warmup: int) -> None:
    """Same protocol as evidently_drift.main: warm-up runs, then ``repeat`` timed runs."""
    from kfops.drift import ReferenceProfile, build_reference_profile, detect_drift, profile_window

    reference = pd.read_pickle(data_dir / "reference.pkl")
    current = pd.read_pickle(data_dir / "current.pkl")
    contract = make_contract(reference)
    stored = data_dir / "reference_profile.json"
    rss_before = rss_mb("VmRSS")
    reset_peak_rss()
    seconds, cpu, fit, check = [], [], [], []
    for _ in range(warmup + repeat):
        # End to end, the work Evidently does: two frames in, verdicts out.
        start, start_cpu = time.perf_counter(), time.process_time()
        profile = build_reference_profile(reference, contract)
        middle = time.perf_counter()
        report = detect_drift(profile, profile_window(current, profile))
        report_dict = report.to_dict()
        end = time.perf_counter()
        seconds.append(end - start)
        cpu.append(time.process_time() - start_cpu)
        fit.append(middle - start)
        # With a stored reference profile: load it, count the window, decide.
        profile.save(stored)
        start = time.perf_counter()
        loaded = ReferenceProfile.load(stored)
        detect_drift(loaded, profile_window(current, loaded)).to_dict()
        check.append(time.perf_counter() - start)
    peak = rss_mb("VmHWM")
    print(
        json.dumps(
            {
                "tool": "kfops.drift",
                "seconds": statistics.median(seconds[warmup:]),
                "all_seconds": seconds[warmup:],
                "cold_seconds": seconds[0],
                "fit_seconds": statistics.median(fit[warmup:]),
                "check_seconds": statistics.median(check[warmup:]),
                "all_check_seconds": check[warmup:],
                "cpu_seconds": statistics.median(cpu[warmup:]),
                "flagged": report.drifted,
                "drift_share": report.drift_share,
                "dataset_drift": report.dataset_drift,
                "compute_peak_mb": peak - rss_before,
                "profile_kb": stored.stat().st_size / 1024,
                "features": {f["name"]: f for f in report_dict["features"]},
            }
        )
    )


# ------------------------------------------------------------------ parent


def ensure_evidently_venv() -> Path:
    python = EVIDENTLY_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {EVIDENTLY_VENV} ({' '.join(EVIDENTLY_REQUIREMENTS)}) ...", flush=True)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *EVIDENTLY_REQUIREMENTS], check=True
        )
    return python


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One tool's child processes -> medians over all timed runs, the worst process peak."""
    out = dict(runs[-1])
    for key in ("seconds", "check_seconds"):
        every = [t for r in runs for t in r.get(f"all_{key}", [])]
        if every:
            out[key] = statistics.median(every)
            out[f"all_{key}"] = every
    for key in ("cpu_seconds", "fit_seconds"):
        if key in out:
            out[key] = statistics.median(r[key] for r in runs)
    out["cold_seconds"] = statistics.median(r["cold_seconds"] for r in runs)
    out["process_peak_mb"] = max(r["process_peak_mb"] for r in runs)
    out["compute_peak_mb"] = max(r["compute_peak_mb"] for r in runs)
    out["processes"] = len(runs)
    return out


def run_child(cmd: list[str]) -> dict[str, Any]:
    """Run a child that prints one JSON line; add its peak RSS (ru_maxrss, KiB on Linux)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} {cmd[1]} failed with exit code {proc.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    result["process_peak_mb"] = usage.ru_maxrss / 1024
    return result


def bench_streaming(reference_df: pd.DataFrame, current_df: pd.DataFrame) -> dict[str, float]:
    from kfops.drift import StreamingDrift, build_reference_profile

    profile = build_reference_profile(reference_df, make_contract(reference_df))
    rows = current_df.iloc[:20_000]
    records = rows.to_dict(orient="records")  # python scalars, as parsed from a JSON request
    batches = [
        {k: v.to_numpy() for k, v in rows.iloc[i : i + 100].items()} for i in range(0, 20_000, 100)
    ]
    results: dict[str, float] = {}

    def timed(label: str, stream: StreamingDrift, items: list, rows_per_item: int) -> None:
        # CPU time (not wall) so that other load on the machine does not count; best of 3.
        best = float("inf")
        for _ in range(3):
            start = time.process_time()
            for item in items:
                stream.update(item)
            best = min(best, time.process_time() - start)
        results[label] = best / (len(items) * rows_per_item) * 1e6

    tens = [
        {k: v[i : i + 10] for k, v in b.items()} for b in batches[:20] for i in range(0, 100, 10)
    ]
    timed("single row (dict of python scalars)", StreamingDrift(profile), records, 1)
    timed("10-row batch (dict of numpy arrays)", StreamingDrift(profile), tens, 10)
    timed("100-row batch (dict of numpy arrays)", StreamingDrift(profile), batches, 100)
    timed(
        "100-row batch, value-by-value path (small_batch=128)",
        StreamingDrift(profile, small_batch=128),
        batches,
        100,
    )
    stream = StreamingDrift(profile)
    for item in batches:
        stream.update(item)
    start = time.process_time()
    for _ in range(20):
        stream.scores()
    results["scores() call, 25 features (us per call)"] = (time.process_time() - start) / 20 * 1e6
    return results


def _cols(names: list[str]) -> str:
    return ", ".join(names) if names else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=4, help="timed runs per tool (median)")
    parser.add_argument("--rounds", type=int, default=2, help="child processes per tool")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per process")
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument("--json", type=Path, help="also write all figures to this file")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    per_process = max(1, -(-args.repeat // args.rounds))  # ceil
    if args.child:
        run_kfops_child(args.child, args.repeat, args.warmup)
        return

    data_dir = BENCH_DIR / "drift-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    reference = make_frame(args.rows, seed=1, drift={})
    current = make_frame(args.rows, seed=2, drift=PLANTED)
    reference.to_pickle(data_dir / "reference.pkl")
    current.to_pickle(data_dir / "current.pkl")
    planted = sorted(PLANTED)
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} (1 min) at start")
    print(
        f"{args.rows} reference rows vs {args.rows} current rows, {N_NUMERIC} numeric + "
        f"{N_CATEGORICAL} categorical columns; planted drift: "
        + ", ".join(f"{c} ({k} {s})" for c, (k, s) in PLANTED.items())
    )
    print(
        f"protocol, both tools: {args.rounds} child processes each, alternating first tool; "
        f"per process {args.warmup} untimed warm-up run(s) then {per_process} timed run(s); "
        f"median of the {per_process * args.rounds} timed runs; 'cold' = median first run of a "
        "process (imports and data loading excluded). Work: two frames in, per-column and "
        "dataset verdicts out as a dict.",
        flush=True,
    )

    timing = ["--repeat", str(per_process), "--warmup", str(args.warmup)]
    commands = {"kfops": [sys.executable, __file__, "--child", str(data_dir), *timing]}
    if not args.no_evidently:
        python = ensure_evidently_venv()
        script = str(Path(__file__).with_name("evidently_drift.py"))
        commands["evidently"] = [str(python), script, str(data_dir), *timing]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in commands}
    order = list(commands)
    for r in range(args.rounds):
        for name in order if r % 2 == 0 else order[::-1]:
            runs[name].append(run_child(commands[name]))
    results = [combine(runs[name]) for name in order]

    print()
    print("| tool | wall s (median warm) | wall s (cold) | CPU s | peak RSS MB (process) | "
          "peak growth MB (compute) | flagged | planted found | false alarms | "
          "dataset verdict |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---|---|---|---|")
    for r in results:
        flagged = sorted(r["flagged"])
        found = [c for c in planted if c in flagged]
        false = [c for c in flagged if c not in PLANTED]
        verdict = (
            "drift" if r["dataset_drift"] else "no drift"
        ) + f" (share {r['drift_share']:.2f})"
        print(
            f"| {r['tool']} | {r['seconds']:.2f} | {r['cold_seconds']:.2f} | "
            f"{r['cpu_seconds']:.2f} | "
            f"{r['process_peak_mb']:.0f} | "
            f"{r['compute_peak_mb']:.0f} | {_cols(flagged)} | {len(found)}/{len(planted)} | "
            f"{_cols(false)} | {verdict} |"
        )
    ours = results[0]
    print()
    print(
        f"kfops.drift: reference profile (once, at training) {ours['fit_seconds']:.3f} s; "
        f"check of a window against the stored profile (load JSON, count, decide) "
        f"{ours['check_seconds']:.3f} s, same protocol (Evidently has no stored-reference "
        f"mode, so there is no like-for-like figure to compare it with); "
        f"reference_profile.json {ours['profile_kb']:.0f} KiB"
    )
    if len(results) > 1:
        ev = results[1]
        print(
            f"end to end, same work and protocol: Evidently / kfops = "
            f"{ev['seconds'] / ours['seconds']:.1f}x wall (median warm), "
            f"{ev['cold_seconds'] / ours['cold_seconds']:.1f}x wall (cold), "
            f"{ev['cpu_seconds'] / ours['cpu_seconds']:.1f}x CPU"
        )
    print()
    print("Per planted column (kfops): PSI (bias-corrected) / KS / JS, adjusted p-value")
    for name in planted:
        f = ours["features"][name]
        stat = f"KS {f['ks']:.3f}" if f["ks"] is not None else f"JS {f['js']:.3f}"
        print(
            f"  {name}: PSI {f['psi']:.3f} (corrected {f['psi_corrected']:.3f}), {stat}, "
            f"p_adj {f['p_adjusted']:.2g}"
        )

    streaming = bench_streaming(reference, current)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (1 min)")
    print()
    print("StreamingDrift.update CPU cost (25 features, best of 3 passes):")
    for label, us in streaming.items():
        unit = "" if "per call" in label else " us/row"
        print(f"  {label}: {us:.1f}{unit}")

    if args.json:
        args.json.write_text(
            json.dumps({"results": results, "streaming_us": streaming}, indent=2, default=str)
        )


if __name__ == "__main__":
    main()
