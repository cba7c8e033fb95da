"""The project image: what it contains, and that the pipeline gives the same result in it.

Needs a Docker daemon and the image kfops:<version> (`make image`, or scripts/ci-docker.sh in
CI). Skips with the reason when either is missing; fails instead under
KFOPS_REQUIRE_INTEGRATION=1.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import kfp
import pytest

from kfops import __version__
from tests.conftest import require

IMAGE = f"kfops:{__version__}"

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


def test_docker_runner_matches_subprocess_runner(image: str, tmp_path: Path) -> None:
    """Same data, same seed: the same metrics and the same model bytes in both runners."""
    from kfops import datasets
    from kfops.local_runner import TrainingParams, run_training

    summaries = {}
    for runner in ("subprocess", "docker"):
        params = TrainingParams(
            data_uri=str(datasets.default_data_path()),
            target="species",
            model_name="penguins",
            registry_root=str(tmp_path / runner / "registry"),
            seed=7,
        )
        summaries[runner] = run_training(params, runner=runner, image=image)
    sub, dock = summaries["subprocess"], summaries["docker"]
    assert sub.status == dock.status == "succeeded"
    assert sub.blessed is True and dock.blessed is True
    assert sub.version == dock.version == "v1"
    assert sub.fingerprint == dock.fingerprint
    assert sub.metrics and sub.metrics == dock.metrics
    assert sub.model_sha256 is not None and sub.model_sha256 == dock.model_sha256
