"""Deploy tests: local alias promotion, rendered InferenceServices validated against the real CRD
(unknown fields are errors) and KServe's canary webhook rules, and the kubernetes client talking
HTTP to a stand-in cluster (tests/unit/_kube.py) whose API server, KServe controller and
Deployment controller follow the upstream code: a rollout is only done when the new version's
pods are, and a rollout that never completes is rolled back."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from kfops import deploy
from kfops.errors import ClusterError, ConfigError
from kfops.registry import Registry
from tests.conftest import free_port
from tests.unit._kube import (
    DEPLOY_PREFIX,
    ISVC_PREFIX,
    FakeCluster,
    merge_patch,
    propagate_raw_status,
    schema_errors,
    validate_canary_specs,
)
from tests.unit.test_serving_fixtures import MODEL, make_registry, register_version

PREFIX = ISVC_PREFIX
CFG = deploy.DeployConfig(name=MODEL, namespace="ml", image="kfops:0.1.0")


def assert_valid(obj: dict[str, Any], pre_canary: bool = False) -> None:
    errors = schema_errors(obj, pre_canary)
    assert not errors, "\n".join(errors[:5])


def assert_admitted(obj: dict[str, Any]) -> None:
    """What the API server checks: the CRD schema (strict) and KServe's validating webhook."""
    assert_valid(obj)
    denied = validate_canary_specs(obj)
    assert not denied, denied


# --- rendering ----------------------------------------------------------------------------------


def test_rendered_manifest_is_valid_against_the_crd() -> None:
    manifest = deploy.render_inference_service(CFG, MODEL, "v3", "ab" * 32, previous_version="v2")
    assert_admitted(manifest)
    meta = manifest["metadata"]
    assert meta["annotations"][deploy.MODE_ANNOTATION] == "Standard"
    predictor = manifest["spec"]["predictor"]
    env = {e["name"]: e.get("value") for e in predictor["containers"][0]["env"]}
    assert env["STORAGE_URI"] == "pvc://kfops-registry/models/penguins/versions/v3"
    assert predictor["annotations"]["prometheus.io/scrape"] == "true"
    assert predictor["containers"][0]["args"][:2] == ["--model-dir", "/mnt/models"]


def _kserve_pod_annotations(pod_annotations: dict[str, str]) -> dict[str, str]:
    """``InjectMetricsAggregator`` of kserve v0.20.0 (pkg/webhook/admission/pod/
    metrics_aggregate_injector.go) with the default config map (both switches "false")."""
    out = dict(pod_annotations)
    out.setdefault("serving.kserve.io/enable-metric-aggregation", "false")
    out.setdefault("serving.kserve.io/enable-prometheus-scraping", "false")
    if out["serving.kserve.io/enable-prometheus-scraping"] == "true":
        aggregate = out["serving.kserve.io/enable-metric-aggregation"] == "true"
        out["prometheus.io/port"] = "9088" if aggregate else "9091"  # nothing of ours listens
        out["prometheus.io/path"] = "/metrics"
    return out


def test_kserve_webhook_keeps_the_metrics_port() -> None:
    manifest = deploy.render_inference_service(CFG, MODEL, "v1")
    predictor = manifest["spec"]["predictor"]
    # The pod's annotations are the ISVC's and the predictor's (buildPredictorResources).
    pod = _kserve_pod_annotations(
        {**manifest["metadata"]["annotations"], **predictor["annotations"]}
    )
    ports = {p["containerPort"] for p in predictor["containers"][0]["ports"]}
    assert int(pod["prometheus.io/port"]) in ports == {deploy.PORT}
    # The check has teeth: with scraping switched on, KServe would move the port.
    on = {**pod, "serving.kserve.io/enable-prometheus-scraping": "true"}
    assert _kserve_pod_annotations(on)["prometheus.io/port"] == "9091"


def test_cluster_config_mounts_the_registry_pvc_for_capture() -> None:
    cfg = deploy.cluster_config(MODEL, "ml", storage_root="pvc://kfops-registry/registry")
    assert cfg.pvc == "kfops-registry" and cfg.capture_uri == "/mnt/kfops/capture"
    manifest = deploy.render_inference_service(cfg, MODEL, "v2")
    assert_admitted(manifest)
    predictor = manifest["spec"]["predictor"]
    container = predictor["containers"][0]
    assert container["args"][-4:-2] == ["--capture", "/mnt/kfops/capture"]
    mounts = {m["name"]: (m["mountPath"], m.get("subPath")) for m in container["volumeMounts"]}
    # Capture only: the registry PVC is not writable by the predictor (kfops.predictor_pod).
    assert mounts == {"tmp": ("/tmp", None), "kfops-pvc": ("/mnt/kfops/capture", "capture")}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert predictor["securityContext"]["runAsNonRoot"] is True
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["STORAGE_URI"] == "pvc://kfops-registry/registry/models/penguins/versions/v2"
    assert deploy.cluster_config(MODEL, storage_root="s3://bucket/registry").pvc is None


def test_validator_rejects_unknown_fields() -> None:
    manifest = deploy.render_inference_service(CFG, MODEL, "v1")
    manifest["spec"]["predictor"]["canaryPercent"] = 10  # not a field
    assert schema_errors(manifest) == ['unknown field "spec.predictor.canaryPercent"']


@pytest.mark.parametrize("mode", ["Standard", "Knative"])
def test_canary_patches_give_admitted_objects(mode: str) -> None:
    cfg = deploy.DeployConfig(name=MODEL, mode=mode, min_replicas=2, max_replicas=4)
    live = deploy.render_inference_service(cfg, MODEL, "v1")
    merged = merge_patch(live, deploy.render_canary(cfg, live, MODEL, "v2", 10))
    assert_admitted(merged)
    if mode == "Standard":
        (canary,) = merged["spec"]["canary"]
        assert canary["trafficPercent"] == 10
        assert canary["predictor"]["name"] == "v2" != merged["spec"]["predictor"].get("name")
        assert not set(deploy.CANARY_FORBIDDEN) & set(canary["predictor"])
        assert merged["spec"]["predictor"]["labels"]["kfops.io/version"] == "v1"
        assert canary["predictor"]["labels"]["kfops.io/version"] == "v2"
        assert "canaryTrafficPercent" not in merged["spec"]["predictor"]  # Standard ignores it
    else:
        assert merged["spec"]["predictor"]["canaryTrafficPercent"] == 10
        assert merged["spec"]["predictor"]["labels"]["kfops.io/version"] == "v2"
        assert "canary" not in merged["spec"]  # the webhook refuses spec.canary outside Standard


def test_webhook_rules_reject_what_kserve_rejects() -> None:
    """Each rule of validateCanarySpecs, shown to bite on a spec that breaks it."""
    cfg = deploy.DeployConfig(name=MODEL, max_replicas=3)
    live = deploy.render_inference_service(cfg, MODEL, "v1")
    good = merge_patch(live, deploy.render_canary(cfg, live, MODEL, "v2", 10))
    assert validate_canary_specs(good) == []

    def broken(change: Any) -> list[str]:
        obj = copy.deepcopy(good)
        change(obj)
        return validate_canary_specs(obj)

    canary = lambda o: o["spec"]["canary"][0]["predictor"]  # noqa: E731
    assert "predictor.name is required" in broken(lambda o: canary(o).pop("name"))[0]
    assert "maxReplicas" in broken(lambda o: canary(o).update(maxReplicas=3))[0]
    assert "autoScaling" in broken(lambda o: canary(o).update(autoScaling={}))[0]
    assert "minReplicas" in broken(lambda o: canary(o).update(minReplicas=5))[0]
    assert "conflicts" in broken(lambda o: o["spec"]["predictor"].update(name="v2"))[0]
    knative = lambda o: o["metadata"]["annotations"].update(  # noqa: E731
        {deploy.MODE_ANNOTATION: "Knative"}
    )
    assert "only supported in Standard" in broken(knative)[0]
    no_uri = lambda o: o["spec"]["predictor"]["containers"][0].update(env=[])  # noqa: E731
    assert "stable predictor with a model" in broken(no_uri)[0]
    over = lambda o: o["spec"]["canary"].append(  # noqa: E731
        {"predictor": {**canary(o), "name": "v3"}, "trafficPercent": 95}
    )
    assert "must be <= 100" in broken(over)[-1]


def test_the_old_canary_shape_is_rejected_by_the_webhook() -> None:
    # What kfops rendered before: no predictor.name, replica bounds on the canary.
    live = deploy.render_inference_service(CFG, MODEL, "v1")
    old = merge_patch(
        live,
        {
            "spec": {
                "canary": [
                    {"predictor": deploy.render_predictor(CFG, MODEL, "v2"), "trafficPercent": 10}
                ]
            }
        },
    )
    errors = validate_canary_specs(old)
    assert errors and "predictor.name is required" in errors[0]


@pytest.mark.parametrize("percent", [0, 100, -5, 50.5, True])
def test_canary_percent_is_checked(percent: Any) -> None:
    live = deploy.render_inference_service(CFG, MODEL, "v1")
    with pytest.raises(ConfigError, match="canary percent"):
        deploy.render_canary(CFG, live, MODEL, "v2", percent)


def test_bad_mode_and_replicas() -> None:
    with pytest.raises(ConfigError, match="serving mode"):
        deploy.DeployConfig(name="m", mode="ModelMesh")
    with pytest.raises(ConfigError, match="replicas"):
        deploy.DeployConfig(name="m", min_replicas=3, max_replicas=2)
    assert deploy.DeployConfig(name="m", mode="serverless").mode == "Knative"


@pytest.mark.parametrize(("version", "name"), [("v2", "v2"), ("V_10", "v-10"), ("7", "v-7")])
def test_canary_name_is_a_dns_label(version: str, name: str) -> None:
    assert deploy.canary_name(version) == name


def test_merge_patch_to_restores_exactly() -> None:
    current = {"a": 1, "b": {"c": 2, "d": [1, 2]}, "e": 3}
    target = {"a": 1, "b": {"c": 5, "d": [1]}, "f": {"g": 1}}
    patch = deploy.merge_patch_to(current, target)
    assert patch == {"b": {"c": 5, "d": [1]}, "e": None, "f": {"g": 1}}
    assert merge_patch(current, patch) == target


# --- rollout state from upstream status sequences ------------------------------------------------


def _dep(generation: int, observed: int, version: str, **status: Any) -> dict[str, Any]:
    conditions = status.pop("conditions", [])
    return {
        "metadata": {"name": f"{MODEL}-predictor", "generation": generation},
        "spec": {
            "replicas": 1,
            "template": {"metadata": {"labels": {"kfops.io/version": version}}},
        },
        "status": {"observedGeneration": observed, **status, "conditions": conditions},
    }


AVAILABLE = {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}
UPDATING = {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}
DONE = {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
DEADLINE = {
    "type": "Progressing",
    "status": "False",
    "reason": "ProgressDeadlineExceeded",
    "message": 'ReplicaSet "penguins-predictor-5d9" has timed out progressing.',
}


def test_ready_stays_true_during_a_rolling_update_but_the_rollout_is_not_done() -> None:
    # The statuses a one-replica Deployment goes through when its new pod never gets ready.
    sequence = [
        _dep(
            2,
            1,
            "v2",
            replicas=1,
            updatedReplicas=1,
            availableReplicas=1,
            conditions=[AVAILABLE, DONE],
        ),
        _dep(
            2,
            2,
            "v2",
            replicas=2,
            updatedReplicas=1,
            availableReplicas=1,
            conditions=[AVAILABLE, UPDATING],
        ),
    ]
    for dep in sequence:
        # KServe says Ready (PropagateRawStatus: Available=True wins over ReplicaSetUpdated) ...
        assert propagate_raw_status(dep)["status"] == "True"
        # ... but v2 has not rolled out.
        assert deploy.deployment_rollout(dep, "v2")[0] is False
    stuck = _dep(
        2,
        2,
        "v2",
        replicas=2,
        updatedReplicas=1,
        availableReplicas=1,
        conditions=[AVAILABLE, DEADLINE],
    )
    assert propagate_raw_status(stuck)["status"] == "False"
    with pytest.raises(deploy.RolloutFailed, match="progress deadline"):
        deploy.deployment_rollout(stuck, "v2")
    done = _dep(
        2, 2, "v2", replicas=1, updatedReplicas=1, availableReplicas=1, conditions=[AVAILABLE, DONE]
    )
    assert deploy.deployment_rollout(done, "v2") == (
        True,
        f"Deployment {MODEL}-predictor rolled out v2",
    )
    # KServe has not written v2 into the template yet: the Deployment is still v1's.
    assert (
        deploy.deployment_rollout(
            _dep(1, 1, "v1", replicas=1, updatedReplicas=1, availableReplicas=1), "v2"
        )[0]
        is False
    )


# --- the stand-in cluster ------------------------------------------------------------------------


@pytest.fixture
def api() -> Iterator[FakeCluster]:
    server = FakeCluster()
    yield server
    server.close()


def deployer(api: FakeCluster) -> deploy.KServeDeployer:
    return deploy.KServeDeployer(api.api_client(), namespace="ml", poll_interval=0.01)


def stored(api: FakeCluster) -> dict[str, Any]:
    obj = copy.deepcopy(api.isvcs[("ml", MODEL)])
    obj.pop("status")
    obj["metadata"].pop("generation")
    return obj


def test_first_deploy_creates_then_patches_and_waits_for_the_rollout(api: FakeCluster) -> None:
    d = deployer(api)
    d.deploy(CFG, MODEL, "v1", "aa" * 32, timeout=5)
    calls = [(r["method"], r["path"]) for r in api.requests]
    assert calls[:2] == [
        ("GET", f"{PREFIX}ml/inferenceservices/{MODEL}"),
        ("POST", f"{PREFIX}ml/inferenceservices"),
    ]
    assert api.requests[1]["query"] == {"fieldValidation": "Strict"}
    assert ("GET", f"{DEPLOY_PREFIX}ml/deployments/{MODEL}-predictor") in calls
    assert_admitted(stored(api))
    d.deploy(CFG, MODEL, "v2", timeout=5)
    patch = next(r for r in api.requests if r["method"] == "PATCH")
    assert patch["content_type"] == "application/merge-patch+json"
    assert patch["query"] == {"fieldValidation": "Strict"}
    obj = stored(api)
    assert_admitted(obj)
    assert obj["metadata"]["annotations"][deploy.VERSION_ANNOTATION] == "v2"
    assert obj["metadata"]["annotations"][deploy.PREVIOUS_ANNOTATION] == "v1"
    dep = api.deployments[("ml", f"{MODEL}-predictor")]
    assert dep["spec"]["template"]["metadata"]["labels"]["kfops.io/version"] == "v2"
    assert dep["status"]["updatedReplicas"] == dep["status"]["replicas"] == 1


def test_update_waits_past_ready_until_the_new_pods_serve(api: FakeCluster) -> None:
    d = deployer(api)
    d.deploy(CFG, MODEL, "v1", timeout=5)
    start = len(api.requests)
    d.deploy(CFG, MODEL, "v2", timeout=5)
    after = api.requests[start:]
    # While v2 rolled out, KServe reported Ready=True the whole time ...
    isvc_reads = [
        r["reply"] for r in after if r["method"] == "GET" and r["path"].startswith(PREFIX)
    ]
    assert all(deploy.ready_condition(o)[0] for o in isvc_reads)
    # ... and the deployer still kept polling the Deployment until v2 had rolled out.
    dep_reads = [r["reply"] for r in after if r["path"].startswith(DEPLOY_PREFIX)]
    assert not deploy.deployment_rollout(dep_reads[0], "v2")[0]
    assert deploy.deployment_rollout(dep_reads[-1], "v2")[0]


def test_crash_looping_update_rolls_back_and_leaves_the_alias(
    tmp_path: Path, api: FakeCluster
) -> None:
    make_registry(tmp_path)
    register_version(tmp_path)
    deploy.deploy_version(
        tmp_path, MODEL, "v1", "cluster", CFG, api_client=api.api_client(), timeout=5
    )
    assert Registry(tmp_path).get_alias(MODEL, "champion") == "v1"
    before = stored(api)
    api.bad_versions = {"v2"}  # the new pods never pass their readiness probe
    with pytest.raises(
        deploy.RolloutFailed, match=r"v2 did not roll out.*restored the spec of v1"
    ) as err:
        deploy.deploy_version(
            tmp_path, MODEL, "v2", "cluster", CFG, api_client=api.api_client(), timeout=1
        )
    assert err.value.restored
    assert Registry(tmp_path).get_alias(MODEL, "champion") == "v1"
    assert stored(api) == before
    # KServe said Ready during the failed rollout: Ready alone would have moved the alias.
    isvc_reads = [
        r["reply"]
        for r in api.requests
        if r["method"] == "GET"
        and r["path"] == f"{PREFIX}ml/inferenceservices/{MODEL}"
        and r["reply"]
        .get("spec", {})
        .get("predictor", {})
        .get("labels", {})
        .get("kfops.io/version")
        == "v2"
    ]
    assert isvc_reads and all(deploy.ready_condition(o)[0] for o in isvc_reads)
    # The restored spec rolls the Deployment back to v1, whose pods never stopped serving.
    api.bad_versions = set()
    deployer(api).wait_ready(MODEL, 5, version="v1")


def test_progress_deadline_fails_fast_and_rolls_back(api: FakeCluster) -> None:
    d = deployer(api)
    d.deploy(CFG, MODEL, "v1", timeout=5)
    api.bad_versions, api.deadline_ticks = {"v2"}, 3
    with pytest.raises(deploy.RolloutFailed, match="exceeded its progress deadline"):
        d.deploy(CFG, MODEL, "v2", timeout=60)
    assert stored(api)["metadata"]["annotations"][deploy.VERSION_ANNOTATION] == "v1"


def test_standard_canary_promote(api: FakeCluster) -> None:
    cfg = deploy.DeployConfig(name=MODEL, namespace="ml", min_replicas=2, max_replicas=4)
    d = deployer(api)
    d.deploy(cfg, MODEL, "v1", timeout=5)
    d.deploy(cfg, MODEL, "v2", canary_percent=20, timeout=5)
    obj = stored(api)
    assert_admitted(obj)
    assert obj["spec"]["canary"][0]["trafficPercent"] == 20
    assert obj["spec"]["predictor"]["labels"]["kfops.io/version"] == "v1"
    canary_dep = api.deployments[("ml", f"{MODEL}-v2-predictor")]
    assert canary_dep["spec"]["template"]["metadata"]["labels"]["kfops.io/version"] == "v2"
    d.promote(MODEL, timeout=5)
    obj = stored(api)
    assert_admitted(obj)
    assert "canary" not in obj["spec"] and "name" not in obj["spec"]["predictor"]
    assert obj["spec"]["predictor"]["labels"]["kfops.io/version"] == "v2"
    assert obj["spec"]["predictor"]["maxReplicas"] == 4  # the stable bounds stay
    assert obj["metadata"]["annotations"][deploy.VERSION_ANNOTATION] == "v2"
    assert obj["metadata"]["annotations"][deploy.PREVIOUS_ANNOTATION] == "v1"
    assert ("ml", f"{MODEL}-v2-predictor") not in api.deployments


def test_standard_canary_rollback_keeps_stable(api: FakeCluster) -> None:
    d = deployer(api)
    d.deploy(CFG, MODEL, "v1", timeout=5)
    d.deploy(CFG, MODEL, "v2", canary_percent=10, timeout=5)
    d.rollback(MODEL, timeout=5)
    obj = stored(api)
    assert "canary" not in obj["spec"]
    assert obj["spec"]["predictor"]["labels"]["kfops.io/version"] == "v1"
    assert deploy.CANARY_ANNOTATION not in obj["metadata"]["annotations"]
    assert_admitted(obj)


def test_failing_canary_is_removed(api: FakeCluster) -> None:
    d = deployer(api)
    d.deploy(CFG, MODEL, "v1", timeout=5)
    api.bad_versions = {"v2"}
    with pytest.raises(deploy.RolloutFailed, match="Deployment penguins-v2-predictor"):
        d.deploy(CFG, MODEL, "v2", canary_percent=10, timeout=1)
    assert "canary" not in stored(api)["spec"]


def test_canary_on_kserve_before_0_20_is_one_clear_error(api: FakeCluster) -> None:
    api.pre_canary = True  # the CRD has no spec.canary: strict field validation refuses it
    d = deployer(api)
    d.deploy(CFG, MODEL, "v1", timeout=5)
    before = stored(api)
    with pytest.raises(ClusterError, match=r'unknown field "spec.canary".*predates 0.20'):
        d.deploy(CFG, MODEL, "v2", canary_percent=10, timeout=5)
    assert stored(api) == before


def test_without_strict_validation_the_canary_would_vanish(api: FakeCluster) -> None:
    # Why every write asks for fieldValidation=Strict: the default prunes the unknown field
    # and answers 200, so a canary "deployed" on KServe < 0.20 would silently not exist.
    api.pre_canary = True
    live = deploy.render_inference_service(CFG, MODEL, "v1")
    raw = client.CustomObjectsApi(api.api_client())
    raw.create_namespaced_custom_object(
        "serving.kserve.io", "v1beta1", "ml", "inferenceservices", live
    )
    raw.patch_namespaced_custom_object(
        "serving.kserve.io",
        "v1beta1",
        "ml",
        "inferenceservices",
        MODEL,
        deploy.render_canary(CFG, live, MODEL, "v2", 10),
    )
    assert "canary" not in stored(api)["spec"]


def test_knative_canary_rollback_and_promote(api: FakeCluster) -> None:
    cfg = deploy.DeployConfig(name=MODEL, namespace="ml", mode="Knative")
    d = deployer(api)
    d.deploy(cfg, MODEL, "v1", timeout=5)
    d.deploy(cfg, MODEL, "v2", canary_percent=25, timeout=5)
    assert stored(api)["spec"]["predictor"]["canaryTrafficPercent"] == 25
    assert_admitted(stored(api))
    d.rollback(MODEL, timeout=5)
    assert stored(api)["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert stored(api)["metadata"]["annotations"][deploy.VERSION_ANNOTATION] == "v1"
    assert_admitted(stored(api))
    d.deploy(cfg, MODEL, "v3", canary_percent=50, timeout=5)
    d.promote(MODEL, timeout=5)
    obj = stored(api)
    assert "canaryTrafficPercent" not in obj["spec"]["predictor"]
    assert obj["spec"]["predictor"]["labels"]["kfops.io/version"] == "v3"
    assert_admitted(obj)


def test_knative_revision_that_never_gets_ready_is_rolled_back(api: FakeCluster) -> None:
    cfg = deploy.DeployConfig(name=MODEL, namespace="ml", mode="Knative")
    d = deployer(api)
    d.deploy(cfg, MODEL, "v1", timeout=5)
    api.bad_versions = {"v2"}
    with pytest.raises(deploy.RolloutFailed, match="not ready"):
        d.deploy(cfg, MODEL, "v2", timeout=0.5)
    assert stored(api)["spec"]["predictor"]["labels"]["kfops.io/version"] == "v1"


def test_rollback_without_canary_redeploys_previous(api: FakeCluster) -> None:
    d = deployer(api)
    d.deploy(CFG, MODEL, "v1", timeout=5)
    d.deploy(CFG, MODEL, "v2", timeout=5)
    d.rollback(MODEL, CFG, MODEL, timeout=5)
    obj = stored(api)
    assert obj["spec"]["predictor"]["labels"]["kfops.io/version"] == "v1"
    assert obj["metadata"]["annotations"][deploy.PREVIOUS_ANNOTATION] == "v2"


def test_rejected_inference_service_leaves_previous(api: FakeCluster) -> None:
    d = deployer(api)
    d.deploy(CFG, MODEL, "v1", timeout=5)
    before = stored(api)
    api.reject = (422, 'admission webhook "inferenceservice.kserve-webhook-server" denied it')
    with pytest.raises(ClusterError, match=r"rejected by the API server \(HTTP 422\).*webhook"):
        d.deploy(CFG, MODEL, "v2", timeout=5)
    assert stored(api) == before


def test_unreachable_cluster() -> None:
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{free_port()}"
    d = deploy.KServeDeployer(client.ApiClient(configuration), namespace="ml", request_timeout=2)
    with pytest.raises(ClusterError, match="unreachable"):
        d.deploy(CFG, MODEL, "v1", timeout=1)


def test_first_deploy_that_never_gets_ready_times_out_with_reason(api: FakeCluster) -> None:
    api.bad_versions = {"v1"}
    with pytest.raises(ClusterError, match="minimum availability"):
        deployer(api).deploy(CFG, MODEL, "v1", timeout=0.3)


def test_promote_without_canary_is_a_config_error(api: FakeCluster) -> None:
    d = deployer(api)
    d.deploy(CFG, MODEL, "v1", timeout=5)
    with pytest.raises(ConfigError, match="no canary"):
        d.promote(MODEL)


# --- local promotion and the pipeline step ------------------------------------------------------


def test_promote_and_rollback_local(tmp_path: Path) -> None:
    registry = make_registry(tmp_path)
    register_version(tmp_path)
    assert deploy.promote_local(tmp_path, MODEL, "v2") == "v2"
    assert registry.get_alias(MODEL, "champion") == "v2"
    assert deploy.rollback_local(tmp_path, MODEL) == "v1"


def test_deploy_version_cluster_moves_alias_after_rollout(tmp_path: Path, api: FakeCluster) -> None:
    make_registry(tmp_path)
    register_version(tmp_path)
    summary = deploy.deploy_version(
        tmp_path, MODEL, "v2", "cluster", CFG, api_client=api.api_client(), timeout=5
    )
    assert "v2" in summary
    assert Registry(tmp_path).get_alias(MODEL, "champion") == "v2"
    api.reject = (403, "forbidden")
    with pytest.raises(ClusterError, match=r"rejected by the API server \(HTTP 403\): forbidden"):
        deploy.deploy_version(
            tmp_path, MODEL, "v1", "cluster", CFG, api_client=api.api_client(), timeout=5
        )
    assert Registry(tmp_path).get_alias(MODEL, "champion") == "v2"


def test_deploy_component_local(tmp_path: Path) -> None:
    from kfops.components.deploy import deploy as component

    make_registry(tmp_path)
    register_version(tmp_path)
    out = component.python_func(model_name=MODEL, version="v2", registry_root=str(tmp_path))
    assert "champion -> v2" in out
    assert Registry(tmp_path).get_alias(MODEL, "champion") == "v2"


def test_deploy_refuses_tampered_version(tmp_path: Path) -> None:
    from kfops.errors import RegistryError
    from tests.unit.test_serving_fixtures import tamper

    make_registry(tmp_path)
    mv = register_version(tmp_path)
    tamper(mv.path)
    with pytest.raises(RegistryError, match=r"verification failed: model\.joblib in .*/v2 has"):
        deploy.deploy_version(tmp_path, MODEL, "v2")
    assert Registry(tmp_path).get_alias(MODEL, "champion") == "v1"


def test_cli_deploy_promote_rollback_render(tmp_path: Path, capsys: Any) -> None:
    from kfops.cli import main

    make_registry(tmp_path)
    register_version(tmp_path)
    assert main(["deploy", "promote", "v2", "--registry", str(tmp_path)]) == 0
    assert Registry(tmp_path).get_alias(MODEL, "champion") == "v2"
    assert main(["deploy", "rollback", "--registry", str(tmp_path)]) == 0
    assert Registry(tmp_path).get_alias(MODEL, "champion") == "v1"
    assert "champion -> v1" in capsys.readouterr().out
    assert main(["deploy", "render", "v2", "--registry", str(tmp_path), "--mode", "Knative"]) == 0
    rendered = json.loads(capsys.readouterr().out)
    assert rendered["metadata"]["annotations"][deploy.VERSION_ANNOTATION] == "v2"
    assert main(["deploy", "promote", "v9", "--registry", str(tmp_path)]) == 2
    assert "unknown version 'v9'" in capsys.readouterr().err
