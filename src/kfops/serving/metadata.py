"""V2 model metadata (``GET /v2/models/<name>``) from the data contract.

kserve's ``DataPlane.model_metadata`` (kserve/protocol/dataplane.py) answers with
``Model.get_input_types()`` and ``get_output_types()``; the predictor returns these. Inputs are
the named form of a V2 request (one ``[-1]`` tensor per feature, contract order); a single
``[-1, k]`` tensor with the features in that order is accepted too (README, "Serving").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kfops.contract_model import Contract, FeatureSpec
from kfops.serving.validation import PROBA_OUTPUT

PREDICT_OUTPUT = "predict"


def _datatype_of_dtype(dtype: str, default: str) -> str:
    if dtype.startswith(("int", "Int", "uint", "UInt")):
        return "INT64"
    if dtype.startswith(("float", "Float")):
        return "FP64"
    if dtype in ("bool", "boolean"):
        return "BOOL"
    return default


def input_datatype(spec: FeatureSpec) -> str:
    """The V2 datatype a client sends for one feature."""
    if spec.kind == "numeric":
        return _datatype_of_dtype(spec.dtype, "FP64")
    if spec.kind == "boolean":
        return "BOOL"
    if spec.kind == "categorical":
        return _datatype_of_dtype(spec.dtype, "BYTES")
    return "BYTES"  # text, datetime (ISO 8601 strings)


def input_types(contract: Contract) -> list[dict[str, Any]]:
    return [
        {"name": f.name, "datatype": input_datatype(f), "shape": [-1]} for f in contract.features
    ]


def _label_datatype(classes: Sequence[Any]) -> str:
    if classes and all(isinstance(c, bool) for c in classes):
        return "BOOL"
    if classes and all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return "INT64"
    if classes and all(isinstance(c, float) for c in classes):
        return "FP64"
    return "BYTES"


def output_types(
    contract: Contract, classes: Sequence[Any] | None, has_proba: bool
) -> list[dict[str, Any]]:
    """``predict`` (a label or a value per row) and, for classifiers with probabilities,
    ``probabilities`` (``[-1, n_classes]``, classes in the order of the output's ``classes``
    parameter)."""
    if contract.task != "classification":
        return [{"name": PREDICT_OUTPUT, "datatype": "FP64", "shape": [-1]}]
    found = list(classes or contract.target.classes or ())
    outputs = [{"name": PREDICT_OUTPUT, "datatype": _label_datatype(found), "shape": [-1]}]
    if has_proba and found:
        outputs.append({"name": PROBA_OUTPUT, "datatype": "FP64", "shape": [-1, len(found)]})
    return outputs
