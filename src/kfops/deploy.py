"""Deployment: local alias promotion and KServe InferenceServices (render, apply, canary, rollback).

Locally "deploying" a version means moving the registry alias ``champion``, which a running
``kfops serve`` follows (hot swap). On a cluster the same version directory is mounted by KServe
at /mnt/models (``STORAGE_URI``) into the kfops predictor image.

The cluster behaviour below is decided by these upstream files (KServe v0.20.0, the version
``scripts/kind-up.sh`` installs; docs/cluster.md lists them all):

- Canary, per KServe deployment mode. ``Knative`` (serverless): the predictor is updated with
  ``canaryTrafficPercent``; Knative keeps the previous revision for the rest. ``Standard`` (raw
  Deployments) ignores ``canaryTrafficPercent``; since 0.20 it has ``spec.canary:
  [{predictor, trafficPercent}]``, checked by ``validateCanarySpecs`` in
  ``pkg/apis/serving/v1beta1/inference_service_validation.go``: the ISVC must be annotated
  ``deploymentMode: Standard``, the stable predictor must have a storage URI (a custom
  container's ``STORAGE_URI`` env counts, ``predictor_custom.go`` ``GetStorageUri``), each
  canary needs a ``predictor.name`` unlike the stable one's, and must not set ``maxReplicas``,
  ``scaleTarget``, ``scaleMetric``, ``autoScaling`` or ``workerSpec``; its ``minReplicas`` may
  not exceed the stable one's (unset: ceil(stable min x percent), ``canaryReplicaCount`` in
  ``pkg/controller/v1beta1/inferenceservice/components/predictor.go``). Before 0.20 the CRD has
  no ``spec.canary``: the API server would silently prune it, so every write here asks for
  ``fieldValidation=Strict`` and such a cluster answers with one clear error instead.
- Readiness after an update (Standard mode): the controller patches the Deployment and
  propagates the status of the Deployment as it was before the patch
  (``reconcilers/deployment/deployment_reconciler.go``, ``CheckResultUpdate``), and
  ``PropagateRawStatus`` (``pkg/apis/serving/v1beta1/inference_service_status.go``) keeps
  ``PredictorReady`` True while the Deployment is ``Available``, which it stays during a rolling
  update; its ``status.observedGeneration`` is the Deployment's, not the ISVC's. So Ready alone
  says nothing about the new version: ``wait_ready(version=...)`` also requires the
  Deployment's pod template to carry the version's label, and the rollout to be complete as
  ``kubectl rollout status`` decides it (kubernetes/kubectl v0.32.13
  ``pkg/polymorphichelpers/rollout_status.go``: observedGeneration >= generation, updated ==
  spec replicas, no old replicas, updated all available; ``ProgressDeadlineExceeded`` fails).
- A rollout that does not complete (new pods crash-loop, never pass their readiness probe) is
  rolled back: the previous spec is restored with one merge patch, and a ``RolloutFailed``
  (a ClusterError) is raised, so the pipeline's deploy step fails and the alias stays.
- ``serving.kserve.io/enable-prometheus-scraping: "true"`` makes KServe's pod webhook rewrite
  ``prometheus.io/port`` to 9091 (``pkg/webhook/admission/pod/metrics_aggregate_injector.go``,
  ``DefaultPodPrometheusPort``), where nothing listens: we set it to "false" and keep our own
  ``prometheus.io/port`` (8080, the PodMonitor scrapes the named port ``http1``).

Every API call is a single create or merge-patch: if the API server rejects it, nothing changed
and the previous deployment keeps serving. Failures raise ``ClusterError`` naming the cause.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

from kfops.defaults import DEPLOY_NAMESPACE, IMAGE
from kfops.errors import ClusterError, ConfigError
from kfops.predictor_pod import harden_predictor, prepare_capture_dir
from kfops.registry import CHAMPION, Registry

log = logging.getLogger(__name__)

GROUP, API_VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
KIND = "InferenceService"
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
# KServe's pod webhook rewrites prometheus.io/port to 9091 when this is "true" (see above).
SCRAPING_ANNOTATION = "serving.kserve.io/enable-prometheus-scraping"
MODES = {
    "standard": "Standard",
    "rawdeployment": "Standard",
    "knative": "Knative",
    "serverless": "Knative",
}
VERSION_ANNOTATION = "kfops.io/version"
VERSION_LABEL = "kfops.io/version"
MODEL_LABEL = "kfops.io/model"
PREVIOUS_ANNOTATION = "kfops.io/previous-version"
SHA_ANNOTATION = "kfops.io/sha256"
CANARY_ANNOTATION = "kfops.io/canary-version"
PORT = 8080
# The sizes the pipeline deploys with by default: a predictor (kserve + sklearn + pandas) holds
# about 285 MiB after its first requests (measured: `kfops serve` on penguins with capture, RSS
# after 20 requests) and one request costs a few ms of CPU; requests small enough for a
# one-node kind cluster already running KFP, KServe and Prometheus (docs/cluster.md).
CPU_REQUEST, CPU_LIMIT = "100m", "1"
MEMORY_REQUEST, MEMORY_LIMIT = "384Mi", "1Gi"
# The pipeline's deploy step waits this long for a rollout (docs/cluster.md: first start on a
# busy one-node kind includes scheduling and Python imports under CPU pressure).
DEFAULT_TIMEOUT = 600.0
# kubectl rollout status: Progressing with this reason means the Deployment gave up.
PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


class RolloutFailed(ClusterError):
    """A new version did not roll out; the previous spec was restored (``restored``)."""

    def __init__(self, message: str, restored: bool = False) -> None:
        super().__init__(message)
        self.restored = restored


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
    namespace: str = DEPLOY_NAMESPACE
    image: str = IMAGE
    mode: str = "Standard"  # Standard (raw Deployment) or Knative (serverless)
    # Root under which the registry layout lives on the cluster: pvc://<claim>/<path>,
    # s3://bucket/prefix, gs://...; a version is <root>/models/<model>/versions/<version>.
    storage_root: str = "pvc://kfops-registry"
    min_replicas: int = 1
    max_replicas: int = 1
    cpu_request: str = CPU_REQUEST
    cpu_limit: str = CPU_LIMIT
    memory_request: str = MEMORY_REQUEST
    memory_limit: str = MEMORY_LIMIT
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
    namespace: str = DEPLOY_NAMESPACE,
    image: str = IMAGE,
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


def canary_name(version: str) -> str:
    """``predictor.name`` of a Standard-mode canary: the version id as a DNS label ("v2").

    KServe names its Deployment ``<isvc>-<name>-predictor`` (``constants.PredictorServiceName``).
    """
    name = re.sub(r"[^a-z0-9-]+", "-", version.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = f"v-{name}".rstrip("-")
    if not _DNS_LABEL.match(name):
        raise ConfigError(f"version {version!r} gives no valid canary name ({name!r})")
    return name[:40]


def render_predictor(
    cfg: DeployConfig, model: str, version: str, sha256: str | None = None
) -> dict[str, Any]:
    """The ``predictor`` of an InferenceService running the kfops image on one version."""
    args = ["--model-dir", "/mnt/models", "--endpoint-name", cfg.name, "--port", str(PORT)]
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
        "labels": {MODEL_LABEL: model, VERSION_LABEL: version},
        "annotations": {
            # Plain Prometheus pod annotations (a kubernetes_sd "pods" job); the PodMonitor
            # scrapes the named port instead. KServe must not rewrite the port (see above).
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(PORT),
            "prometheus.io/path": "/metrics",
            SCRAPING_ANNOTATION: "false",
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
        SCRAPING_ANNOTATION: "false",
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
                MODEL_LABEL: model,
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


# Fields validateCanarySpecs refuses on a canary predictor ("canary uses fixed replicas").
CANARY_FORBIDDEN = ("maxReplicas", "scaleTarget", "scaleMetric", "autoScaling", "workerSpec")


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
    live_predictor = live.get("spec", {}).get("predictor", {})
    name = canary_name(version)
    if name == live_predictor.get("name"):
        raise ConfigError(f"version {version!r} is already the stable predictor {name!r}")
    # KServe merges the canary onto a copy of the stable predictor (buildCanaryPredictor) and
    # sizes it itself: no replica bounds here, only what differs (the containers, labels...).
    for key in ("minReplicas", *CANARY_FORBIDDEN):
        new.pop(key, None)
    new["name"] = name
    return {"metadata": meta, "spec": {"canary": [{"predictor": new, "trafficPercent": percent}]}}


def merge_patch_to(current: Any, target: Any) -> Any:
    """The RFC 7386 merge patch that turns ``current`` into ``target`` (None: delete).

    Lists are replaced whole, as merge patch does. Hand-written (ten lines) because the
    kubernetes client sends custom-object patches as merge patches only.
    """
    if not isinstance(current, dict) or not isinstance(target, dict):
        return copy.deepcopy(target)
    patch: dict[str, Any] = {}
    for key in current.keys() - target.keys():
        patch[key] = None
    for key, value in target.items():
        if key not in current:
            patch[key] = copy.deepcopy(value)
        elif current[key] != value:
            patch[key] = merge_patch_to(current[key], value)
    return patch


# --- rollout state ------------------------------------------------------------------------------


def ready_condition(obj: dict[str, Any]) -> tuple[bool, str]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            ok = str(cond.get("status")) == "True"
            detail = cond.get("message") or cond.get("reason") or f"Ready={cond.get('status')}"
            return ok, str(detail)
    return False, "no Ready condition yet"


def deployment_name(isvc_name: str, predictor_name: str | None = None) -> str:
    """The Deployment KServe runs a predictor in (``constants.PredictorServiceName``)."""
    if predictor_name:
        return f"{isvc_name}-{predictor_name}-predictor"
    return f"{isvc_name}-predictor"


def deployment_rollout(dep: dict[str, Any] | None, version: str) -> tuple[bool, str]:
    """(done, detail) of a predictor Deployment rolling out ``version``.

    Raises RolloutFailed when the Deployment gave up (progress deadline exceeded). The checks
    are ``kubectl rollout status``'s, after making sure KServe has written ``version`` into the
    pod template (until then the Deployment's state is the previous version's).
    """
    if dep is None:
        return False, "no predictor Deployment yet"
    name = dep.get("metadata", {}).get("name", "?")
    spec, status = dep.get("spec") or {}, dep.get("status") or {}
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if template_labels.get(VERSION_LABEL) != version:
        found = template_labels.get(VERSION_LABEL)
        return False, f"Deployment {name} still runs {found} (KServe has not applied {version})"
    generation = int(dep.get("metadata", {}).get("generation") or 0)
    if generation > int(status.get("observedGeneration") or 0):
        return False, f"Deployment {name}: waiting for the spec update to be observed"
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == PROGRESS_DEADLINE_EXCEEDED:
            raise RolloutFailed(
                f"Deployment {name} exceeded its progress deadline: {cond.get('message', '')}"
            )
    wanted = spec.get("replicas")
    updated = int(status.get("updatedReplicas") or 0)
    replicas = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if wanted is not None and updated < int(wanted):
        return False, f"Deployment {name}: {updated} of {wanted} new replicas updated"
    if replicas > updated:
        return False, f"Deployment {name}: {replicas - updated} old replicas pending termination"
    if available < updated:
        return False, f"Deployment {name}: {available} of {updated} updated replicas available"
    return True, f"Deployment {name} rolled out {version}"


def knative_rollout(obj: dict[str, Any]) -> tuple[bool, str]:
    """Knative: the latest created revision must be the latest ready one."""
    predictor = ((obj.get("status") or {}).get("components") or {}).get("predictor") or {}
    created, ready = predictor.get("latestCreatedRevision"), predictor.get("latestReadyRevision")
    if not created or created != ready:
        return False, f"revision {created or '?'} not ready yet (ready: {ready or 'none'})"
    return True, f"revision {created} ready"


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
        if "unknown field" in message and "spec.canary" in message:
            message += (
                " (this cluster's KServe predates 0.20, whose InferenceService has spec.canary: "
                "upgrade KServe, deploy without a canary, or use mode Knative)"
            )
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
        namespace: str = DEPLOY_NAMESPACE,
        request_timeout: float = 10.0,
        poll_interval: float = 2.0,
    ):
        from kubernetes import client

        self.client = api_client
        self.api = client.CustomObjectsApi(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.namespace = namespace
        self.request_timeout = request_timeout
        self.poll_interval = poll_interval

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, _request_timeout=self.request_timeout, **kwargs)
        except Exception as exc:  # ApiException, urllib3 connection/timeout errors: one message
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

    def get_deployment(self, name: str) -> dict[str, Any] | None:
        """A Deployment as a plain dict (camelCase keys), None when it does not exist."""
        from kubernetes.client.exceptions import ApiException

        what = f"reading Deployment {self.namespace}/{name}"
        try:
            dep = self.apps.read_namespaced_deployment(
                name, self.namespace, _request_timeout=self.request_timeout
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _api_error(exc, what) from None
        except Exception as exc:
            raise _api_error(exc, what) from None
        return dict(self.client.sanitize_for_serialization(dep))

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
                field_validation="Strict",
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
                field_validation="Strict",
            )
        )

    def rollout_state(self, obj: dict[str, Any], version: str | None) -> tuple[bool, str]:
        """(done, detail): Ready, and (given ``version``) that version fully rolled out."""
        ready, detail = ready_condition(obj)
        if not ready:
            return False, detail
        if version is None:
            return True, detail
        ann = obj.get("metadata", {}).get("annotations") or {}
        if ann.get(MODE_ANNOTATION) == "Knative":
            return knative_rollout(obj)
        name = obj["metadata"]["name"]
        spec = obj.get("spec") or {}
        stable_version = (spec.get("predictor", {}).get("labels") or {}).get(VERSION_LABEL)
        checks = [(deployment_name(name, spec.get("predictor", {}).get("name")), stable_version)]
        for canary in spec.get("canary") or []:
            predictor = canary.get("predictor") or {}
            canary_version = (predictor.get("labels") or {}).get(VERSION_LABEL)
            checks.append((deployment_name(name, predictor.get("name")), canary_version))
        if version not in {v for _, v in checks}:
            return False, f"InferenceService {name} does not serve {version} (yet)"
        for dep_name, dep_version in checks:
            done, detail = deployment_rollout(self.get_deployment(dep_name), str(dep_version))
            if not done:
                return False, detail
        return True, detail

    def wait_ready(
        self, name: str, timeout: float = 300.0, version: str | None = None
    ) -> dict[str, Any]:
        """Poll until Ready (and, given ``version``, until that version has rolled out).

        ClusterError with the last reason on timeout; RolloutFailed when the Deployment gave up.
        """
        deadline = time.monotonic() + timeout
        last = "no status yet"
        while True:
            obj = self.get(name)
            if obj is None:
                raise ClusterError(f"InferenceService {self.namespace}/{name} disappeared")
            done, last = self.rollout_state(obj, version)
            if done:
                return obj
            if time.monotonic() >= deadline:
                raise ClusterError(
                    f"InferenceService {self.namespace}/{name} not Ready after {timeout:g}s: {last}"
                )
            time.sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())))

    def _wait_or_restore(
        self, name: str, previous: dict[str, Any] | None, version: str, timeout: float
    ) -> dict[str, Any]:
        """Wait for ``version``; if it does not roll out, restore ``previous`` and raise."""
        try:
            return self.wait_ready(name, timeout, version=version)
        except ClusterError as exc:
            if previous is None:
                raise
            before = (previous["metadata"].get("annotations") or {}).get(VERSION_ANNOTATION)
            try:
                self.restore(name, previous)
            except ClusterError as restore_exc:
                raise RolloutFailed(
                    f"{version} did not roll out ({exc}); restoring {before} failed too: "
                    f"{restore_exc}"
                ) from None
            raise RolloutFailed(
                f"{version} did not roll out ({exc}); restored the spec of {before}, whose "
                "pods keep serving",
                restored=True,
            ) from None

    def restore(self, name: str, previous: dict[str, Any]) -> dict[str, Any]:
        """Put ``spec`` and the kfops annotations back as they were in ``previous``."""
        live = self._require(name)
        target_ann = {
            k: v
            for k, v in (previous["metadata"].get("annotations") or {}).items()
            if k.startswith("kfops.io/")
        }
        live_ann = {
            k: v
            for k, v in (live["metadata"].get("annotations") or {}).items()
            if k.startswith("kfops.io/")
        }
        patch: dict[str, Any] = {"spec": merge_patch_to(live.get("spec", {}), previous["spec"])}
        ann_patch = merge_patch_to(live_ann, target_ann)
        if ann_patch:
            patch["metadata"] = {"annotations": ann_patch}
        log.warning("restoring InferenceService %s/%s to its previous spec", self.namespace, name)
        return self.patch(name, patch)

    # --- lifecycle ------------------------------------------------------------------------------

    def deploy(
        self,
        cfg: DeployConfig,
        model: str,
        version: str,
        sha256: str | None = None,
        canary_percent: int = 0,
        wait: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
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
                manifest["metadata"]["annotations"][CANARY_ANNOTATION] = None
                obj = self.patch(cfg.name, manifest)
        else:
            obj = self.patch(
                cfg.name, render_canary(cfg, live, model, version, canary_percent, sha256)
            )
        if not wait:
            return obj
        return self._wait_or_restore(cfg.name, live, version, timeout)

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
            # The canary carries only what differs; it becomes the stable predictor whole,
            # with the stable replica bounds and without the canary's name.
            stable = copy.deepcopy(spec.get("predictor", {}))
            promoted = {k: v for k, v in canary[0]["predictor"].items() if k != "name"}
            new_predictor = {**stable, **promoted}
            new_predictor.pop("name", None)
            patch = {
                "spec": {"predictor": merge_patch_to(stable, new_predictor), "canary": None},
                "metadata": {
                    "annotations": {
                        VERSION_ANNOTATION: canary_version,
                        PREVIOUS_ANNOTATION: ann.get(VERSION_ANNOTATION),
                    }
                },
            }
        patch.setdefault("metadata", {}).setdefault("annotations", {})[CANARY_ANNOTATION] = None
        self.patch(name, patch)
        if not wait:
            return self._require(name)
        return self._wait_or_restore(name, live, str(canary_version), timeout)

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
            # Knative sends everything back to the previous revision.
            patch["metadata"] = {
                "annotations": {
                    CANARY_ANNOTATION: None,
                    VERSION_ANNOTATION: ann.get(PREVIOUS_ANNOTATION),
                }
            }
            self.patch(name, patch)
            return self.wait_ready(name, timeout) if wait else self._require(name)
        if not knative and spec.get("canary"):
            self.patch(
                name,
                {"spec": {"canary": None}, "metadata": {"annotations": {CANARY_ANNOTATION: None}}},
            )
            stable = ann.get(VERSION_ANNOTATION)
            return self.wait_ready(name, timeout, version=stable) if wait else self._require(name)
        previous = ann.get(PREVIOUS_ANNOTATION)
        if not previous:
            raise ConfigError(f"InferenceService {name} has no previous version to roll back to")
        if cfg is None or model is None:
            raise ConfigError("rolling back to a previous version needs the deploy config")
        current = ann.get(VERSION_ANNOTATION)
        manifest = render_inference_service(cfg, model, previous, None, current)
        self.apply(manifest)
        return self._wait_or_restore(name, live, previous, timeout) if wait else self._require(name)

    def _require(self, name: str) -> dict[str, Any]:
        live = self.get(name)
        if live is None:
            raise ClusterError(f"InferenceService {self.namespace}/{name} does not exist")
        return live


def deploy_version(
    registry_root: str | os.PathLike[str],
    model: str,
    version: str,
    target: str = "local",
    cfg: DeployConfig | None = None,
    canary_percent: int = 0,
    api_client: Any = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> str:
    """The pipeline's deploy step: verify the version, then move the alias and/or apply the ISVC.

    ``target="local"`` only moves ``champion``. ``target="cluster"`` applies the
    InferenceService (canary when ``canary_percent`` > 0) and, once ``version`` has rolled out
    with all traffic on it, also moves the local alias so registry and cluster agree. A rollout
    that does not complete is rolled back (RolloutFailed) and the alias stays.
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
    "RolloutFailed",
    "canary_name",
    "cluster_config",
    "deploy_version",
    "deployment_name",
    "deployment_rollout",
    "load_api_client",
    "manifest_for",
    "merge_patch_to",
    "promote_local",
    "ready_condition",
    "render_canary",
    "render_inference_service",
    "render_predictor",
    "rollback_local",
    "storage_uri",
]
