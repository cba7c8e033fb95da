"""A verified, loaded model version and where it comes from (registry alias, version or dir).

Everything a request needs is built once per version here (estimator, compiled request schema,
drift tracker) and held in one immutable ``ServedVersion``; the predictor swaps a single
reference to change versions, so a request in flight keeps the version it started with.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from kfops.coercion import Coercion
from kfops.contract_model import Contract
from kfops.errors import ConfigError, ContractError, RegistryError
from kfops.io import read_json, sha256_file
from kfops.registry import CHAMPION, LINEAGE, MODEL_FILE, Registry, verify_dir
from kfops.serving.batching import drain
from kfops.serving.metrics import get_metrics
from kfops.serving.validation import DEFAULT_MAX_ROWS, RequestSchema

if TYPE_CHECKING:
    from kfops.twin.runtime import TwinRuntime

log = logging.getLogger(__name__)

Runtime = Literal["auto", "onnx", "sklearn"]
RUNTIMES: tuple[str, ...] = ("auto", "onnx", "sklearn")

CONTRACT_FILE = "contract.json"
BATCH_SECONDS = 0.2  # drift counting runs at most this often (amortises numpy per update)
PROFILE_FILE = "reference_profile.json"


@dataclass(frozen=True)
class ModelSource:
    """Where the served version comes from.

    Either ``model_dir`` (a version directory, e.g. /mnt/models on a cluster: fixed) or a
    registry ``registry_root`` + ``model`` + ``ref`` (an alias such as ``champion``, followed
    while serving, or a version id such as ``v3``, fixed).
    """

    model_dir: Path | None = None
    registry_root: Path | None = None
    model: str | None = None
    ref: str = CHAMPION

    def __post_init__(self) -> None:
        if (self.model_dir is None) == (self.registry_root is None):
            raise ValueError("ModelSource needs exactly one of model_dir or registry_root")
        if self.registry_root is not None and not self.model:
            raise ValueError("ModelSource with a registry needs a model name")

    @property
    def follows_alias(self) -> bool:
        return self.registry_root is not None and not _is_version_id(self.ref)

    def alias_file(self) -> Path | None:
        if not self.follows_alias:
            return None
        assert self.registry_root is not None and self.model is not None
        return Registry(self.registry_root).model_dir(self.model) / "aliases" / f"{self.ref}.json"

    def resolve(self) -> Path:
        """The version directory to serve now (RegistryError for unknown model/alias/version)."""
        if self.model_dir is not None:
            if not self.model_dir.is_dir():
                raise RegistryError(f"model directory {self.model_dir} does not exist")
            return self.model_dir
        assert self.registry_root is not None and self.model is not None
        return Registry(self.registry_root).resolve(self.model, self.ref).path

    def describe(self) -> str:
        if self.model_dir is not None:
            return str(self.model_dir)
        return f"{self.model}@{self.ref} in {self.registry_root}"


def _is_version_id(ref: str) -> bool:
    text = ref[1:] if ref.startswith("v") else ref
    return text.isdigit()


class DriftTracker:
    """Online drift of one served version: rows go through a bounded queue to a thread that
    updates ``kfops.drift.StreamingDrift`` and publishes PSI gauges every few seconds."""

    def __init__(
        self,
        reference: Any,
        model: str,
        version: str,
        names: list[str],
        window_size: int = 10_000,
        publish_interval: float = 2.0,
        max_queue: int = 1000,
    ) -> None:
        from kfops.drift import StreamingDrift

        self.streaming = StreamingDrift(reference, window_size=window_size)
        self.model = model
        self.version = version
        self.names = names
        self.publish_interval = publish_interval
        self._queue: queue.Queue[list[list[Any]] | None] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.dropped = 0

    def submit(self, columns: list[list[Any]]) -> None:
        if self._closed:  # a request that started before a hot swap finished after it
            return
        if self._thread is None:
            self._start()
        try:
            self._queue.put_nowait(columns)
        except queue.Full:
            self.dropped += 1  # a sample: skipping rows under overload only widens the window

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"kfops-drift-{self.version}", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        # Requests hand over column lists; counting them one request at a time would cost a
        # numpy round per feature per request on the serving CPU, so the thread wakes at most
        # every BATCH_SECONDS and counts everything queued meanwhile in one update.
        last = time.monotonic()
        dirty = stop = False
        while not stop:
            try:
                first = self._queue.get(timeout=self.publish_interval)
            except queue.Empty:
                first = []
            batch: list[list[list[Any]]] = []
            if first is None:
                stop = True
            elif first:
                time.sleep(BATCH_SECONDS)
                batch.append(first)
            if not stop:
                stop = drain(self._queue, batch)
            if batch:
                try:
                    columns = [
                        [v for item in batch for v in item[j]] for j in range(len(self.names))
                    ]
                    self.streaming.update(dict(zip(self.names, columns, strict=True)))
                    dirty = True
                except Exception as exc:  # a drift bug must not take serving down
                    log.warning("drift update failed for %s/%s: %s", self.model, self.version, exc)
            if dirty and (stop or time.monotonic() - last >= self.publish_interval):
                self.publish()
                last, dirty = time.monotonic(), False

    def publish(self) -> None:
        m = get_metrics()
        for feature, score in self.streaming.scores().items():
            m.drift_psi.labels(self.model, self.version, feature).set(float(score))
        m.drift_rows.labels(self.model, self.version).set(self.streaming.rows)

    def stop(self, timeout: float = 2.0) -> None:
        self._closed = True
        thread = self._thread
        if thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        thread.join(timeout)
        self._thread = None


@dataclass(eq=False)
class ServedVersion:
    """One loaded, verified model version with everything a request needs.

    With a ``twin`` (its verified ONNX twin, ``runtime`` "onnx") requests go coerce -> graph
    and the pickle is not loaded unless someone asks for ``pipeline()``; without one
    (``runtime`` "sklearn") they go through the sklearn pipeline (``estimator``).
    """

    model: str
    version: str
    path: Path
    sha256: str
    estimator: Any  # the sklearn pipeline; None until ``pipeline()`` on the onnx runtime
    contract: Contract
    schema: RequestSchema
    classes: list[Any] | None
    has_proba: bool
    drift: DriftTracker | None = None
    loaded_at: float = field(default_factory=time.time)
    twin: TwinRuntime | None = None
    coercion: Coercion | None = None

    @property
    def names(self) -> list[str]:
        return self.schema.names

    @property
    def runtime(self) -> str:
        """What answers requests: "onnx" (the verified twin) or "sklearn" (the pipeline)."""
        return "onnx" if self.twin is not None else "sklearn"

    def pipeline(self) -> Any:
        """The sklearn pipeline (e.g. for explanations), loaded on first use on the onnx
        runtime after checking its sha256 against the manifest again."""
        if self.estimator is None:
            from kfops.training import load_model

            model_file = self.path / MODEL_FILE
            if sha256_file(model_file) != self.sha256:
                raise RegistryError(f"{model_file} changed since the version was verified")
            self.estimator = load_model(model_file)
        return self.estimator

    def frame(self, columns: list[list[Any]]) -> pd.DataFrame:
        return pd.DataFrame(dict(zip(self.schema.names, columns, strict=True)))

    def predict(
        self, columns: list[list[Any]], probabilities: bool
    ) -> tuple[list[Any], list[list[float]] | None]:
        """Labels (plain Python values) and, for classifiers that have it, class probabilities.

        Classifiers with ``predict_proba`` always go through it (one model call) and take the
        arg-max as the label, so labels, returned probabilities and captured probabilities agree.
        """
        if self.twin is not None:
            coercion = self.coercion or Coercion.from_contract(self.contract)
            return self.twin.predict(coercion.coerce(dict(zip(self.names, columns, strict=True))))
        X = self.frame(columns)
        if self.has_proba and self.classes is not None:
            proba = np.asarray(self.estimator.predict_proba(X), dtype=np.float64)
            labels = [self.classes[i] for i in proba.argmax(axis=1).tolist()]
            return labels, proba.tolist()
        del probabilities
        return np.asarray(self.estimator.predict(X)).tolist(), None


def twin_status(directory: Path, files: dict[str, Any]) -> tuple[str | None, str]:
    """(lineage twin status or None, its reason) of a verified version directory."""
    if LINEAGE not in files:
        return None, "the version has no lineage"
    try:
        lineage = read_json(directory / LINEAGE)
    except ValueError as exc:
        raise RegistryError(f"{directory / LINEAGE} is not valid JSON: {exc}") from None
    twin = lineage.get("twin") if isinstance(lineage, dict) else None
    if not isinstance(twin, dict):
        return None, "the version was registered before ONNX twins"
    status = twin.get("status")
    return (str(status) if status else None), str(twin.get("reason") or "")


def load_twin(directory: Path, files: dict[str, Any], runtime: str) -> TwinRuntime | None:
    """The verified ONNX twin to serve, or None for the sklearn pipeline.

    ``auto``: the twin when the lineage says it was verified at registration; ``onnx``: the
    same, and a version without one is an error; ``sklearn``: never. A verified twin whose file
    is missing from the manifest, or that onnxruntime cannot load, is an error naming the file
    (the version is not ready), never a silent fallback: the lineage promised it.
    """
    if runtime not in RUNTIMES:
        raise ConfigError(f"runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
    if runtime == "sklearn":
        return None
    from kfops.twin.format import TWIN_FILE
    from kfops.twin.record import VERIFIED

    status, reason = twin_status(directory, files)
    if status != VERIFIED:
        if runtime == "onnx":
            why = f"its twin is {status}" if status else "it has no twin record"
            raise RegistryError(
                f"{directory} has no verified ONNX twin to serve with --runtime onnx ({why}"
                f"{': ' + reason if reason else ''}); use --runtime auto or sklearn"
            )
        return None
    if TWIN_FILE not in files:
        raise RegistryError(
            f"{directory / TWIN_FILE}: the lineage says the twin was verified but the file is "
            "not in the manifest"
        )
    from kfops.twin.runtime import TwinRuntime

    return TwinRuntime.load(directory / TWIN_FILE)


def load_version(
    path: str | os.PathLike[str],
    max_rows: int = DEFAULT_MAX_ROWS,
    drift: bool = True,
    drift_window: int = 10_000,
    drift_publish_interval: float = 2.0,
    served_name: str | None = None,
    runtime: str = "auto",
    strict_categories: bool = False,
) -> ServedVersion:
    """Verify every sha256 against MANIFEST.json, then load the model and its contract.

    Raises RegistryError (tampered/missing file, no manifest, a verified twin that cannot be
    loaded; ``TwinError`` names the file) or ContractError (no contract); nothing is unpickled
    before verification passes, and nothing at all on the onnx runtime. ``served_name`` (the
    endpoint name) labels the drift metrics like every other serving metric; it defaults to the
    registry model name. ``runtime``: see ``load_twin``.
    """
    from kfops.training import load_model

    directory = Path(path)
    manifest = verify_dir(directory)
    files = manifest.get("files", {})
    if CONTRACT_FILE not in files:
        raise ContractError(
            f"{directory} has no {CONTRACT_FILE} in its manifest: kfops serves only models "
            f"with a data contract"
        )
    if MODEL_FILE not in files:
        raise RegistryError(f"{directory} has no {MODEL_FILE} in its manifest")
    contract = Contract.load(directory / CONTRACT_FILE)
    twin = load_twin(directory, files, runtime)
    coercion = Coercion.from_contract(contract)
    if twin is not None:
        expected = {g.name for g in coercion.inputs}
        if {g.name for g in twin.info.inputs} != expected:
            raise RegistryError(
                f"{twin.where} does not take this contract's inputs {sorted(expected)}"
            )
    estimator = load_model(directory / MODEL_FILE) if twin is None else None
    model = str(manifest.get("model") or directory.parent.parent.name)
    version = str(manifest.get("version") or directory.name)
    classifier = contract.task == "classification"
    classes = None
    if classifier:
        found = twin.classes if twin is not None else getattr(estimator, "classes_", None)
        classes = (
            list(found.tolist() if hasattr(found, "tolist") else found)
            if found is not None
            else (list(contract.target.classes) if contract.target.classes else None)
        )
    schema = RequestSchema(contract, max_rows=max_rows, strict_categories=strict_categories)
    served = ServedVersion(
        model=model,
        version=version,
        path=directory,
        sha256=str(files[MODEL_FILE]),
        estimator=estimator,
        contract=contract,
        schema=schema,
        classes=classes,
        has_proba=classifier and (twin is not None or hasattr(estimator, "predict_proba")),
        twin=twin,
        coercion=coercion,
    )
    if drift and PROFILE_FILE in files:
        try:
            from kfops.drift import ReferenceProfile

            reference = ReferenceProfile.load(directory / PROFILE_FILE)
            served.drift = DriftTracker(
                reference,
                served_name or model,
                version,
                schema.names,
                window_size=drift_window,
                publish_interval=drift_publish_interval,
            )
        except Exception as exc:  # drift is an add-on: serve without it, say why
            log.warning("online drift disabled for %s/%s: %s", model, version, exc)
    elif drift:
        log.info("online drift disabled for %s/%s: no %s", model, version, PROFILE_FILE)
    return served
