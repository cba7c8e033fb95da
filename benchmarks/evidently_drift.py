"""Evidently's default data drift report on two pickled frames; prints one JSON line.

Runs INSIDE Evidently's own venv (.bench/evidently-venv, evidently==0.7.*, pandas<3), started
by bench_drift.py as a subprocess. It must not import kfops. Usage:

    evidently-venv/bin/python evidently_drift.py DATA_DIR [--repeat N] [--warmup N]

DATA_DIR holds reference.pkl and current.pkl (pandas pickles). The protocol is the same as the
kfops child of bench_drift.py: load the frames, ``--warmup`` untimed runs, then ``--repeat``
timed runs of the whole computation, median reported; the first run's time (cold: the first
call in a fresh process) is reported too. The module-level helpers use the standard library
only, so bench_drift.py reuses them for its own child process; ``evidently_verdict`` is the
one place that runs Evidently and reads its verdict (bench_monitor.py's power table uses it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from pathlib import Path
from typing import Any


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


def evidently_verdict(reference: Any, current: Any) -> dict[str, Any]:
    """Evidently's default DataDriftPreset on two frames, as a user runs it, and its verdict.

    Returns the flagged columns, the drifted share, Evidently's dataset verdict (share of
    drifted columns >= its drift_share, 0.5 by default) and the method used per column.
    """
    from evidently import Report
    from evidently.presets import DataDriftPreset

    snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
    result = snapshot.dict()  # materialise the results, as a user would
    flagged, methods, share, drift_share = [], {}, None, 0.5
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
    return {
        "flagged": flagged,
        "drift_share": share,
        "dataset_drift": share is not None and share >= drift_share,
        "methods": methods,
    }


def evidently_column_tests(reference: Any, current: Any) -> dict[str, Any]:
    """Evidently's default per-column drift decisions without building the report.

    The same calls the DataDriftPreset makes for each column (legacy/calculations/
    data_drift.py, ``get_one_column_drift`` in evidently 0.7): drop nulls and infinities, pick
    the default test with ``get_stattest`` (by reference size, column type and distinct
    values) and run it at its default threshold; the dataset verdict is the preset's
    (drifted share >= 0.5). About 1000x faster than the report, which also computes
    correlations and histograms; bench_monitor.py checks that both give the same flags.
    """
    import numpy as np
    import pandas as pd
    from evidently.legacy.calculations.stattests import get_stattest
    from evidently.legacy.core import ColumnType

    flagged, methods = [], {}
    for column in reference.columns:
        kind = (
            ColumnType.Numerical
            if pd.api.types.is_numeric_dtype(reference[column])
            else ColumnType.Categorical
        )
        ref = reference[column].replace([-np.inf, np.inf], np.nan).dropna()
        cur = current[column].replace([-np.inf, np.inf], np.nan).dropna()
        test = get_stattest(ref, cur, kind, None)
        result = test(ref, cur, kind, None)
        methods[column] = test.display_name
        if result.drifted:
            flagged.append(column)
    share = len(flagged) / len(methods) if methods else 0.0
    return {"flagged": flagged, "drift_share": share, "dataset_drift": share >= 0.5,
            "methods": methods}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()

    import evidently
    import pandas as pd
    from evidently import Report  # noqa: F401  (imported before timing, as kfops' child does)
    from evidently.presets import DataDriftPreset  # noqa: F401

    reference = pd.read_pickle(args.data_dir / "reference.pkl")
    current = pd.read_pickle(args.data_dir / "current.pkl")
    rss_before = rss_mb("VmRSS")
    reset_peak_rss()
    seconds, cpu = [], []
    for _ in range(args.warmup + args.repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        verdict = evidently_verdict(reference, current)
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    peak = rss_mb("VmHWM")
    timed, timed_cpu = seconds[args.warmup :], cpu[args.warmup :]
    print(
        json.dumps(
            {
                "tool": f"evidently {evidently.__version__}",
                "seconds": statistics.median(timed),
                "all_seconds": timed,
                "cold_seconds": seconds[0],
                "cpu_seconds": statistics.median(timed_cpu),
                **verdict,
                "compute_peak_mb": peak - rss_before,
            }
        )
    )


if __name__ == "__main__":
    main()
