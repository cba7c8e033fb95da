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
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

from kfops import run_roots, tracking
from kfops.defaults import IMAGE, KEEP_RUNS
from kfops.errors import ConfigError, KfopsError
from kfops.params import TrainingParams
from kfops.registry import Registry
from kfops.run_log import ExecutorLog, TaskEvent, capture, strip_ansi
from kfops.run_roots import RunRoot

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
    log: str | None = None  # the executor's output of the run (kfops.run_roots.RunRoot.log)

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
    """Make a local data file reachable by the tasks: containers only see what is mounted
    (the registry root), and subprocess tasks must not see 'python3' in a path. Other URIs
    pass unchanged."""
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


def _docker_runner(registry_root: Path) -> DockerRunner:
    import kfp.local
    from docker.types import Mount

    try:
        import docker

        docker.from_env().ping()  # type: ignore[attr-defined]
    except Exception as exc:  # the docker SDK raises several unrelated types here
        raise KfopsError(
            f"--runner docker needs a running Docker daemon, and none answered ({exc}); "
            "start dockerd or use --runner subprocess"
        ) from None
    # Run as the invoking user so files in the bind-mounted pipeline root stay ours.
    # kfp.local mounts only the pipeline root (kfp 2.17.3, kfp/local/docker_task_handler.py,
    # get_volumes_to_mount), which is <registry>/runs/<id>/pipeline: the tasks also read and
    # write the registry, so mount the registry root at its own path too. DockerRunner accepts
    # "mounts" and refuses "volumes" (kfp/local/config.py, DockerRunner); Docker mounts the
    # registry before the pipeline root inside it.
    return kfp.local.DockerRunner(
        user=f"{os.getuid()}:{os.getgid()}",
        environment={"HOME": "/tmp", "MPLCONFIGDIR": "/tmp/matplotlib"},
        mounts=[Mount(str(registry_root), str(registry_root), type="bind")],
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


class RunFailed(KfopsError):
    """A pipeline task failed: which one, its one-line error, and where the full log is."""

    def __init__(self, step: str | None, message: str, run_id: str, log_path: Path) -> None:
        super().__init__(f"{step} step: {message}" if step else message)
        self.step = step
        self.message = message
        self.run_id = run_id
        self.log_path = log_path


def run_training(
    params: TrainingParams,
    runner: str = "subprocess",
    image: str = IMAGE,
    run_id: str | None = None,
    on_event: Callable[[TaskEvent], None] | None = None,
    echo: TextIO | None = None,
    keep_runs: int = KEEP_RUNS,
) -> RunSummary:
    """Run the training pipeline locally and return what it decided.

    The executor's output goes to ``<registry>/runs/<run_id>/run.log`` (and to ``echo`` when
    given); ``on_event`` hears each task start and end. Before the run, retention keeps the
    pipeline roots and logs of the newest ``keep_runs`` runs (kfops.run_roots).

    User errors (bad data, bad config, a contract violation) raise KfopsError; a failed task
    raises RunFailed with the step, its message and the log path. The registry is then
    unchanged.
    """
    if runner not in RUNNERS:
        raise ConfigError(f"unknown runner {runner!r}; use one of {', '.join(RUNNERS)}")
    run_roots.check_keep(keep_runs)
    preflight(params)
    registry_root = Path(params.registry_root).resolve()
    registry_root.mkdir(parents=True, exist_ok=True)
    root = RunRoot(registry_root, tracking.check_run_id(run_id or tracking.new_run_id()))
    log = ExecutorLog(root.log, on_event=on_event, echo=echo)
    try:
        with capture(log):
            return _run(params, root, runner, image, keep_runs, log)
    except RunFailed:
        raise
    except BaseException as exc:
        # Stopped before kfp.local ran or by the user: the record says so, not "running".
        if (root.path / "params.json").exists():
            status = "canceled" if isinstance(exc, KeyboardInterrupt) else "failed"
            tracking.finish_run(registry_root, root.run_id, status, str(exc) or repr(exc))
        raise
    finally:
        log.close()


def _run(
    params: TrainingParams,
    root: RunRoot,
    runner: str,
    image: str,
    keep_runs: int,
    log: ExecutorLog,
) -> RunSummary:
    import kfp.local
    from kfp import components

    from kfops.pipelines.compile import compile_pipeline

    registry_root, run_id = root.registry_root, root.run_id
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
    for path in run_roots.prune(registry_root, keep_runs):
        log.write(f"retention (keep {keep_runs} runs): removed {path}\n")

    if runner == "docker":
        local_runner = _docker_runner(registry_root)
        _check_image_present(image)
    else:
        local_runner = kfp.local.SubprocessRunner(use_venv=False)
    arguments["data_uri"] = _stage_input(params.data_uri, root.staging, runner)
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
        _removed_after(root.staging),
    ):
        spec = compile_pipeline("training", Path(spec_dir) / "training.yaml", image)
        pipeline = components.load_component_from_file(str(spec))
        root.pipeline_root.mkdir(parents=True, exist_ok=True)
        kfp.local.init(runner=local_runner, pipeline_root=str(root.pipeline_root))
        try:
            pipeline(**arguments)
        except RuntimeError as exc:  # kfp.local: "Task ... finished with status FAILURE"
            error = strip_ansi(str(exc))  # kfp colours its messages
            log.write(f"{error}\n")
            log.fail_running()
    record = tracking.load_run(registry_root, run_id)
    if error is not None:
        step = record.steps.get("failed", {}).get("step") or _failed_task(log, error)
        message = record.error or (log.error_line(step) if step else None) or error
        tracking.finish_run(registry_root, run_id, "failed", message)
        raise RunFailed(step, message, run_id, root.log)
    tracking.finish_run(registry_root, run_id, "succeeded")
    return summarize(registry_root, run_id, params.model_name, log_path=root.log)


def _failed_task(log: ExecutorLog, error: str) -> str | None:
    """The task kfp names in its failure message, else the last one that failed."""
    inner = re.search(r"Inner task failed: '([^']+)'", error)
    if inner:
        return inner[1]
    return log.failed[-1] if log.failed else None


def summarize(
    registry_root: Path, run_id: str, model_name: str, log_path: Path | None = None
) -> RunSummary:
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
        log=None if log_path is None else str(log_path),
    )


def _step_value(record: tracking.RunRecord, steps: tuple[str, ...], key: str) -> Any:
    """``key`` from the first of ``steps`` that recorded it (register's twin verdict wins over
    train's conversion)."""
    for step in steps:
        value = record.steps.get(step, {}).get(key)
        if isinstance(value, dict):
            return value
    return None
