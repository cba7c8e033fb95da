"""Prediction latency: ONNX twin vs the sklearn pipeline, same trained models, one process.

    make bench-twin  (= .venv/bin/python benchmarks/bench_twin.py [--rounds 7] [--cpu 0])

What each side does per call, starting from what the server's request check hands over (one
list of JSON values per feature, ``kfops.serving.validation.Batch.columns``):
  - sklearn: one DataFrame from the columns, ``predict_proba`` (classification) or ``predict``,
    labels by arg-max: exactly ``kfops.serving.model.ServedVersion.predict`` today;
  - twin: ``Coercion.coerce`` on the columns, then the onnxruntime session (one thread,
    sequential), labels by arg-max: ``TwinRuntime.predict``;
  - twin graph only: the session on inputs coerced beforehand (the floor of the twin path).
For one row and 100 rows, per estimator, on penguins (numeric + categorical) and on a messy
table (adds booleans, dates and free text). Rounds alternate between the sides; each figure is
the median over rounds of the mean time per call. The process is pinned to one CPU and BLAS/
OpenMP pools to one thread, so both sides get one core. No HTTP: that is `make bench-serve`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROW_COUNTS = (1, 100)
TARGET_SECONDS = 0.15  # per side per round: enough calls for a stable mean


def _time(fn: Callable[[], Any], seconds: float) -> float:
    """Mean seconds per call over about ``seconds`` of calls."""
    fn()  # warm
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / calls


def _models() -> list[tuple[str, str, Any, Any, Any]]:
    """(data set, estimator, pipeline, contract, rows frame) for every estimator in the table."""
    from palmerpenguins import load_penguins

    from kfops.contract import infer_contract
    from kfops.datasets import MESSY_TARGET, make_messy
    from kfops.features import split
    from kfops.training import ESTIMATORS, train

    out = []
    for data, df, target in (
        ("penguins", load_penguins(), "species"),
        ("messy", make_messy(1000, seed=1), MESSY_TARGET),
    ):
        contract = infer_contract(df, target, "classification")
        train_df, test_df = split(df, contract, seed=1)
        for name in sorted(ESTIMATORS["classification"]):
            out.append((data, name, train(train_df, contract, name), contract, test_df))
    return out


def _columns(contract: Any, frame: Any, n: int) -> list[list[Any]]:
    """``n`` rows as the request check hands them over (JSON values per feature)."""
    from kfops.contract import to_jsonable
    from kfops.serving.validation import RequestSchema

    rows = frame.sample(n, replace=len(frame) < n, random_state=n)
    instances = [{k: to_jsonable(r[k]) for k in contract.feature_names} for _, r in rows.iterrows()]
    return RequestSchema(contract).parse_v1({"instances": instances}).columns


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds (median)")
    parser.add_argument("--cpu", type=int, default=0, help="CPU to pin to (-1: do not pin)")
    args = parser.parse_args(argv)
    if args.cpu >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    os.environ["KFOPS_THREADS"] = "1"
    from threadpoolctl import threadpool_limits

    from kfops.coercion import Coercion
    from kfops.serving.model import ServedVersion
    from kfops.serving.validation import RequestSchema
    from kfops.twin import TwinRuntime, convert, verify

    threadpool_limits(1)
    print("training and converting ...", file=sys.stderr)
    header = (
        f"{'data':9} {'estimator':20} {'rows':>4}  {'sklearn us':>11}  {'twin us':>9}  "
        f"{'graph us':>9}  {'speed-up':>8}"
    )
    print(header)
    print("-" * len(header))
    for data, name, pipeline, contract, frame in _models():
        twin = convert(pipeline, contract)
        if not twin.convertible:
            print(f"{data:9} {name:20} not convertible: {twin.reason}")  # type: ignore[union-attr]
            continue
        runtime = TwinRuntime(twin.onnx)  # type: ignore[union-attr]
        verdict = verify(pipeline, runtime, frame, contract)
        coercion = Coercion.from_contract(contract)
        served = ServedVersion(
            model=data, version="v1", path=Path("."), sha256="",
            estimator=pipeline, contract=contract, schema=RequestSchema(contract),
            classes=list(pipeline.classes_), has_proba=True,
        )  # fmt: skip
        for n in ROW_COUNTS:
            columns = _columns(contract, frame, n)
            by_name = dict(zip(contract.feature_names, columns, strict=True))
            inputs = coercion.coerce(by_name)
            sides: dict[str, Callable[[], Any]] = {
                "sklearn": lambda c=columns, s=served: s.predict(c, True),
                "twin": lambda b=by_name, r=runtime, k=coercion: r.predict(k.coerce(b)),
                "graph": lambda i=inputs, r=runtime: r.run(i),
            }
            assert sides["twin"]()[0] == sides["sklearn"]()[0]  # same labels for these rows
            times: dict[str, list[float]] = {k: [] for k in sides}
            for _ in range(args.rounds):
                for key, fn in sides.items():
                    times[key].append(_time(fn, TARGET_SECONDS))
            med = {k: statistics.median(v) * 1e6 for k, v in times.items()}
            print(
                f"{data:9} {name:20} {n:>4}  {med['sklearn']:>11.1f}  {med['twin']:>9.1f}  "
                f"{med['graph']:>9.1f}  {med['sklearn'] / med['twin']:>7.0f}x"
                + ("" if verdict.passed else f"  (verification FAILED: {verdict.reason})")
            )
    print(
        "\nsklearn: ServedVersion.predict (DataFrame + predict_proba); twin: coerce + onnxruntime;"
        " graph: onnxruntime on pre-coerced inputs. Median of per-call means over"
        f" {args.rounds} alternating rounds, one CPU, numpy {np.__version__}."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
