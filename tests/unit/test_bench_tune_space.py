"""`make bench-tune` gives RandomizedSearchCV the distributions Optuna's random draws come from.

The baseline must search the same space as the pipeline: a log-scaled integer such as
n_estimators (50-300) drawn uniformly would spend most trials on large forests and flatter or
handicap the baseline by accident (issue 9).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np
import optuna
import pytest
from scipy import stats

from kfops import tuning
from tests.conftest import REPO_ROOT

DRAWS = 2000


@pytest.fixture(scope="module")
def bench_tune() -> Iterator[ModuleType]:
    path = str(REPO_ROOT / "benchmarks")
    sys.path.insert(0, path)
    try:
        yield importlib.import_module("bench_tune")
    finally:
        sys.path.remove(path)


def numeric_specs() -> list[tuning.ParamSpec]:
    """Every numeric parameter of the shipped default spaces (ints and floats, log or not)."""
    specs = {}
    for estimator, space in tuning.default_spaces().items():
        for name, raw in space.items():
            spec = tuning.parse_param(estimator, name, raw)
            if spec.kind != "categorical":
                specs[(spec.kind, spec.low, spec.high, spec.log)] = spec
    return list(specs.values())


def optuna_draws(spec: tuning.ParamSpec, seed: int) -> list[Any]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    space = {spec.name: spec.distribution()}
    values = []
    for _ in range(DRAWS):
        trial = study.ask(space)
        values.append(trial.params[spec.name])
        study.tell(trial, 0.0)
    return values


@pytest.mark.parametrize("spec", numeric_specs(), ids=lambda s: f"{s.kind}-{s.low}-{s.high}")
def test_random_search_draws_like_optuna(bench_tune: ModuleType, spec: tuning.ParamSpec) -> None:
    ours = bench_tune.scipy_distribution(spec).rvs(
        size=DRAWS, random_state=np.random.RandomState(7)
    )
    theirs = optuna_draws(spec, seed=11)
    assert ours.min() >= spec.low and ours.max() <= spec.high
    assert stats.ks_2samp(ours, theirs).pvalue > 1e-3
    if spec.kind == "int" and spec.log:
        # The draw the benchmark used to make (uniform over the integers) is told apart.
        uniform = stats.randint(int(spec.low), int(spec.high) + 1).rvs(
            size=DRAWS, random_state=np.random.RandomState(7)
        )
        assert stats.ks_2samp(uniform, theirs).pvalue < 1e-6


def test_choices_are_drawn_from_the_same_list(bench_tune: ModuleType) -> None:
    spec = tuning.parse_param("RandomForestClassifier", "max_features", ["sqrt", "log2", 0.5])
    assert bench_tune.scipy_distribution(spec) == ["sqrt", "log2", 0.5]
