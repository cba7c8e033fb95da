"""Evidently's default data drift report on two pickled frames; prints one JSON line.

Runs INSIDE Evidently's own venv (.bench/evidently-venv, evidently==0.7.*, pandas<3), started
by bench_drift.py as a subprocess. It must not import kfops. Usage:

    evidently-venv/bin/python evidently_drift.py DATA_DIR [--repeat N]

DATA_DIR holds reference.pkl and current.pkl (pandas pickles). The module-level helpers use the
standard library only, so bench_drift.py reuses them for its own child process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from pathlib import Path


def reset_peak_rss() -> None:
    """Reset the kernel's peak-RSS mark (VmHWM) so the next peak is the computation's own."""
    # Not Linux or not allowed: the peak then includes loading the data.
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def rss_mb(field: str = "VmHWM") -> float:
    """VmHWM (peak) or VmRSS (current) of this process in MiB; 0.0 where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _drifted(method: str, score: float, threshold: float) -> bool:
    # Evidently's rule: p-value methods drift below the threshold, distances at or above it.
    return score < threshold if "p_value" in method else score >= threshold


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    import evidently
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    reference = pd.read_pickle(args.data_dir / "reference.pkl")
    current = pd.read_pickle(args.data_dir / "current.pkl")
    rss_before = rss_mb("VmRSS")
    reset_peak_rss()
    seconds, cpu = [], []
    for _ in range(args.repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
        result = snapshot.dict()  # materialise the results, as a user would
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    peak = rss_mb("VmHWM")

    flagged, methods, share = [], {}, None
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            column, method = config["column"], config["method"]
            methods[column] = method
            if _drifted(method, float(metric["value"]), float(config["threshold"])):
                flagged.append(column)
        elif config["type"].endswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
            drift_share = float(config["drift_share"])
    print(
        json.dumps(
            {
                "tool": f"evidently {evidently.__version__}",
                "seconds": statistics.median(seconds),
                "all_seconds": seconds,
                "cpu_seconds": statistics.median(cpu),
                "flagged": flagged,
                "drift_share": share,
                "dataset_drift": share is not None and share >= drift_share,
                "methods": methods,
                "compute_peak_mb": peak - rss_before,
            }
        )
    )


if __name__ == "__main__":
    main()
