"""`kfops deploy apply / promote-canary / rollback --cluster` as a user runs them: a `kfops`
process that finds the cluster through KUBECONFIG (the kubernetes client reads that variable
when it is imported, so each command is its own process), pointed at the recording stand-in
API server of test_deploy.py. Every object it stores is checked against the real KServe CRD."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kfops import deploy
from kfops.registry import Registry
from tests.unit._kube import ISVC_PREFIX as PREFIX
from tests.unit._kube import FakeCluster
from tests.unit.test_deploy import assert_valid
from tests.unit.test_serving_fixtures import MODEL, make_registry, register_version

NS = "ml"
ISVC = f"{PREFIX}{NS}/inferenceservices"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[FakeCluster]:
    server = FakeCluster()
    yield server
    server.close()


def kubeconfig(tmp_path: Path, api: FakeCluster) -> Path:
    """A user's kubeconfig whose current context is the stand-in API server."""
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "trial",
        "clusters": [{"name": "trial", "cluster": {"server": f"http://127.0.0.1:{api.port}"}}],
        "users": [{"name": "me", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "trial", "context": {"cluster": "trial", "user": "me"}}],
    }))  # fmt: skip
    return path


def stored(api: FakeCluster) -> dict[str, Any]:
    obj = copy.deepcopy(api.isvcs[(NS, MODEL)])
    obj.pop("status")
    return obj


def writes(api: FakeCluster) -> list[tuple[str, str]]:
    return [(r["method"], r["path"]) for r in api.requests if r["method"] != "GET"]


def kfops_deploy(root: Path, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("KUBERNETES_SERVICE_HOST", "KFOPS_IMAGE")
    }
    return subprocess.run(
        [sys.executable, "-m", "kfops", "deploy", *args, "--registry", str(root),
         "--namespace", NS, "--image", "kfops:0.1.0", "--timeout", "30"],
        env={**env, "KUBECONFIG": str(config)}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_apply_canary_promote_and_rollback_from_the_cli(tmp_path: Path, api: FakeCluster) -> None:
    root = tmp_path / "registry"
    make_registry(root)
    register_version(root)
    registry = Registry(root)
    config = kubeconfig(tmp_path, api)

    out = kfops_deploy(root, config, "apply", "v1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"cluster: {NS}/{MODEL} -> v1; local champion -> v1"
    # Read first, then one create; the reads after it are the rollout check.
    assert (api.requests[0]["method"], api.requests[0]["path"]) == ("GET", f"{ISVC}/{MODEL}")
    assert writes(api) == [("POST", ISVC)]
    obj = stored(api)
    assert_valid(obj)
    container = obj["spec"]["predictor"]["containers"][0]
    assert container["image"] == "kfops:0.1.0"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["STORAGE_URI"] == f"pvc://kfops-registry/models/{MODEL}/versions/v1"

    out = kfops_deploy(root, config, "apply", "v2", "--canary-percent", "20")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"cluster: {NS}/{MODEL} canary v2 at 20%"
    assert writes(api) == [("POST", ISVC), ("PATCH", f"{ISVC}/{MODEL}")]
    patch = [r for r in api.requests if r["method"] == "PATCH"][-1]
    assert (patch["method"], patch["content_type"]) == ("PATCH", "application/merge-patch+json")
    obj = stored(api)
    assert_valid(obj)
    assert obj["spec"]["canary"][0]["trafficPercent"] == 20
    assert obj["spec"]["predictor"]["labels"]["kfops.io/version"] == "v1"
    assert registry.get_alias(MODEL, "champion") == "v1"  # a canary is not the champion yet

    out = kfops_deploy(root, config, "promote-canary")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{NS}/{MODEL}: canary promoted"
    obj = stored(api)
    assert_valid(obj)
    assert "canary" not in obj["spec"]
    assert obj["spec"]["predictor"]["labels"]["kfops.io/version"] == "v2"

    out = kfops_deploy(root, config, "rollback", "--cluster")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{NS}/{MODEL}: rolled back"
    obj = stored(api)
    assert_valid(obj)
    assert obj["spec"]["predictor"]["labels"]["kfops.io/version"] == "v1"
    assert obj["metadata"]["annotations"][deploy.PREVIOUS_ANNOTATION] == "v2"


def test_a_rejected_apply_is_one_error_line_and_changes_nothing(
    tmp_path: Path, api: FakeCluster
) -> None:
    root = tmp_path / "registry"
    make_registry(root)
    register_version(root)
    config = kubeconfig(tmp_path, api)
    assert kfops_deploy(root, config, "apply", "v1").returncode == 0
    before = stored(api)
    api.reject = (422, 'admission webhook "inferenceservice.kserve-webhook-server" denied it')
    out = kfops_deploy(root, config, "apply", "v2")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: "), out.stderr
    assert "rejected by the API server (HTTP 422)" in out.stderr and "webhook" in out.stderr
    assert stored(api) == before
    assert Registry(root).get_alias(MODEL, "champion") == "v1"


def test_no_cluster_configured_is_one_error_line(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    make_registry(root)
    register_version(root)
    out = kfops_deploy(root, tmp_path / "nowhere", "apply", "v2")
    assert out.returncode == 2
    assert out.stderr.startswith(
        "error: no Kubernetes configuration found (in-cluster or kubeconfig)"
    ), out.stderr
    assert out.stderr.count("\n") == 1
    assert Registry(root).get_alias(MODEL, "champion") == "v1"
