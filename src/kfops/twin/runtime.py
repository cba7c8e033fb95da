"""Run a twin: coerced input columns in, kfops predictions out, no DataFrame on the way.

One onnxruntime session per twin, one intra-op thread and sequential execution: a model server
scales by processes (and replicas), and a thread pool per session would only contend for the
same core (the design notes measure a single row at about 10 us).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from kfops.twin.format import TwinError, TwinInfo


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."


class TwinRuntime:
    """An ONNX twin loaded into onnxruntime.

    ``predict`` takes ``kfops.coercion.Coercion.coerce`` output for one or many rows and returns
    what ``kfops.serving.model.ServedVersion.predict`` returns for the sklearn pipeline: labels
    and class probabilities (classification) or values and None (regression), as plain Python
    lists. Labels are the class with the highest probability, as the sklearn path does.
    """

    def __init__(self, model: bytes, where: str = "ONNX twin") -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only: no per-session warnings in server logs
        try:
            self.session = ort.InferenceSession(
                model, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own types for bad bytes
            raise TwinError(
                f"{where} cannot be loaded by onnxruntime: {_first_line(exc)}"
            ) from None
        meta = self.session.get_modelmeta().custom_metadata_map
        self.info = TwinInfo.from_metadata(meta, where)
        expected = [g.name for g in self.info.inputs]
        actual = [i.name for i in self.session.get_inputs()]
        if sorted(expected) != sorted(actual):
            raise TwinError(f"{where} has inputs {actual} but its metadata lists {expected}")
        if self.info.output not in [o.name for o in self.session.get_outputs()]:
            raise TwinError(f"{where} has no output {self.info.output!r}")
        self.where = where
        self.classes: list[Any] | None = (
            list(self.info.classes) if self.info.classes is not None else None
        )
        self._outputs = [self.info.output]

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TwinRuntime:
        """Load a twin file; a missing, unreadable or corrupt file is one TwinError naming it."""
        target = Path(path)
        where = f"ONNX twin {target}"
        if not target.is_file():
            raise TwinError(f"no ONNX twin at {target}")
        try:
            data = target.read_bytes()
        except OSError as exc:
            raise TwinError(f"{where} cannot be read: {exc.strerror or exc}") from None
        if not data:
            raise TwinError(f"{where} is empty")
        return cls(data, where=where)

    @property
    def classifier(self) -> bool:
        return self.classes is not None

    def run(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """The raw output as float64: (n, classes) probabilities or (n,) values."""
        out = np.asarray(self.session.run(self._outputs, dict(inputs))[0], dtype=np.float64)
        return out if self.classifier else out.reshape(-1)

    def predict(
        self, inputs: Mapping[str, np.ndarray]
    ) -> tuple[list[Any], list[list[float]] | None]:
        out = self.run(inputs)
        if self.classes is not None:
            classes = self.classes
            return [classes[i] for i in out.argmax(axis=1).tolist()], out.tolist()
        return out.tolist(), None
