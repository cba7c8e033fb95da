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
