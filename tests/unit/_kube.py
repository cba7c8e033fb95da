"""A stand-in Kubernetes API server for the deploy tests, modelled on the upstream code.

No API server can run here, so this serves the two resources kfops.deploy talks to over real
HTTP (the kubernetes client, its serialisation and our error handling are real) and models what
decides their state, each part ported from the upstream file named beside it:

- the API server: create/get/merge-patch of InferenceServices and get of Deployments;
  ``fieldValidation=Strict`` rejects fields the CRD schema (the real one in shared/crds, or a
  pre-0.20 one without ``spec.canary``) does not declare, with the API server's
  ``unknown field`` message; ``metadata.generation`` grows when ``spec`` changes.
- KServe's validating webhook for InferenceServices: ``validate_canary_specs`` below, the rules
  of ``validateCanarySpecs`` in kserve v0.20.0 ``pkg/apis/serving/v1beta1/
  inference_service_validation.go``, one check per rule.
- KServe's controller in Standard mode (``pkg/controller/v1beta1/inferenceservice/components/
  predictor.go``): one Deployment per predictor, named ``<isvc>[-<predictor.name>]-predictor``
  (``constants.PredictorServiceName``), its pod template labelled with the predictor's labels; a
  canary predictor is the stable one with the canary's fields merged over it
  (``buildCanaryPredictor``). On an update the ISVC status is computed from the Deployment *as
  it was before the patch* (``reconcilers/deployment/deployment_reconciler.go``,
  ``CheckResultUpdate`` appends ``existingDep``), by ``propagate_raw_status``, a port of
  ``PropagateRawStatus`` (``pkg/apis/serving/v1beta1/inference_service_status.go``).
- The Deployment controller's rolling update of a small Deployment (maxSurge 25% rounds up to
  1, maxUnavailable 25% rounds down to 0, the defaults of apps/v1): a new ReplicaSet's pod is
  added next to the old ones, which are removed once the new pods are available; a pod that
  never becomes ready leaves ``Available`` True (the old pod) and ``Progressing`` True with
  reason ``ReplicaSetUpdated`` until ``progressDeadlineSeconds``, then ``Progressing`` False
  with reason ``ProgressDeadlineExceeded``. Field names are those of ``appsv1.DeploymentStatus``.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
import yaml
from kubernetes import client

from tests.conftest import crds_dir, free_port

ISVC_PREFIX = "/apis/serving.kserve.io/v1beta1/namespaces/"
DEPLOY_PREFIX = "/apis/apps/v1/namespaces/"


# --- the CRD schema, strict -----------------------------------------------------------------


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


_VALIDATORS: dict[bool, jsonschema.Draft7Validator] = {}


@functools.cache
def _crd_schema() -> dict[str, Any]:
    # The CRD is 40k lines: the C loader reads it in about a second instead of twenty.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load(
        (crds_dir() / "serving.kserve.io_inferenceservices.yaml").read_text(), Loader=loader
    )
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta1")
    return dict(_strict(version["schema"]["openAPIV3Schema"]))


def isvc_validator(pre_canary: bool = False) -> jsonschema.Draft7Validator:
    """The v1beta1 schema of the real CRD (KServe 0.20); ``pre_canary``: without spec.canary,
    as the CRDs before 0.20 (checked against kserve v0.19.0 config/crd/full)."""
    if pre_canary not in _VALIDATORS:
        schema = copy.deepcopy(_crd_schema())
        if pre_canary:
            del schema["properties"]["spec"]["properties"]["canary"]
        _VALIDATORS[pre_canary] = jsonschema.Draft7Validator(schema)
    return _VALIDATORS[pre_canary]


def schema_errors(obj: dict[str, Any], pre_canary: bool = False) -> list[str]:
    out = []
    for err in sorted(isvc_validator(pre_canary).iter_errors(obj), key=str):
        path = ".".join(str(p) for p in err.path)
        if err.validator == "additionalProperties":
            extra = set(err.instance) - set(err.schema.get("properties", {}))
            out += [f'unknown field "{path + "." if path else ""}{name}"' for name in sorted(extra)]
        else:
            out.append(f"{path}: {err.message}")
    return out


# --- KServe's validating webhook: validateCanarySpecs (kserve v0.20.0) -----------------------


def validate_canary_specs(isvc: dict[str, Any]) -> list[str]:
    """Every rule of ``validateCanarySpecs`` (pkg/apis/serving/v1beta1/
    inference_service_validation.go, kserve v0.20.0) that ``isvc`` breaks; [] when admitted."""
    spec = isvc.get("spec") or {}
    canaries = spec.get("canary") or []
    if not canaries:
        return []
    errors = []
    annotations = (isvc.get("metadata") or {}).get("annotations") or {}
    # "canary is only supported in Standard deployment mode" (exact annotation value)
    if annotations.get("serving.kserve.io/deploymentMode") != "Standard":
        errors.append("canary is only supported in Standard deployment mode")
    stable = spec.get("predictor") or {}
    # "canary requires a stable predictor with a model": GetStorageUri() of a custom predictor
    # is the STORAGE_URI env of the container named kserve-container (predictor_custom.go).
    if _storage_uri(stable) is None and stable.get("model") is None:
        errors.append("canary requires a stable predictor with a model")
    names: set[str] = set()
    total = 0
    stable_min = stable.get("minReplicas", 1)
    for i, canary in enumerate(canaries):
        predictor = canary.get("predictor") or {}
        name = predictor.get("name") or ""
        if not name:  # "canary[%d] predictor.name is required"
            errors.append(f"canary[{i}] predictor.name is required")
        if name in names:  # "canary predictor.name %q is duplicated"
            errors.append(f"canary predictor.name {name!r} is duplicated")
        names.add(name)
        if name and name == stable.get("name"):  # "conflicts with stable predictor name"
            errors.append(f"canary predictor.name {name!r} conflicts with stable predictor name")
        percent = canary.get("trafficPercent", 0)
        if not 0 <= percent <= 100:  # "trafficPercent must be between 0 and 100"
            errors.append(f"canary {name!r} trafficPercent must be between 0 and 100")
        total += percent
        # validateExactlyOneImplementation: a custom predictor is its containers list.
        implementations = [
            k
            for k in (
                "containers",
                "model",
                "sklearn",
                "xgboost",
                "pytorch",
                "tensorflow",
                "onnx",
                "triton",
                "lightgbm",
                "paddle",
                "pmml",
                "huggingface",
            )
            if predictor.get(k)
        ]
        if len(implementations) != 1:
            errors.append(f"canary {name!r} predictor: exactly one implementation required")
        if predictor.get("workerSpec") is not None:  # "must not set workerSpec"
            errors.append(f"canary {name!r} must not set workerSpec")
        if predictor.get("maxReplicas", 0) > 0:  # "must not set maxReplicas"
            errors.append(f"canary {name!r} must not set maxReplicas")
        for key in ("scaleTarget", "scaleMetric", "autoScaling"):  # "must not set <key>"
            if predictor.get(key) is not None:
                errors.append(f"canary {name!r} must not set {key}")
        # "minReplicas (%d) must not exceed stable predictor minReplicas (%d)"
        if predictor.get("minReplicas") is not None and predictor["minReplicas"] > stable_min:
            errors.append(f"canary {name!r} minReplicas must not exceed stable minReplicas")
    if total > 100:  # "sum of canary trafficPercent values (%d) must be <= 100"
        errors.append(f"sum of canary trafficPercent values ({total}) must be <= 100")
    return errors


def _storage_uri(predictor: dict[str, Any]) -> str | None:
    for container in predictor.get("containers") or []:
        if container.get("name") == "kserve-container":
            for env in container.get("env") or []:
                if env.get("name") == "STORAGE_URI":
                    return str(env.get("value"))
            return None
    return None


# --- KServe status propagation: PropagateRawStatus (kserve v0.20.0) ---------------------------


def _condition(dep: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in dep["status"].get("conditions", []) if c["type"] == kind), None)


def propagate_raw_status(dep: dict[str, Any]) -> dict[str, Any]:
    """PredictorReady from one Deployment, as ``PropagateRawStatus`` computes it."""
    ready = {"type": "PredictorReady", "status": "False", "reason": ""}
    available = _condition(dep, "Available")
    if available and available["status"] == "True":
        ready = {
            "type": "PredictorReady",
            "status": "True",
            "reason": available["reason"],
            "message": available.get("message", ""),
        }
    progressing = _condition(dep, "Progressing")
    if progressing is not None:
        if progressing["status"] == "False":
            if progressing.get("message"):
                ready = {
                    "type": "PredictorReady",
                    "status": "False",
                    "reason": progressing["reason"],
                    "message": progressing["message"],
                }
        elif progressing["reason"] == "NewReplicaSetAvailable":
            ready = {"type": "PredictorReady", "status": "True", "reason": progressing["reason"]}
        elif not available or available["status"] != "True":
            # Only Unknown when Available has not confirmed readiness.
            ready = {"type": "PredictorReady", "status": "Unknown", "reason": progressing["reason"]}
    if available and available["status"] == "False":
        ready = {
            "type": "PredictorReady",
            "status": "False",
            "reason": available["reason"],
            "message": available.get("message", ""),
        }
    return ready


# --- the Deployment controller: a rolling update -------------------------------------


def new_deployment(name: str, namespace: str, labels: dict[str, str], replicas: int) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "generation": 1},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": f"isvc.{name}"}},
            "template": {"metadata": {"labels": dict(labels)}, "spec": {"containers": []}},
        },
        "status": {"observedGeneration": 0},
        # Not part of the API object: which template revision the pods run (stripped on GET).
        "_pods": {"ready_template": None, "new_ticks": 0},
    }


def _status(
    dep: dict[str, Any],
    *,
    replicas: int,
    updated: int,
    available: int,
    available_cond: bool,
    progressing: tuple[str, str, str],
) -> None:
    status, reason, message = progressing
    dep["status"] = {
        "observedGeneration": dep["metadata"]["generation"],
        "replicas": replicas,
        "updatedReplicas": updated,
        "readyReplicas": available,
        "availableReplicas": available,
        "unavailableReplicas": max(0, replicas - available),
        "conditions": [
            {
                "type": "Available",
                "status": "True" if available_cond else "False",
                "reason": "MinimumReplicasAvailable"
                if available_cond
                else "MinimumReplicasUnavailable",
                "message": "Deployment has minimum availability."
                if available_cond
                else "Deployment does not have minimum availability.",
            },
            {"type": "Progressing", "status": status, "reason": reason, "message": message},
        ],
    }


def step_deployment(dep: dict[str, Any], healthy: bool, deadline_ticks: int | None) -> None:
    """One observation of the Deployment controller rolling out the current template."""
    pods = dep["_pods"]
    template = json.dumps(dep["spec"]["template"], sort_keys=True)
    name = dep["metadata"]["name"]
    rs = f'ReplicaSet "{name}-{abs(hash(template)) % 10**10}"'
    n = int(dep["spec"]["replicas"])
    if pods["ready_template"] == template:
        _status(
            dep,
            replicas=n,
            updated=n,
            available=n,
            available_cond=True,
            progressing=("True", "NewReplicaSetAvailable", f"{rs} has successfully progressed."),
        )
        return
    old_serving = pods["ready_template"] is not None
    pods["new_ticks"] += 1
    if healthy and pods["new_ticks"] >= 4:  # the new pod passed its readiness probe
        pods["ready_template"], pods["new_ticks"] = template, 0
        _status(
            dep,
            replicas=n,
            updated=n,
            available=n,
            available_cond=True,
            progressing=("True", "NewReplicaSetAvailable", f"{rs} has successfully progressed."),
        )
        return
    progressing = ("True", "ReplicaSetUpdated", f"{rs} is progressing.")
    if not healthy and deadline_ticks is not None and pods["new_ticks"] > deadline_ticks:
        progressing = ("False", "ProgressDeadlineExceeded", f"{rs} has timed out progressing.")
    # maxSurge rounds up to 1, maxUnavailable down to 0: the old pods keep serving beside one
    # new pod until it is available.
    _status(
        dep,
        replicas=n + 1 if old_serving else n,
        updated=1,
        available=n if old_serving else 0,
        available_cond=old_serving,
        progressing=progressing,
    )


# --- the server ------------------------------------------------------------------------------


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


class FakeCluster:
    """API server + KServe (Standard and Knative) + Deployment controller, over real HTTP.

    ``bad_versions``: versions whose pods never become ready (crash-loop). ``deadline_ticks``:
    after that many observations of a stuck rollout, Progressing turns ProgressDeadlineExceeded
    (None: never, as within a short wait). ``pre_canary``: the CRD of KServe < 0.20.
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.isvcs: dict[tuple[str, str], dict[str, Any]] = {}
        self.deployments: dict[tuple[str, str], dict[str, Any]] = {}
        self.reject: tuple[int, str] | None = None
        self.bad_versions: set[str] = set()
        self.deadline_ticks: int | None = None
        self.pre_canary = False
        self.webhook = True
        self.lock = threading.Lock()
        self.port = free_port()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                with outer.lock:
                    status, reply = outer.answer(self.command, parts.path, query, body)
                    outer.requests.append(
                        {
                            "method": self.command,
                            "path": parts.path,
                            "query": query,
                            "content_type": self.headers.get("Content-Type"),
                            "body": body,
                            "status": status,
                            "reply": copy.deepcopy(reply),
                        }
                    )
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    # -- HTTP ------------------------------------------------------------------------------------

    @staticmethod
    def status(code: int, reason: str, message: str) -> tuple[int, dict[str, Any]]:
        return code, {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }

    def answer(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        if path.startswith(DEPLOY_PREFIX):
            namespace, _, name = path[len(DEPLOY_PREFIX) :].split("/")[:3]
            self.reconcile()
            dep = self.deployments.get((namespace, name))
            if dep is None:
                return self.status(404, "NotFound", f'deployments.apps "{name}" not found')
            return 200, {k: v for k, v in dep.items() if not k.startswith("_")}
        parts = path[len(ISVC_PREFIX) :].split("/")
        namespace, name = parts[0], parts[2] if len(parts) > 2 else ""
        if method in ("POST", "PATCH") and self.reject is not None:
            code, message = self.reject
            return self.status(code, "Invalid", message)
        if method == "GET":
            self.reconcile()
            obj = self.isvcs.get((namespace, name))
            if obj is None:
                return self.status(404, "NotFound", f'inferenceservices "{name}" not found')
            return 200, obj
        if method == "POST":
            key = (namespace, body["metadata"]["name"])
            if key in self.isvcs:
                return self.status(409, "AlreadyExists", "already exists")
            new = copy.deepcopy(body)
            new["metadata"]["generation"] = 1
        elif method == "PATCH":
            key = (namespace, name)
            if key not in self.isvcs:
                return self.status(404, "NotFound", "not found")
            old = self.isvcs[key]
            new = merge_patch(old, body)
            changed = new.get("spec") != old.get("spec")
            new["metadata"]["generation"] = old["metadata"]["generation"] + int(changed)
        else:
            return self.status(405, "MethodNotAllowed", method)
        new.pop("status", None)
        problem = self.admit(new, query)
        if problem is not None:
            return problem
        new["status"] = copy.deepcopy(self.isvcs[key]["status"]) if key in self.isvcs else {}
        self.isvcs[key] = new
        self.reconcile(changed_only=key)
        return (201 if method == "POST" else 200), new

    def admit(self, obj: dict[str, Any], query: dict[str, str]) -> tuple[int, Any] | None:
        errors = schema_errors(obj, self.pre_canary)
        unknown = [e for e in errors if e.startswith("unknown")]
        invalid = [e for e in errors if not e.startswith("unknown")]
        if invalid:
            return self.status(422, "Invalid", f"InferenceService is invalid: {invalid[0]}")
        if unknown:
            if query.get("fieldValidation") == "Strict":
                return self.status(
                    400, "BadRequest", "strict decoding error: " + ", ".join(unknown)
                )
            spec = obj.get("spec") or {}
            if self.pre_canary:  # structural schema: the API server prunes what it does not know
                spec.pop("canary", None)
        if self.webhook:
            denied = validate_canary_specs(obj)
            if denied:
                return self.status(
                    400,
                    "BadRequest",
                    "admission webhook "
                    f'"inferenceservice.kserve-webhook-server.validator" denied '
                    f"the request: {denied[0]}",
                )
        return None

    # -- the controllers -------------------------------------------------------------------------

    def reconcile(self, changed_only: tuple[str, str] | None = None) -> None:
        for key, isvc in self.isvcs.items():
            if changed_only is not None and key != changed_only:
                continue
            namespace, name = key
            ann = isvc["metadata"].get("annotations") or {}
            if ann.get("serving.kserve.io/deploymentMode") == "Knative":
                self._knative(isvc)
                continue
            spec = isvc["spec"]
            stable = spec["predictor"]
            wanted = {f"{name}-predictor": (stable, stable.get("minReplicas", 1))}
            for canary in spec.get("canary") or []:
                merged = merge_patch(stable, canary["predictor"])  # buildCanaryPredictor
                replicas = math.ceil(stable.get("minReplicas", 1) * canary["trafficPercent"] / 100)
                wanted[f"{name}-{canary['predictor']['name']}-predictor"] = (merged, replicas)
            conditions = []
            for dep_name, (predictor, replicas) in wanted.items():
                labels = {
                    **(predictor.get("labels") or {}),
                    "serving.kserve.io/inferenceservice": name,
                    "component": "predictor",
                }
                dep = self.deployments.get((namespace, dep_name))
                if dep is None:
                    dep = new_deployment(dep_name, namespace, labels, max(1, replicas))
                    self.deployments[(namespace, dep_name)] = dep
                elif dep["spec"]["template"]["metadata"]["labels"] != labels:
                    # CheckResultUpdate: the status below is the Deployment's before the patch.
                    dep["spec"]["template"]["metadata"]["labels"] = labels
                    dep["metadata"]["generation"] += 1
                    if dep_name == f"{name}-predictor":
                        conditions.append(propagate_raw_status(dep))
                    continue
                version = labels.get("kfops.io/version", "")
                if changed_only is None:
                    step_deployment(dep, version not in self.bad_versions, self.deadline_ticks)
                if dep_name == f"{name}-predictor":
                    conditions.append(propagate_raw_status(dep))
            for dep_key in [k for k in self.deployments if k[0] == namespace]:
                # CheckResultDelete: a canary that left the spec loses its Deployment.
                if dep_key[1].startswith(f"{name}-") and dep_key[1] not in wanted:
                    del self.deployments[dep_key]
            predictor_ready = (
                conditions[0] if conditions else {"type": "PredictorReady", "status": "Unknown"}
            )
            ready = {**predictor_ready, "type": "Ready"}
            isvc["status"] = {
                "conditions": [predictor_ready, ready],
                "deploymentMode": "Standard",
                # PropagateRawStatus copies the Deployment's observedGeneration, not the ISVC's.
                "observedGeneration": self.deployments[(namespace, f"{name}-predictor")][
                    "status"
                ].get("observedGeneration", 0),
            }

    def _knative(self, isvc: dict[str, Any]) -> None:
        """Knative: a new revision per spec change; ready unless its version is bad."""
        status = isvc.setdefault("status", {})
        predictor = status.setdefault("components", {}).setdefault("predictor", {})
        generation = isvc["metadata"]["generation"]
        revision = f"{isvc['metadata']['name']}-predictor-{generation:05d}"
        predictor["latestCreatedRevision"] = revision
        version = (isvc["spec"]["predictor"].get("labels") or {}).get("kfops.io/version")
        if version not in self.bad_versions:
            predictor["latestReadyRevision"] = revision
        status["conditions"] = [{"type": "Ready", "status": "True"}]

    # -- helpers ---------------------------------------------------------------------------------

    def api_client(self) -> Any:
        configuration = client.Configuration()
        configuration.host = f"http://127.0.0.1:{self.port}"
        return client.ApiClient(configuration)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
