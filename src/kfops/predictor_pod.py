"""The security-relevant parts of the predictor pod, added to what kfops.deploy renders.

Kept apart from kfops.deploy (rendering, canary, rollout) so each can change without the other;
``kfops.deploy.render_predictor`` calls :func:`harden_predictor` once, and the sample
InferenceService in manifests/base/serving holds the same fields (tests/unit/test_deploy_hardening
checks both agree):

- ``--host 0.0.0.0``: ``python -m kfops.serving`` listens on loopback unless told otherwise.
- a liveness probe on ``/v2/health/live`` (kserve's, answers while the event loop runs): a
  wedged server is restarted; readiness stays on ``/v1/models/<name>`` (the model is loaded).
- its own ServiceAccount (``kfops-model``, manifests/base/serving/serviceaccount.yaml) and no
  API token in the pod: the predictor never talks to the Kubernetes API.
- the model read-only: KServe mounts ``STORAGE_URI=pvc://...`` at /mnt/models read-only by
  default (``storage.kserve.io/readonly`` absent means true; kserve v0.20.0
  pkg/webhook/admission/pod/storage_initializer_injector.go, GetStorageInitializerReadOnlyFlag
  and the PVC branch of CommonStorageInitialization: no init container, a direct mount). The
  registry PVC is mounted again only with ``subPath: capture`` for payload capture, so the
  predictor can write captured traffic and nothing else of the registry.
- the model verification key (kfops.signing) from the optional Secret ``kfops-model-signing``:
  when it exists, the predictor refuses unsigned or mis-signed versions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

SERVICE_ACCOUNT = "kfops-model"
SIGNING_SECRET = "kfops-model-signing"
VERIFY_KEY_ITEM, SIGNING_KEY_ITEM = "verify.pem", "signing.pem"
CAPTURE_SUBPATH = "capture"
LIVENESS = {
    "httpGet": {"path": "/v2/health/live", "port": 8080},
    "initialDelaySeconds": 10,
    "periodSeconds": 10,
    "timeoutSeconds": 5,
    "failureThreshold": 3,
}


def verify_key_env() -> dict[str, Any]:
    return {
        "name": "KFOPS_MODEL_VERIFY_KEY",
        "valueFrom": {
            "secretKeyRef": {"name": SIGNING_SECRET, "key": VERIFY_KEY_ITEM, "optional": True}
        },
    }


def harden_predictor(predictor: dict[str, Any], pvc_mount: str = "/mnt/kfops") -> dict[str, Any]:
    """Add the fields above to a rendered ``predictor`` (in place; returned for chaining)."""
    predictor.setdefault("serviceAccountName", SERVICE_ACCOUNT)
    predictor["automountServiceAccountToken"] = False
    for container in predictor.get("containers", []):
        if container.get("name") != "kserve-container":
            continue
        args = container.setdefault("args", [])
        if "--host" not in args and not any(str(a).startswith("--host=") for a in args):
            at = args.index("--port") + 2 if "--port" in args else len(args)
            args[at:at] = ["--host", "0.0.0.0"]
        container.setdefault("livenessProbe", dict(LIVENESS))
        env = container.setdefault("env", [])
        if not any(e.get("name") == "KFOPS_MODEL_VERIFY_KEY" for e in env):
            env.append(verify_key_env())
        for mount in container.get("volumeMounts", []):
            if mount.get("mountPath") == pvc_mount and "subPath" not in mount:
                # Capture only: the registry itself stays out of the predictor's reach.
                mount["mountPath"] = f"{pvc_mount}/{CAPTURE_SUBPATH}"
                mount["subPath"] = CAPTURE_SUBPATH
    return predictor


def prepare_capture_dir(capture_uri: str | None, pvc_mount: str = "/mnt/kfops") -> None:
    """Create the capture directory on the registry PVC before the predictor mounts it with a
    subPath, when this process sees that PVC (the pipeline's deploy step does, as the image's
    non-root user): a subPath the kubelet has to create would belong to root."""
    if not capture_uri or not capture_uri.startswith(f"{pvc_mount}/"):
        return
    if not Path(pvc_mount).is_dir() or not os.access(pvc_mount, os.W_OK):
        return  # e.g. `kfops deploy apply` from a laptop: nothing to prepare here
    Path(capture_uri).mkdir(parents=True, exist_ok=True)
