"""Every pipeline compiles to KFP IR, byte-stable, with the chosen image in every executor."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kfops.errors import ConfigError
from kfops.pipelines.compile import check_image, compile_all, compile_pipeline, pipelines


def test_every_pipeline_in_pipelines_compiles_twice_to_the_same_bytes(tmp_path: Path) -> None:
    first = compile_all(tmp_path / "a", "registry.example.com/team/kfops:1.2.3")
    second = compile_all(tmp_path / "b", "registry.example.com/team/kfops:1.2.3")
    assert {p.stem for p in first} == set(pipelines()) >= {"training", "monitoring"}
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_compiled_training_spec_uses_the_image_and_gates_registration(tmp_path: Path) -> None:
    spec_path = compile_pipeline("training", tmp_path / "t.yaml", "kfops:9.9.9")
    spec = next(d for d in yaml.safe_load_all(spec_path.read_text()) if "deploymentSpec" in d)
    executors = spec["deploymentSpec"]["executors"]
    assert executors and all(e["container"]["image"] == "kfops:9.9.9" for e in executors.values())
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["serving_image"]["defaultValue"] == "kfops:9.9.9"
    assert {"data_uri", "target", "task", "estimator", "params_json", "thresholds_json",
            "max_regression", "registry_root"} <= set(params)  # fmt: skip
    tasks = spec["root"]["dag"]["tasks"]
    assert {"extract", "validate", "prepare", "train", "evaluate", "bless"} <= set(tasks)
    condition = next(t for name, t in tasks.items() if name.startswith("condition"))
    assert "bless" in condition["triggerPolicy"]["condition"]
    inner = spec["components"][condition["componentRef"]["name"]]["dag"]["tasks"]
    assert {"register", "deploy"} <= set(inner)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("kfops", "has no tag"),
        ("kfops:latest", ":latest"),
        ("", "not a valid image"),
        ("Kfops Image:1", "not a valid image"),
    ],
)
def test_bad_image_reference_is_refused(image: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        compile_pipeline("training", tmp_path / "t.yaml", image)
    assert not (tmp_path / "t.yaml").exists()


def test_digest_and_registry_port_are_accepted() -> None:
    digest = "sha256:" + "a" * 64
    assert check_image(f"localhost:5000/kfops@{digest}")
    assert check_image("localhost:5000/kfops:0.1.0")


def test_unknown_pipeline_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown pipeline 'trainig'"):
        compile_pipeline("trainig", tmp_path / "x.yaml", "kfops:0.1.0")


def _spec(tmp_path: Path, name: str) -> dict:
    path = compile_pipeline(name, tmp_path / f"{name}.yaml", "kfops:0.1.0")
    return next(d for d in yaml.safe_load_all(path.read_text()) if "deploymentSpec" in d)


def _tasks(spec: dict) -> dict[str, dict]:
    """Every task of the spec, nested DAGs (conditions, sub-pipelines) included."""
    out = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():
        out.update(component.get("dag", {}).get("tasks", {}))
    return out


def test_cacheable_steps_take_no_job_uuid_and_are_keyed_on_the_data(tmp_path: Path) -> None:
    # KFP's cache key holds a task's input values (kubeflow/pipelines 2.17.0
    # backend/src/v2/cacheutils/cache.go): a per-run value such as the job uuid defeats it.
    tasks = _tasks(_spec(tmp_path, "training"))
    for name in ("extract", "validate", "prepare"):
        task = tasks[name]
        assert task["cachingOptions"].get("enableCache") is True, name
        text = yaml.safe_dump(task["inputs"])
        assert "pipeline_job_uuid" not in text and "{{$." not in text, (name, text)
    keys = tasks["cache-keys"]
    assert not keys["cachingOptions"].get("enableCache")  # recomputed every run
    data_key = tasks["extract"]["inputs"]["parameters"]["data_key"]["taskOutputParameter"]
    assert data_key == {"outputParameterKey": "data", "producerTask": "cache-keys"}
    champion = tasks["validate"]["inputs"]["parameters"]["champion_key"]["taskOutputParameter"]
    assert champion == {"outputParameterKey": "champion", "producerTask": "cache-keys"}
    # The steps after them still know the run (the run record, the registered lineage).
    for name in ("train", "register", "deploy"):
        assert "pipeline_job_uuid" in yaml.safe_dump(tasks[name]["inputs"]), name


@pytest.mark.parametrize("name", ["training", "monitoring"])
def test_every_task_requests_and_limits_cpu_and_memory(tmp_path: Path, name: str) -> None:
    executors = _spec(tmp_path, name)["deploymentSpec"]["executors"]
    for label, executor in executors.items():
        resources = executor["container"].get("resources", {})
        for key in ("resourceCpuRequest", "resourceMemoryRequest", "resourceCpuLimit",
                    "resourceMemoryLimit"):  # fmt: skip
            assert resources.get(key), (label, key)
        # Requests fit a one-node kind already running KFP, KServe and Prometheus.
        assert resources["cpuRequest"] <= 0.5 and resources["memoryRequest"] <= 2**30, label


def test_deploy_step_waits_long_enough_for_a_rollout(tmp_path: Path) -> None:
    deploy = _tasks(_spec(tmp_path, "training"))["deploy"]
    timeout = deploy["inputs"]["parameters"]["timeout_seconds"]["runtimeValue"]["constant"]
    assert timeout >= 600
