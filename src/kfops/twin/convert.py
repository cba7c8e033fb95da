"""Convert a fitted kfops pipeline into its ONNX twin, or say why it cannot be.

The pipeline is ``preprocess`` (``coerce`` then ``encode``) and ``model`` (see
``kfops.features``). The twin is ``encode`` and ``model`` as one ONNX graph; ``coerce`` stays in
Python (``kfops.coercion``) and runs in front of the graph. Conversion never raises for a model
it cannot convert: the result is a ``NotConvertible`` with the reason, for the run summary.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from sklearn.pipeline import Pipeline

from kfops.coercion import Coercion
from kfops.contract_model import Contract
from kfops.twin.format import PROBA_OUTPUT, TARGET_OPSET, VALUE_OUTPUT, TwinError, TwinInfo

MAX_REASON_CHARS = 300
# Tree nodes (all trees together) above which no twin is built. skl2onnx holds about 1 KB of
# Python objects per node while converting: measured 15 s and +350 MB of peak memory for a
# 100-tree forest of 320,000 nodes (16,000 training rows), and the file takes about 43 bytes
# per node. The cap keeps the train task within its memory limit (pipelines/resources.py) and
# the file far below protobuf's 2 GB; unbounded forests on large tables pass it.
MAX_TREE_NODES = 1_000_000


@dataclass(frozen=True)
class Twin:
    """A converted twin: the ONNX file's bytes and what they hold."""

    onnx: bytes
    info: TwinInfo

    @property
    def convertible(self) -> bool:
        return True

    def to_dict(self) -> dict[str, Any]:
        return {
            "convertible": True,
            "estimator": self.info.estimator,
            "bytes": len(self.onnx),
            "opset": dict(TARGET_OPSET),
        }


@dataclass(frozen=True)
class NotConvertible:
    """A pipeline that has no twin, and why (one sentence, for the run summary and lineage)."""

    estimator: str
    reason: str

    @property
    def convertible(self) -> bool:
        return False

    def to_dict(self) -> dict[str, Any]:
        return {"convertible": False, "estimator": self.estimator, "reason": self.reason}


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if len(text) > MAX_REASON_CHARS:
        text = text[: MAX_REASON_CHARS - 3] + "..."
    return f"{type(exc).__name__}: {text}"


def _parts(pipeline: Any) -> tuple[Any, Any, Any] | str:
    """(coerce step, encode step, estimator), or why the pipeline is not one kfops builds."""
    try:
        preprocess = pipeline.named_steps["preprocess"]
        model = pipeline.named_steps["model"]
        coerce = preprocess.named_steps["coerce"]
        encode = preprocess.named_steps["encode"]
    except (AttributeError, KeyError, TypeError):
        return (
            "the pipeline has no 'preprocess' -> ('coerce', 'encode') -> 'model' steps; it "
            "was trained before kfops could build twins: retrain it to get one"
        )
    return coerce, encode, model


def _link(model: Any) -> str | None:
    """The inverse link a HistGradientBoosting regressor applies to its raw score, if any.

    (poisson and gamma losses predict exp(raw score); skl2onnx's regressor converter emits the
    raw score alone.)
    """
    loss = getattr(model, "_loss", None)
    link = getattr(loss, "link", None)
    if link is None or type(link).__name__ == "IdentityLink":
        return None
    return type(link).__name__.removesuffix("Link").lower() or "non-identity"


def tree_nodes(model: Any) -> int:
    """Nodes in all trees of a fitted tree model (forest, tree, histogram boosting); 0 else."""
    trees = getattr(model, "estimators_", None)
    if trees is not None:
        return sum(tree_nodes(tree) for tree in _flat(trees))
    if hasattr(model, "tree_"):
        return int(model.tree_.node_count)
    predictors = getattr(model, "_predictors", None)  # HistGradientBoosting's fitted trees
    if predictors is not None:
        return sum(len(p.nodes) for p in _flat(predictors))
    return 0


def _flat(items: Any) -> list[Any]:
    out: list[Any] = []
    for item in items:
        out.extend(_flat(item) if isinstance(item, list | tuple) else [item])
    return out


def convert(pipeline: Pipeline, contract: Contract) -> Twin | NotConvertible:
    """The ONNX twin of a fitted kfops pipeline, built in double precision.

    The graph's inputs are ``kfops.coercion.Coercion.inputs`` of ``contract``; its output is the
    class probabilities (classification, classes in ``pipeline.classes_`` order) or the
    predicted value (regression). The bytes are loaded once by onnxruntime before they are
    returned, so a twin onnxruntime cannot run is reported here, not at serving time.
    """
    parts = _parts(pipeline)
    estimator = type(getattr(pipeline, "steps", [[None, pipeline]])[-1][1]).__name__
    if isinstance(parts, str):
        return NotConvertible(estimator, parts)
    coerce_step, encode, model = parts
    coercion = Coercion.from_contract(contract)
    if tuple(tuple(f) for f in coerce_step.features) != coercion.features:
        return NotConvertible(
            estimator, "the pipeline's coerce step does not match the contract's features"
        )
    classifier = contract.task == "classification"
    link = _link(model)
    if not classifier and link is not None:
        return NotConvertible(
            estimator,
            f"loss={getattr(model, 'loss', '?')!r} predicts through a {link} link, which "
            "skl2onnx 1.20 leaves out of the graph (its output would be the raw score)",
        )
    nodes = tree_nodes(model)
    if nodes > MAX_TREE_NODES:
        return NotConvertible(
            estimator,
            f"its trees have {nodes:,} nodes, more than the {MAX_TREE_NODES:,} a twin is built "
            "for (memory and time of the conversion); limit the trees (e.g. max_depth, "
            "min_samples_leaf, max_leaf_nodes) to get one",
        )
    classes = tuple(getattr(pipeline, "classes_", ())) if classifier else None
    if classifier and not classes:
        return NotConvertible(estimator, "the classifier has no classes_ (is it fitted?)")

    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType

    from kfops.twin.converters import CONVERTERS, SHAPE_CALCULATORS

    initial_types = [
        (g.name, DoubleTensorType([None, 1]) if g.type == "double" else StringTensorType([None, 1]))
        for g in coercion.inputs
    ]
    # nocl: class indices instead of labels in the graph (labels come from TwinInfo.classes,
    # whatever their type); zipmap off: probabilities as one [n, k] tensor.
    options = {id(model): {"zipmap": False, "nocl": True}} if classifier else None
    graph = Pipeline([("encode", encode), ("model", model)])  # the fitted steps, not copies
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # skl2onnx's opset and deprecation chatter
            onx = convert_sklearn(
                graph,
                name="kfops-twin",
                initial_types=initial_types,
                options=options,
                target_opset=dict(TARGET_OPSET),
                custom_conversion_functions=dict(CONVERTERS),
                custom_shape_calculators=dict(SHAPE_CALCULATORS),
            )
    except Exception as exc:  # any converter failure is a reason, not a crash
        return NotConvertible(estimator, f"skl2onnx cannot convert it: {_short(exc)}")
    outputs = [o.name for o in onx.graph.output]
    wanted = PROBA_OUTPUT if classifier else VALUE_OUTPUT
    if wanted not in outputs:
        return NotConvertible(estimator, f"the graph has no {wanted!r} output (has {outputs})")
    info = TwinInfo(
        task=contract.task,
        estimator=estimator,
        inputs=coercion.inputs,
        output=wanted,
        classes=classes,
    )
    for key, value in info.to_metadata().items():
        entry = onx.metadata_props.add()
        entry.key, entry.value = key, value
    data = onx.SerializeToString()

    from kfops.twin.runtime import TwinRuntime

    try:
        TwinRuntime(data, where=f"the twin of {estimator}")
    except TwinError as exc:
        return NotConvertible(estimator, f"onnxruntime cannot run it: {exc}")
    return Twin(onnx=data, info=info)
