"""``POST /v1/models/<name>:explain``: per-row contributions of the served version.

The predictor's ``preprocess`` checks an ``:explain`` request exactly like a ``:predict`` one
(same contract, same 4xx bodies); this module then answers it with
``kfops.explain.contributions`` (docs/ARCHITECTURE.md, "Explanations"):

- the explainer is built once per served version, on the first ``:explain`` (that imports shap,
  1-2 s; a server that never explains never loads it), from the version's own verified files:
  the fitted pipeline and ``explainer.json``. A version whose estimator has no exact fast
  explainer, or that predates ``explainer.json`` while needing it, answers every ``:explain``
  with 422 ``not_explainable`` naming why; ``:predict`` is unaffected;
- the cost of one request is bounded: at most ``max_rows`` rows (422 ``batch_too_large``
  beyond), computed on one thread of their own so that ``:predict`` and the health probes keep
  being answered meanwhile, with at most ``max_pending`` explanations running or waiting per
  process (429 with ``Retry-After`` beyond: a client sending many slow requests at once waits
  its turn instead of queueing minutes of work).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kfops.errors import ConfigError, DataError, KfopsError
from kfops.registry import MODEL_FILE
from kfops.serving.validation import FieldError, RequestError

if TYPE_CHECKING:
    from kfops.explain.contributions import Explainer, Explanations
    from kfops.serving.model import ServedVersion

log = logging.getLogger(__name__)

# One request's rows: the slowest exact explainer measured (100-tree forest) takes 2-20 ms per
# row on the shared 2-core machine, so 100 rows stay within about 2 s.
DEFAULT_MAX_EXPLAIN_ROWS = 100
# Explanations running or waiting per server process; more get 429.
DEFAULT_MAX_PENDING = 4
NOT_EXPLAINABLE = "not_explainable"  # the `reason` of a model that cannot be explained


@dataclass(frozen=True)
class Explained:
    """An answered ``:explain`` (explain -> postprocess)."""

    served: ServedVersion
    explanations: Explanations

    def response(self, name: str) -> dict[str, Any]:
        return {
            "model_name": name,
            "model_version": self.served.version,
            **self.explanations.to_dict(),
        }


class ExplainBusy(RequestError):
    """Too many explanations in progress in this process: 429, retry later."""

    def __init__(self, pending: int) -> None:
        super().__init__(
            [
                FieldError(
                    "instances",
                    "too_many_requests",
                    f"{pending} explanations are already running or waiting on this server; "
                    "retry in a moment",
                )
            ],
            status=429,
        )


class Explainers:
    """The explainer of each served version, built on first use, and the thread they run on."""

    def __init__(
        self, max_rows: int = DEFAULT_MAX_EXPLAIN_ROWS, max_pending: int = DEFAULT_MAX_PENDING
    ) -> None:
        if max_rows < 1:
            raise ConfigError(f"--max-explain-rows {max_rows} must be at least 1")
        self.max_rows = max_rows
        self.max_pending = max_pending
        # Keyed by the ServedVersion object: a hot swap drops the old version's explainer with it.
        self._built: weakref.WeakKeyDictionary[ServedVersion, Explainer | str] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()
        self._pending = 0
        self._executor: ThreadPoolExecutor | None = None

    def __getstate__(self) -> dict[str, Any]:  # pickled into kserve's spawn workers
        return {"max_rows": self.max_rows, "max_pending": self.max_pending}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    async def explain(
        self, served: ServedVersion, columns: list[list[Any]], rows: int
    ) -> Explained:
        """Explain validated rows (``Batch.columns``) of ``served``; RequestError for 4xx."""
        if rows > self.max_rows:
            raise RequestError(
                [
                    FieldError(
                        "instances",
                        "batch_too_large",
                        f"{rows} rows is more than the limit of {self.max_rows} per :explain "
                        "request (explanations cost more than predictions: send fewer rows per "
                        "request)",
                    )
                ],
                status=422,
            )
        if self._pending >= self.max_pending:
            raise ExplainBusy(self._pending)
        self._pending += 1  # only the event loop thread touches it
        try:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="kfops-explain")
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self._executor, self._run, served, columns)
        finally:
            self._pending -= 1
        return Explained(served, result)

    def _run(self, served: ServedVersion, columns: list[list[Any]]) -> Explanations:
        explainer = self.explainer(served)
        try:
            return explainer.explain(served.frame(columns))
        except DataError as exc:  # e.g. a value that overflows once scaled
            raise _not_explainable(str(exc), field="instances") from None

    def explainer(self, served: ServedVersion) -> Explainer:
        """The explainer of ``served`` (built once; RequestError 422 when there is none)."""
        with self._lock:
            found = self._built.get(served)
            if found is None:
                found = _build(served)
                self._built[served] = found
        if isinstance(found, str):
            raise _not_explainable(found)
        return found


def _not_explainable(message: str, field: str = "model") -> RequestError:
    return RequestError([FieldError(field, NOT_EXPLAINABLE, message)], status=422)


def _build(served: ServedVersion) -> Explainer | str:
    """The explainer of ``served``, or the sentence that says why it has none."""
    from kfops.explain.contributions import EXPLAINER_FILE, make_explainer, read_explainer_file

    try:
        pipeline = _pipeline(served)
        files = _manifest_files(served)
        background = None
        if EXPLAINER_FILE in files:
            _check_hash(served, EXPLAINER_FILE, files[EXPLAINER_FILE])
            background = read_explainer_file(served.path / EXPLAINER_FILE)
        try:
            explainer = make_explainer(pipeline, background)
        except ConfigError as exc:
            if EXPLAINER_FILE not in files:
                return (
                    f"version {served.version} has no {EXPLAINER_FILE} (registered before "
                    f"explanations existed); retrain to explain it ({exc})"
                )
            return f"version {served.version} cannot be explained: {exc}"
    except KfopsError as exc:  # ExplainUnsupported, RegistryError: a property of the version
        log.warning("%s %s: explanations unavailable: %s", served.model, served.version, exc)
        return f"version {served.version} cannot be explained: {exc}"
    log.info(
        "%s %s: %s explainer ready (explains the %s)",
        served.model, served.version, explainer.method, explainer.output,
    )  # fmt: skip
    return explainer


def _pipeline(served: ServedVersion) -> Any:
    """The fitted sklearn pipeline of ``served``: the one it predicts with, or (a server that
    predicts with another runtime) ``model.joblib`` unpickled after its sha256 matched."""
    from sklearn.pipeline import Pipeline

    estimator = getattr(served, "estimator", None)
    if isinstance(estimator, Pipeline):
        return estimator
    from kfops.training import load_model

    _check_hash(served, MODEL_FILE, served.sha256)
    return load_model(served.path / MODEL_FILE)


def _manifest_files(served: ServedVersion) -> dict[str, str]:
    from kfops.io import read_json
    from kfops.registry import MANIFEST

    files = read_json(served.path / MANIFEST).get("files")
    return dict(files) if isinstance(files, dict) else {}


def _check_hash(served: ServedVersion, name: str, expected: str) -> None:
    from kfops.errors import RegistryError
    from kfops.io import sha256_file

    actual = sha256_file(served.path / name)
    if actual != expected:
        raise RegistryError(
            f"{name} in {served.path} has sha256 {actual}, manifest says {expected}"
        )
