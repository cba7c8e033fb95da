"""Rendering InferenceServices (stable and canary predictors) from a DeployConfig."""

from __future__ import annotations

import copy
import re
from typing import Any

from kfops.deploy.config import (
    _DNS_LABEL,
    API_VERSION,
    CANARY_ANNOTATION,
    GROUP,
    KIND,
    MODE_ANNOTATION,
    MODEL_LABEL,
    PORT,
    PREVIOUS_ANNOTATION,
    SCRAPING_ANNOTATION,
    SHA_ANNOTATION,
    VERSION_ANNOTATION,
    VERSION_LABEL,
    DeployConfig,
)
from kfops.errors import ConfigError
from kfops.predictor_pod import harden_predictor


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
