"""Deploy tests: local alias promotion, rendered InferenceServices validated against the real CRD
(unknown fields are errors), and the kubernetes client talking HTTP to a local stand-in API
server that records every request and answers like the API server (create, get, merge-patch,
404, rejections). No API server can run here; the client, its serialisation and our error
handling are real."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from kubernetes import client

from kfops import deploy
from kfops.errors import ClusterError, ConfigError
from kfops.registry import Registry
from tests.conftest import crds_dir, free_port
from tests.unit.test_serving_fixtures import MODEL, make_registry, register_version

PREFIX = "/apis/serving.kserve.io/v1beta1/namespaces/"


# --- CRD schema -> strict JSON schema -----------------------------------------------------------


def _strict(schema: Any) -> Any:
    """openAPIV3Schema with additionalProperties=false wherever properties are listed."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            out.get("type") == "object"
            and "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@pytest.fixture(scope="module")
def isvc_validator() -> jsonschema.Draft7Validator:
    # The CRD is 40k lines: the C loader reads it in about a second instead of twenty.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd_file = crds_dir() / "serving.kserve.io_inferenceservices.yaml"
    crd = yaml.load(crd_file.read_text(), Loader=loader)
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta1")
    return jsonschema.Draft7Validator(_strict(version["schema"]["openAPIV3Schema"]))


def assert_valid(validator: jsonschema.Draft7Validator, obj: dict[str, Any]) -> None:
    errors = sorted(validator.iter_errors(obj), key=str)
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


CFG = deploy.DeployConfig(name=MODEL, namespace="ml", image="kfops:0.1.0")


def test_rendered_manifest_is_valid_against_the_crd(isvc_validator: Any) -> None:
    manifest = deploy.render_inference_service(CFG, MODEL, "v3", "ab" * 32, previous_version="v2")
    assert_valid(isvc_validator, manifest)
    meta = manifest["metadata"]
    assert meta["annotations"][deploy.MODE_ANNOTATION] == "Standard"
    predictor = manifest["spec"]["predictor"]
    env = {e["name"]: e["value"] for e in predictor["containers"][0]["env"]}
    assert env["STORAGE_URI"] == "pvc://kfops-registry/models/penguins/versions/v3"
    assert predictor["annotations"]["prometheus.io/scrape"] == "true"
    assert predictor["containers"][0]["args"][:2] == ["--model-dir", "/mnt/models"]


def test_cluster_config_mounts_the_registry_pvc_for_capture(isvc_validator: Any) -> None:
    cfg = deploy.cluster_config(MODEL, "ml", storage_root="pvc://kfops-registry/registry")
    assert cfg.pvc == "kfops-registry" and cfg.capture_uri == "/mnt/kfops/capture"
    manifest = deploy.render_inference_service(cfg, MODEL, "v2")
    assert_valid(isvc_validator, manifest)
    predictor = manifest["spec"]["predictor"]
    container = predictor["containers"][0]
    assert container["args"][-4:-2] == ["--capture", "/mnt/kfops/capture"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"tmp": "/tmp", "kfops-pvc": "/mnt/kfops"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert predictor["securityContext"]["runAsNonRoot"] is True
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["STORAGE_URI"] == "pvc://kfops-registry/registry/models/penguins/versions/v2"
    assert deploy.cluster_config(MODEL, storage_root="s3://bucket/registry").pvc is None


def test_validator_rejects_unknown_fields(isvc_validator: Any) -> None:
    manifest = deploy.render_inference_service(CFG, MODEL, "v1")
    manifest["spec"]["predictor"]["canaryPercent"] = 10  # not a field
    assert list(isvc_validator.iter_errors(manifest))


@pytest.mark.parametrize("mode", ["Standard", "Knative"])
def test_canary_patches_give_valid_objects(isvc_validator: Any, mode: str) -> None:
    cfg = deploy.DeployConfig(name=MODEL, mode=mode)
    live = deploy.render_inference_service(cfg, MODEL, "v1")
    merged = merge_patch(live, deploy.render_canary(cfg, live, MODEL, "v2", 10))
    assert_valid(isvc_validator, merged)
    if mode == "Standard":
        assert merged["spec"]["canary"][0]["trafficPercent"] == 10
        assert merged["spec"]["predictor"]["labels"]["kfops.io/version"] == "v1"
    else:
        assert merged["spec"]["predictor"]["canaryTrafficPercent"] == 10
        assert merged["spec"]["predictor"]["labels"]["kfops.io/version"] == "v2"


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


# --- a local stand-in for the API server ---------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (what the client sends for a dict body)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


class FakeApiServer:
    """Records requests; stores InferenceServices; can be told to reject or to stay unready."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.reject: tuple[int, str] | None = None
        self.ready = True
        self.port = free_port()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                outer.requests.append(
                    {
                        "method": self.command,
                        "path": self.path.split("?")[0],
                        "content_type": self.headers.get("Content-Type"),
                        "body": body,
                    }
                )
                status, reply = outer.answer(self.command, self.path.split("?")[0], body)
                self._reply(status, reply)

            do_GET = do_POST = do_PATCH = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def status(self, code: int, reason: str, message: str) -> tuple[int, dict[str, Any]]:
        return code, {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }

    def answer(self, method: str, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        parts = path[len(PREFIX) :].split("/")
        namespace, name = parts[0], parts[2] if len(parts) > 2 else None
        if method in ("POST", "PATCH") and self.reject is not None:
            code, message = self.reject
            return self.status(code, "Invalid", message)
        if method == "GET":
            obj = self.objects.get((namespace, name or ""))
            if obj is None:
                return self.status(404, "NotFound", f'inferenceservices "{name}" not found')
            return 200, obj
        if method == "POST":
            key = (namespace, body["metadata"]["name"])
            if key in self.objects:
                return self.status(409, "AlreadyExists", "already exists")
            self.objects[key] = self._with_status(body)
            return 201, self.objects[key]
        if method == "PATCH":
            key = (namespace, name or "")
            if key not in self.objects:
                return self.status(404, "NotFound", "not found")
            self.objects[key] = self._with_status(merge_patch(self.objects[key], body))
            return 200, self.objects[key]
        return self.status(405, "MethodNotAllowed", method)

    def _with_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        cond = {"type": "Ready", "status": "True" if self.ready else "False"}
        if not self.ready:
            cond["message"] = "Revision missing: image pull back-off"
        obj["status"] = {"conditions": [cond]}
        return obj

    def api_client(self) -> Any:
        configuration = client.Configuration()
        configuration.host = f"http://127.0.0.1:{self.port}"
        return client.ApiClient(configuration)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    server = FakeApiServer()
    yield server
    server.close()


def deployer(api: FakeApiServer) -> deploy.KServeDeployer:
    return deploy.KServeDeployer(api.api_client(), namespace="ml", poll_interval=0.05)


def stored(api: FakeApiServer) -> dict[str, Any]:
    obj = copy.deepcopy(api.objects[("ml", MODEL)])
    obj.pop("status")
    return obj


def test_first_deploy_creates_then_patches(api: FakeApiServer, isvc_validator: Any) -> None:
    d = deployer(api)
    d.deploy(CFG, MODEL, "v1", "aa" * 32, timeout=5)
    assert [(r["method"], r["path"]) for r in api.requests] == [
        ("GET", f"{PREFIX}ml/inferenceservices/{MODEL}"),
        ("POST", f"{PREFIX}ml/inferenceservices"),
        ("GET", f"{PREFIX}ml/inferenceservices/{MODEL}"),  # wait_ready
    ]
    assert_valid(isvc_validator, stored(api))
    d.deploy(CFG, MODEL, "v2", timeout=5)
    patch = next(r for r in api.requests if r["method"] == "PATCH")
    assert patch["content_type"] == "application/merge-patch+json"
    obj = stored(api)
    assert_valid(isvc_validator, obj)
    assert obj["metadata"]["annotations"][deploy.VERSION_ANNOTATION] == "v2"
    assert obj["metadata"]["annotations"][deploy.PREVIOUS_ANNOTATION] == "v1"


def test_standard_canary_promote(api: FakeApiServer, isvc_validator: Any) -> None:
    d = deployer(api)
    d.deploy(CFG, MODEL, "v1", timeout=5)
    d.deploy(CFG, MODEL, "v2", canary_percent=20, timeout=5)
    obj = stored(api)
    assert_valid(isvc_validator, obj)
    assert obj["spec"]["canary"][0]["trafficPercent"] == 20
    assert obj["spec"]["predictor"]["labels"]["kfops.io/version"] == "v1"
    d.promote(MODEL, timeout=5)
    obj = stored(api)
    assert_valid(isvc_validator, obj)
    assert "canary" not in obj["spec"]
    assert obj["spec"]["predictor"]["labels"]["kfops.io/version"] == "v2"
    assert obj["metadata"]["annotations"][deploy.VERSION_ANNOTATION] == "v2"
    assert obj["metadata"]["annotations"][deploy.PREVIOUS_ANNOTATION] == "v1"


def test_standard_canary_rollback_keeps_stable(api: FakeApiServer, isvc_validator: Any) -> None:
    d = deployer(api)
    d.deploy(CFG, MODEL, "v1", timeout=5)
    d.deploy(CFG, MODEL, "v2", canary_percent=10, timeout=5)
    d.rollback(MODEL, timeout=5)
    obj = stored(api)
    assert "canary" not in obj["spec"]
    assert obj["spec"]["predictor"]["labels"]["kfops.io/version"] == "v1"
    assert_valid(isvc_validator, obj)


def test_knative_canary_rollback_and_promote(api: FakeApiServer, isvc_validator: Any) -> None:
    cfg = deploy.DeployConfig(name=MODEL, namespace="ml", mode="Knative")
    d = deployer(api)
    d.deploy(cfg, MODEL, "v1", timeout=5)
    d.deploy(cfg, MODEL, "v2", canary_percent=25, timeout=5)
    assert stored(api)["spec"]["predictor"]["canaryTrafficPercent"] == 25
    d.rollback(MODEL, timeout=5)
    assert stored(api)["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert_valid(isvc_validator, stored(api))
    d.deploy(cfg, MODEL, "v3", canary_percent=50, timeout=5)
    d.promote(MODEL, timeout=5)
    obj = stored(api)
    assert "canaryTrafficPercent" not in obj["spec"]["predictor"]
    assert obj["spec"]["predictor"]["labels"]["kfops.io/version"] == "v3"
    assert_valid(isvc_validator, obj)


def test_rollback_without_canary_redeploys_previous(api: FakeApiServer) -> None:
    d = deployer(api)
    d.deploy(CFG, MODEL, "v1", timeout=5)
    d.deploy(CFG, MODEL, "v2", timeout=5)
    d.rollback(MODEL, CFG, MODEL, timeout=5)
    obj = stored(api)
    assert obj["spec"]["predictor"]["labels"]["kfops.io/version"] == "v1"
    assert obj["metadata"]["annotations"][deploy.PREVIOUS_ANNOTATION] == "v2"


def test_rejected_inference_service_leaves_previous(api: FakeApiServer) -> None:
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


def test_not_ready_times_out_with_reason(api: FakeApiServer) -> None:
    api.ready = False
    with pytest.raises(ClusterError, match="image pull back-off"):
        deployer(api).deploy(CFG, MODEL, "v1", timeout=0.3)


def test_promote_without_canary_is_a_config_error(api: FakeApiServer) -> None:
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


def test_deploy_version_cluster_moves_alias_after_ready(tmp_path: Path, api: FakeApiServer) -> None:
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
