"""The project image: what it contains, and that the pipeline gives the same result in it.

Needs a Docker daemon and the image kfops:<version> (`make image`, or scripts/ci-docker.sh in
CI; KFOPS_IMAGE names another tag). Skips with the reason when either is missing; fails instead
under KFOPS_REQUIRE_INTEGRATION=1.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import joblib
import kfp
import pandas as pd
import pytest
import requests
import yaml

from kfops import __version__
from tests.conftest import REPO_ROOT, free_port, require

IMAGE = os.environ.get("KFOPS_IMAGE") or f"kfops:{__version__}"
# Floats computed by two OpenBLAS builds/kernels agree to about 1e-15 relative; 1e-9 leaves
# room for that and still catches any real difference in what was learned.
REL_TOL = 1e-9

pytestmark = pytest.mark.e2e


def _docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def image() -> str:
    require(shutil.which("docker") is not None, "docker CLI not found on PATH")
    require(_docker("info", timeout=30).returncode == 0, "no Docker daemon answers `docker info`")
    require(
        _docker("image", "inspect", IMAGE, timeout=30).returncode == 0,
        f"image {IMAGE} not built (make base-image image)",
    )
    return IMAGE


def test_image_runs_kfops_as_uid_1000_on_a_read_only_root(image: str) -> None:
    # As a cluster runs it: read-only root filesystem, a writable /tmp, no network.
    out = _docker(
        "run", "--rm", "--read-only", "--tmpfs", "/tmp", "--network", "none", image,
        "sh", "-c", "id -u; id -g; kfops --version",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:3] == ["1000", "1000", f"kfops {__version__}"]


def test_image_kfp_is_the_compilers_version_and_it_has_no_build_tools(image: str) -> None:
    script = (
        "import importlib.metadata as m, shutil, sys; "
        "print(m.version('kfp')); print(m.version('kfops')); "
        "print(sorted(t for t in ('gcc', 'cc', 'g++', 'make') if shutil.which(t))); "
        "print(any(d.metadata['Name'] in ('pytest', 'ruff', 'mypy') for d in m.distributions()))"
    )
    out = _docker("run", "--rm", "--network", "none", image, "python", "-c", script)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [kfp.__version__, __version__, "[]", "False"]


def test_image_is_tagged_with_the_package_version(image: str) -> None:
    out = _docker(
        "image", "inspect", image, "--format",
        '{{index .Config.Labels "org.opencontainers.image.version"}} {{.Config.User}}',
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [__version__, "1000:1000"]


@pytest.fixture(scope="module")
def trained(image: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The training pipeline under both runners, the docker one twice: same data, same seed."""
    from kfops import datasets
    from kfops.local_runner import TrainingParams, run_training

    root = tmp_path_factory.mktemp("runners")
    out: dict[str, Any] = {}
    for name, runner in (("subprocess", "subprocess"), ("docker", "docker"),
                         ("docker-again", "docker")):  # fmt: skip
        registry = root / name / "registry"
        params = TrainingParams(
            data_uri=str(datasets.default_data_path()),
            target="species",
            model_name="penguins",
            registry_root=str(registry),
            seed=7,
        )
        out[name] = (run_training(params, runner=runner, image=image), registry)
    return out


def _model_and_test_split(registry: Path, version: str) -> tuple[Any, pd.DataFrame]:
    """The registered model and the held-out split the run's prepare step wrote (the pipeline
    root is <registry>/runs/<run id>/pipeline, kfops.run_roots; kfp.local lays out
    <root>/<pipeline run>/<task>/<output>)."""
    splits = sorted(registry.glob("runs/*/pipeline/*/prepare/test"))
    assert len(splits) == 1, splits
    model = joblib.load(registry / "models" / "penguins" / "versions" / version / "model.joblib")
    return model, pd.read_parquet(splits[0])


def test_docker_runner_matches_subprocess_runner(trained: dict[str, Any]) -> None:
    """The same run in the image and in this venv: the same data, decisions and predictions;
    floats equal within REL_TOL, not bit for bit (the image's OpenBLAS and this machine's may
    run different kernels, see docs/ARCHITECTURE.md, "Reproducibility")."""
    (sub, sub_reg), (dock, dock_reg) = trained["subprocess"], trained["docker"]
    assert sub.status == dock.status == "succeeded"
    assert sub.fingerprint is not None and sub.fingerprint == dock.fingerprint
    assert sub.blessed is True and dock.blessed is True
    assert sub.version == dock.version == "v1"
    assert sub.aliases == dock.aliases and dock.aliases["champion"] == "v1"
    assert sub.metrics and set(sub.metrics) == set(dock.metrics)
    for name, value in sub.metrics.items():
        assert math.isclose(value, dock.metrics[name], rel_tol=REL_TOL, abs_tol=1e-12), name

    sub_model, sub_test = _model_and_test_split(sub_reg, sub.version)
    dock_model, dock_test = _model_and_test_split(dock_reg, dock.version)
    pd.testing.assert_frame_equal(sub_test, dock_test)  # the same rows held out, same values
    features = sub_test.drop(columns=["species"])
    assert len(features) >= 50
    assert list(sub_model.predict(features)) == list(dock_model.predict(features))
    sub_proba, dock_proba = sub_model.predict_proba(features), dock_model.predict_proba(features)
    assert sub_proba.shape == dock_proba.shape == (len(features), 3)
    assert (abs(sub_proba - dock_proba) <= REL_TOL * abs(sub_proba) + 1e-15).all()


def test_same_image_and_runner_give_the_same_bytes(trained: dict[str, Any]) -> None:
    """Where bit-equality does hold: the same image on the same machine, run twice."""
    first, again = trained["docker"][0], trained["docker-again"][0]
    assert first.metrics == again.metrics
    assert first.model_sha256 is not None and first.model_sha256 == again.model_sha256


def test_image_serves_the_model_as_the_inferenceservice_runs_it(
    image: str, trained: dict[str, Any], tmp_path: Path
) -> None:
    """The predictor container exactly as manifests/ declares it: command, args, uid 1000,
    read-only root, the version directory mounted read-only at /mnt/models."""
    summary, registry = trained["docker"]
    models = tmp_path / "models"
    shutil.copytree(registry / "models" / "penguins" / "versions" / summary.version, models)
    for path in [models, *models.rglob("*")]:  # what a storage initializer leaves: readable
        path.chmod(0o755 if path.is_dir() else 0o644)
    isvc = yaml.safe_load((REPO_ROOT / "manifests/base/serving/inferenceservice.yaml").read_text())
    container = isvc["spec"]["predictor"]["containers"][0]
    port = free_port()
    name = f"kfops-predictor-{port}"
    started = _docker(
        "run", "-d", "--rm", "--name", name, "--read-only", "--tmpfs", "/tmp",
        "--tmpfs", "/mnt/kfops/capture:uid=1000", "-v", f"{models}:/mnt/models:ro",
        "-p", f"127.0.0.1:{port}:8080", image, *container["command"], *container["args"],
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        model = next(a.split("=", 1)[1] for a in container["args"] if "endpoint-name" in a)
        base = f"http://127.0.0.1:{port}/v1/models/{model}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(base, timeout=1).status_code == 200:
                    break
            time.sleep(0.5)
        else:
            logs = _docker("logs", name).stderr[-2000:]
            pytest.fail(f"predictor not ready within 60 s: {logs}")
        row = {
            "island": "Biscoe", "bill_length_mm": 48.6, "bill_depth_mm": 16.0,
            "flipper_length_mm": 230.0, "body_mass_g": 5800.0, "sex": "male", "year": 2008,
        }  # fmt: skip
        resp = requests.post(f"{base}:predict", json={"instances": [row]}, timeout=10)
        assert resp.status_code == 200, resp.text
        assert resp.json()["predictions"] == ["Gentoo"]
        bad = requests.post(f"{base}:predict", json={"instances": [{"island": 3}]}, timeout=10)
        assert 400 <= bad.status_code < 500, bad.text
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert "kfops_" in metrics
    finally:
        _docker("rm", "-f", name)
