"""Talking to the cluster: apply, canary, promote and roll back via the Kubernetes API."""

from __future__ import annotations

import copy
import logging
import os
import time
from typing import Any

from kfops.defaults import DEPLOY_NAMESPACE
from kfops.deploy.config import (
    API_VERSION,
    CANARY_ANNOTATION,
    DEFAULT_TIMEOUT,
    GROUP,
    MODE_ANNOTATION,
    PLURAL,
    PREVIOUS_ANNOTATION,
    VERSION_ANNOTATION,
    VERSION_LABEL,
    DeployConfig,
)
from kfops.deploy.local import promote_local
from kfops.deploy.render import (
    merge_patch_to,
    render_canary,
    render_inference_service,
)
from kfops.deploy.rollout import (
    RolloutFailed,
    deployment_name,
    deployment_rollout,
    knative_rollout,
    ready_condition,
)
from kfops.errors import ClusterError, ConfigError
from kfops.predictor_pod import prepare_capture_dir
from kfops.registry import Registry

log = logging.getLogger(__name__)


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
