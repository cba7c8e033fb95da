"""kfops.tuning: search-space validation, ask/tell across (simulated) tasks, failures, budget."""

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from kfops import tuning
from kfops.contract import infer_contract
from kfops.contract_model import Contract
from kfops.data import read_table
from kfops.datasets import default_data_path, make_synthetic
from kfops.errors import ConfigError, KfopsError
from kfops.features import split
from kfops.steps import tune
from kfops.training import ESTIMATORS, make_estimator


@pytest.fixture(scope="module")
def penguins() -> tuple[pd.DataFrame, Contract]:
    df = read_table(default_data_path())
    contract = infer_contract(df, "species", "classification")
    train, _ = split(df, contract, 0.2, 42)
    return train, contract


# --- search spaces -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "estimator"), [(t, e) for t, table in ESTIMATORS.items() for e in table]
)
def test_every_estimator_has_a_valid_default_space(task: str, estimator: str) -> None:
    space = tuning.resolve_space(task, estimator)
    valid = make_estimator(task, estimator, {}).get_params()
    assert space.params and set(space.names) <= set(valid)
    for name, dist in space.distributions().items():
        assert dist is not None, name


def test_override_as_yaml_json_and_file(tmp_path: Path) -> None:
    yaml_text = "C: {low: 0.01, high: 10, log: true}\nclass_weight: [null, balanced]\n"
    space = tuning.resolve_space("classification", "logistic_regression", yaml_text)
    c, weight = space.params
    assert (c.kind, c.low, c.high, c.log) == ("float", 0.01, 10.0, True)
    assert weight.kind == "categorical" and weight.choices == (None, "balanced")

    json_text = json.dumps({"random_forest": {"max_depth": {"low": 2, "high": 8}}})
    space = tuning.resolve_space("classification", "random_forest", json_text)
    assert [(p.name, p.kind, p.low, p.high) for p in space.params] == [("max_depth", "int", 2, 8)]

    path = tmp_path / "space.yaml"
    path.write_text("ridge:\n  alpha: {type: float, low: 1, high: 100, log: true}\n")
    space = tuning.resolve_space("regression", "ridge", str(path))
    assert space.params[0].kind == "float" and space.params[0].log


def test_fixed_params_are_pinned_out_of_the_default_space() -> None:
    space = tuning.resolve_space("classification", "decision_tree", None, {"criterion": "gini"})
    assert "criterion" not in space.names and space.names


@pytest.mark.parametrize(
    ("override", "fixed", "message"),
    [
        ("{}", None, "is empty"),
        ("", {"alpha": 1.0}, "is empty"),  # ridge's only default parameter is fixed
        ("alpha: {low: 10, high: 1}", None, "low 10 is greater than high 1"),
        ("alpha: {low: 0, high: 1, log: true}", None, "log scale needs positive bounds"),
        ("alpha: {low: -1, high: 1, log: true}", None, "log scale needs positive bounds"),
        ("gamma: {low: 1, high: 2}", None, "unknown parameter 'gamma'"),
        ("alpha: {low: 1, high: 2, choices: [1, 2]}", None, "both 'choices' and 'low'"),
        ("alpha: {low: 1.0, high: 2.0, log: true, step: 0.5}", None, "both 'log' and 'step'"),
        ("alpha: {low: 1, high: 2}\nalpha: {low: 3, high: 4}", None, "more than once"),
        ("alpha: [1, 1.0, 2]", None, "lists choice 1.0 more than once"),
        ("alpha: {low: 1, high: 2}", {"alpha": 3}, "both fixed"),
        ("alpha: {type: int, low: 1.5, high: 4}", None, "int range but low is 1.5"),
        ("alpha: {type: categorical}", None, "has no 'choices'"),
        ("alpha: {lo: 1, high: 2}", None, "unknown key 'lo'"),
        ("alpha: {low: a, high: 2}", None, "low must be a finite number"),
        ("alpha: {choices: []}", None, "non-empty list of choices"),
        ("solver: [auto, magic]", None, "value 'magic' is not accepted"),
        ("alpha: {low: -2.0, high: 1.0}", None, "value -2.0 is not accepted"),
        ("alpha: 3", None, "must be a mapping"),
        ("logistic_regression: {C: {low: 1, high: 2}}", None, "not for estimator 'ridge'"),
        ("[1, 2]", None, "must be a mapping"),
        ("alpha: {low: 1", None, "not valid JSON/YAML"),
        ("missing.yaml", None, "file not found"),
    ],
)
def test_bad_search_spaces_raise_one_clear_config_error(
    override: str, fixed: dict[str, Any] | None, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        tuning.resolve_space("regression", "ridge", override, fixed)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


# --- ask and tell across tasks -----------------------------------------------------------------


def _reload(state: tuning.StudyState, path: Path) -> tuning.StudyState:
    """What happens between two pipeline tasks: the study goes to an artifact file and back."""
    state.save(path)
    return tuning.StudyState.load(path)


def test_ask_tell_round_trip_across_tasks_is_deterministic(
    tmp_path: Path, penguins: tuple[pd.DataFrame, Contract]
) -> None:
    train, contract = penguins
    state = tuning.new_study("classification", "decision_tree", seed=3, planned_trials=6)
    state = _reload(state, tmp_path / "init.json")

    asked_twice = []
    for _attempt in range(2):  # two independent "ask tasks" from the same stored study
        again = tuning.StudyState.load(tmp_path / "init.json")
        asked_twice.append([t.params for t in tuning.ask(again, 3, round_index=0)])
    assert asked_twice[0] == asked_twice[1]

    for r in range(2):
        payloads = tuning.encode_trials(tuning.ask(state, 3, r, n_rounds=2), r)
        state = _reload(state, tmp_path / f"ask{r}.json")
        # Each trial is its own "task": it sees only the stored study and its payload.
        results = [
            tuning.run_trial(p, tuning.StudyState.load(tmp_path / f"ask{r}.json"), train, contract)
            for p in payloads
        ]
        results = [json.loads(json.dumps(x)) for x in results]  # through Collected
        state = _reload(tuning.tell(state, [json.dumps(x) for x in results]), tmp_path / "t.json")

    assert [t.number for t in state.trials] == list(range(6))
    assert [t.round for t in state.trials] == [0, 0, 0, 1, 1, 1]
    assert all(t.state == "COMPLETE" and 0 < (t.value or 0) <= 1 for t in state.trials)
    assert all(isinstance(t.params["max_depth"], int) for t in state.trials)
    assert len(state.trials[0].fold_scores) == tuning.DEFAULT_CV_FOLDS
    # The rebuilt Optuna study holds exactly the stored history.
    study = tuning.build_study(state)
    assert [t.value for t in study.trials] == [t.value for t in state.trials]
    best = tuning.best_trial(state)
    assert best.value == max(t.value or 0 for t in state.trials)
    assert tuning.best_params(state) == best.params
    # A later round does not replay the random draws of the first one.
    assert state.trials[0].params != state.trials[3].params


def test_a_failing_trial_is_recorded_and_the_study_continues(
    penguins: tuple[pd.DataFrame, Contract],
) -> None:
    import optuna

    train, contract = penguins
    # l1_ratio=1 passes sklearn's parameter checks but lbfgs refuses it when fitting.
    space = {"l1_ratio": [1.0, 0.0], "C": {"low": 0.1, "high": 10.0, "log": True}}
    state = tuning.new_study("classification", "logistic_regression", space_override=space)
    tuning.ask(state, 2, 0)
    state.trials[0].params["l1_ratio"] = 1.0
    state.trials[1].params["l1_ratio"] = 0.0
    payloads = tuning.encode_trials(state.trials, 0)
    results = [tuning.run_trial(p, state, train, contract) for p in payloads]
    tuning.tell(state, results)
    assert [t.state for t in state.trials] == ["FAIL", "COMPLETE"]
    assert "lbfgs" in (state.trials[0].error or "")
    assert [t.state for t in tuning.build_study(state).trials] == [
        optuna.trial.TrialState.FAIL,
        optuna.trial.TrialState.COMPLETE,
    ]
    assert len(tuning.ask(state, 2, 1)) == 2  # the study goes on
    assert tuning.best_params(state)["l1_ratio"] == 0.0
    assert "| 0 | 0 | FAIL |" in tuning.render_report(state)


def test_all_trials_failing_is_a_clear_error_after_the_report(
    tmp_path: Path, penguins: tuple[pd.DataFrame, Contract]
) -> None:
    train, contract = penguins
    state = tuning.new_study(
        "classification", "logistic_regression", space_override={"l1_ratio": [1.0, 0.5]}
    )
    payloads = tuning.encode_trials(tuning.ask(state, 2), 0)
    state = tuning.tell(state, [tuning.run_trial(p, state, train, contract) for p in payloads])
    state.save(tmp_path / "study.json")
    with pytest.raises(tuning.TuningError, match=r"all 2 tuning trial\(s\) of 'logistic_regr"):
        tune.report(
            tune.ReportInputs(tmp_path / "study.json", [], tmp_path / "out.json", tmp_path / "md")
        )
    assert isinstance(tuning.TuningError("x"), KfopsError)
    assert "no trial completed" in (tmp_path / "md").read_text()


def test_trial_budget_makes_later_rounds_no_ops(penguins: tuple[pd.DataFrame, Contract]) -> None:
    train, contract = penguins
    state = tuning.tune_in_process(
        train, contract, "decision_tree", n_rounds=3, trials_per_round=2, max_trials=3, seed=1
    )
    assert [t.round for t in state.trials] == [0, 0, 1]
    assert state.stop_reason == "trial budget of 3 spent"
    skip = tuning.encode_trials([], 2)
    assert json.loads(skip[0])["skip"] is True
    assert tuning.run_trial(skip[0], state, train, contract)["skip"] is True
    assert tuning.ask(state, 2, round_index=3, n_rounds=3) == []


def test_budget_reached_by_the_last_round_is_not_an_early_stop() -> None:
    state = tuning.new_study("regression", "ridge", max_trials=2)
    asked = tuning.ask(state, 2, 0, n_rounds=1)
    tuning.tell(state, [{"number": t.number, "state": "COMPLETE", "value": 1.0} for t in asked])
    assert state.stop_reason is None
    assert tuning.ask(state, 2, 1) == [] and state.stop_reason == "trial budget of 2 spent"


def test_wall_time_budget_stops_asking_and_skips_late_trials(
    penguins: tuple[pd.DataFrame, Contract],
) -> None:
    train, contract = penguins
    state = tuning.new_study("classification", "decision_tree", timeout_s=10, now=1000.0)
    asked = tuning.ask(state, 2, 0, now=1005.0)
    late = tuning.run_trial(tuning.encode_trials(asked, 0)[0], state, train, contract, now=1011.0)
    assert late["state"] == "SKIPPED"
    tuning.tell(state, [late])  # the other trial got no result: recorded as failed
    assert [t.state for t in state.trials] == ["SKIPPED", "FAIL"]
    assert tuning.ask(state, 2, 1, now=1011.0) == []
    assert state.stop_reason == "wall-time budget of 10 s spent"
    assert [t.number for t in tuning.build_study(state).trials] == [0]  # SKIPPED never ran


def test_tell_rejects_a_result_for_an_unknown_trial() -> None:
    state = tuning.new_study("regression", "ridge")
    with pytest.raises(tuning.TuningError, match="trial 7"):
        tuning.tell(state, [{"number": 7, "state": "COMPLETE", "value": 1.0}])


def test_regression_minimises_rmse_and_report_has_importances() -> None:
    df = make_synthetic(400, n_numeric=4, n_categorical=1, task="regression", seed=0)
    contract = infer_contract(df, "target", "regression")
    state = tuning.tune_in_process(
        df, contract, "decision_tree", n_rounds=2, trials_per_round=4, seed=0
    )
    assert state.metric == "rmse" and state.direction == "minimize"
    best = tuning.best_trial(state)
    assert best.value == min(t.value or 0 for t in state.trials)
    report = tuning.render_report(state)
    assert "lower is better" in report
    assert tuning.param_importances(state) is not None
    assert "| parameter | importance |" in report
    rounds = tuning.best_per_round(state)
    assert [r["round"] for r in rounds] == [0, 1]
    assert rounds[1]["best_so_far"] == best.value


def test_more_rounds_than_compiled_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="n_rounds=4 but the pipeline was compiled with 3"):
        tune.start(
            tune.StartInputs(
                tmp_path / "s", "regression", "ridge", n_rounds=4, trials_per_round=2, max_rounds=3
            )
        )
    assert not (tmp_path / "s").exists()


def test_integer_class_labels_cross_validate() -> None:
    df = make_synthetic(300, n_numeric=3, n_categorical=1, task="classification", seed=1)
    contract = infer_contract(df, "target", "classification")
    scores = tuning.cv_scores(df, contract, "decision_tree", {}, metric="f1_macro")
    assert len(scores) == 3 and all(0.5 < s <= 1.0 for s in scores)


def test_too_few_trials_for_importances_is_said_not_crashed() -> None:
    state = tuning.new_study("regression", "ridge")
    assert tuning.param_importances(state) is None
    assert "Not enough completed trials" in tuning.render_report(state)


def test_study_document_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(tuning.TuningError, match="no study document"):
        tuning.StudyState.load(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text('{"schema_version": 9}')
    with pytest.raises(tuning.TuningError, match="schema_version 9"):
        tuning.StudyState.load(tmp_path / "bad.json")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_trials": -1}, "max_trials"),
        ({"timeout_s": -5}, "timeout"),
        ({"cv_folds": 1}, "cv_folds"),
        ({"fixed_params": {"nope": 1}}, "unknown parameter 'nope'"),
    ],
)
def test_bad_budget_or_params_fail_before_any_trial(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        tuning.new_study("classification", "decision_tree", **kwargs)


def test_pipeline_steps_pass_the_study_through_files(
    tmp_path: Path, penguins: tuple[pd.DataFrame, Contract]
) -> None:
    """The exact calls the components make: start -> trials -> ask (tells) -> trials -> report
    (the components carry payloads and results across tasks as JSON strings)."""
    train, contract = penguins
    train.to_parquet(tmp_path / "train")  # artifact paths have no suffix
    contract.save(tmp_path / "contract")
    payloads = tune.start(
        tune.StartInputs(
            tmp_path / "s0", "classification", "decision_tree", {"criterion": "gini"}, "",
            seed=5, n_rounds=2, trials_per_round=2,
        )
    )  # fmt: skip

    def trial(study: str, payload: dict[str, Any], data: Path = tmp_path) -> dict[str, Any]:
        return tune.trial(
            tune.TrialInputs(data / "train", data / "contract", tmp_path / study, payload)
        )

    results = [trial("s0", p) for p in payloads]
    payloads = tune.ask_round(tune.AskInputs(tmp_path / "s0", results, tmp_path / "s1", 1, 2, 2))
    assert [p["number"] for p in payloads] == [2, 3]
    results = [trial("s1", p) for p in payloads]
    # A round past n_rounds is a no-op: one skip payload, nothing evaluated, nothing told.
    skip = tune.ask_round(tune.AskInputs(tmp_path / "s1", results, tmp_path / "s2", 2, 2, 2))
    assert [p["skip"] for p in skip] == [True]
    skipped = [trial("s2", skip[0], data=Path("/nonexistent"))]
    out = tune.report(tune.ReportInputs(tmp_path / "s2", skipped, tmp_path / "s3", tmp_path / "md"))
    best, info = out.best_params, out.summary
    assert best["criterion"] == "gini" and info["trials"] == 4 and info["complete"] == 4
    final = tuning.StudyState.load(tmp_path / "s3")
    assert [t.state for t in final.trials] == ["COMPLETE"] * 4
    assert "# Tuning: decision_tree" in (tmp_path / "md").read_text()


def test_sub_pipeline_compiles_with_unrolled_rounds_and_parallelism(tmp_path: Path) -> None:
    from kfp import compiler, dsl
    from kfp.dsl import Artifact, Dataset

    from kfops.components.tune import untuned_params
    from kfops.pipelines.tuning import build_tune_pipeline

    tune = build_tune_pipeline(max_rounds=3, parallelism=2)

    @dsl.component(base_image="python:3.11")
    def source(train: dsl.Output[Dataset], contract: dsl.Output[Artifact]):
        pass

    @dsl.pipeline(name="wrapper")
    def wrapper(tune_enabled: bool = True, params_json: str = "{}") -> str:
        made = source()
        with dsl.If(tune_enabled == True):  # noqa: E712 - a KFP condition, not a Python test
            tuned = tune(
                train=made.outputs["train"],
                contract=made.outputs["contract"],
                task="classification",
                estimator="random_forest",
                params_json=params_json,
            )
        with dsl.Else():
            untuned = untuned_params(params_json=params_json)
        return dsl.OneOf(tuned.outputs["best_params"], untuned.output)

    out = tmp_path / "wrapper.yaml"
    compiler.Compiler().compile(wrapper, str(out))
    text = out.read_text()
    assert text.count("parallelismLimit: 2") == 3  # one ParallelFor per unrolled round
    for name in ("comp-tune-init", "comp-tune-ask", "comp-tune-trial", "comp-tune-report"):
        assert name in text
    assert "tune-ask-2" in text and "tune-ask-3" not in text  # rounds 1 and 2 ask; 0 is init
