"""Tune: Optuna ask-and-tell as pipeline tasks.

    tune_init (validate config, ask round 0) -> ParallelFor tune_trial -> Collected ->
    tune_ask (tell round r-1, ask round r) -> ParallelFor tune_trial -> ... ->
    tune_report (tell the last round, best params, Markdown report, metrics)

The study travels between tasks as a JSON artifact; trials travel as JSON strings so integer
parameters stay integers through ParallelFor and Collected on every runner. The steps are
``kfops.steps.tune``; ``kfops.pipelines.tuning`` wires the tasks.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Output

from kfops.components._image import IMAGE


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
    max_rounds: int,
    study: Output[Artifact],
) -> list:
    import json
    from pathlib import Path

    from kfops.components import _decode
    from kfops.steps import tune

    trials = tune.start(
        tune.StartInputs(
            study_path=Path(study.path),
            task=task,
            estimator=estimator,
            fixed_params=_decode.params(params_json),
            search_space=search_space,
            seed=seed,
            n_rounds=n_rounds,
            trials_per_round=trials_per_round,
            max_trials=max_trials,
            timeout_s=timeout_s,
            cv_folds=cv_folds,
            max_rounds=max_rounds,
        )
    )
    study.metadata.update({"estimator": estimator, "round": 0})
    return [json.dumps(t, sort_keys=True) for t in trials]


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def tune_ask(
    study_in: Input[Artifact],
    results: list,
    round_index: int,
    n_rounds: int,
    trials_per_round: int,
    study: Output[Artifact],
) -> list:
    import json
    from pathlib import Path

    from kfops.steps import tune

    trials = tune.ask_round(
        tune.AskInputs(
            study_in=Path(study_in.path),
            results=[json.loads(r) for r in results],
            study_out=Path(study.path),
            round_index=round_index,
            n_rounds=n_rounds,
            trials_per_round=trials_per_round,
        )
    )
    study.metadata["round"] = round_index
    return [json.dumps(t, sort_keys=True) for t in trials]


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def tune_trial(
    train: Input[Dataset],
    contract: Input[Artifact],
    study: Input[Artifact],
    trial: str,
) -> str:
    import json
    from pathlib import Path

    from kfops.steps import tune

    payload = json.loads(trial)
    result = tune.trial(
        tune.TrialInputs(Path(train.path), Path(contract.path), Path(study.path), payload)
    )
    return json.dumps(result, sort_keys=True)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def tune_report(
    study_in: Input[Artifact],
    results: list,
    study: Output[Artifact],
    report: Output[Markdown],
    metrics: Output[Metrics],
) -> NamedTuple("TuneReport", best_params=str, summary=str):
    import json
    from collections import namedtuple
    from pathlib import Path

    from kfops.steps import tune

    decoded = [json.loads(r) for r in results]
    result = tune.report(
        tune.ReportInputs(Path(study_in.path), decoded, Path(study.path), Path(report.path))
    )
    info = result.summary
    best_params_json = json.dumps(result.best_params, sort_keys=True)
    metrics.log_metric(f"tune_best_cv_{info['metric']}", float(info["best_value"]))
    metrics.log_metric("tune_trials", float(info["trials"]))
    metrics.log_metric("tune_failed_trials", float(info["failed"]))
    study.metadata.update({"best_params": best_params_json, "best_value": info["best_value"]})
    outputs = namedtuple("TuneReport", ["best_params", "summary"])
    return outputs(best_params_json, json.dumps(info, sort_keys=True))


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def untuned_params(params_json: str) -> str:
    """The user's params unchanged: the Else branch when tuning is off, so one train step can
    take ``dsl.OneOf(tuned.outputs["best_params"], untuned.output)``."""
    return params_json


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def no_tuning() -> str:
    """The tuning summary when tuning is off (the Else branch of `dsl.OneOf` for lineage)."""
    return "{}"
