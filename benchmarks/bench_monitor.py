"""`make bench-monitor`: monitoring at scale, measured (issue 15).

One script, one section per question; ``--part`` picks them (default: all):

- ``power``: how often the drift verdict fires, kfops vs Evidently on the SAME windows.
  Twenty normal features plus one categorical (8 values, a long tail), a reference of 20,000
  rows, one feature (``num_00``) shifted by 0.1/0.2/0.3/0.5 of its standard deviation. For each
  window size: false alarms over null windows (any feature flagged) and how often the shifted
  feature is found. kfops runs its default ``DriftPolicy`` on profiles (large windows are
  profiled in chunks of 100,000 rows and merged, as hours merge into a day); Evidently runs in
  its own venv (.bench/evidently-venv, as ``make bench-drift``) with its default per-column
  tests and thresholds (the DataDriftPreset's choices; the full preset is run on a sample of
  windows to check that it flags the same columns). Evidently's own dataset verdict (share of
  drifted columns >= 0.5) is reported too. Windows are generated from fixed seeds on both
  sides; a fingerprint of each cell's first window is compared before the table is printed.
- ``scale``: wall time, rows per second (wall and per CPU-second) and peak RSS of
  ``kfops monitor`` (a fresh process; its process tree sampled as ``make bench-pipeline``
  does) on one day of captured rows (default 100k, 1M, 10M: ``--scale-sizes``) of a model
  trained by ``kfops run`` on a public table (Benefits.csv), written by the predictor's own
  capture writer into a temp dir and deleted after. Sides: the pre-change whole-window flow
  (the window in memory as pandas; up to ``--baseline-max-rows``), ``kfops monitor`` streaming
  the raw rows (its first run of a day: it also writes the hourly profiles), ``kfops monitor``
  merging the 24 hourly profiles. Goals printed beside the figures.

    .venv/bin/python benchmarks/bench_monitor.py [--part power] [--windows 50]
        [--null-windows 100] [--sizes 100,300,...] [--no-evidently]
    .venv/bin/python benchmarks/bench_monitor.py --part scale [--scale-sizes 100000,1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

REPO = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------ power: the windows

N_NUMERIC = 20
CATEGORIES = [f"k{i}" for i in range(8)]
CAT_P = (1.0 / np.arange(1, 9)) / np.sum(1.0 / np.arange(1, 9))  # 37 % down to 5 %
MEANS = np.linspace(-50.0, 50.0, N_NUMERIC)
SDS = 1.0 + np.arange(N_NUMERIC) % 5  # 1..5
SHIFTED = "num_00"
REFERENCE_ROWS = 20_000
CHUNK_ROWS = 100_000  # large windows are generated (and profiled) in chunks of this size
DEFAULT_SIZES = (100, 300, 1_000, 5_000, 20_000, 100_000, 1_000_000)
DEFAULT_SHIFTS = (0.1, 0.2, 0.3, 0.5)


def _chunk(rows: int, seed: list[int], shift_sd: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = {f"num_{i:02d}": rng.normal(MEANS[i], SDS[i], rows) for i in range(N_NUMERIC)}
    data[SHIFTED] = data[SHIFTED] + shift_sd * SDS[0]
    data["cat"] = np.asarray(CATEGORIES, dtype=object)[rng.choice(len(CATEGORIES), rows, p=CAT_P)]
    return pd.DataFrame(data)


def reference_frame() -> pd.DataFrame:
    return _chunk(REFERENCE_ROWS, [0], 0.0)


def window_chunks(
    rows: int, shift_index: int, shift_sd: float, index: int
) -> Iterator[pd.DataFrame]:
    """Window ``index`` of a (size, shift) cell, in chunks; the same data in every process."""
    for c, start in enumerate(range(0, rows, CHUNK_ROWS)):
        yield _chunk(min(CHUNK_ROWS, rows - start), [1, rows, shift_index, index, c], shift_sd)


def fingerprint(frame: pd.DataFrame) -> str:
    """A short checksum of a window's first chunk: part_power stops if the two venvs (which
    may carry different numpy versions) did not generate the same windows."""
    return f"{float(frame[SHIFTED].sum()):.6f}/{int((frame['cat'] == 'k0').sum())}/{len(frame)}"


def windows_for(rows: int, args: argparse.Namespace) -> tuple[int, int]:
    """(null windows, shifted windows per shift) for a window size."""
    if rows > args.large_rows:
        return args.large_windows, args.large_windows
    return args.null_windows, args.windows


def cells(sizes: list[int], shifts: list[float]) -> list[tuple[int, int, float]]:
    """(rows, shift_index, shift_sd); shift_index 0 is the null (no shift)."""
    return [(rows, i, s) for rows in sizes for i, s in enumerate([0.0, *shifts])]


# ------------------------------------------------------------------ power: kfops


def kfops_power(args: argparse.Namespace, sizes: list[int]) -> dict[str, Any]:
    from kfops.drift import build_reference_profile, detect_drift, merge_windows, profile_window

    kinds = {**{f"num_{i:02d}": "numeric" for i in range(N_NUMERIC)}, "cat": "categorical"}
    reference = build_reference_profile(reference_frame(), kinds)
    out: dict[str, Any] = {}
    for rows, si, shift in cells(sizes, args.shifts):
        n_null, n_shift = windows_for(rows, args)
        count = n_null if si == 0 else n_shift
        flagged: list[list[str]] = []
        psi_raw, psi_corr, first, cpu = [], [], "", 0.0
        for w in range(count):
            parts = []
            for c, chunk in enumerate(window_chunks(rows, si, shift, w)):
                if w == 0 and c == 0:
                    first = fingerprint(chunk)
                start = time.process_time()  # profiling and verdict, not data generation
                parts.append(profile_window(chunk, reference))
                cpu += time.process_time() - start
            start = time.process_time()
            report = detect_drift(reference, merge_windows(parts))
            cpu += time.process_time() - start
            flagged.append(report.drifted)
            row = report.feature(SHIFTED)
            psi_raw.append(row.psi)
            psi_corr.append(row.psi_corrected)
        out[f"{rows}/{si}"] = {
            "windows": count,
            "flagged": flagged,
            "fingerprint": first,
            "psi_raw_mean": float(np.mean(psi_raw)),
            "psi_corrected_mean": float(np.mean(psi_corr)),
            "cpu_seconds_per_window": cpu / max(count, 1),
        }
        print(f"  kfops {rows:>9,} rows, shift {shift}: {count} windows", file=sys.stderr)
    return out


# ------------------------------------------------------------------ power: Evidently (child)


def evidently_power_child(spec: dict[str, Any]) -> None:
    """Runs in Evidently's venv: the same windows, Evidently's default column tests."""
    import evidently
    from evidently_drift import evidently_column_tests, evidently_verdict

    reference = reference_frame()
    out: dict[str, Any] = {}
    checked = agreed = 0
    for rows, si, shift, count in spec["cells"]:
        flagged, share_verdicts, first, cpu = [], [], "", 0.0
        for w in range(count):
            chunks = list(window_chunks(rows, si, shift, w))
            if w == 0:
                first = fingerprint(chunks[0])
            frame = pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]
            start = time.process_time()
            verdict = evidently_column_tests(reference, frame)
            cpu += time.process_time() - start
            if w < spec["verify"]:  # the full report must agree with the fast path
                full = evidently_verdict(reference, frame)
                checked += 1
                agreed += sorted(full["flagged"]) == sorted(verdict["flagged"]) and (
                    full["dataset_drift"] == verdict["dataset_drift"]
                )
            flagged.append(verdict["flagged"])
            share_verdicts.append(verdict["dataset_drift"])
        out[f"{rows}/{si}"] = {
            "windows": count,
            "flagged": flagged,
            "dataset_drift": share_verdicts,
            "fingerprint": first,
            "methods": sorted(set(verdict["methods"].values())),
            "cpu_seconds_per_window": cpu / max(count, 1),
        }
        print(f"  evidently {rows:>9,} rows, shift {shift}: {count} windows", file=sys.stderr)
    print(json.dumps({"tool": f"Evidently {evidently.__version__}", "cells": out,
                      "preset_checked": checked, "preset_agreed": agreed}))  # fmt: skip


def start_evidently(args: argparse.Namespace, sizes: list[int]) -> subprocess.Popen[str] | None:
    from bench_drift import ensure_evidently_venv

    ev_sizes = [s for s in sizes if s <= args.evidently_max_rows]
    if args.no_evidently or not ev_sizes:
        return None
    python = ensure_evidently_venv()
    spec = {
        "cells": [
            (rows, si, shift, windows_for(rows, args)[0 if si == 0 else 1])
            for rows, si, shift in cells(ev_sizes, args.shifts)
        ],
        "verify": args.verify_preset,
    }
    cmd = [str(python), __file__, "--evidently-child", json.dumps(spec)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO)


def _hits(cell: dict[str, Any], null: bool) -> int:
    if null:
        return sum(1 for f in cell["flagged"] if f)
    return sum(1 for f in cell["flagged"] if SHIFTED in f)


def print_power(args: argparse.Namespace, sizes: list[int], ours: dict, ev: dict | None) -> None:
    shifts = args.shifts
    head = ["window rows", "tool", "false alarms (null windows)"]
    head += [f"{s} sd shift found" for s in shifts]
    print("| " + " | ".join(head) + " |")
    print("|---:|---|" + "---:|" * (len(head) - 2))

    def line(rows: int, label: str, data: dict, key: Callable[[dict, bool], int]) -> None:
        cols = []
        for si in range(len(shifts) + 1):
            cell = data[f"{rows}/{si}"]
            cols.append(f"{key(cell, si == 0)}/{cell['windows']}")
        print(f"| {rows:,} | {label} | " + " | ".join(cols) + " |")

    for rows in sizes:
        line(rows, "kfops (default policy)", ours, _hits)
        if ev and f"{rows}/0" in ev["cells"]:
            line(rows, "Evidently, any column", ev["cells"], _hits)
            line(rows, "Evidently, dataset verdict (share >= 0.5)", ev["cells"],
                 lambda c, null: sum(c["dataset_drift"]))  # fmt: skip
    print()
    print(
        "false alarms: null windows with any feature flagged (kfops and 'Evidently, any "
        f"column'); found: windows in which {SHIFTED} is flagged. kfops flags a feature when its "
        "bias-corrected PSI exceeds the policy's tolerance with confidence (Benjamini-Hochberg "
        "across features); its dataset verdict is 'any feature'."
    )
    print()
    print(
        f"Bias of the raw PSI of {SHIFTED} (mean over null windows, kfops' 10 bins; the "
        "expectation is over reference samples too: one fixed reference adds its own offset, "
        "visible at large windows):"
    )
    print("| window rows | raw PSI | bias-corrected PSI | 9/n + 9/m (expected raw PSI) |")
    print("|---:|---:|---:|---:|")
    for rows in sizes:
        cell = ours[f"{rows}/0"]
        theory = 9 / rows + 9 / REFERENCE_ROWS
        print(f"| {rows:,} | {cell['psi_raw_mean']:.4f} | {cell['psi_corrected_mean']:.4f} | "
              f"{theory:.4f} |")  # fmt: skip


def part_power(args: argparse.Namespace) -> dict[str, Any]:
    sizes = args.sizes
    print("## power: drift verdicts on the same windows, kfops vs Evidently")
    print(
        f"reference {REFERENCE_ROWS:,} rows; {N_NUMERIC} normal features + 1 categorical "
        f"({len(CATEGORIES)} values, 37 % .. 5 %); shifted feature {SHIFTED} (mean + k sd)."
    )
    large = [s for s in sizes if s > args.large_rows]
    print(
        f"windows per cell: {args.null_windows} null and {args.windows} per shift"
        + (
            f"; {args.large_windows} null and {args.large_windows} per shift above "
            f"{args.large_rows:,} rows ({', '.join(f'{s:,}' for s in large)}), to bound the "
            "run time"
            if large
            else ""
        )
    )
    ev_sizes = [s for s in sizes if s <= args.evidently_max_rows]
    if args.no_evidently:
        print("Evidently: skipped (--no-evidently)")
    else:
        skipped = [s for s in sizes if s > args.evidently_max_rows]
        print(
            f"Evidently: window sizes up to {args.evidently_max_rows:,} rows"
            + (
                f" (not {', '.join(f'{s:,}' for s in skipped)}, to bound the run time: "
                "about 1 s CPU per window at 100,000 rows; raise --evidently-max-rows to "
                "include them)"
                if skipped
                else ""
            )
        )
    print(flush=True)
    proc = start_evidently(args, sizes)  # runs while kfops computes (its own process)
    started = time.perf_counter()
    ours = kfops_power(args, sizes)
    ev = None
    if proc is not None:
        assert proc.stdout is not None
        out = proc.stdout.read()
        if proc.wait() != 0:
            raise SystemExit(f"the Evidently child failed with exit code {proc.returncode}")
        ev = json.loads(out.strip().splitlines()[-1])
        differ = [k for k, c in ev["cells"].items() if c["fingerprint"] != ours[k]["fingerprint"]]
        if differ:
            raise SystemExit(f"the two venvs generated different windows for cells {differ}")
        print(
            f"same windows on both sides: fingerprints of {len(ev['cells'])} cells agree. "
            f"{ev['tool']} full DataDriftPreset run on {ev['preset_checked']} windows: "
            f"flags and dataset verdict equal to its per-column tests on "
            f"{ev['preset_agreed']} of them."
        )
        methods = sorted({m for c in ev["cells"].values() for m in c["methods"]})
        print(f"Evidently's default tests here: {', '.join(methods)}")
    print(f"(power part took {time.perf_counter() - started:.0f} s wall)\n")
    print_power(args, sizes, ours, ev)
    cpu = {rows: ours[f"{rows}/0"]["cpu_seconds_per_window"] for rows in sizes}
    print()
    print(
        "kfops CPU per window (profile + verdict): "
        + ", ".join(f"{rows:,} rows {s * 1000:.0f} ms" for rows, s in cpu.items())
    )
    if ev:
        print(
            "Evidently CPU per window (per-column tests only, no report): "
            + ", ".join(
                f"{rows:,} rows {ev['cells'][f'{rows}/0']['cpu_seconds_per_window'] * 1000:.0f} ms"
                for rows in ev_sizes
            )
        )
    return {"kfops": ours, "evidently": ev}


# ------------------------------------------------------------------ scale

SCALE_DATA = Path("/work/datasets/r/Benefits.csv")  # US unemployment-benefit claims, 4,877 rows
SCALE_TARGET, SCALE_DROP = "ui", "Unnamed: 0,bluecol"  # the row-name ID column; a constant one
SCALE_MODEL = "benefits"
SCALE_DAY = datetime(2026, 11, 20, tzinfo=UTC).timestamp()  # a closed day in the past
DEFAULT_SCALE_SIZES = (100_000, 1_000_000, 10_000_000)
REQUEST_ROWS = 100  # captured requests of this many rows share a time stamp
GOAL_RSS_RATIO, GOAL_RSS_MB, GOAL_ROWS_PER_CORE = 1.5, 600.0, 200_000


def scale_model(args: argparse.Namespace) -> Path:
    """A registry with a champion trained on the table by `kfops run` (kept under .bench/)."""
    registry = REPO / ".bench" / "monitor-scale" / "registry"
    if (registry / "models" / SCALE_MODEL / "aliases" / "champion.json").is_file():
        return registry
    print(f"training {SCALE_MODEL} on {args.scale_data} with `kfops run` (once)...", flush=True)
    cmd = [str(REPO / ".venv" / "bin" / "kfops"), "run", "--data", str(args.scale_data),
           "--target", SCALE_TARGET, "--drop-columns", SCALE_DROP, "--model", SCALE_MODEL,
           "--registry", str(registry), "--threshold", "f1_macro=0"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if out.returncode != 0:
        raise SystemExit(f"kfops run failed:\n{out.stderr[-3000:]}")
    return registry


def write_scale_capture(dest: Path, registry: Path, rows: int, data: Path, seed: int = 0) -> None:
    """``rows`` captured rows over one day, written by the predictor's own writer
    (``kfops.serving.capture``: records + CaptureSink), sampled from the training table."""
    import orjson

    from kfops.contract_model import Contract
    from kfops.registry import Registry
    from kfops.serving.capture import CaptureItem, CaptureSink, records

    mv = Registry(registry).resolve(SCALE_MODEL, "champion")
    contract = Contract.load(mv.path / "contract.json")
    table = pd.read_csv(data)
    names = contract.feature_names
    classes = [str(c) for c in (contract.target.classes or ())]
    sink = CaptureSink(str(dest))
    rng = np.random.default_rng(seed)
    # Python scalars, as the predictor hands them over (NaN is written as null by orjson).
    columns = {n: np.array([*table[n].tolist(), None], dtype=object)[:-1] for n in names}
    batch = 50_000
    for first in range(0, rows, batch):
        n = min(batch, rows - first)
        idx = rng.integers(0, len(table), n)
        cols = [columns[name][idx].tolist() for name in names]
        p = rng.random(n).tolist()
        lines: list[bytes] = []
        hour_of_batch = None
        for r0 in range(0, n, REQUEST_ROWS):
            r1 = min(n, r0 + REQUEST_ROWS)
            ts = SCALE_DAY + (first + r0) / rows * 86400
            item = CaptureItem(
                SCALE_MODEL, mv.version, f"q{first + r0}", ts, names,
                [c[r0:r1] for c in cols],
                [classes[int(x > 0.5)] for x in p[r0:r1]],
                [[1 - x, x] for x in p[r0:r1]], classes,
            )  # fmt: skip
            hour = int(ts // 3600)
            if hour_of_batch is not None and hour != hour_of_batch[0]:
                sink.write(SCALE_MODEL, hour_of_batch[1], b"\n".join(lines) + b"\n")
                lines = []
            if not lines:
                hour_of_batch = (hour, ts)
            lines.extend(orjson.dumps(rec) for rec in records(item))
        if lines and hour_of_batch is not None:
            sink.write(SCALE_MODEL, hour_of_batch[1], b"\n".join(lines) + b"\n")


def baseline_child(spec: dict[str, Any]) -> None:
    """The pre-streaming flow in one process: the whole window in memory (pandas), then the
    same validation, profile and verdict ``kfops monitor`` computes."""
    from kfops.contract import validate
    from kfops.contract_model import Contract
    from kfops.drift import ReferenceProfile, detect_drift, profile_window
    from kfops.monitoring import read_capture
    from kfops.registry import Registry

    mv = Registry(spec["registry"]).verify(SCALE_MODEL, "champion")
    contract = Contract.load(mv.path / "contract.json")
    window = read_capture(spec["capture"], SCALE_MODEL, spec["start"], spec["end"])
    served = (window.meta["version"].fillna(mv.version) == mv.version).to_numpy()
    feats = window.features[served].reset_index(drop=True)
    report = validate(feats, contract, check_target=False)
    drift = detect_drift(
        ReferenceProfile.load(mv.path), profile_window(feats, ReferenceProfile.load(mv.path))
    )
    print(json.dumps({"rows": window.rows, "errors": len(report.errors), "drift": drift.drifted}))


def probe_child(cmd: list[str], log: Path, interval: float) -> None:
    """In a fresh process: run ``cmd``, sample its process tree (bench_pipeline.probe), add
    the CPU seconds of the tree (RUSAGE_CHILDREN: this process waited for it and nothing else)."""
    import resource

    from bench_pipeline import probe

    out = probe(cmd, log, interval)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    out["cpu_s"] = usage.ru_utime + usage.ru_stime
    print(json.dumps(out))


def scale_run(cmd: list[str], log: Path, interval: float) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--probe-child", json.dumps(cmd), str(log), str(interval)],
        capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(out.stdout[-3000:] + out.stderr[-3000:])
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _profiles(action: str, capture: Path, stash: Path) -> None:
    """Remove the hourly profiles, keep a copy of them, or put the copy back."""
    import shutil

    if action == "remove":
        for p in capture.rglob("*.profile.json"):
            p.unlink()
    elif action == "stash":
        stash.mkdir(exist_ok=True)
        for p in capture.rglob("*.profile.json"):
            shutil.copy2(p, stash / f"{p.parent.name}__{p.name}")
    else:
        for p in stash.iterdir():
            day, name = p.name.split("__", 1)
            shutil.copy2(p, capture / SCALE_MODEL / day / name)


def part_scale(args: argparse.Namespace) -> dict[str, Any]:
    import shutil
    import tempfile

    from _protocol import Protocol, median, spread

    sizes = args.scale_sizes
    registry = scale_model(args)
    kfops_bin = str(REPO / ".venv" / "bin" / "kfops")
    start, end = SCALE_DAY, SCALE_DAY + 86400
    sides = ("whole window (pre-change: pandas, in memory)", "kfops monitor: raw rows streamed",
             "kfops monitor: 24 hourly profiles")  # fmt: skip
    protocol = Protocol(
        sides=sides,
        rounds=args.scale_rounds,
        warmup=0,
        work=f"one window of a day of captured rows of {SCALE_MODEL} (a logistic regression "
        f"trained by `kfops run` on {args.scale_data.name}, {len(SCALE_DROP.split(','))} columns "
        "dropped), checked against its champion: data quality, drift verdict",
        parallelism="each run is a fresh process (one core's worth of work; the tree is sampled)",
        warmup_text="no warm-up run (each run is a cold, fresh process, as a scheduled job is)",
    )
    print("## scale: wall time, rows per second and peak RSS of `kfops monitor`")
    print(protocol.header())
    print(
        f"capture: one day (24 hourly files) written by the predictor's writer "
        f"(kfops.serving.capture), requests of {REQUEST_ROWS} rows sampled from the table; "
        f"the whole-window baseline runs up to {args.baseline_max_rows:,} rows (it holds the "
        "window in memory)."
    )
    print(flush=True)
    results: dict[str, Any] = {}
    for rows in sizes:
        tmp = Path(tempfile.mkdtemp(prefix="kfops-bench-monitor-", dir=args.scale_tmp))
        try:
            capture = tmp / "capture"
            t0 = time.perf_counter()
            write_scale_capture(capture, registry, rows, args.scale_data)
            size = sum(p.stat().st_size for p in capture.rglob("*.jsonl"))
            print(f"{rows:,} rows: {size / 1e6:,.0f} MB of JSONL written in "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip
            monitor = [kfops_bin, "monitor", "--model", SCALE_MODEL, "--registry", str(registry),
                       "--capture-dir", str(capture), "--start", str(start), "--end", str(end),
                       "--no-retrain", "--report-dir", str(tmp / "report")]  # fmt: skip
            stash = tmp / "profiles"

            base_spec = json.dumps({"registry": str(registry), "capture": str(capture),
                                    "start": start, "end": end})  # fmt: skip
            commands = {
                sides[0]: [sys.executable, __file__, "--baseline-child", base_spec],
                sides[1]: monitor,
                sides[2]: monitor,
            }
            run_sides = [s for s in sides if s != sides[0] or rows <= args.baseline_max_rows]
            figures: dict[str, list[dict[str, float]]] = {s: [] for s in run_sides}
            for r in range(protocol.rounds):
                for side in protocol.order(r, run_sides):
                    if side == sides[1]:
                        _profiles("remove", capture, stash)
                    elif side == sides[2]:
                        if not stash.exists():  # made by a streamed run (untimed when needed)
                            _profiles("remove", capture, stash)
                            subprocess.run(monitor, capture_output=True, check=True)
                            _profiles("stash", capture, stash)
                        _profiles("restore", capture, stash)
                    out = scale_run(commands[side], tmp / "run.log", args.sample_interval)
                    if side == sides[1] and not stash.exists():
                        _profiles("stash", capture, stash)
                    figures[side].append(out)
            results[str(rows)] = {"bytes": size, "sides": figures}
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        print_scale_rows(rows, results[str(rows)], median, spread)
    print_scale_goals(sizes, results, sides[1], median)
    return results


def print_scale_rows(rows: int, result: dict[str, Any], median: Any, spread: Any) -> None:
    print()
    print(f"| {rows:,} rows ({result['bytes'] / 1e6:,.0f} MB JSONL) | wall s | rows/s (wall) | "
          "CPU s | rows per CPU-second | tree peak RSS MiB | largest process MiB |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for side, runs in result["sides"].items():
        wall = [r["wall_s"] for r in runs]
        cpu = [r["cpu_s"] for r in runs]
        print(
            f"| {side} | {spread(wall)} | {rows / median(wall):,.0f} | {spread(cpu)} | "
            f"{rows / median(cpu):,.0f} | {spread([r['tree_mib'] for r in runs], '.0f')} | "
            f"{spread([r['largest_mib'] for r in runs], '.0f')} |"
        )
    print(flush=True)


def print_scale_goals(sizes: list[int], results: dict[str, Any], side: str, median: Any) -> None:
    small, large = min(sizes), max(sizes)
    rss = {n: median([r["tree_mib"] for r in results[str(n)]["sides"][side]]) for n in sizes}
    rate = {n: n / median([r["cpu_s"] for r in results[str(n)]["sides"][side]]) for n in sizes}
    ratio = rss[large] / rss[small]
    large_mb = rss[large] * 1.048576

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    print(f"goals ({side}):")
    print(
        f"- peak RSS at {large:,} rows within {GOAL_RSS_RATIO}x of {small:,}: "
        f"{rss[large]:.0f} / {rss[small]:.0f} MiB = {ratio:.2f}x "
        f"({verdict(ratio <= GOAL_RSS_RATIO)})"
    )
    print(
        f"- peak RSS under {GOAL_RSS_MB:.0f} MB at {large:,} rows: {large_mb:.0f} MB "
        f"({verdict(large_mb < GOAL_RSS_MB)})"
    )
    rates = [f"{n:,} rows {rate[n]:,.0f} ({verdict(rate[n] >= GOAL_ROWS_PER_CORE)})" for n in sizes]
    print(f"- at least {GOAL_ROWS_PER_CORE:,} rows per CPU-second: " + ", ".join(rates))
    if large < 10_000_000:
        print(f"  (largest size run: {large:,} rows; pass --scale-sizes to run 10,000,000)")


PARTS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "power": part_power,
    "scale": part_scale,
}


def _ints(text: str) -> list[int]:
    return [int(x.replace("_", "")) for x in text.split(",") if x]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=sorted(PARTS), action="append",
                        help="run only these parts (default: all)")  # fmt: skip
    parser.add_argument("--sizes", type=_ints, default=list(DEFAULT_SIZES))
    parser.add_argument("--shifts", type=_floats, default=list(DEFAULT_SHIFTS))
    parser.add_argument("--windows", type=int, default=50, help="shifted windows per cell")
    parser.add_argument("--null-windows", type=int, default=100)
    parser.add_argument("--large-rows", type=int, default=100_000,
                        help="sizes above this use --large-windows windows")  # fmt: skip
    parser.add_argument("--large-windows", type=int, default=20)
    parser.add_argument("--evidently-max-rows", type=int, default=20_000)
    parser.add_argument(
        "--verify-preset", type=int, default=1,
        help="windows per Evidently cell also run through the full preset",
    )  # fmt: skip
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument("--json", type=Path, help="also write all figures to this file")
    parser.add_argument("--scale-sizes", type=_ints, default=list(DEFAULT_SCALE_SIZES),
                        help="captured rows per window for the scale part")  # fmt: skip
    parser.add_argument("--scale-rounds", type=int, default=1)
    parser.add_argument("--scale-data", type=Path, default=SCALE_DATA)
    parser.add_argument("--scale-tmp", default=None, help="where captures are generated")
    parser.add_argument("--baseline-max-rows", type=int, default=1_000_000,
                        help="largest window the whole-window baseline is run on")  # fmt: skip
    parser.add_argument("--sample-interval", type=float, default=0.1, help="RSS sampling, s")
    parser.add_argument("--evidently-child", help=argparse.SUPPRESS)
    parser.add_argument("--baseline-child", help=argparse.SUPPRESS)
    parser.add_argument("--probe-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.evidently_child:
        evidently_power_child(json.loads(args.evidently_child))
        return
    if args.baseline_child:
        baseline_child(json.loads(args.baseline_child))
        return
    if args.probe_child:
        cmd, log, interval = args.probe_child
        probe_child(json.loads(cmd), Path(log), float(interval))
        return
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} (1 min) at start\n")
    results = {name: PARTS[name](args) for name in (args.part or list(PARTS))}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
