"""What a deployment is: InferenceService names, labels, sizes, and DeployConfig."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from kfops.defaults import DEPLOY_NAMESPACE, IMAGE
from kfops.errors import ConfigError

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
