"""Compile pipelines to KFP IR YAML, with the project image written into every executor."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kfp import compiler

from kfops.errors import ConfigError

# An image reference: [registry[:port]/]path[:tag][@digest]. We insist on a tag or a digest:
# an untagged name means ':latest', which a cluster pulls and kfp.local tries to pull.
_IMAGE_RE = re.compile(
    r"^(?:[a-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._/-][a-z0-9]+)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)


def check_image(image: str) -> str:
    if not image or not _IMAGE_RE.match(image):
        raise ConfigError(f"image {image!r} is not a valid image reference (name:tag)")
    last = image.rsplit("/", 1)[-1]
    if ":" not in last and "@" not in image:
        raise ConfigError(
            f"image {image!r} has no tag: give an explicit tag such as {image}:0.1.0 "
            "(an untagged image means ':latest', which a cluster tries to pull)"
        )
    if last.endswith(":latest"):
        raise ConfigError(f"image {image!r} uses ':latest': pin a version tag or a digest")
    return image


def pipelines() -> dict[str, Callable[..., Any]]:
    """Every pipeline in kfops.pipelines by short name (imported lazily: kfp.dsl is heavy)."""
    from kfops.pipelines.training import training_pipeline

    found: dict[str, Callable[..., Any]] = {"training": training_pipeline}
    try:
        from kfops.pipelines.monitoring import monitoring_pipeline
    except ImportError:  # the monitoring pipeline has not landed in this checkout
        pass
    else:
        found["monitoring"] = monitoring_pipeline
    return found


def _set_image(spec: dict[str, Any], image: str) -> int:
    count = 0
    for executor in spec.get("deploymentSpec", {}).get("executors", {}).values():
        container = executor.get("container")
        if container is not None:
            container["image"] = image
            count += 1
    return count


def _set_default(spec: dict[str, Any], parameter: str, value: str) -> None:
    """The predictor image a pipeline deploys defaults to the image it was compiled with."""
    params = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    if parameter in params:
        params[parameter]["defaultValue"] = value


def compile_pipeline(name: str, out_path: str | Path, image: str) -> Path:
    """Compile pipeline `name` to `out_path`; identical inputs give identical bytes."""
    found = pipelines()
    if name not in found:
        raise ConfigError(f"unknown pipeline {name!r}; known: {', '.join(sorted(found))}")
    check_image(image)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "spec.yaml"
        compiler.Compiler().compile(found[name], str(raw))
        docs = list(yaml.safe_load_all(raw.read_text()))
    for doc in docs:
        if doc and "deploymentSpec" in doc:
            _set_image(doc, image)
            _set_default(doc, "serving_image", image)
    text = yaml.safe_dump_all(docs, sort_keys=True, default_flow_style=False)
    out.write_text(text)
    return out


def compile_all(out_dir: str | Path, image: str) -> list[Path]:
    return [compile_pipeline(n, Path(out_dir) / f"{n}.yaml", image) for n in sorted(pipelines())]
