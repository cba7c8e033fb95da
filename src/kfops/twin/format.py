"""What a twin file is: its name, the ONNX opsets it uses, and the kfops facts it carries.

A twin is one ONNX model file. Besides the graph it records, as ONNX ``metadata_props`` (string
key/value pairs every ONNX tool shows), what a server needs to use it without the pickle: the
task, the class labels in output order, the graph inputs (which feature and datetime part each
one is), the output to read, and the coercion rules version it expects in front of it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kfops.coercion import COERCION_VERSION, GraphInput
from kfops.contract import to_jsonable
from kfops.errors import RegistryError

TWIN_FILE = "model.onnx"
FORMAT_VERSION = 1
# Main opset 21 (onnxruntime >= 1.18 runs it); ai.onnx.ml 3 for float64 tree attributes.
TARGET_OPSET: dict[str, int] = {"": 21, "ai.onnx.ml": 3}
# skl2onnx's output names: class probabilities of a classifier (with zipmap off), the value of
# a regressor.
PROBA_OUTPUT = "probabilities"
VALUE_OUTPUT = "variable"
_PREFIX = "kfops."


class TwinError(RegistryError):
    """A twin file that is missing, unreadable or not a kfops twin (one message naming it)."""


@dataclass(frozen=True)
class TwinInfo:
    """The kfops facts stored in a twin file."""

    task: str
    estimator: str  # the estimator's class name, for people reading the file
    inputs: tuple[GraphInput, ...]
    output: str
    classes: tuple[Any, ...] | None = None  # classification: labels in probability order
    coercion_version: int = COERCION_VERSION
    format_version: int = FORMAT_VERSION

    def to_metadata(self) -> dict[str, str]:
        inputs = [[g.name, g.feature, g.kind, g.type, g.part] for g in self.inputs]
        data: dict[str, Any] = {
            "format_version": self.format_version,
            "coercion_version": self.coercion_version,
            "task": self.task,
            "estimator": self.estimator,
            "output": self.output,
            "inputs": inputs,
            "classes": None if self.classes is None else [to_jsonable(c) for c in self.classes],
        }
        return {f"{_PREFIX}{k}": json.dumps(v) for k, v in data.items()}

    @classmethod
    def from_metadata(cls, props: Mapping[str, str], where: str) -> TwinInfo:
        try:
            data = {
                k[len(_PREFIX) :]: json.loads(v) for k, v in props.items() if k.startswith(_PREFIX)
            }
            if data.get("format_version") != FORMAT_VERSION:
                raise ValueError(
                    f"format_version {data.get('format_version')!r}, expected {FORMAT_VERSION}"
                )
            classes = data["classes"]
            return cls(
                task=str(data["task"]),
                estimator=str(data["estimator"]),
                inputs=tuple(
                    GraphInput(str(n), str(f), str(k), t, p) for n, f, k, t, p in data["inputs"]
                ),
                output=str(data["output"]),
                classes=None if classes is None else tuple(classes),
                coercion_version=int(data["coercion_version"]),
                format_version=int(data["format_version"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TwinError(f"{where} is not a kfops twin ({exc})") from None
