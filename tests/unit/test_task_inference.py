"""Task and estimator inference for `kfops run --data F --target T` (kfops.contract.task,
kfops.cli.run.training_params) and the one table of per-task defaults (kfops.params)."""

from __future__ import annotations

import argparse
import io
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kfops.cli import run as cli_run
from kfops.config import Settings
from kfops.contract import infer_contract
from kfops.contract.task import MAX_INTEGER_CLASSES, infer_task
from kfops.errors import DataError
from kfops.features import split
from kfops.params import DEFAULTS, TASK_DEFAULTS, TrainingParams
from kfops.training import ESTIMATORS


def cars_like(rows: int = 200, seed: int = 0) -> pd.DataFrame:
    """Fuel economy: a float target with many distinct values, an integer count target with
    many values, a small integer class, text labels, a near-unique name and slash dates."""
    rng = np.random.default_rng(seed)
    weight = rng.uniform(1500, 5000, rows).round(0)
    return pd.DataFrame(
        {
            "name": [f"maker{i % 7} model{i // 2}" for i in range(rows)],
            "weight": weight,
            "cylinders": rng.choice([4, 6, 8], rows),
            "origin": rng.choice(["USA", "Europe", "Japan"], rows),
            "built": [f"19{70 + i % 12}/0{1 + i % 9}/1{i % 10}" for i in range(rows)],
            "mpg": (50 - weight / 120 + rng.normal(0, 2, rows)).round(1),
            "horsepower": rng.integers(40, 230, rows),
        }
    )


def args_for(data: str, target: str, **extra: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    cli_run.register(sub)
    argv = ["run", "--data", data, "--target", target]
    for flag, value in extra.items():
        argv += [f"--{flag.replace('_', '-')}", str(value)]
    return parser.parse_args(argv)


def params_for(
    data: str, target: str, registry: Path, **extra: object
) -> tuple[TrainingParams, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        params = cli_run.training_params(
            args_for(data, target, **extra), Settings.from_env(registry_root=str(registry))
        )
    return params, out.getvalue()


@pytest.mark.parametrize(
    ("values", "task", "words"),
    [
        ([18.5, 21.0, 33.2, 17.0, 40.1] * 4, "regression", "not all whole numbers"),
        (list(range(100)) * 2, "regression", f"more than {MAX_INTEGER_CLASSES}"),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10] * 2, "regression", "fewer than 5 rows per value"),
        ([1] * 10 + [2] * 10 + [3] * 9 + [9], "regression", "1 of them seen only once"),
        ([0, 1] * 30, "classification", "2 distinct whole-number values"),
        ([4, 6, 8] * 30, "classification", "use --task regression if it is a quantity"),
        ([4.0, 6.0, np.nan, 8.0] * 20, "classification", "3 distinct"),  # ints read as floats
        (["a", "b", "c"], "classification", "text labels (3 distinct values)"),
        ([True, False] * 10, "classification", "boolean"),
        (["1.5", "2.25", "3.0"] * 3, "regression", "not all whole numbers"),  # numbers as text
    ],
)
def test_task_is_inferred_from_the_target_with_a_reason(
    values: list[object], task: str, words: str
) -> None:
    choice = infer_task(pd.Series(values), "y")
    assert choice.task == task
    assert (words in choice.reason and choice.reason.endswith(task)) or task in choice.reason
    assert "'y'" in choice.reason


def test_inference_refuses_an_all_null_target() -> None:
    with pytest.raises(DataError, match="only null values"):
        infer_task(pd.Series([np.nan, np.nan]), "y")


def test_a_float_target_with_many_values_trains_a_regression_with_its_defaults(
    tmp_path: Path,
) -> None:
    data = tmp_path / "cars.csv"
    cars_like().to_csv(data, index=False)
    params, printed = params_for(str(data), "mpg", tmp_path / "registry")
    assert params.task == "regression"
    assert params.estimator == TASK_DEFAULTS["regression"].estimator == "ridge"
    assert params.thresholds == {"r2": 0.0}  # never f1_macro for a regression
    assert "target 'mpg' is numeric with" in printed and "regression" in printed
    arguments = params.pipeline_arguments("run-1")
    assert arguments["task"] == "regression" and arguments["estimator"] == "ridge"
    assert arguments["thresholds_json"] == '{"r2": 0.0}'
    # And the contract inferred by the validate step agrees.
    assert infer_contract(pd.read_csv(data), "mpg", params.task).target.kind == "numeric"


def test_integer_targets_with_few_values_are_classes_and_with_many_a_quantity(
    tmp_path: Path,
) -> None:
    data = tmp_path / "cars.csv"
    cars_like().to_csv(data, index=False)
    classes, _ = params_for(str(data), "cylinders", tmp_path / "registry")
    assert (classes.task, classes.estimator) == ("classification", "logistic_regression")
    assert classes.thresholds == {"balanced_accuracy_adjusted": 0.1}
    counts, _ = params_for(str(data), "horsepower", tmp_path / "registry")
    assert counts.task == "regression"


def test_task_and_estimator_flags_override_the_inference(tmp_path: Path) -> None:
    data = tmp_path / "cars.csv"
    cars_like().to_csv(data, index=False)
    forced, printed = params_for(str(data), "cylinders", tmp_path / "registry", task="regression")
    assert (forced.task, forced.estimator, printed) == ("regression", "ridge", "")
    chosen, _ = params_for(str(data), "mpg", tmp_path / "registry", estimator="random_forest")
    assert (chosen.task, chosen.estimator) == ("regression", "random_forest")
    given, _ = params_for(str(data), "mpg", tmp_path / "registry", threshold="rmse=5")
    assert given.thresholds == {"rmse": 5.0}


def test_a_missing_target_is_named_with_the_closest_column(tmp_path: Path) -> None:
    data = tmp_path / "cars.csv"
    cars_like().to_csv(data, index=False)
    with pytest.raises(DataError, match="'MPG' not found; did you mean 'mpg'"):
        params_for(str(data), "MPG", tmp_path / "registry")


def test_one_table_of_per_task_defaults() -> None:
    assert set(TASK_DEFAULTS) == set(ESTIMATORS)
    for task, defaults in TASK_DEFAULTS.items():
        assert defaults.estimator in ESTIMATORS[task]
        # TrainingParams without an estimator takes the task's default.
        params = TrainingParams(data_uri="x", target="y", model_name="m", registry_root="r",
                                task=task)  # fmt: skip
        assert params.estimator == defaults.estimator
    assert DEFAULTS.estimator == TASK_DEFAULTS[DEFAULTS.task].estimator


def test_run_help_lists_the_estimators_per_task(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        args_for("x.csv", "y", help="")
    text = " ".join(capsys.readouterr().out.split())
    for task, table in ESTIMATORS.items():
        assert f"{task}: {', '.join(sorted(table))} (default {TASK_DEFAULTS[task].estimator})" in (
            text
        )
    assert "inferred from the target column" in text


@pytest.mark.parametrize(
    ("uri", "name"),
    [
        ("/data/penguins.csv.gz", "penguins"),
        ("/data/penguins.tsv.bz2", "penguins"),
        ("https://example.org/x/Sales_2024.parquet?raw=1", "sales-2024"),
        ("s3://bucket/cars.csv", "cars"),
        ("weather.data.csv", "weather-data"),
    ],
)
def test_model_names_come_from_the_file_stem_without_compression(uri: str, name: str) -> None:
    assert cli_run._model_name_from(uri) == name


def _labelled(values: list[object]) -> pd.DataFrame:
    return pd.DataFrame({"x": np.arange(len(values), dtype=float) * 1.5, "y": values})


def test_classes_too_small_to_split_get_one_message_with_the_fix_that_fits() -> None:
    # Text labels: never "use --task regression".
    frame = _labelled(["a", "a", "b", "b", "c", "d", "a", "b"])
    contract = infer_contract(frame, "y", "classification")
    with pytest.raises(DataError) as err:
        split(frame, contract, 0.25)
    message = str(err.value)
    assert "2 of 4 classes of target 'y' have fewer than 2 labeled rows" in message
    assert "'c' (1 row), 'd' (1 row)" in message
    assert "--task regression" not in message and "Add rows for these classes" in message

    # Mostly single-row whole numbers forced to classification: a quantity, say so.
    numbers = _labelled([3] * 5 + [5] * 4 + [7, 9, 11])
    contract = infer_contract(numbers, "y", "classification")
    with pytest.raises(DataError, match="--task regression"):
        split(numbers, contract, 0.25)


def test_three_labels_in_three_rows_is_not_told_to_use_regression() -> None:
    frame = _labelled(["red", "green", "blue"])
    with pytest.raises(DataError) as err:
        infer_contract(frame, "y", "classification")
    assert "--task regression" not in str(err.value)
    assert "several rows per class" in str(err.value)
