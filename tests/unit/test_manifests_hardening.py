"""The cluster side of issue 13, on the rendered overlays and on what kfops.deploy renders:
restricted pod security enforced and met by every kfops pod, the webhook token shared by
Alertmanager and the trigger through one Secret, a NetworkPolicy around the trigger, and the
predictor's liveness probe, token-less service account and read-only model."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from kfops import deploy
from kfops.predictor_pod import SIGNING_SECRET, prepare_capture_dir
from tests.unit.test_manifests import MANIFESTS, OVERLAYS, pod_specs, render, validate_object

# Volume types the "restricted" Pod Security Standard allows.
RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}  # fmt: skip


def assert_restricted(spec: dict[str, Any], where: str) -> None:
    """The checks of the "restricted" profile (kubernetes.io/docs/concepts/security/
    pod-security-standards), as an API server enforcing it would apply them."""
    pod_sc = spec.get("securityContext", {})
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        assert kinds <= RESTRICTED_VOLUMES, (where, volume)
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(key), (where, key)
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        sc = container.get("securityContext", {})
        name = f"{where}/{container['name']}"
        assert not sc.get("privileged"), name
        assert sc.get("allowPrivilegeEscalation") is False, name
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], name
        assert not set(sc.get("capabilities", {}).get("add", [])) - {"NET_BIND_SERVICE"}, name
        assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, name
        assert sc.get("runAsUser", pod_sc.get("runAsUser")) != 0, name
        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
        assert seccomp.get("type") in ("RuntimeDefault", "Localhost"), name
        for port in container.get("ports", []):
            assert "hostPort" not in port, name


def _one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, (kind, name, [o["metadata"]["name"] for o in found])
    return found[0]


@pytest.mark.parametrize("overlay", ["base", "overlays/production"])
def test_restricted_pod_security_is_enforced(overlay: str) -> None:
    labels = _one(render(overlay), "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_kfops_pod_meets_restricted(overlay: str) -> None:
    specs = [(o["metadata"]["name"], s) for o in render(overlay) for s in pod_specs(o)]
    assert specs
    for name, spec in specs:
        assert_restricted(spec, name)
        assert spec.get("automountServiceAccountToken") is False, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_alertmanager_and_trigger_share_the_webhook_secret(overlay: str) -> None:
    objects = render(overlay)
    config = _one(objects, "AlertmanagerConfig")
    (hook,) = config["spec"]["receivers"][0]["webhookConfigs"]
    ref = hook["httpConfig"]["authorization"]["credentials"]
    assert hook["httpConfig"]["authorization"]["type"] == "Bearer"
    assert hook["maxAlerts"] == 50
    spec = _one(objects, "Deployment", "kfops-trigger")["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["command"][:4] == ["kfops", "trigger", "--host", "0.0.0.0"]
    env = {e["name"]: e for e in container["env"]}
    token_path = env["KFOPS_WEBHOOK_TOKEN_FILE"]["value"]
    mount = next(m for m in container["volumeMounts"] if token_path.startswith(m["mountPath"]))
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == ref["name"]
    assert {"key": ref["key"], "path": token_path.rsplit("/", 1)[1]} in volume["secret"]["items"]
    # Its state is the one writable part of the registry PVC it mounts; the registry is not.
    state = next(m for m in container["volumeMounts"] if m.get("subPath") == "trigger")
    assert env["KFOPS_TRIGGER_STATE_DIR"]["value"] == state["mountPath"]
    registry = next(m for m in container["volumeMounts"] if m["mountPath"] == "/mnt/kfops")
    assert registry["readOnly"] is True


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_alertmanager_and_prometheus_reach_the_trigger(overlay: str) -> None:
    objects = render(overlay)
    policy = _one(objects, "NetworkPolicy", "kfops-trigger")
    validate_object(policy)
    deployment = _one(objects, "Deployment", "kfops-trigger")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    (peer,) = rule["from"]
    assert set(peer) == {"podSelector"}  # same namespace only
    (expr,) = peer["podSelector"]["matchExpressions"]
    assert expr["key"] == "app.kubernetes.io/name" and expr["operator"] == "In"
    assert sorted(expr["values"]) == ["alertmanager", "prometheus"]
    service = _one(objects, "Service", "kfops-trigger")
    assert rule["ports"] == [{"protocol": "TCP", "port": service["spec"]["ports"][0]["port"]}]


def test_the_sample_isvc_and_the_rendered_one_agree_on_hardening() -> None:
    sample = _one(render("base"), "InferenceService")["spec"]["predictor"]
    cfg = deploy.cluster_config(
        "kfops-model", "kfops", storage_root="pvc://kfops-registry/registry"
    )
    rendered = deploy.render_inference_service(cfg, "kfops-model", "v1")["spec"]["predictor"]
    for predictor in (sample, rendered):
        assert predictor["serviceAccountName"] == "kfops-model"
        assert predictor["automountServiceAccountToken"] is False
        assert_restricted(predictor, "predictor")
        container = predictor["containers"][0]
        assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
        assert container["readinessProbe"]["httpGet"]["path"] == "/v1/models/kfops-model"
        args = " ".join(container["args"]).replace("=", " ")
        assert "--host 0.0.0.0" in args
        env = {e["name"]: e for e in container["env"]}
        ref = env["KFOPS_MODEL_VERIFY_KEY"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": SIGNING_SECRET, "key": "verify.pem", "optional": True}
        # The model comes from KServe's read-only /mnt/models; the PVC only for capture/.
        pvc_mounts = [m for m in container["volumeMounts"] if m["name"] != "tmp"]
        assert [(m["mountPath"], m["subPath"]) for m in pvc_mounts] == [
            ("/mnt/kfops/capture", "capture")
        ]
    assert sample["containers"][0]["livenessProbe"] == rendered["containers"][0]["livenessProbe"]


def test_secret_templates_hold_no_values() -> None:
    for name in ("trigger-webhook-secret.yaml", "model-signing-secret.yaml"):
        secret = yaml.safe_load((MANIFESTS / "templates" / name).read_text())
        validate_object(secret)
        assert all(v == "" for v in secret["stringData"].values()), name
    for overlay in OVERLAYS:
        assert not [o for o in render(overlay) if o["kind"] == "Secret"]


def test_capture_dir_is_prepared_where_the_pvc_is_mounted(tmp_path: Any) -> None:
    mount = tmp_path / "mnt-kfops"
    prepare_capture_dir(f"{mount}/capture", str(mount))  # no PVC here: nothing happens
    assert not mount.exists()
    mount.mkdir()
    prepare_capture_dir(f"{mount}/capture", str(mount))
    assert (mount / "capture").is_dir()
    prepare_capture_dir("s3://bucket/capture", str(mount))  # not on the PVC: not ours
