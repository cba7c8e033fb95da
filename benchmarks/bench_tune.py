"""`make bench-tune`: the pipeline's parallel tuning vs Optuna vs RandomizedSearchCV.

For each data set (the bundled penguins and one synthetic classification table), with the same
trial budget, estimator, search space, seeded CV folds, scorer and number of worker processes:

  (a) pipeline   kfops.pipelines.tuning under kfp.local's SubprocessRunner: ParallelFor
                 parallelism W (every trial a separate task process, the study passed as a file).
                 Its wall time includes one harness task that copies the inputs in (kfp.local
                 takes no artifact inputs), a cost a real training pipeline does not have
  (b) optuna     Optuna TPE ask/tell in W worker processes sharing one study (JournalStorage
                 file, Optuna's documented way to run a study in several processes), each asking
                 the next trial when it is free, same TPE settings as the pipeline (startup
                 trials, constant liar)
  (c) random     sklearn RandomizedSearchCV, n_jobs=W, over the same space: log-scaled
                 parameters drawn log-uniformly, exactly as Optuna's random draws are

W is --workers (default 2: every side may keep both cores busy). Each seed is one round: the
seed moves the sampler, the CV folds and the estimator's random_state for every side alike.
Reported per side, as median [min-max] over the seeds: best cross-validated score on the
training split, the held-out test score of a model refit with the best params (for information;
tuning never sees it), wall time, and the trials' own CV seconds summed: the sides sample
different params, so their trials cost different amounts, and wall - trials/W is what is left
for orchestration and uneven worker loads ((a) times a trial inside a fresh task process, so
its trial seconds also hold the first-use imports each task pays: its orchestration share is
larger than that column says). Goal: (a) scores at least (c) and takes at most 1.5x the wall
time of (b).

    .venv/bin/python benchmarks/bench_tune.py [--seeds 3] [--workers 2] [--rounds 2]
        [--trials-per-round 8] [--rows 10000] [--only penguins|synthetic]
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
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from _protocol import Protocol, median, spread
from kfp import dsl, local  # no `from __future__ import annotations`: kfp reads the types
from kfp.dsl import Artifact, Dataset, Output

from kfops import tuning
from kfops.components._image import IMAGE
from kfops.contract import infer_contract
from kfops.contract_model import Contract
from kfops.data import read_table, write_snapshot
from kfops.datasets import SYNTHETIC_TARGET, default_data_path, make_synthetic
from kfops.evaluation import PRIMARY_METRIC, evaluate
from kfops.features import split
from kfops.pipelines.tuning import build_tune_pipeline
from kfops.training import train


@dataclass(frozen=True)
class Budget:
    rounds: int
    per_round: int
    workers: int
    seed: int

    @property
    def trials(self) -> int:
        return self.rounds * self.per_round


class Outcome(NamedTuple):
    cv: float  # best cross-validated primary metric on the training split
    params: dict[str, Any]
    seconds: float  # wall time of the whole study
    # Sum of the trials' own cross-validation times: what the sampled params cost, apart from
    # orchestration. Sides sample different params, so their trials cost different amounts.
    trial_seconds: float


# --- (a) the pipeline ----------------------------------------------------------------------------


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


def make_bench_pipeline(rounds: int, parallelism: int) -> Any:
    tune = build_tune_pipeline(max_rounds=rounds, parallelism=parallelism)

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
    work: Path, train_df: Any, contract: Contract, estimator: str, budget: Budget
) -> Outcome:
    # Paths must not contain "python3": SubprocessRunner rewrites it in task arguments.
    train_path, contract_path = work / "train.parquet", work / "contract.json"
    if not train_path.exists():
        write_snapshot(train_df, train_path)
        contract.save(contract_path)
    task_tmp = work / "task-tmp"  # kfp.local tasks `mktemp -d` under TMPDIR: keep /tmp clean
    task_tmp.mkdir(exist_ok=True)
    os.environ["TMPDIR"] = str(task_tmp)
    # As kfops.local_runner does: the project image's Python is this environment, and display
    # names are for the dashboard.
    warnings.filterwarnings("ignore", message=".*custom or non-Python base image.*")
    warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*")
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(work / "root"),
        raise_on_error=True,
    )
    pipeline = make_bench_pipeline(budget.rounds, budget.workers)
    # kfp.local streams every task's log to stdout; a logging handler it leaves behind keeps
    # writing to the redirected stream later, so the file stays open until exit.
    log = open(work / "pipeline.log", "a")  # noqa: SIM115
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
            trials_per_round=budget.per_round,
            seed=budget.seed,
        )
    elapsed = time.perf_counter() - start
    builtins.print = original_print
    state = tuning.StudyState.load(run.outputs["study"].path)
    done = len(state.trials_in("COMPLETE", "FAIL"))
    if done != budget.trials:
        raise SystemExit(f"pipeline ran {done} trials, expected {budget.trials}")
    best = float(tuning.best_trial(state).value or 0.0)
    trial_s = sum(t.duration_s or 0.0 for t in state.trials)
    return Outcome(best, json.loads(run.outputs["best_params"]), elapsed, trial_s)


# --- (b) Optuna in W processes -------------------------------------------------------------------


def _optuna_worker(
    journal: str,
    study_name: str,
    train_df: Any,
    contract: Contract,
    estimator: str,
    n_trials: int,
    sampler_seed: int,
    seed: int,
    n_startup_trials: int,
) -> None:
    """One of W processes (a loky worker): ask/tell on the shared study until ``n_trials``
    have been asked in all, so a worker that drew cheap trials takes more of them."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    state = tuning.new_study(contract.task, estimator, seed=seed)
    # The same TPE settings as kfops.tuning.build_study; each worker its own sampler seed.
    sampler = optuna.samplers.TPESampler(
        seed=sampler_seed, n_startup_trials=n_startup_trials, constant_liar=True
    )
    study = optuna.load_study(
        study_name=study_name,
        storage=JournalStorage(JournalFileBackend(journal)),
        sampler=sampler,
    )
    distributions = state.search_space.distributions()
    while len(study.get_trials(deepcopy=False)) < n_trials:
        trial = study.ask(distributions)
        if trial.number >= n_trials:  # another worker asked the last one meanwhile: void
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            break
        try:
            scores = tuning.cv_scores(
                train_df, contract, estimator, trial.params, metric=state.metric, seed=seed
            )
        except Exception:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        study.tell(trial, statistics.fmean(scores))


def run_optuna(
    work: Path, train_df: Any, contract: Contract, estimator: str, budget: Budget
) -> Outcome:
    import optuna
    from joblib import Parallel, delayed
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = time.perf_counter()
    state = tuning.new_study(
        contract.task, estimator, seed=budget.seed, planned_trials=budget.trials
    )
    journal = str(work / f"optuna-{time.monotonic_ns()}.journal")
    storage = JournalStorage(JournalFileBackend(journal))
    study = optuna.create_study(direction=state.direction, storage=storage, study_name="bench")
    common = (journal, "bench", train_df, contract, estimator, budget.trials)
    startup = state.n_startup_trials
    jobs = [
        delayed(_optuna_worker)(*common, budget.seed * 1000 + w, budget.seed, startup)
        for w in range(budget.workers)
    ]
    Parallel(n_jobs=budget.workers)(jobs)
    elapsed = time.perf_counter() - start
    # Trials numbered past the budget were voided unrun (FAIL): they are not part of the study.
    finished = [t for t in study.get_trials() if t.state.is_finished() and t.number < budget.trials]
    if len(finished) != budget.trials:
        raise SystemExit(f"optuna ran {len(finished)} trials, expected {budget.trials}")
    trial_s = sum(
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in finished
        if t.datetime_complete and t.datetime_start
    )
    return Outcome(float(study.best_value), dict(study.best_params), elapsed, trial_s)


# --- (c) RandomizedSearchCV ----------------------------------------------------------------------


def scipy_distribution(spec: tuning.ParamSpec) -> Any:
    """What RandomizedSearchCV samples for one parameter: the distribution of Optuna's random
    draws for the same ParamSpec (optuna/_transform.py: a log-int is drawn uniformly on
    [log(low - 0.5), log(high + 0.5)], exponentiated and rounded)."""
    import numpy as np
    from scipy import stats

    if spec.kind == "categorical":
        return list(spec.choices or ())
    assert spec.low is not None and spec.high is not None
    if spec.kind == "int":
        step = int(spec.step or 1)
        values = np.arange(int(spec.low), int(spec.high) + 1, step)
        if spec.log:  # P(k) = log((k + 0.5) / (k - 0.5)) / log((high + 0.5) / (low - 0.5))
            mass = np.log(values + 0.5) - np.log(values - 0.5)
            return stats.rv_discrete(values=(values, mass / mass.sum()))
        if step == 1:
            return stats.randint(int(spec.low), int(spec.high) + 1)
        return values.tolist()  # a stepped int is drawn uniformly from its grid
    if spec.log:
        return stats.loguniform(spec.low, spec.high)
    if spec.step is not None:  # a stepped float is drawn uniformly from its grid
        return np.arange(spec.low, spec.high + spec.step / 2, spec.step).tolist()
    return stats.uniform(spec.low, spec.high - spec.low)


def run_random_search(
    work: Path, train_df: Any, contract: Contract, estimator: str, budget: Budget
) -> Outcome:
    from sklearn.model_selection import RandomizedSearchCV

    start = time.perf_counter()
    state = tuning.new_study(contract.task, estimator, seed=budget.seed)
    problem = tuning.cv_problem(
        train_df, contract, estimator, {}, metric=state.metric, seed=budget.seed
    )
    space = {f"model__{p.name}": scipy_distribution(p) for p in state.search_space.params}
    search = RandomizedSearchCV(
        problem.model,
        space,
        n_iter=budget.trials,
        scoring=problem.scoring,
        cv=problem.cv,
        n_jobs=budget.workers,
        random_state=budget.seed,
        refit=False,
        error_score=float("nan"),
    )
    search.fit(problem.X, problem.y)
    elapsed = time.perf_counter() - start
    params = {k.removeprefix("model__"): v for k, v in search.best_params_.items()}
    params = {k: (v.item() if hasattr(v, "item") else v) for k, v in params.items()}
    results = search.cv_results_
    n_splits = problem.cv.get_n_splits()
    trial_s = float(sum(results["mean_fit_time"] + results["mean_score_time"]) * n_splits)
    return Outcome(float(problem.sign * search.best_score_), params, elapsed, trial_s)


# --- the protocol --------------------------------------------------------------------------------

Runner = Callable[[Path, Any, Contract, str, Budget], Outcome]


@dataclass(frozen=True)
class Side:
    key: str
    label: str
    run: Runner


def sides(workers: int) -> list[Side]:
    return [
        Side("a", f"(a) pipeline, ParallelFor parallelism {workers}", run_pipeline),
        Side("b", f"(b) optuna TPE, {workers} processes", run_optuna),
        Side("c", f"(c) RandomizedSearchCV, n_jobs={workers}", run_random_search),
    ]


def held_out_score(
    train_df: Any, test_df: Any, contract: Contract, estimator: str, params: Any, seed: int
) -> float:
    model = train(train_df, contract, estimator, params, seed)
    return float(evaluate(model, test_df, contract).metrics[PRIMARY_METRIC[contract.task]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="ask/tell rounds per study")
    parser.add_argument("--trials-per-round", type=int, default=8)
    parser.add_argument("--rows", type=int, default=10000, help="synthetic data rows")
    parser.add_argument("--estimator", default="random_forest")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1, one round each")
    parser.add_argument("--workers", type=int, default=2, help="processes for every side")
    parser.add_argument("--warmup", type=int, default=1, help="untimed warm-up runs per side")
    parser.add_argument("--only", choices=["penguins", "synthetic"], default=None)
    parser.add_argument("--out", default=None, help="JSON results (default build/bench/)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        raise SystemExit(f"--workers must be at least 1, got {args.workers}")
    n_trials = args.rounds * args.trials_per_round
    methods = sides(args.workers)
    protocol = Protocol(
        sides=tuple(m.label for m in methods),
        rounds=args.seeds,
        warmup=args.warmup,
        work=f"{args.estimator}, {n_trials} trials, {tuning.DEFAULT_CV_FOLDS}-fold CV on the "
        "training split, "
        "same space, folds and scorer; one round per seed",
        parallelism=f"{args.workers} worker processes for every side, "
        f"{os.cpu_count()} cores on this machine (shared)",
    )
    print(protocol.header(), flush=True)

    datasets: dict[str, tuple[Any, str]] = {}
    if args.only in (None, "penguins"):
        datasets["penguins"] = (read_table(default_data_path()), "species")
    if args.only in (None, "synthetic"):
        frame = make_synthetic(args.rows, n_numeric=20, n_categorical=5, seed=0)
        datasets[f"synthetic {args.rows // 1000}k"] = (frame, SYNTHETIC_TARGET)

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kfops-bench-tune-") as tmp:
        for name, (df, target) in datasets.items():
            contract = infer_contract(df, target, "classification")
            train_df, test_df = split(df, contract, 0.2, 42)
            work = Path(tmp) / name.replace(" ", "-")
            work.mkdir()
            # Warm-up: imports, page cache and joblib's worker pool, one short study per side.
            warm = Budget(1, args.workers, args.workers, seed=10_000)
            for w in range(args.warmup):
                for side in protocol.order(w, methods):
                    print(f"{name}: warm-up {side.label} ...", file=sys.stderr, flush=True)
                    side.run(work, train_df, contract, args.estimator, warm)
            for i in range(args.seeds):
                budget = Budget(args.rounds, args.trials_per_round, args.workers, seed=i)
                for side in protocol.order(i, methods):
                    out = side.run(work, train_df, contract, args.estimator, budget)
                    held_out = held_out_score(
                        train_df, test_df, contract, args.estimator, out.params, i
                    )
                    print(
                        f"{name}: seed {i} {side.label}: cv {out.cv:.4f}, test {held_out:.4f}, "
                        f"{out.seconds:.1f} s (trials {out.trial_seconds:.1f} s)",
                        file=sys.stderr,
                        flush=True,
                    )
                    results.append(
                        {
                            "data": name,
                            "side": side.key,
                            "seed": i,
                            "cv": out.cv,
                            "test": held_out,
                            "seconds": out.seconds,
                            "trial_seconds": out.trial_seconds,
                            "params": out.params,
                        }
                    )

    metric = PRIMARY_METRIC["classification"]
    w = args.workers
    print(
        f"\n| data | side | best CV {metric} | test {metric} | wall s | wall vs (b) "
        f"| trials s (sum) | wall - trials/{w} s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    verdicts = []
    for data in datasets:
        rows = {m.key: [r for r in results if r["data"] == data and r["side"] == m.key]
                for m in methods}  # fmt: skip
        # Wall-time ratio per seed (both sides ran in the same round), then the median.
        b_seconds = {r["seed"]: r["seconds"] for r in rows["b"]}
        for m in methods:
            own = rows[m.key]
            ratio = [r["seconds"] / b_seconds[r["seed"]] for r in own]
            print(
                f"| {data} | {m.label} | {spread([r['cv'] for r in own], '.4f')} "
                f"| {spread([r['test'] for r in own], '.4f')} "
                f"| {spread([r['seconds'] for r in own])} | {spread(ratio, '.2f')}x "
                f"| {spread([r['trial_seconds'] for r in own])} "
                f"| {spread([r['seconds'] - r['trial_seconds'] / w for r in own])} |"
            )
        a_cv, c_cv = (median([r["cv"] for r in rows[k]]) for k in ("a", "c"))
        a_vs_b = median([r["seconds"] / b_seconds[r["seed"]] for r in rows["a"]])
        b_trials = {r["seed"]: r["trial_seconds"] for r in rows["b"]}
        a_trials = median([r["trial_seconds"] / b_trials[r["seed"]] for r in rows["a"]])
        wins = sum(a["cv"] >= c["cv"] - 1e-12 for a, c in zip(rows["a"], rows["c"], strict=True))
        verdicts.append(
            f"{data}: score (a) >= (c): {a_cv >= c_cv - 1e-12} (medians; per seed "
            f"{wins}/{len(rows['a'])}); time (a) <= 1.5x (b): {a_vs_b <= 1.5} ({a_vs_b:.2f}x; "
            f"its trials alone cost {a_trials:.2f}x those of (b))"
        )
    print()
    print("\n".join(verdicts))
    out_path = Path(args.out or Path(__file__).resolve().parents[1] / "build/bench/tune.json")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(
        json.dumps({"protocol": protocol.header(), "runs": results}, indent=2, default=str) + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
