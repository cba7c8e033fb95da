"""Deployment: local alias promotion and KServe InferenceServices (render, apply, canary, rollback).

Locally "deploying" a version means moving the registry alias ``champion``, which a running
``kfops serve`` follows (hot swap). On a cluster the same version directory is mounted by KServe
at /mnt/models (``STORAGE_URI``) into the kfops predictor image.

Canary, per KServe deployment mode (both exist in the 0.21 CRD, shared/crds):
- ``Knative`` (serverless): the predictor is updated to the new version with
  ``canaryTrafficPercent``; Knative keeps the previous revision for the rest. Promote = remove
  the percentage (100%); rollback = percentage 0 (all traffic back to the previous revision).
- ``Standard`` (raw Deployments; ignores ``canaryTrafficPercent``): the stable ``predictor``
  stays and the new version goes into ``spec.canary: [{predictor, trafficPercent}]``.
  Promote = the canary predictor becomes ``predictor`` and ``canary`` is removed; rollback =
  ``canary`` is removed.
A rollback with no canary in flight redeploys the version recorded as the previous one.

Every API call is a single create or merge-patch: if the API server rejects it, nothing changed
and the previous deployment keeps serving. Failures raise ``ClusterError`` naming the cause.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from kfops.errors import ClusterError, ConfigError
from kfops.predictor_pod import harden_predictor, prepare_capture_dir
from kfops.registry import Registry

log = logging.getLogger(__name__)

GROUP, API_VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
KIND = "InferenceService"
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
MODES = {
    "standard": "Standard",
    "rawdeployment": "Standard",
    "knative": "Knative",
    "serverless": "Knative",
}
VERSION_ANNOTATION = "kfops.io/version"
PREVIOUS_ANNOTATION = "kfops.io/previous-version"
SHA_ANNOTATION = "kfops.io/sha256"
CANARY_ANNOTATION = "kfops.io/canary-version"
CHAMPION = "champion"
PORT = 8080


# --- local --------------------------------------------------------------------------------------


def promote_local(registry_root: str | os.PathLike[str], model: str, version: str) -> str:
    """Point the ``champion`` alias at ``version`` (what ``kfops serve`` follows). Returns it."""
    return Registry(registry_root).set_alias(model, CHAMPION, version).version


def rollback_local(registry_root: str | os.PathLike[str], model: str) -> str:
    """Point ``champion`` back at its previous version. Returns the version now served."""
    return Registry(registry_root).rollback(model, CHAMPION).version


# --- rendering ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeployConfig:
    """How a model version runs on the cluster (everything but the version itself)."""

    name: str  # InferenceService name (DNS-1035), usually the model name
    namespace: str = "default"
    image: str = "kfops:0.1.0"
    mode: str = "Standard"  # Standard (raw Deployment) or Knative (serverless)
    # Root under which the registry layout lives on the cluster: pvc://<claim>/<path>,
    # s3://bucket/prefix, gs://...; a version is <root>/models/<model>/versions/<version>.
    storage_root: str = "pvc://kfops-registry"
    min_replicas: int = 1
    max_replicas: int = 1
    cpu_request: str = "500m"
    cpu_limit: str = "1"
    memory_request: str = "512Mi"
    memory_limit: str = "1Gi"
    workers: int = 1
    capture_uri: str | None = None
    capture_sample_rate: float = 1.0
    service_account: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    # Mount a PVC (e.g. the registry's, for payload capture at <mount>/capture) read-write.
    pvc: str | None = None
    pvc_mount: str = "/mnt/kfops"
    run_as_user: int = 1000

    def __post_init__(self) -> None:
        mode = MODES.get(self.mode.lower())
        if mode is None:
            raise ConfigError(f"unknown serving mode {self.mode!r}; use Standard or Knative")
        object.__setattr__(self, "mode", mode)
        if self.min_replicas < 0 or self.max_replicas < max(1, self.min_replicas):
            raise ConfigError(
                f"replicas min={self.min_replicas} max={self.max_replicas}: need "
                f"0 <= min <= max and max >= 1"
            )


def cluster_config(
    model: str,
    namespace: str = "default",
    image: str = "kfops:0.1.0",
    mode: str = "Standard",
    storage_root: str = "pvc://kfops-registry",
    **overrides: Any,
) -> DeployConfig:
    """The pipeline's deploy settings: with the registry on a PVC the predictor also mounts it
    and captures payloads to ``<mount>/capture``, where the monitoring pipeline reads them."""
    pvc = (
        storage_root[len("pvc://") :].split("/", 1)[0]
        if storage_root.startswith("pvc://")
        else None
    )
    values: dict[str, Any] = {"pvc": pvc}
    if pvc:
        values["capture_uri"] = f"{overrides.get('pvc_mount', '/mnt/kfops')}/capture"
    values.update(overrides)
    return DeployConfig(
        name=model, namespace=namespace, image=image, mode=mode, storage_root=storage_root, **values
    )


def storage_uri(storage_root: str, model: str, version: str) -> str:
    return f"{storage_root.rstrip('/')}/models/{model}/versions/{version}"


def render_predictor(
    cfg: DeployConfig, model: str, version: str, sha256: str | None = None
) -> dict[str, Any]:
    """The ``predictor`` of an InferenceService running the kfops image on one version."""
    args = ["--model-dir", "/mnt/models", "--model-name", cfg.name, "--port", str(PORT)]
    if cfg.workers > 1:
        args += ["--workers", str(cfg.workers)]
    if cfg.capture_uri:
        args += [
            "--capture",
            cfg.capture_uri,
            "--capture-sample-rate",
            str(cfg.capture_sample_rate),
        ]
    env = [
        # KServe's storage initializer downloads/mounts STORAGE_URI at /mnt/models.
        {"name": "STORAGE_URI", "value": storage_uri(cfg.storage_root, model, version)},
        {"name": "KFOPS_MODEL_VERSION", "value": version},
    ]
    container: dict[str, Any] = {
        "name": "kserve-container",
        "image": cfg.image,
        "command": ["python", "-m", "kfops.serving"],
        "args": args,
        "env": env,
        "ports": [{"containerPort": PORT, "name": "http1", "protocol": "TCP"}],
        "resources": {
            "requests": {"cpu": cfg.cpu_request, "memory": cfg.memory_request},
            "limits": {"cpu": cfg.cpu_limit, "memory": cfg.memory_limit},
        },
        "readinessProbe": {
            "httpGet": {"path": f"/v1/models/{cfg.name}", "port": PORT},
            "periodSeconds": 5,
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        # Read-only root: /tmp (metrics files of --workers, temp files) is an emptyDir.
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    if cfg.pvc:
        container["volumeMounts"].append({"name": "kfops-pvc", "mountPath": cfg.pvc_mount})
        volumes.append({"name": "kfops-pvc", "persistentVolumeClaim": {"claimName": cfg.pvc}})
    predictor: dict[str, Any] = {
        "minReplicas": cfg.min_replicas,
        "maxReplicas": cfg.max_replicas,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": cfg.run_as_user,
            "runAsGroup": cfg.run_as_user,
            "fsGroup": cfg.run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
        "labels": {"kfops.io/model": model, "kfops.io/version": version},
        "annotations": {
            # Plain Prometheus pod annotations: scraped by a kubernetes_sd "pods" job.
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(PORT),
            "prometheus.io/path": "/metrics",
            VERSION_ANNOTATION: version,
            **({SHA_ANNOTATION: sha256} if sha256 else {}),
        },
    }
    if cfg.service_account:
        predictor["serviceAccountName"] = cfg.service_account
    return harden_predictor(predictor, cfg.pvc_mount)


def render_inference_service(
    cfg: DeployConfig,
    model: str,
    version: str,
    sha256: str | None = None,
    previous_version: str | None = None,
) -> dict[str, Any]:
    """A complete InferenceService serving ``version`` (no canary)."""
    annotations = {
        MODE_ANNOTATION: cfg.mode,
        "serving.kserve.io/enable-prometheus-scraping": "true",
        VERSION_ANNOTATION: version,
    }
    if previous_version:
        annotations[PREVIOUS_ANNOTATION] = previous_version
    return {
        "apiVersion": f"{GROUP}/{API_VERSION}",
        "kind": KIND,
        "metadata": {
            "name": cfg.name,
            "namespace": cfg.namespace,
            "labels": {
                "app.kubernetes.io/part-of": "kfops",
                "kfops.io/model": model,
                **cfg.labels,
            },
            "annotations": annotations,
        },
        "spec": {"predictor": render_predictor(cfg, model, version, sha256)},
    }


def _check_percent(percent: int) -> int:
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 < percent < 100:
        raise ConfigError(f"canary percent {percent!r} must be an integer between 1 and 99")
    return percent


def render_canary(
    cfg: DeployConfig,
    live: dict[str, Any],
    model: str,
    version: str,
    percent: int,
    sha256: str | None = None,
) -> dict[str, Any]:
    """The merge patch that sends ``percent``% of traffic to ``version`` next to ``live``."""
    _check_percent(percent)
    stable = (live.get("metadata", {}).get("annotations") or {}).get(VERSION_ANNOTATION)
    new = render_predictor(cfg, model, version, sha256)
    meta: dict[str, dict[str, Any]] = {"annotations": {CANARY_ANNOTATION: version}}
    if cfg.mode == "Knative":
        new["canaryTrafficPercent"] = percent
        meta["annotations"].update({VERSION_ANNOTATION: version, PREVIOUS_ANNOTATION: stable})
        return {"metadata": meta, "spec": {"predictor": new}}
    return {"metadata": meta, "spec": {"canary": [{"predictor": new, "trafficPercent": percent}]}}


# --- applying -----------------------------------------------------------------------------------


def _api_error(exc: Exception, what: str) -> ClusterError:
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, ApiException):
        message = exc.reason or ""
        body = exc.body
        if body:
            try:
                import json

                parsed = json.loads(body)
                message = parsed.get("message") or message
            except (ValueError, AttributeError):
                message = str(body)[:500]
        return ClusterError(f"{what} was rejected by the API server (HTTP {exc.status}): {message}")
    return ClusterError(f"{what} failed: cluster unreachable ({type(exc).__name__}: {exc})")


def load_api_client(context: str | None = None) -> Any:
    """A kubernetes ApiClient from in-cluster config or ~/.kube/config (ClusterError if none)."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config(context=context)
        except (config.ConfigException, OSError, TypeError) as exc:
            raise ClusterError(
                f"no Kubernetes configuration found (in-cluster or kubeconfig): {exc}"
            ) from None
    return client.ApiClient()


class KServeDeployer:
    """Create/patch/wait/promote/rollback InferenceServices through the Kubernetes API."""

    def __init__(
        self,
        api_client: Any,
        namespace: str = "default",
        request_timeout: float = 10.0,
        poll_interval: float = 2.0,
    ):
        from kubernetes import client

        self.api = client.CustomObjectsApi(api_client)
        self.namespace = namespace
        self.request_timeout = request_timeout
        self.poll_interval = poll_interval

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return fn(*args, _request_timeout=self.request_timeout, **kwargs)
        except ApiException as exc:
            raise _api_error(exc, what) from None
        except Exception as exc:  # urllib3 connection/timeout errors: one clear message
            raise _api_error(exc, what) from None

    def get(self, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return dict(
                self.api.get_namespaced_custom_object(
                    GROUP,
                    API_VERSION,
                    self.namespace,
                    PLURAL,
                    name,
                    _request_timeout=self.request_timeout,
                )
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _api_error(exc, f"reading InferenceService {self.namespace}/{name}") from None
        except Exception as exc:
            raise _api_error(exc, f"reading InferenceService {self.namespace}/{name}") from None

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Create the object, or merge-patch it when it exists."""
        name = manifest["metadata"]["name"]
        if self.get(name) is None:
            return self.create(manifest)
        return self.patch(name, manifest)

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        what = f"creating InferenceService {self.namespace}/{manifest['metadata']['name']}"
        return dict(
            self._call(
                what,
                self.api.create_namespaced_custom_object,
                GROUP,
                API_VERSION,
                self.namespace,
                PLURAL,
                manifest,
            )
        )

    def patch(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return dict(
            self._call(
                f"patching InferenceService {self.namespace}/{name}",
                self.api.patch_namespaced_custom_object,
                GROUP,
                API_VERSION,
                self.namespace,
                PLURAL,
                name,
                patch,
            )
        )

    def wait_ready(self, name: str, timeout: float = 300.0) -> dict[str, Any]:
        """Poll until the Ready condition is True; ClusterError with the last reason on timeout."""
        deadline = time.monotonic() + timeout
        last = "no status yet"
        while True:
            obj = self.get(name)
            if obj is None:
                raise ClusterError(f"InferenceService {self.namespace}/{name} disappeared")
            ready, last = ready_condition(obj)
            if ready:
                return obj
            if time.monotonic() >= deadline:
                raise ClusterError(
                    f"InferenceService {self.namespace}/{name} not Ready after {timeout:g}s: "
                    f"{last} (the previous revision keeps serving)"
                )
            time.sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())))

    # --- lifecycle ------------------------------------------------------------------------------

    def deploy(
        self,
        cfg: DeployConfig,
        model: str,
        version: str,
        sha256: str | None = None,
        canary_percent: int = 0,
        wait: bool = True,
        timeout: float = 300.0,
    ) -> dict[str, Any]:
        live = self.get(cfg.name)
        if live is None or not canary_percent:
            previous = None
            if live is not None:
                previous = (live["metadata"].get("annotations") or {}).get(VERSION_ANNOTATION)
            manifest = render_inference_service(cfg, model, version, sha256, previous)
            if live is None:
                obj = self.create(manifest)
            else:
                manifest["spec"]["canary"] = None  # a full rollout ends any canary
                manifest["spec"]["predictor"]["canaryTrafficPercent"] = None
                obj = self.patch(cfg.name, manifest)
        else:
            obj = self.patch(
                cfg.name, render_canary(cfg, live, model, version, canary_percent, sha256)
            )
        return self.wait_ready(cfg.name, timeout) if wait else obj

    def promote(self, name: str, wait: bool = True, timeout: float = 300.0) -> dict[str, Any]:
        """Send all traffic to the canary version."""
        live = self._require(name)
        ann = live["metadata"].get("annotations") or {}
        canary_version = ann.get(CANARY_ANNOTATION)
        spec = live.get("spec", {})
        if ann.get(MODE_ANNOTATION) == "Knative":
            if spec.get("predictor", {}).get("canaryTrafficPercent") is None:
                raise ConfigError(f"InferenceService {name} has no canary to promote")
            patch: dict[str, Any] = {"spec": {"predictor": {"canaryTrafficPercent": None}}}
        else:
            canary = spec.get("canary") or []
            if not canary:
                raise ConfigError(f"InferenceService {name} has no canary to promote")
            patch = {"spec": {"predictor": canary[0]["predictor"], "canary": None}}
            patch["metadata"] = {
                "annotations": {
                    VERSION_ANNOTATION: canary_version,
                    PREVIOUS_ANNOTATION: ann.get(VERSION_ANNOTATION),
                }
            }
        patch.setdefault("metadata", {}).setdefault("annotations", {})[CANARY_ANNOTATION] = None
        self.patch(name, patch)
        return self.wait_ready(name, timeout) if wait else self._require(name)

    def rollback(
        self,
        name: str,
        cfg: DeployConfig | None = None,
        model: str | None = None,
        wait: bool = True,
        timeout: float = 300.0,
    ) -> dict[str, Any]:
        """Abort a canary, or (none in flight) redeploy the previous version (needs cfg)."""
        live = self._require(name)
        ann = live["metadata"].get("annotations") or {}
        spec = live.get("spec", {})
        knative = ann.get(MODE_ANNOTATION) == "Knative"
        if knative and spec.get("predictor", {}).get("canaryTrafficPercent") is not None:
            patch: dict[str, Any] = {"spec": {"predictor": {"canaryTrafficPercent": 0}}}
        elif not knative and spec.get("canary"):
            patch = {"spec": {"canary": None}}
        else:
            previous = ann.get(PREVIOUS_ANNOTATION)
            if not previous:
                raise ConfigError(
                    f"InferenceService {name} has no previous version to roll back to"
                )
            if cfg is None or model is None:
                raise ConfigError("rolling back to a previous version needs the deploy config")
            current = ann.get(VERSION_ANNOTATION)
            manifest = render_inference_service(cfg, model, previous, None, current)
            self.apply(manifest)
            return self.wait_ready(name, timeout) if wait else self._require(name)
        patch["metadata"] = {"annotations": {CANARY_ANNOTATION: None}}
        self.patch(name, patch)
        return self.wait_ready(name, timeout) if wait else self._require(name)

    def _require(self, name: str) -> dict[str, Any]:
        live = self.get(name)
        if live is None:
            raise ClusterError(f"InferenceService {self.namespace}/{name} does not exist")
        return live


def ready_condition(obj: dict[str, Any]) -> tuple[bool, str]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            ok = str(cond.get("status")) == "True"
            detail = cond.get("message") or cond.get("reason") or f"Ready={cond.get('status')}"
            return ok, str(detail)
    return False, "no Ready condition yet"


def deploy_version(
    registry_root: str | os.PathLike[str],
    model: str,
    version: str,
    target: str = "local",
    cfg: DeployConfig | None = None,
    canary_percent: int = 0,
    api_client: Any = None,
    timeout: float = 300.0,
) -> str:
    """The pipeline's deploy step: verify the version, then move the alias and/or apply the ISVC.

    ``target="local"`` only moves ``champion``. ``target="cluster"`` applies the
    InferenceService (canary when ``canary_percent`` > 0) and, once it is Ready with all traffic
    on the new version, also moves the local alias so registry and cluster agree.
    """
    registry = Registry(registry_root)
    mv = registry.verify(model, version)
    if target == "local":
        promote_local(registry_root, model, mv.version)
        return f"local: {model} champion -> {mv.version}"
    if target != "cluster":
        raise ConfigError(f"unknown deploy target {target!r}; use local or cluster")
    cfg = cfg or DeployConfig(name=model)
    prepare_capture_dir(cfg.capture_uri, cfg.pvc_mount)
    client = api_client if api_client is not None else load_api_client()
    deployer = KServeDeployer(client, namespace=cfg.namespace)
    deployer.deploy(cfg, model, mv.version, mv.model_sha256, canary_percent, timeout=timeout)
    if canary_percent:
        return f"cluster: {cfg.namespace}/{cfg.name} canary {mv.version} at {canary_percent}%"
    promote_local(registry_root, model, mv.version)
    return f"cluster: {cfg.namespace}/{cfg.name} -> {mv.version}; local champion -> {mv.version}"


def manifest_for(
    registry_root: str | os.PathLike[str], model: str, ref: str, cfg: DeployConfig
) -> dict[str, Any]:
    """Render the InferenceService for a registry version or alias (``kfops deploy render``)."""
    mv = Registry(registry_root).resolve(model, ref)
    return copy.deepcopy(render_inference_service(cfg, model, mv.version, mv.model_sha256))


__all__ = [
    "DeployConfig",
    "KServeDeployer",
    "cluster_config",
    "deploy_version",
    "load_api_client",
    "manifest_for",
    "promote_local",
    "ready_condition",
    "render_canary",
    "render_inference_service",
    "render_predictor",
    "rollback_local",
    "storage_uri",
]
