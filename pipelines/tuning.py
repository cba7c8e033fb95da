"""The tuning sub-pipeline: rounds of ask -> ParallelFor trials -> Collected, then report.

    init (validate, ask round 0) -> trials -> ask round 1 (tells round 0) -> trials -> ...
    -> report (tells the last round)

KFP has no loop that carries state from one iteration to the next, so rounds are unrolled when
the pipeline is built: ``build_tune_pipeline(max_rounds, parallelism)`` returns a pipeline with
``max_rounds`` round slots (the ``n_rounds`` parameter may switch later slots off at run time:
they become no-op tasks) and ParallelFor ``parallelism`` (a compile-time value in KFP).

Used as a nested pipeline inside the training pipeline, switched by a parameter::

    tune = build_tune_pipeline(max_rounds=3, parallelism=2)
    with dsl.If(tune_enabled == True):
        tuned = tune(train=prepared.outputs["train"], contract=validated.outputs["contract"],
                     task=task, estimator=estimator, params_json=params_json, ...)
    with dsl.Else():
        untuned = untuned_params(params_json=params_json)
    params = dsl.OneOf(tuned.outputs["best_params"], untuned.output)  # -> train(params_json=)
"""

from functools import cache
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown
from kfp.dsl.graph_component import GraphComponent

from kfops.components.tune import tune_ask, tune_init, tune_report, tune_trial
from kfops.params import DEFAULTS
from kfops.pipelines.resources import sized
from kfops.tuning.study import DEFAULT_CV_FOLDS

DEFAULT_MAX_ROUNDS = 3
DEFAULT_PARALLELISM = 2


class TuneOutputs(NamedTuple):
    best_params: str  # JSON object: fixed params + the best trial's params
    summary: str  # JSON: metric, direction, trial counts, best value/params, stop reason
    study: Artifact  # the study document (every trial), for lineage
    report: Markdown


@cache
def build_tune_pipeline(
    max_rounds: int = DEFAULT_MAX_ROUNDS, parallelism: int = DEFAULT_PARALLELISM
) -> GraphComponent:
    """A ``tune`` pipeline with ``max_rounds`` unrolled rounds and ParallelFor ``parallelism``
    (0 = unlimited). Cached, so one (max_rounds, parallelism) gives one component."""
    if max_rounds < 1:
        raise ValueError(f"max_rounds must be at least 1, got {max_rounds}")
    if parallelism < 0:
        raise ValueError(f"parallelism must be >= 0, got {parallelism}")

    @dsl.pipeline(
        name="kfops-tune",
        description="Optuna ask-and-tell rounds with trials fanned out as parallel tasks.",
    )
    def tune(
        train: Input[Dataset],
        contract: Input[Artifact],
        task: str,
        estimator: str,
        params_json: str = "{}",
        search_space: str = "",
        n_rounds: int = max_rounds,
        trials_per_round: int = DEFAULTS.tune_trials_per_round,
        max_trials: int = DEFAULTS.tune_max_trials,
        timeout_s: float = DEFAULTS.tune_timeout_s,
        seed: int = DEFAULTS.seed,
        cv_folds: int = DEFAULT_CV_FOLDS,
    ) -> TuneOutputs:
        init = tune_init(
            task=task,
            estimator=estimator,
            params_json=params_json,
            search_space=search_space,
            seed=seed,
            n_rounds=n_rounds,
            trials_per_round=trials_per_round,
            max_trials=max_trials,
            timeout_s=timeout_s,
            cv_folds=cv_folds,
            max_rounds=max_rounds,
        ).set_display_name("tune: validate, ask round 0")
        # The study's start time is part of its output: a cached init would restart an old
        # clock, and a cached round would replay old trials. Tuning tasks always run.
        init.set_caching_options(False)
        sized(init, "small")
        asked = init
        results = None  # the previous round's trial results, told by the next task
        for r in range(max_rounds):
            if r > 0:
                asked = tune_ask(
                    study_in=asked.outputs["study"],
                    results=results,
                    round_index=r,
                    n_rounds=n_rounds,
                    trials_per_round=trials_per_round,
                ).set_display_name(f"tune: tell round {r - 1}, ask round {r}")
                asked.set_caching_options(False)
                sized(asked, "small")
            with dsl.ParallelFor(asked.outputs["Output"], parallelism=parallelism) as trial:
                ran = tune_trial(
                    train=train,
                    contract=contract,
                    study=asked.outputs["study"],
                    trial=trial,
                ).set_display_name(f"tune: trial (round {r})")
                ran.set_caching_options(False)
                sized(ran, "train")
            results = dsl.Collected(ran.output)
        report = tune_report(study_in=asked.outputs["study"], results=results).set_display_name(
            f"tune: tell round {max_rounds - 1}, report"
        )
        report.set_caching_options(False)
        sized(report, "small")
        return TuneOutputs(
            best_params=report.outputs["best_params"],
            summary=report.outputs["summary"],
            study=report.outputs["study"],
            report=report.outputs["report"],
        )

    return tune


tune = build_tune_pipeline()
