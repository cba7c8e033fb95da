"""Run the training pipeline on this machine with kfp.local: no cluster needed.

The pipeline runs exactly as compiled for a cluster: we compile it (with the chosen image),
load the compiled spec back and hand it to kfp.local, so a local run and a cluster run execute
the same IR. The steps record their facts in the run history (kfops.tracking); the summary is
read back from there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kfops import tracking
from kfops.defaults import IMAGE
from kfops.errors import ConfigError, KfopsError
from kfops.params import TrainingParams
from kfops.registry import Registry

if TYPE_CHECKING:
    from kfp.local import DockerRunner

log = logging.getLogger(__name__)

Runner = Literal["subprocess", "docker"]
RUNNERS: tuple[str, ...] = ("subprocess", "docker")


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    status: str
    model_name: str
    fingerprint: str | None
    metrics: dict[str, Any]
    blessed: bool | None
    reasons: list[str]
    version: str | None
    aliases: dict[str, str]
    model_sha256: str | None
    error: str | None = None
    # The ONNX twin (kfops.twin.record.TwinRecord.to_dict(): register's verdict, else train's
    # conversion) and the permutation importance (kfops.explain.importance), when recorded.
    twin: dict[str, Any] | None = None
    importance: dict[str, Any] | None = None
    # Columns left out of the features, with why (contract inference: ids, near-unique labels,
    # --drop-columns), as the validate step recorded them.
    dropped: list[dict[str, str]] = field(default_factory=list)
    # The model had the champion's exact bytes: ``version`` is that champion, nothing new was
    # registered.
    unchanged: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _local_data_file(uri: str) -> Path | None:
    if uri.startswith("file://"):
        return Path(uri[len("file://") :])
    if "://" in uri:
        return None
    return Path(uri)


# kfp.local's SubprocessRunner replaces the text 'python3' in every task argument (kfp 2.17.3,
# subprocess_task_handler.replace_python_executable), which mangles paths such as
# .../lib/python3.11/site-packages/... where the bundled default data lives.
_MANGLED = "python3"


def _stage_input(uri: str, staging_dir: Path, runner: str) -> str:
    """Make a local data file reachable by the tasks: containers only see the pipeline root,
    and subprocess tasks must not see 'python3' in a path. Other URIs pass unchanged."""
    local = _local_data_file(uri)
    if local is None or not local.is_file():
        return uri  # extract reports a missing file or a bad URL with its usual message
    if runner == "subprocess" and _MANGLED not in str(local.resolve()):
        return uri
    staged = staging_dir / local.name
    staged.parent.mkdir(parents=True, exist_ok=True)
    if runner == "docker":
        shutil.copyfile(local, staged)
    else:
        staged.symlink_to(local.resolve())
    return str(staged.resolve()) if runner == "docker" else str(staged)


def _check_arguments(arguments: dict[str, Any]) -> None:
    for name, value in arguments.items():
        if isinstance(value, str) and _MANGLED in value:
            raise ConfigError(
                f"pipeline parameter {name}={value!r} contains 'python3', which kfp.local's "
                "subprocess runner rewrites; use a path without it"
            )


def _docker_runner() -> DockerRunner:
    import kfp.local

    try:
        import docker

        docker.from_env().ping()  # type: ignore[attr-defined]
    except Exception as exc:  # the docker SDK raises several unrelated types here
        raise KfopsError(
            f"--runner docker needs a running Docker daemon, and none answered ({exc}); "
            "start dockerd or use --runner subprocess"
        ) from None
    # Run as the invoking user so files in the bind-mounted pipeline root stay ours.
    return kfp.local.DockerRunner(
        user=f"{os.getuid()}:{os.getgid()}",
        environment={"HOME": "/tmp", "MPLCONFIGDIR": "/tmp/matplotlib"},
    )


def _check_image_present(image: str) -> None:
    import docker

    try:
        docker.from_env().images.get(image)  # type: ignore[attr-defined]
    except Exception:
        raise KfopsError(
            f"image {image!r} is not in the local Docker daemon: build it with `make image` "
            "(kfp.local would otherwise try to pull it)"
        ) from None


@contextlib.contextmanager
def _quiet_kfp_tmpdirs() -> Iterator[None]:
    """kfp.local leaves /tmp/tmp.* dirs behind; give it a private TMPDIR and remove it."""
    tmp = tempfile.mkdtemp(prefix="kfops-kfp-")
    old = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = tmp
    tempfile.tempdir = None
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = old
        tempfile.tempdir = None
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _removed_after(path: Path) -> Iterator[None]:
    try:
        yield
    finally:
        shutil.rmtree(path, ignore_errors=True)


def preflight(params: TrainingParams) -> None:
    """Reject a bad model name, estimator, parameter or threshold before any task starts."""
    from kfops import blessing, training
    from kfops.registry import validate_model_name

    validate_model_name(params.model_name)
    training.make_estimator(params.task, params.estimator, dict(params.params))
    blessing.parse_policy(params.thresholds, params.max_regression, params.task)
    if not 0.0 < params.test_size < 1.0:
        raise ConfigError(f"test_size {params.test_size} must be between 0 and 1")
    if params.tune:
        from kfops import tuning
        from kfops.pipelines.training import TUNE_MAX_ROUNDS

        tuning.resolve_space(
            params.task, params.estimator, params.search_space or None, dict(params.params)
        )
        if not 1 <= params.tune_rounds <= TUNE_MAX_ROUNDS:
            raise ConfigError(
                f"tune rounds {params.tune_rounds} must be between 1 and {TUNE_MAX_ROUNDS} "
                "(the compiled pipeline unrolls that many)"
            )
        if params.tune_trials_per_round < 1:
            raise ConfigError(f"tune trials per round {params.tune_trials_per_round} must be >= 1")


def run_training(
    params: TrainingParams,
    runner: str = "subprocess",
    image: str = IMAGE,
    run_id: str | None = None,
) -> RunSummary:
    """Run the training pipeline locally and return what it decided.

    User errors (bad data, bad config, a contract violation) raise KfopsError with the failing
    step's message; the registry is then unchanged.
    """
    import kfp.local
    from kfp import components

    from kfops.pipelines.compile import compile_pipeline

    if runner not in RUNNERS:
        raise ConfigError(f"unknown runner {runner!r}; use one of {', '.join(RUNNERS)}")
    preflight(params)
    registry_root = Path(params.registry_root).resolve()
    registry_root.mkdir(parents=True, exist_ok=True)
    # The pipeline root must contain the registry: DockerRunner mounts only the pipeline root.
    pipeline_root = registry_root.parent
    run_id = run_id or tracking.new_run_id()
    arguments = params.pipeline_arguments(run_id)
    tracking.record_step(
        registry_root,
        run_id,
        "params",
        {
            # The data shows as its fingerprint; params keeps what a person chooses.
            "params": {
                k: v
                for k, v in arguments.items()
                if k not in ("run_id", "registry_root", "data_uri", "model_name")
            },
            "data_uri": params.data_uri,
            "runner": runner,
            "model": params.model_name,
            "estimator": params.estimator,
        },
    )

    if runner == "docker":
        local_runner = _docker_runner()
        _check_image_present(image)
    else:
        local_runner = kfp.local.SubprocessRunner(use_venv=False)
    staging = pipeline_root / "inputs" / run_id
    arguments["data_uri"] = _stage_input(params.data_uri, staging, runner)
    if runner == "subprocess":
        _check_arguments(arguments)

    # kfp warns that a task's base image is not a stock Python image: ours is the project
    # image, whose Python environment is exactly this one.
    warnings.filterwarnings("ignore", message=".*custom or non-Python base image.*")
    # Display names and Kubernetes settings are for the dashboard and the cluster only.
    warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*")
    error: str | None = None
    with (
        tempfile.TemporaryDirectory(prefix="kfops-spec-") as spec_dir,
        _quiet_kfp_tmpdirs(),
        _removed_after(staging),
    ):
        spec = compile_pipeline("training", Path(spec_dir) / "training.yaml", image)
        pipeline = components.load_component_from_file(str(spec))
        kfp.local.init(runner=local_runner, pipeline_root=str(pipeline_root))
        try:
            pipeline(**arguments)
        except RuntimeError as exc:  # kfp.local: "Task ... finished with status FAILURE"
            error = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # kfp colours its messages
    record = tracking.load_run(registry_root, run_id)
    if error is not None:
        message = record.error or error
        step = record.steps.get("failed", {}).get("step")
        tracking.finish_run(registry_root, run_id, "failed", message)
        raise KfopsError(f"{step} step: {message}" if step else message)
    tracking.finish_run(registry_root, run_id, "succeeded")
    return summarize(registry_root, run_id, params.model_name)


def summarize(registry_root: Path, run_id: str, model_name: str) -> RunSummary:
    record = tracking.load_run(registry_root, run_id)
    registry = Registry(registry_root)
    aliases = registry.aliases(model_name) if model_name in registry.models() else {}
    sha = None
    if record.version:
        sha = registry.resolve(model_name, record.version).model_sha256
    return RunSummary(
        run_id=run_id,
        status=record.status,
        model_name=model_name,
        fingerprint=record.fingerprint,
        metrics=dict(record.metrics),
        blessed=record.blessed,
        reasons=record.reasons,
        version=record.version,
        aliases=aliases,
        model_sha256=sha,
        error=record.error,
        twin=_step_value(record, ("register", "train"), "twin"),
        importance=_step_value(record, ("evaluate",), "importance"),
        dropped=list(record.steps.get("validate", {}).get("dropped") or []),
        unchanged=bool(record.steps.get("register", {}).get("unchanged")),
    )


def _step_value(record: tracking.RunRecord, steps: tuple[str, ...], key: str) -> Any:
    """``key`` from the first of ``steps`` that recorded it (register's twin verdict wins over
    train's conversion)."""
    for step in steps:
        value = record.steps.get(step, {}).get(key)
        if isinstance(value, dict):
            return value
    return None
