"""`make bench-tune`: the pipeline's parallel tuning vs sequential Optuna vs RandomizedSearchCV.

For each data set (the bundled penguins and one synthetic classification table) and the same
trial budget, the same estimator, search space, seeded CV folds and scorer:

  (a) pipeline   kfops.pipelines.tuning under kfp.local's SubprocessRunner, ParallelFor
                 parallelism 2 (every trial a separate process, the study passed as a file)
  (b) optuna     Optuna TPE ask/tell, sequential, in this process
  (c) random     sklearn RandomizedSearchCV (n_jobs=1) over the same space

Reported: best cross-validated score on the training split, the held-out test score of a model
refit with the best params (for information; tuning never sees it), and wall time. Goal: (a)
scores at least (c) and takes at most 1.5x the wall time of (b).

    .venv/bin/python benchmarks/bench_tune.py [--rounds 2] [--trials-per-round 8] [--rows 10000]
"""

import argparse
import atexit
import builtins
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

from kfp import dsl, local
from kfp.dsl import Artifact, Dataset, Output

from kfops import tuning
from kfops.components._image import IMAGE
from kfops.contract import infer_contract
from kfops.contract_model import Contract
from kfops.data import read_table, write_snapshot
from kfops.datasets import SYNTHETIC_TARGET, default_data_path, make_synthetic
from kfops.evaluation import evaluate
from kfops.features import split
from kfops.pipelines.tuning import build_tune_pipeline
from kfops.training import train

PARALLELISM = 2
METHODS = (
    f"(a) pipeline, parallelism {PARALLELISM}",
    "(b) optuna sequential",
    "(c) RandomizedSearchCV",
)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def load_split(
    train_path: str, contract_path: str, train: Output[Dataset], contract: Output[Artifact]
):
    import shutil

    shutil.copyfile(train_path, train.path)
    shutil.copyfile(contract_path, contract.path)


class BenchOutputs(NamedTuple):
    best_params: str
    study: Artifact


def make_bench_pipeline(rounds: int) -> Any:
    tune = build_tune_pipeline(max_rounds=rounds, parallelism=PARALLELISM)

    @dsl.pipeline(name="bench-tune")
    def bench(
        train_path: str,
        contract_path: str,
        task: str,
        estimator: str,
        trials_per_round: int,
        seed: int,
    ) -> BenchOutputs:
        loaded = load_split(train_path=train_path, contract_path=contract_path)
        tuned = tune(
            train=loaded.outputs["train"],
            contract=loaded.outputs["contract"],
            task=task,
            estimator=estimator,
            n_rounds=rounds,
            trials_per_round=trials_per_round,
            seed=seed,
        )
        return BenchOutputs(best_params=tuned.outputs["best_params"], study=tuned.outputs["study"])

    return bench


def run_pipeline(
    work: Path,
    train_df: Any,
    contract: Contract,
    estimator: str,
    rounds: int,
    per_round: int,
    seed: int,
) -> tuple[float, dict[str, Any], float]:
    """(a): returns (best CV score, best params, wall seconds of the pipeline run)."""
    # Paths must not contain "python3": SubprocessRunner rewrites it in task arguments.
    train_path, contract_path = work / "train.parquet", work / "contract.json"
    write_snapshot(train_df, train_path)
    contract.save(contract_path)
    task_tmp = work / "task-tmp"  # kfp.local tasks `mktemp -d` under TMPDIR: keep /tmp clean
    task_tmp.mkdir(exist_ok=True)
    os.environ["TMPDIR"] = str(task_tmp)
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(work / "root"),
        raise_on_error=True,
    )
    pipeline = make_bench_pipeline(rounds)
    # kfp.local streams every task's log to stdout; a logging handler it leaves behind keeps
    # writing to the redirected stream later, so the file stays open until exit.
    log = open(work / "pipeline.log", "w")  # noqa: SIM115
    atexit.register(log.close)
    # kfp.local's parallel tasks can leave builtins.print patched with an indent: restore it.
    original_print = builtins.print
    start = time.perf_counter()
    with contextlib.redirect_stdout(log):
        run = pipeline(
            train_path=str(train_path),
            contract_path=str(contract_path),
            task=contract.task,
            estimator=estimator,
            trials_per_round=per_round,
            seed=seed,
        )
    elapsed = time.perf_counter() - start
    builtins.print = original_print
    state = tuning.StudyState.load(run.outputs["study"].path)
    return (
        float(tuning.best_trial(state).value or 0.0),
        json.loads(run.outputs["best_params"]),
        elapsed,
    )


def run_optuna_sequential(
    train_df: Any, contract: Contract, estimator: str, n_trials: int, seed: int
) -> tuple[float, dict[str, Any], float]:
    """(b): plain Optuna ask/tell in one process, same sampler settings as the pipeline."""
    import optuna

    start = time.perf_counter()
    state = tuning.new_study(contract.task, estimator, seed=seed, planned_trials=n_trials)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=state.n_startup_trials)
    study = optuna.create_study(direction=state.direction, sampler=sampler)
    distributions = state.search_space.distributions()
    for _ in range(n_trials):
        trial = study.ask(distributions)
        try:
            scores = tuning.cv_scores(
                train_df, contract, estimator, trial.params, metric=state.metric, seed=seed
            )
        except Exception:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        study.tell(trial, statistics.fmean(scores))
    return float(study.best_value), dict(study.best_params), time.perf_counter() - start


def _scipy_distribution(spec: tuning.ParamSpec) -> Any:
    from scipy import stats

    if spec.kind == "categorical":
        return list(spec.choices or ())
    assert spec.low is not None and spec.high is not None
    if spec.kind == "int":  # scipy has no log-int; uniform ints over the same range
        return stats.randint(int(spec.low), int(spec.high) + 1)
    if spec.log:
        return stats.loguniform(spec.low, spec.high)
    return stats.uniform(spec.low, spec.high - spec.low)


def run_random_search(
    train_df: Any, contract: Contract, estimator: str, n_trials: int, seed: int
) -> tuple[float, dict[str, Any], float]:
    """(c): RandomizedSearchCV over the same space, folds and scorer."""
    from sklearn.model_selection import RandomizedSearchCV

    start = time.perf_counter()
    state = tuning.new_study(contract.task, estimator, seed=seed)
    problem = tuning.cv_problem(train_df, contract, estimator, {}, metric=state.metric, seed=seed)
    space = {f"model__{p.name}": _scipy_distribution(p) for p in state.search_space.params}
    search = RandomizedSearchCV(
        problem.model,
        space,
        n_iter=n_trials,
        scoring=problem.scoring,
        cv=problem.cv,
        n_jobs=1,
        random_state=seed,
        refit=False,
        error_score=float("nan"),
    )
    search.fit(problem.X, problem.y)
    params = {k.removeprefix("model__"): v for k, v in search.best_params_.items()}
    params = {k: (v.item() if hasattr(v, "item") else v) for k, v in params.items()}
    return float(problem.sign * search.best_score_), params, time.perf_counter() - start


def test_score(
    train_df: Any, test_df: Any, contract: Contract, estimator: str, params: Any, seed: int
) -> float:
    from kfops.evaluation import PRIMARY_METRIC

    model = train(train_df, contract, estimator, params, seed)
    return float(evaluate(model, test_df, contract).metrics[PRIMARY_METRIC[contract.task]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--trials-per-round", type=int, default=8)
    parser.add_argument("--rows", type=int, default=10000, help="synthetic data rows")
    parser.add_argument("--estimator", default="random_forest")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=["penguins", "synthetic"], default=None)
    args = parser.parse_args(argv)
    n_trials = args.rounds * args.trials_per_round

    datasets: dict[str, tuple[Any, str]] = {}
    if args.only in (None, "penguins"):
        datasets["penguins"] = (read_table(default_data_path()), "species")
    if args.only in (None, "synthetic"):
        frame = make_synthetic(args.rows, n_numeric=20, n_categorical=5, seed=args.seed)
        datasets[f"synthetic {args.rows // 1000}k"] = (frame, SYNTHETIC_TARGET)

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kfops-bench-tune-") as tmp:
        for name, (df, target) in datasets.items():
            contract = infer_contract(df, target, "classification")
            train_df, test_df = split(df, contract, 0.2, 42)
            work = Path(tmp) / name.replace(" ", "-")
            work.mkdir()
            for method in METHODS:
                print(f"{name}: {method} ...", file=sys.stderr, flush=True)
                if method.startswith("(a)"):
                    score, params, seconds = run_pipeline(
                        work, train_df, contract, args.estimator, args.rounds,
                        args.trials_per_round, args.seed,
                    )  # fmt: skip
                elif method.startswith("(b)"):
                    score, params, seconds = run_optuna_sequential(
                        train_df, contract, args.estimator, n_trials, args.seed
                    )
                else:
                    score, params, seconds = run_random_search(
                        train_df, contract, args.estimator, n_trials, args.seed
                    )
                held_out = test_score(
                    train_df, test_df, contract, args.estimator, params, args.seed
                )
                rows.append(
                    {
                        "data": name,
                        "method": method,
                        "cv": score,
                        "test": held_out,
                        "seconds": seconds,
                        "params": params,
                    }
                )

    print(
        f"\nestimator {args.estimator}, {n_trials} trials "
        f"({args.rounds} rounds x {args.trials_per_round}), 3-fold CV f1_macro, "
        f"{os.cpu_count()} cores\n"
    )
    print("| data | method | best CV f1_macro | test f1_macro | wall s | vs (b) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        base = next(r for r in rows if r["data"] == row["data"] and r["method"].startswith("(b)"))
        print(
            f"| {row['data']} | {row['method']} | {row['cv']:.4f} | {row['test']:.4f} "
            f"| {row['seconds']:.1f} | {row['seconds'] / base['seconds']:.2f}x |"
        )
    print()
    for data in dict.fromkeys(r["data"] for r in rows):
        a, b, c = (r for r in rows if r["data"] == data)
        print(
            f"{data}: score (a) >= (c): {a['cv'] >= c['cv'] - 1e-12}; "
            f"time (a) <= 1.5x (b): {a['seconds'] <= 1.5 * b['seconds']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
