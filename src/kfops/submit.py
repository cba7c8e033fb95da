"""Submit compiled kfops pipelines to Kubeflow Pipelines with kfp.Client.

One run (`submit_run`), a recurring run on a cron schedule (`schedule_run`), or a named pipeline
version (`upload_version`) that runs and schedules can then point at. Every call first checks
the endpoint with a short healthz request so that an unreachable host, a missing or rejected
token, or a wrong address ends in one ClusterError naming the host, instead of kfp's retry loop
(5 attempts, 5 s apart) and a urllib3 traceback. API errors afterwards are mapped the same way.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
import yaml

from kfops.errors import ClusterError, ConfigError

if TYPE_CHECKING:
    import kfp

# Where Kubernetes projects a service-account token with audience pipelines.kubeflow.org;
# kfp's ServiceAccountTokenVolumeCredentials reads the same default.
DEFAULT_TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"
API = "/apis/v2beta1"
FINAL_STATES = {"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED", "CANCELLED"}
TOKEN_HINT = (
    "pass a bearer token with KFOPS_KFP_TOKEN, or a service-account token file with "
    "--token-file / KFOPS_KFP_TOKEN_FILE (audience pipelines.kubeflow.org)"
)


@dataclass(frozen=True)
class KfpTarget:
    """Where and as whom to talk to Kubeflow Pipelines."""

    host: str
    namespace: str | None = None
    token: str | None = field(default=None, repr=False)
    token_file: Path | None = None
    timeout: float = 10.0

    @classmethod
    def resolve(
        cls,
        host: str | None = None,
        namespace: str | None = None,
        token_file: str | Path | None = None,
        environ: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> KfpTarget:
        """Flags win over KFOPS_KFP_HOST / KF_PIPELINES_ENDPOINT, KFOPS_KFP_NAMESPACE,
        KFOPS_KFP_TOKEN and KFOPS_KFP_TOKEN_FILE (read now, never at import time)."""
        env = os.environ if environ is None else environ
        host = host or env.get("KFOPS_KFP_HOST") or env.get("KF_PIPELINES_ENDPOINT")
        if not host:
            raise ConfigError(
                "no Kubeflow Pipelines host: pass --host or set KFOPS_KFP_HOST "
                "(e.g. http://localhost:8080 after "
                "`kubectl -n kubeflow port-forward svc/ml-pipeline-ui 8080:80`)"
            )
        host = host.strip().rstrip("/")
        if not re.match(r"^https?://[^/\s]+", host):
            raise ConfigError(f"host {host!r} must start with http:// or https://")
        namespace = namespace or env.get("KFOPS_KFP_NAMESPACE") or None
        token = env.get("KFOPS_KFP_TOKEN") or None
        file_value = token_file or env.get("KFOPS_KFP_TOKEN_FILE") or None
        path = Path(file_value) if file_value else None
        if path is not None and not path.is_file():
            raise ConfigError(f"token file {str(path)!r} does not exist")
        if token and path is not None:
            raise ConfigError("give either KFOPS_KFP_TOKEN or a token file, not both")
        return cls(host=host, namespace=namespace, token=token, token_file=path, timeout=timeout)

    def bearer(self) -> str | None:
        if self.token:
            return self.token
        if self.token_file is not None:
            return self.token_file.read_text().strip()
        return None

    def run_url(self, run_id: str) -> str:
        return f"{self.host}/#/runs/details/{run_id}"

    def recurring_run_url(self, recurring_run_id: str) -> str:
        return f"{self.host}/#/recurringrun/details/{recurring_run_id}"

    def version_url(self, pipeline_id: str, version_id: str) -> str:
        return f"{self.host}/#/pipelines/details/{pipeline_id}/version/{version_id}"


@dataclass(frozen=True)
class RunResult:
    run_id: str
    experiment_id: str
    url: str
    state: str


@dataclass(frozen=True)
class ScheduleResult:
    recurring_run_id: str
    experiment_id: str
    url: str
    cron: str


@dataclass(frozen=True)
class VersionRef:
    pipeline_id: str
    version_id: str
    url: str


# ---------------------------------------------------------------------------------------------
# Connection and error mapping


def check_endpoint(target: KfpTarget) -> dict[str, Any]:
    """GET healthz with a short timeout; return its JSON or raise one clear ClusterError."""
    url = f"{target.host}{API}/healthz"
    headers = {"Authorization": f"Bearer {tok}"} if (tok := target.bearer()) else {}
    try:
        resp = requests.get(url, headers=headers, timeout=target.timeout, allow_redirects=False)
    except requests.exceptions.Timeout:
        raise ClusterError(
            f"Kubeflow Pipelines host {target.host} did not answer within {target.timeout:g} s"
        ) from None
    except requests.exceptions.ConnectionError as exc:
        raise ClusterError(_unreachable(target.host, exc)) from None
    if resp.status_code in (401, 403):
        raise ClusterError(_auth_message(target, resp.status_code))
    if 300 <= resp.status_code < 400:
        where = resp.headers.get("Location", "?")
        raise ClusterError(
            f"Kubeflow Pipelines host {target.host} redirected to {where} (a login page of an "
            f"auth proxy?): {TOKEN_HINT}"
        )
    if resp.status_code == 404:
        raise ClusterError(
            f"no Kubeflow Pipelines v2beta1 API at {target.host} ({API}/healthz answered 404): "
            "point --host at the KFP UI or API service"
        )
    if resp.status_code >= 400:
        raise ClusterError(
            f"Kubeflow Pipelines host {target.host} answered HTTP {resp.status_code}"
        )
    try:
        info = resp.json()
    except ValueError:
        raise ClusterError(
            f"Kubeflow Pipelines host {target.host} answered healthz with non-JSON content "
            f"(a login page?): {TOKEN_HINT}"
        ) from None
    if info.get("multi_user") and not target.namespace:
        raise ConfigError(
            f"Kubeflow Pipelines at {target.host} is multi-user: pass --namespace or set "
            "KFOPS_KFP_NAMESPACE (your profile namespace)"
        )
    return dict(info)


def _unreachable(host: str, exc: BaseException) -> str:
    text = repr(exc)
    if any(s in text for s in ("NameResolutionError", "Name or service not known", "getaddrinfo")):
        why = "its name does not resolve (DNS)"
    elif "Connection refused" in text or "ConnectionRefused" in text:
        why = "connection refused (is the service or the port-forward running?)"
    elif "timed out" in text or "Timeout" in text:
        why = "the connection timed out"
    else:
        why = "the connection failed"
    return f"cannot reach Kubeflow Pipelines host {host}: {why}"


def _auth_message(target: KfpTarget, status: int) -> str:
    if status == 401:
        if target.bearer():
            return f"Kubeflow Pipelines at {target.host} rejected the token (401 Unauthorized)"
        return (
            f"Kubeflow Pipelines at {target.host} wants authentication (401 Unauthorized): "
            + TOKEN_HINT
        )
    scope = f" in namespace {target.namespace!r}" if target.namespace else ""
    return (
        f"Kubeflow Pipelines at {target.host} refused access{scope} (403 Forbidden): the "
        "identity lacks permission there (or the namespace does not exist); "
        + ("use a token of an account with access" if target.bearer() else TOKEN_HINT)
    )


@contextlib.contextmanager
def _api_errors(target: KfpTarget, action: str) -> Iterator[None]:
    """Turn kfp_server_api/urllib3 failures during ``action`` into one ClusterError."""
    import kfp_server_api
    import urllib3

    try:
        yield
    except kfp_server_api.ApiException as exc:
        status = int(exc.status or 0)
        detail = _api_detail(exc.body)
        if status in (401, 403):
            raise ClusterError(f"{action}: {_auth_message(target, status)}") from None
        if status == 404 and target.namespace and "namespace" in detail.lower():
            raise ClusterError(
                f"{action}: namespace {target.namespace!r} not found on {target.host}"
            ) from None
        raise ClusterError(
            f"{action}: Kubeflow Pipelines at {target.host} answered HTTP {status}: {detail}"
        ) from None
    except (urllib3.exceptions.HTTPError, requests.exceptions.ConnectionError) as exc:
        raise ClusterError(f"{action}: {_unreachable(target.host, exc)}") from None


def _api_detail(body: Any) -> str:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        data = json.loads(body)
    except (TypeError, ValueError):
        return str(body or "").strip()[:300]
    if isinstance(data, dict):
        return str(data.get("message") or data.get("error") or data)[:300]
    return str(data)[:300]


def make_client(target: KfpTarget) -> kfp.Client:
    """A kfp.Client for ``target`` (after :func:`check_endpoint`)."""
    import kfp
    from kfp.client import ServiceAccountTokenVolumeCredentials

    kwargs: dict[str, Any] = {"host": target.host}
    if target.namespace:
        kwargs["namespace"] = target.namespace
    if target.token:
        kwargs["existing_token"] = target.token
    elif target.token_file is not None:
        kwargs["credentials"] = ServiceAccountTokenVolumeCredentials(path=str(target.token_file))
    with warnings.catch_warnings(), _quiet(), _api_errors(target, "connect"):
        warnings.simplefilter("ignore", FutureWarning)
        return kfp.Client(**kwargs)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # kfp.Client prints "Run details: <link>" itself; the CLI prints its own lines.
    with contextlib.redirect_stdout(io.StringIO()):
        yield


# ---------------------------------------------------------------------------------------------
# Pipeline packages and arguments


def compile_package(pipeline: str, out_path: str | Path, image: str) -> Path:
    """Compile ``pipeline`` ("training", "monitoring") with the project image baked in."""
    from kfops.pipelines.compile import compile_pipeline

    return Path(compile_pipeline(pipeline, out_path, image))


def load_package(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"pipeline package {str(p)!r} does not exist")
    try:
        docs = [d for d in yaml.safe_load_all(p.read_text()) if d]
    except yaml.YAMLError as exc:
        raise ConfigError(f"pipeline package {str(p)!r} is not valid YAML: {exc}") from None
    for doc in docs:
        if isinstance(doc, dict) and "pipelineInfo" in doc and "root" in doc:
            return doc
    raise ConfigError(f"pipeline package {str(p)!r} holds no KFP pipeline spec")


_PARAM_TYPES: dict[str, tuple[type, ...]] = {
    "STRING": (str,),
    "NUMBER_INTEGER": (int,),
    "NUMBER_DOUBLE": (int, float),
    "BOOLEAN": (bool,),
    "LIST": (list,),
    "STRUCT": (dict,),
}


CACHE_PARAMETER = "use_cache"


def without_cache(spec: dict[str, Any], arguments: Mapping[str, Any]) -> dict[str, Any]:
    """``arguments`` with the pipeline's cache switched off (``kfops submit --no-cache``).

    KFP reuses a task's outputs when its cache key is unchanged. The client's own switch
    (``enable_caching``) rewrites only the top-level tasks of an inline spec, not nested DAGs
    nor uploaded versions (kfp 2.17.3 kfp/client/client.py ``_override_caching_options``), so
    the training pipeline takes a parameter that gives its cacheable steps a fresh key.
    """
    params = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    if CACHE_PARAMETER not in params:
        name = spec.get("pipelineInfo", {}).get("name", "pipeline")
        raise ConfigError(f"{name} has no cacheable steps to switch off (--no-cache)")
    return {**arguments, CACHE_PARAMETER: False}


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """``["seed=7", "target=species"]`` -> {"seed": 7, "target": "species"} (JSON values win)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param {item!r} must look like name=value")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        out[key.strip()] = value
    return out


def check_arguments(spec: dict[str, Any], arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Reject unknown, missing or mistyped pipeline parameters before anything is sent."""
    params = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    name = spec.get("pipelineInfo", {}).get("name", "pipeline")
    unknown = sorted(set(arguments) - set(params))
    if unknown:
        raise ConfigError(
            f"unknown parameter {unknown[0]!r} for {name}; known: {', '.join(sorted(params))}"
        )
    missing = sorted(k for k, d in params.items() if not d.get("isOptional") and k not in arguments)
    if missing:
        raise ConfigError(f"{name} needs parameter {missing[0]!r} (pass --param {missing[0]}=...)")
    out: dict[str, Any] = {}
    for key, value in arguments.items():
        kind = params[key].get("parameterType", "STRING")
        allowed = _PARAM_TYPES.get(kind)
        ok = allowed is None or (
            isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
        )
        if not ok and kind == "STRING":
            value, ok = json.dumps(value) if isinstance(value, (dict, list)) else str(value), True
        if not ok:
            raise ConfigError(f"parameter {key!r} of {name} must be {kind}, got {value!r}")
        out[key] = value
    if "model_name" in out:
        # A model name becomes a registry path and an InferenceService name: refuse a bad one
        # before the run exists, not at its register step after training.
        from kfops.registry import validate_model_name

        validate_model_name(str(out["model_name"]))
    return out


_CRON_FIELD = re.compile(r"^[0-9A-Za-z*?/,#LW-]+$")


def normalize_cron(cron: str) -> str:
    """KFP wants 6 fields (seconds first); accept the usual 5-field form too."""
    fields = cron.split()
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6 or not all(_CRON_FIELD.match(f) for f in fields):
        raise ConfigError(
            f"cron {cron!r} is not a cron expression: use 5 fields ('0 3 * * *' = 03:00 daily) "
            "or 6 with seconds first"
        )
    return " ".join(fields)


# ---------------------------------------------------------------------------------------------
# Operations


def _experiment_id(client: kfp.Client, target: KfpTarget, experiment: str) -> str:
    with _quiet(), _api_errors(target, f"get or create experiment {experiment!r}"):
        exp = client.create_experiment(name=experiment, namespace=target.namespace)
    return str(exp.experiment_id)


def submit_run(
    target: KfpTarget,
    package: str | Path | None = None,
    *,
    version: VersionRef | None = None,
    arguments: Mapping[str, Any] | None = None,
    experiment: str = "kfops",
    run_name: str | None = None,
    service_account: str | None = None,
    enable_caching: bool | None = None,
    wait: bool = False,
    timeout: float = 3600.0,
    poll_seconds: float = 5.0,
) -> RunResult:
    """Start one run of ``package`` (inline spec) or of an uploaded pipeline ``version``."""
    if (package is None) == (version is None):
        raise ConfigError("give a pipeline package or an uploaded version, not both or neither")
    spec = load_package(package) if package is not None else None
    # The endpoint first (a read-only healthz): `make submit` against a wrong host says so
    # before it complains about parameters. Nothing is created until the arguments check out.
    check_endpoint(target)
    args = dict(arguments or {})
    if spec is not None:
        args = check_arguments(spec, args)
        run_name = run_name or spec["pipelineInfo"]["name"]
    run_name = run_name or "kfops-run"
    client = make_client(target)
    experiment_id = _experiment_id(client, target, experiment)
    with _quiet(), _api_errors(target, f"create run {run_name!r}"):
        run = client.run_pipeline(
            experiment_id=experiment_id,
            job_name=run_name,
            pipeline_package_path=str(package) if package is not None else None,
            pipeline_id=version.pipeline_id if version else None,
            version_id=version.version_id if version else None,
            params=args,
            enable_caching=enable_caching,
            service_account=service_account,
        )
    run_id = str(run.run_id)
    state = str(run.state or "PENDING")
    if wait:
        state = wait_for_run(client, target, run_id, timeout=timeout, poll_seconds=poll_seconds)
    return RunResult(
        run_id=run_id, experiment_id=experiment_id, url=target.run_url(run_id), state=state
    )


def wait_for_run(
    client: Any, target: KfpTarget, run_id: str, *, timeout: float, poll_seconds: float = 5.0
) -> str:
    """Poll the run until it reaches a final state; return that state."""
    import time

    deadline = time.monotonic() + timeout
    state = "PENDING"
    while True:
        with _api_errors(target, f"get run {run_id}"):
            state = str(client.get_run(run_id).state or "PENDING")
        if state.upper() in FINAL_STATES:
            return state
        if time.monotonic() >= deadline:
            raise ClusterError(
                f"run {run_id} is still {state} after {timeout:g} s: {target.run_url(run_id)}"
            )
        time.sleep(poll_seconds)


def schedule_run(
    target: KfpTarget,
    package: str | Path | None = None,
    *,
    cron: str,
    version: VersionRef | None = None,
    arguments: Mapping[str, Any] | None = None,
    experiment: str = "kfops",
    name: str | None = None,
    max_concurrency: int = 1,
    catchup: bool = False,
    service_account: str | None = None,
) -> ScheduleResult:
    """Create an enabled recurring run on ``cron`` (5 or 6 fields)."""
    if (package is None) == (version is None):
        raise ConfigError("give a pipeline package or an uploaded version, not both or neither")
    cron6 = normalize_cron(cron)
    if max_concurrency < 1:
        raise ConfigError(f"max_concurrency must be >= 1, got {max_concurrency}")
    spec = load_package(package) if package is not None else None
    check_endpoint(target)
    args = dict(arguments or {})
    if spec is not None:
        args = check_arguments(spec, args)
        name = name or f"{spec['pipelineInfo']['name']}-schedule"
    name = name or "kfops-schedule"
    client = make_client(target)
    experiment_id = _experiment_id(client, target, experiment)
    with _quiet(), _api_errors(target, f"create recurring run {name!r}"):
        job = client.create_recurring_run(
            experiment_id=experiment_id,
            job_name=name,
            cron_expression=cron6,
            max_concurrency=max_concurrency,
            no_catchup=not catchup,
            params=args,
            pipeline_package_path=str(package) if package is not None else None,
            pipeline_id=version.pipeline_id if version else None,
            version_id=version.version_id if version else None,
            service_account=service_account,
        )
    rid = str(job.recurring_run_id)
    return ScheduleResult(
        recurring_run_id=rid,
        experiment_id=experiment_id,
        url=target.recurring_run_url(rid),
        cron=cron6,
    )


def upload_version(
    target: KfpTarget,
    package: str | Path,
    *,
    pipeline_name: str,
    version_name: str,
    description: str | None = None,
) -> VersionRef:
    """Upload ``package`` as version ``version_name`` of pipeline ``pipeline_name``.

    The pipeline is created (empty) on first use, so every upload, the first included, is
    exactly one named version.
    """
    import kfp_server_api

    spec = load_package(package)
    # The dashboard's Pipelines list shows the pipeline's description: the spec's own unless
    # one is given (the first upload creates the pipeline).
    description = description or spec.get("pipelineInfo", {}).get("description") or None
    for label, value in (("pipeline name", pipeline_name), ("version name", version_name)):
        if not value or not value.strip():
            raise ConfigError(f"{label} is empty")
    check_endpoint(target)
    client = make_client(target)
    with _quiet(), _api_errors(target, f"look up pipeline {pipeline_name!r}"):
        pipeline_id = client.get_pipeline_id(pipeline_name)
    if pipeline_id is None:
        with _quiet(), _api_errors(target, f"create pipeline {pipeline_name!r}"):
            created = client._pipelines_api.pipeline_service_create_pipeline(
                pipeline=kfp_server_api.V2beta1Pipeline(
                    display_name=pipeline_name,
                    description=description,
                    namespace=target.namespace,
                )
            )
        pipeline_id = created.pipeline_id
    with _quiet(), _api_errors(target, f"upload version {version_name!r} of {pipeline_name!r}"):
        version = client.upload_pipeline_version(
            str(package),
            pipeline_version_name=version_name,
            pipeline_id=pipeline_id,
            description=description,
        )
    pid, vid = str(version.pipeline_id), str(version.pipeline_version_id)
    return VersionRef(pipeline_id=pid, version_id=vid, url=target.version_url(pid, vid))
