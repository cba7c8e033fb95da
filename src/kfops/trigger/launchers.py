"""Launchers: how the trigger starts a training run and follows it to the end.

- ``LocalLauncher``: the retrain step (``kfops.steps.retrain``) on this machine, with kfp.local;
- ``KubeflowLauncher``: the compiled training pipeline submitted to Kubeflow Pipelines.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from kfops.defaults import IMAGE, MONITORING_WINDOW_HOURS, RETRAIN_REFERENCE_SHARE
from kfops.errors import ConfigError
from kfops.params import TrainingParams

if TYPE_CHECKING:
    from kfops.submit import KfpTarget

log = logging.getLogger("kfops.trigger")


@dataclass(frozen=True)
class RetrainRequest:
    """One run to start: the model and the alerts that asked for it."""

    model: str
    alerts: tuple[str, ...]  # "AlertName{feature=x}" descriptions, for logs and run records
    run_id: str


@dataclass
class RunOutcome:
    """How a started run ended. ``blessed``/``version`` are known for local runs only."""

    succeeded: bool
    detail: str
    blessed: bool | None = None
    version: str | None = None
    reasons: list[str] = field(default_factory=list)


class Launcher(Protocol):
    """Starts training runs. ``submit`` must be quick and raise KfopsError when it cannot
    submit (the webhook then answers 503); ``wait`` runs in a worker thread until the run ends."""

    where: str

    def submit(self, request: RetrainRequest) -> str: ...

    def wait(self, request: RetrainRequest, handle: str) -> RunOutcome: ...


def new_run_id() -> str:
    from kfops.tracking import new_run_id as _new

    return _new()


class LocalLauncher:
    """Runs the training pipeline on this machine with kfp.local.

    The training data is ``data_uri`` when given, else the model's captured traffic of the last
    ``window_hours`` joined with its late labels plus ``reference_share`` of the champion's
    training rows (``retrain.mix_training_data``, as ``kfops monitor`` retrains; the mix goes
    into the new version's lineage); the run is the retrain step
    (``kfops.steps.retrain``), which repeats the champion's target, task and estimator. Runs are
    serialised: kfp.local keeps global state.
    """

    where = "local"
    _lock = threading.Lock()

    def __init__(
        self,
        registry_root: str | Path,
        *,
        data_uri: str | None = None,
        capture_dir: str | Path | None = None,
        labels_dir: str | Path | None = None,
        window_hours: float = MONITORING_WINDOW_HOURS,
        runner: str = "subprocess",
        work_dir: str | Path | None = None,
        reference_share: float = RETRAIN_REFERENCE_SHARE,
    ) -> None:
        if data_uri is None and (capture_dir is None or labels_dir is None):
            raise ConfigError(
                "local retraining needs --data-uri, or --capture-dir and --labels-dir to train "
                "on labelled captured traffic"
            )
        self.registry_root = Path(registry_root)
        self.data_uri = data_uri
        self.capture_dir = capture_dir
        self.labels_dir = labels_dir
        self.window_hours = window_hours
        self.runner = runner
        self.work_dir = work_dir  # None: <registry>/retrain-data
        if not 0.0 <= reference_share <= 1.0:
            raise ConfigError(f"reference share {reference_share} must be between 0 and 1")
        self.reference_share = reference_share

    def submit(self, request: RetrainRequest) -> str:
        # Local runs cannot fail to "submit": the work happens in wait(), in the worker thread.
        return request.run_id

    def training_data(self, request: RetrainRequest) -> tuple[str, dict[str, Any] | None]:
        """``data_uri``, else the last ``window_hours`` of captured traffic with labels mixed
        with the champion's training rows; and the mix (None for ``data_uri``)."""
        if self.data_uri is not None:
            return self.data_uri, None
        from kfops.monitoring import default_window
        from kfops.steps import retrain

        assert self.capture_dir is not None and self.labels_dir is not None
        start, end = default_window(self.window_hours)
        path, rows = retrain.labelled_window(
            self.registry_root,
            request.model,
            self.capture_dir,
            self.labels_dir,
            start,
            end,
            retrain.data_path(self.registry_root, request.model, request.run_id, self.work_dir),
        )
        mix = retrain.mix_training_data(
            self.registry_root, request.model, path, self.reference_share, window=(start, end)
        )
        log.info("%s: training data of run %s: %d labelled rows + %d reference rows",
                 request.model, request.run_id, rows, mix.reference_rows)  # fmt: skip
        return mix.path, mix.to_dict()

    def wait(self, request: RetrainRequest, handle: str) -> RunOutcome:
        from kfops.steps import retrain

        with self._lock:
            data_uri, mix = self.training_data(request)
            summary = retrain.run(
                retrain.RetrainInputs(
                    model_name=request.model,
                    registry_root=self.registry_root,
                    data_uri=data_uri,
                    runner=self.runner,
                    run_id=handle,
                    trigger={"alerts": list(request.alerts)},
                    data_mix=mix,
                )
            )
        verdict = "blessed" if summary.blessed else "rejected"
        return RunOutcome(
            succeeded=True,
            detail=f"run {summary.run_id} {verdict}"
            + (f" as {summary.version}" if summary.version else "")
            + (f": {'; '.join(summary.reasons)}" if summary.reasons else ""),
            blessed=summary.blessed,
            version=summary.version,
            reasons=list(summary.reasons),
        )


class KubeflowLauncher:
    """Submits the training pipeline to Kubeflow Pipelines (kfops.submit) on ``data_uri``.

    The target and task come from the flags or, when absent, the local registry's champion.
    An unreachable or refusing host raises ClusterError from ``submit`` (the webhook -> 503).
    """

    where = "kubeflow"

    def __init__(
        self,
        target: KfpTarget,
        data_uri: str,
        registry_root: str | Path,
        *,
        training_target: str | None = None,
        task: str | None = None,
        image: str = IMAGE,
        deploy: Mapping[str, Any] | None = None,
        wait_timeout: float = 6 * 3600.0,
        poll_seconds: float = 15.0,
    ) -> None:
        self.target = target
        # Pipeline parameters for the deploy step, e.g. deploy_target and namespace.
        self.deploy = dict(deploy or {})
        self.data_uri = data_uri
        self.registry_root = str(registry_root)
        self.training_target = training_target
        self.task = task
        self.image = image
        self.wait_timeout = wait_timeout
        self.poll_seconds = poll_seconds
        self._package: Path | None = None
        self._tmp: Any = None

    def _params(self, request: RetrainRequest) -> TrainingParams:
        from kfops.registry import Registry
        from kfops.steps.retrain import champion_thresholds, training_params

        if self.training_target and self.task:
            # The champion's bar when the registry has one, else the defaults: never none.
            champion = Registry(self.registry_root).find(request.model, "champion")
            return TrainingParams(
                data_uri=self.data_uri,
                target=self.training_target,
                task=self.task,
                model_name=request.model,
                registry_root=self.registry_root,
                **champion_thresholds(champion, self.task),
            )
        return training_params(self.registry_root, request.model, self.data_uri)

    def _compiled(self) -> Path:
        import tempfile

        from kfops.submit import compile_package

        if self._package is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="kfops-trigger-")
            self._package = compile_package(
                "training", Path(self._tmp.name) / "training.yaml", self.image
            )
        return self._package

    def submit(self, request: RetrainRequest) -> str:
        from kfops.submit import submit_run

        arguments = {**self._params(request).pipeline_arguments(request.run_id), **self.deploy}
        result = submit_run(
            self.target,
            self._compiled(),
            arguments=arguments,
            run_name=f"kfops-retrain-{request.model}",
        )
        log.info("%s: Kubeflow run %s: %s", request.model, result.run_id, result.url)
        return str(result.run_id)

    def wait(self, request: RetrainRequest, handle: str) -> RunOutcome:
        from kfops.submit import make_client, wait_for_run

        client = make_client(self.target)
        state = wait_for_run(
            client, self.target, handle, timeout=self.wait_timeout, poll_seconds=self.poll_seconds
        )
        ok = state.upper() == "SUCCEEDED"
        return RunOutcome(succeeded=ok, detail=f"Kubeflow run {handle} ended {state}")
