"""The tuning sub-pipeline under kfp.local, wrapped in a tiny pipeline.

Real tasks, real artifacts: prepare penguins -> tune (2 rounds x 2 trials, parallelism 2), with
the SubprocessRunner and (e2e, when the project image is built) the DockerRunner.
"""

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml
from kfp import compiler, components, dsl, local
from kfp.dsl import Artifact, Dataset, Output

from kfops.components._image import IMAGE
from kfops.datasets import default_data_path
from kfops.pipelines.tuning import build_tune_pipeline
from tests.conftest import require, require_binary

pytestmark = pytest.mark.integration


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def prepare_penguins(data_uri: str, train: Output[Dataset], contract: Output[Artifact]):
    from kfops import contract as contracts
    from kfops import data, features

    df = data.read_table(data_uri)
    inferred = contracts.infer_contract(df, "species", "classification")
    train_df, _ = features.split(df, inferred, 0.2, 42)
    data.write_snapshot(train_df, train.path)
    inferred.save(contract.path)


tune_2x = build_tune_pipeline(max_rounds=2, parallelism=2)
tune_1x = build_tune_pipeline(max_rounds=1, parallelism=2)


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


class Outputs(NamedTuple):
    best_params: str
    summary: str
    study: Artifact
    report: dsl.Markdown


@dsl.pipeline
def tuned_penguins(data_uri: str, estimator: str, search_space: str, params_json: str) -> Outputs:
    prepared = prepare_penguins(data_uri=data_uri)
    tuned = tune_2x(
        train=prepared.outputs["train"],
        contract=prepared.outputs["contract"],
        task="classification",
        estimator=estimator,
        params_json=params_json,
        search_space=search_space,
        n_rounds=2,
        trials_per_round=2,
        seed=7,
    )
    return Outputs(
        best_params=tuned.outputs["best_params"],
        summary=tuned.outputs["summary"],
        study=tuned.outputs["study"],
        report=tuned.outputs["report"],
    )


@dsl.pipeline
def failing_penguins(data_uri: str, search_space: str) -> str:
    prepared = prepare_penguins(data_uri=data_uri)
    tuned = tune_1x(
        train=prepared.outputs["train"],
        contract=prepared.outputs["contract"],
        task="classification",
        estimator="logistic_regression",
        search_space=search_space,
        n_rounds=1,
        trials_per_round=2,
    )
    return tuned.outputs["best_params"]


@pytest.fixture
def subprocess_runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # Every kfp.local task runs in `mktemp -d`; pointing TMPDIR into tmp_path keeps those
    # directories out of /tmp (pytest removes tmp_path), without touching other runs' dirs.
    task_tmp = tmp_path / "task-tmp"
    task_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(task_tmp))
    # SubprocessRunner rewrites every "python3" in a task's command line, parameter values
    # included, and the bundled CSV lives under .venv/lib/python3.11: use a copy.
    shutil.copy(default_data_path(), tmp_path / "penguins.csv")
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "pipeline-root"),
        raise_on_error=True,
    )
    yield tmp_path


def test_two_rounds_of_parallel_trials_pick_best_params(subprocess_runner: Path) -> None:
    run = tuned_penguins(
        data_uri=str(subprocess_runner / "penguins.csv"),
        estimator="decision_tree",
        search_space="",
        params_json='{"criterion": "entropy"}',
    )
    best = json.loads(run.outputs["best_params"])
    study = json.loads(Path(run.outputs["study"].path).read_text())
    trials = study["trials"]
    assert [(t["round"], t["state"]) for t in trials] == [
        (0, "COMPLETE"),
        (0, "COMPLETE"),
        (1, "COMPLETE"),
        (1, "COMPLETE"),
    ]
    # Ints survive the trip through ParallelFor/Collected as ints, and the fixed param is kept.
    assert isinstance(best["max_depth"], int) and isinstance(best["min_samples_leaf"], int)
    assert best["criterion"] == "entropy"
    top = max(trials, key=lambda t: t["value"])
    assert {k: best[k] for k in top["params"]} == top["params"]
    assert all(0.5 < t["value"] <= 1.0 for t in trials)
    summary = json.loads(run.outputs["summary"])
    assert summary["complete"] == 4 and summary["best_params"] == best
    report = Path(run.outputs["report"].path).read_text()
    assert "## Best score per round" in report and "| 1 | 2 | 0 |" in report


def test_all_trials_failing_fails_the_pipeline_with_a_clear_error(subprocess_runner: Path) -> None:
    # l1_ratio > 0 passes sklearn's parameter checks, but the lbfgs solver refuses it in fit.
    space = json.dumps({"l1_ratio": [1.0, 0.5]})
    with pytest.raises(RuntimeError) as info:
        failing_penguins(data_uri=str(subprocess_runner / "penguins.csv"), search_space=space)
    # Every trial ran and failed; the report task is the one that stops the run.
    assert "Inner task failed: 'tune-report'" in _plain(str(info.value))


def _image_has_current_tuning(image: str) -> bool:
    check = "import kfops.steps.tune as s, kfops.tuning as t; s.start; t.SPACES_FILE.read_text()"
    done = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", image, "python", "-c", check],
        capture_output=True,
        timeout=120,
    )
    return done.returncode == 0


def _compiled_with_image(pipeline: Any, path: Path, image: str) -> Any:
    """Compile as for a cluster, with every executor on ``image``, and load it back."""
    compiler.Compiler().compile(pipeline, str(path))
    docs = list(yaml.safe_load_all(path.read_text()))
    for doc in docs:
        for executor in (doc or {}).get("deploymentSpec", {}).get("executors", {}).values():
            executor["container"]["image"] = image
    path.write_text(yaml.safe_dump_all(docs))
    return components.load_component_from_file(str(path))


@pytest.mark.e2e
def test_sub_pipeline_runs_in_the_project_image_with_docker_runner(tmp_path: Path) -> None:
    image = os.environ.get("KFOPS_IMAGE") or IMAGE
    require_binary("docker")
    daemon = subprocess.run(["docker", "info"], capture_output=True, timeout=60)
    require(daemon.returncode == 0, "no Docker daemon answers `docker info`")
    require(_image_has_current_tuning(image), f"image {image} has this kfops.tuning (make image)")
    # DockerRunner mounts only the pipeline root: the data must live inside it.
    root = tmp_path / "pipeline-root"
    root.mkdir()
    shutil.copy(default_data_path(), root / "penguins.csv")
    pipeline = _compiled_with_image(tuned_penguins, tmp_path / "tuned.yaml", image)
    local.init(
        runner=local.DockerRunner(
            user=f"{os.getuid()}:{os.getgid()}",
            environment={"HOME": "/tmp", "MPLCONFIGDIR": "/tmp/matplotlib"},
        ),
        pipeline_root=str(root),
        raise_on_error=True,
    )
    run = pipeline(
        data_uri=str(root / "penguins.csv"),
        estimator="decision_tree",
        search_space="max_depth: {low: 2, high: 6}\nmin_samples_leaf: [1, 5]",
        params_json="{}",
    )
    study = json.loads(Path(run.outputs["study"].path).read_text())
    assert [t["state"] for t in study["trials"]] == ["COMPLETE"] * 4
    assert set(json.loads(run.outputs["best_params"])) == {"max_depth", "min_samples_leaf"}
