"""Run history for the steps of a training run: where a run records, and what a failure leaves.

``RunContext`` is the registry root plus the run id; ``record`` writes one step's facts under
``<registry>/runs/<run_id>/`` (kfops.tracking), which is what ``kfops runs`` and the local
runner's summary read back. ``RunContext.task`` is the boundary of a pipeline task: a user
error (KfopsError) becomes a ``failed`` record, one line on stderr and exit code 2, in a local
task or a pod alike; anything else is a bug and keeps its traceback (recorded too).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfops import tracking
from kfops.errors import ConfigError, KfopsError
from kfops.registry import Registry


@dataclass(frozen=True)
class RunContext:
    """Where a run records its steps: the registry root and the run id."""

    registry_root: Path
    run_id: str

    @classmethod
    def of(cls, registry_root: str | Path, run_id: str = "", job_id: str = "") -> RunContext:
        """`run_id` is set by whoever launched the run; a cluster's job id stands in otherwise."""
        if not str(registry_root):
            raise ConfigError("registry_root is empty: set --registry or KFOPS_REGISTRY_ROOT")
        return cls(Path(registry_root), run_id or job_id or tracking.new_run_id())

    @classmethod
    def cacheable(cls, registry_root: str | Path, run_id: str = "") -> RunContext:
        """For the steps KFP may cache (extract, validate, prepare): they take no per-run job
        id, which would change their cache key every run (kfops.caching). Without a run id
        given by the launcher they record nothing, as a cache hit would not run them at all;
        the steps after them record the run under the job id."""
        if not str(registry_root):
            raise ConfigError("registry_root is empty: set --registry or KFOPS_REGISTRY_ROOT")
        return cls(Path(registry_root), run_id)

    @property
    def registry(self) -> Registry:
        return Registry(self.registry_root)

    def record(self, step: str, payload: dict[str, Any]) -> None:
        if not self.run_id:  # a cacheable step without a run id (see ``cacheable``)
            return
        tracking.record_step(self.registry_root, self.run_id, step, payload)

    @contextlib.contextmanager
    def task(self, step: str) -> Iterator[None]:
        """Run a pipeline task's body: failures are recorded, user errors exit with code 2."""
        try:
            yield
        except KfopsError as exc:
            self.record("failed", {"status": "failed", "step": step, "error": str(exc)})
            print(f"error: {step}: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            self.record("failed", {"status": "failed", "step": step, "error": error})
            raise
