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

from kfops.deploy.cluster import KServeDeployer, deploy_version, load_api_client, manifest_for
from kfops.deploy.config import (
    CANARY_ANNOTATION,
    CPU_LIMIT,
    CPU_REQUEST,
    DEFAULT_TIMEOUT,
    MEMORY_LIMIT,
    MEMORY_REQUEST,
    MODE_ANNOTATION,
    MODEL_LABEL,
    MODES,
    PORT,
    PREVIOUS_ANNOTATION,
    SCRAPING_ANNOTATION,
    SHA_ANNOTATION,
    VERSION_ANNOTATION,
    VERSION_LABEL,
    DeployConfig,
    cluster_config,
)
from kfops.deploy.local import promote_local, rollback_local
from kfops.deploy.render import (
    CANARY_FORBIDDEN,
    canary_name,
    merge_patch_to,
    render_canary,
    render_inference_service,
    render_predictor,
    storage_uri,
)
from kfops.deploy.rollout import (
    RolloutFailed,
    deployment_name,
    deployment_rollout,
    knative_rollout,
    ready_condition,
)

__all__ = [
    "CANARY_ANNOTATION",
    "CANARY_FORBIDDEN",
    "CPU_LIMIT",
    "CPU_REQUEST",
    "DEFAULT_TIMEOUT",
    "MEMORY_LIMIT",
    "MEMORY_REQUEST",
    "MODEL_LABEL",
    "MODES",
    "MODE_ANNOTATION",
    "PORT",
    "PREVIOUS_ANNOTATION",
    "SCRAPING_ANNOTATION",
    "SHA_ANNOTATION",
    "VERSION_ANNOTATION",
    "VERSION_LABEL",
    "DeployConfig",
    "KServeDeployer",
    "RolloutFailed",
    "canary_name",
    "cluster_config",
    "deploy_version",
    "deployment_name",
    "deployment_rollout",
    "knative_rollout",
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
