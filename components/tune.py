"""Tune: Optuna ask-and-tell as pipeline tasks (init -> rounds of ask/trials/tell -> report).

The study travels between tasks as a JSON artifact; trials travel as JSON strings so integer
parameters stay integers through ParallelFor and Collected on every runner. All logic is in
``kfops.tuning``; see ``kfops.pipelines.tuning`` for how the tasks are wired.
"""

from kfops.components._image import IMAGE
from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Output


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def tune_init(
    task: str,
    estimator: str,
    params_json: str,
    search_space: str,
    seed: int,
    n_rounds: int,
    trials_per_round: int,
    max_trials: int,
    timeout_s: float,
    cv_folds: int,
    study: Output[Artifact],
):
    from kfops import tuning

    state = tuning.init_step(
        study.path, task, estimator, params_json, search_space, seed,
        n_rounds, trials_per_round, max_trials, timeout_s, cv_folds,
    )  # fmt: skip
    study.metadata.update({"estimator": estimator, "metric": state.metric})


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def tune_ask(
    study_in: Input[Artifact],
    round_index: int,
    n_rounds: int,
    trials_per_round: int,
    study: Output[Artifact],
) -> list:
    from kfops import tuning

    return tuning.ask_step(study_in.path, study.path, round_index, n_rounds, trials_per_round)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def tune_trial(
    train: Input[Dataset],
    contract: Input[Artifact],
    study: Input[Artifact],
    trial: str,
) -> str:
    from kfops import tuning

    return tuning.trial_step(train.path, contract.path, study.path, trial)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def tune_tell(
    study_in: Input[Artifact],
    results: list,
    study: Output[Artifact],
):
    from kfops import tuning

    state = tuning.tell_step(study_in.path, study.path, results)
    study.metadata["trials"] = len(state.trials)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def tune_report(
    study_in: Input[Artifact],
    study: Output[Artifact],
    report: Output[Markdown],
    metrics: Output[Metrics],
) -> str:
    from kfops import tuning

    best_params_json, info = tuning.report_step(study_in.path, study.path, report.path)
    metrics.log_metric(f"tune_best_cv_{info['metric']}", float(info["best_value"]))
    metrics.log_metric("tune_trials", float(info["trials"]))
    metrics.log_metric("tune_failed_trials", float(info["failed"]))
    study.metadata.update({"best_params": best_params_json, "best_value": info["best_value"]})
    return best_params_json
