"""When a rollout is done or has failed, read from InferenceService and Deployment status
(the upstream rules are in the package docstring)."""

from __future__ import annotations

from typing import Any

from kfops.deploy.config import (
    PROGRESS_DEADLINE_EXCEEDED,
    VERSION_LABEL,
)
from kfops.errors import ClusterError


class RolloutFailed(ClusterError):
    """A new version did not roll out; the previous spec was restored (``restored``)."""

    def __init__(self, message: str, restored: bool = False) -> None:
        super().__init__(message)
        self.restored = restored


# --- local --------------------------------------------------------------------------------------


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
