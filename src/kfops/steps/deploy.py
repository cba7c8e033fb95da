"""Deploy: serve a blessed version. Locally this moves `champion` (what `kfops serve` follows);
on a cluster it applies the InferenceService (canary when asked) and, once it is Ready with all
traffic, moves the local alias too. The InferenceService itself is ``kfops.deploy``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kfops import deploy
from kfops.defaults import DEPLOY_NAMESPACE, IMAGE
from kfops.steps._run import RunContext


@dataclass(frozen=True)
class DeployInputs:
    registry_root: Path
    model_name: str
    version: str
    target: str = "local"  # local | cluster
    namespace: str = DEPLOY_NAMESPACE
    image: str = IMAGE  # the predictor image (cluster)
    canary_percent: int = 0
    mode: str = "Standard"  # Standard (raw Deployment) | Knative
    storage_root: str = "pvc://kfops-registry"  # where the cluster sees the registry
    timeout_seconds: float = 300.0


@dataclass(frozen=True)
class DeployResult:
    model_name: str
    version: str
    target: str
    summary: str  # one line: what now serves what


def run(inputs: DeployInputs, ctx: RunContext | None = None) -> DeployResult:
    """``ctx`` is None when the deploy is not part of a recorded training run."""
    cfg = deploy.cluster_config(
        inputs.model_name, inputs.namespace, inputs.image, inputs.mode, inputs.storage_root
    )
    summary = deploy.deploy_version(
        inputs.registry_root,
        inputs.model_name,
        inputs.version,
        inputs.target,
        cfg,
        inputs.canary_percent,
        timeout=inputs.timeout_seconds,
    )
    result = DeployResult(inputs.model_name, inputs.version, inputs.target, summary)
    if ctx is not None:
        payload = {
            "model": inputs.model_name,
            "version": inputs.version,
            "target": inputs.target,
            "summary": summary,
        }
        ctx.record("deploy", payload)
    return result
