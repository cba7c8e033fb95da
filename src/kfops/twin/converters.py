"""skl2onnx converters that keep the twin in double precision where skl2onnx 1.20 would not.

scikit-learn computes in float64. Where skl2onnx 1.20's converters drop to float32 (or fail)
on kfops pipelines, these wrap them:

- tree ensembles (RandomForest, DecisionTree, HistGradientBoosting): the converters compute
  thresholds and leaf values in float64 for a double input (for RandomForest/DecisionTree even
  the threshold that reproduces scikit-learn's own cast of X to float32, see
  ``skl2onnx.common.tree_ensemble.sklearn_threshold``), but then write them as float32
  attributes. A row whose value lies between a float64 threshold and its float32 rounding takes
  the other branch. ``ai.onnx.ml`` opset 3 has ``*_as_tensor`` attributes that hold float64;
  ``_DoubleTreeContainer`` stores them there.
- ``SimpleImputer`` on a double input emits ``ai.onnx.ml.Imputer``, which onnxruntime implements
  for float32 only: replaced by ``Where(IsNaN(x), statistics, x)`` in float64.
- ``OneHotEncoder`` with grouped rare categories (``max_categories``) converts only when each
  column is its own input; kfops' encoder gets the imputer's (n, k) output, so the columns are
  split off first (not a precision matter: without it the conversion fails).
- ``TfidfVectorizer`` computes idf weighting and the L2 norm in float32 (its input is a string,
  so skl2onnx picks float): the term counts (small integers, exact in float32) are cast to
  float64 and weighted and normalised there.

Everything else uses skl2onnx's own converters, unchanged; the four wrappers call skl2onnx's
converter functions for the work and change only what is described above.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from onnx import TensorProto, numpy_helper
from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
from skl2onnx.operator_converters.decision_tree import (
    convert_sklearn_decision_tree_classifier,
    convert_sklearn_decision_tree_regressor,
)
from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer
from skl2onnx.operator_converters.one_hot_encoder import convert_sklearn_one_hot_encoder
from skl2onnx.operator_converters.random_forest import (
    convert_sklearn_random_forest_classifier,
    convert_sklearn_random_forest_regressor_converter,
)
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import OneHotEncoder
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from kfops.features import StableTfidfVectorizer

# ai.onnx.ml opset 3 is the first with float64 tree attributes (``*_as_tensor``).
TREE_OPSET = 3
_TREE_OPS = ("TreeEnsembleClassifier", "TreeEnsembleRegressor")
_DOUBLE_ATTRS = ("nodes_values", "class_weights", "target_weights", "base_values")
_COUNT_ALIAS = "SklearnCountVectorizer"

Converter = Callable[[Any, Any, Any], None]


class _DoubleTreeContainer:
    """A view of skl2onnx's container that writes tree nodes with float64 attributes.

    The tree node's outputs are float32 in every ``ai.onnx.ml`` opset; where skl2onnx declared a
    double output (it follows the input type), a Cast to double follows the node.
    """

    def __init__(self, inner: Any, scope: Any, operator: Any) -> None:
        self._inner = inner
        self._scope = scope
        self._declared = {v.full_name: v.type for v in operator.outputs}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def add_node(
        self,
        op_type: str,
        inputs: Any,
        outputs: Any,
        op_domain: str = "",
        op_version: int | None = None,
        **attrs: Any,
    ) -> Any:
        if op_type not in _TREE_OPS:
            return self._inner.add_node(
                op_type, inputs, outputs, op_domain=op_domain, op_version=op_version, **attrs
            )
        for key in _DOUBLE_ATTRS:
            value = attrs.get(key)
            if isinstance(value, np.ndarray) and value.dtype == np.float64:
                del attrs[key]
                attrs[f"{key}_as_tensor"] = numpy_helper.from_array(value.ravel(), name=key)
        names = [outputs] if isinstance(outputs, str) else list(outputs)
        produced, casts = [], []
        for name in names:
            if isinstance(self._declared.get(name), DoubleTensorType):
                tmp = self._scope.get_unique_variable_name(f"{name}_float")
                produced.append(tmp)
                casts.append((tmp, name))
            else:
                produced.append(name)
        self._inner.add_node(
            op_type, inputs, produced, op_domain=op_domain, op_version=TREE_OPSET, **attrs
        )
        for tmp, name in casts:
            self._inner.add_node("Cast", [tmp], [name], to=TensorProto.DOUBLE)
        return None


def _double_trees(convert: Callable[..., None]) -> Converter:
    def converter(scope: Any, operator: Any, container: Any) -> None:
        # op_version=TREE_OPSET makes the classifier converters keep float64 attribute arrays.
        convert(
            scope, operator, _DoubleTreeContainer(container, scope, operator), op_version=TREE_OPSET
        )

    return converter


def _imputer(scope: Any, operator: Any, container: Any) -> None:
    op = operator.raw_operator
    missing_nan = isinstance(op.missing_values, float) and np.isnan(op.missing_values)
    if not isinstance(operator.inputs[0].type, DoubleTensorType) or not missing_nan:
        convert_sklearn_imputer(scope, operator, container)
        return
    from skl2onnx.operator_converters.common import concatenate_variables

    x = concatenate_variables(scope, operator.inputs, container)
    stats = scope.get_unique_variable_name("imputed_values")
    values = np.asarray(op.statistics_, dtype=np.float64).reshape(1, -1)
    container.add_initializer(stats, TensorProto.DOUBLE, list(values.shape), values.ravel())
    isnan = scope.get_unique_variable_name("isnan")
    container.add_node("IsNaN", [x], [isnan])
    container.add_node("Where", [isnan, stats, x], [operator.outputs[0].full_name])


class _WithInputs:
    """An operator seen with other inputs (skl2onnx converters read ``operator.inputs``)."""

    def __init__(self, operator: Any, inputs: list[Any]) -> None:
        self._operator = operator
        self.inputs = inputs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._operator, name)


def _grouped(op: OneHotEncoder) -> bool:
    """True when the fitted encoder put some rare categories into one group column."""
    if not op._infrequent_enabled:
        return False
    groups: list[Any] = list(getattr(op, "infrequent_categories_", None) or [])
    return any(g is not None for g in groups)


def _one_hot(scope: Any, operator: Any, container: Any) -> None:
    op = operator.raw_operator
    source = operator.inputs[0]
    if not _grouped(op) or len(operator.inputs) != 1 or source.type.shape[1] == 1:
        convert_sklearn_one_hot_encoder(scope, operator, container)
        return
    columns = []
    for j in range(len(op.categories_)):
        column = scope.declare_local_variable(f"onehot_column{j}", type(source.type)([None, 1]))
        index = scope.get_unique_variable_name(f"onehot_index{j}")
        container.add_initializer(index, TensorProto.INT64, [1], [j])
        container.add_node("Gather", [source.full_name, index], [column.full_name], axis=1)
        columns.append(column)
    convert_sklearn_one_hot_encoder(scope, _WithInputs(operator, columns), container)


def _one_hot_shape(operator: Any) -> None:
    # skl2onnx's shape calculator counts grouped categories one by one; the output has one
    # column for the whole group.
    op = operator.raw_operator
    width = sum(len(op._compute_transformed_categories(i)) for i in range(len(op.categories_)))
    rows = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = FloatTensorType([rows, width])


def _counter(op: TfidfVectorizer) -> CountVectorizer:
    """A fitted CountVectorizer with ``op``'s tokenizer and vocabulary: skl2onnx converts it
    with its own (registered) converter and options."""
    names = CountVectorizer().get_params()
    counter = CountVectorizer(**{k: v for k, v in op.get_params().items() if k in names})
    counter.vocabulary_ = op.vocabulary_
    counter.fixed_vocabulary_ = op.fixed_vocabulary_
    return counter


def _tfidf(scope: Any, operator: Any, container: Any) -> None:
    op = operator.raw_operator
    if op.norm != "l2" or not op.use_idf or op.sublinear_tf or op.binary:
        raise NotImplementedError(
            "only TfidfVectorizer(norm='l2', use_idf=True, sublinear_tf=False, binary=False) "
            "converts in double precision"
        )
    width = max(op.vocabulary_.values()) + 1
    counts = scope.declare_local_variable("term_counts", FloatTensorType([None, width]))
    counter = scope.declare_local_operator(_COUNT_ALIAS, _counter(op))
    counter.inputs = operator.inputs
    counter.outputs.append(counts)

    def name(seed: str) -> str:
        return str(scope.get_unique_variable_name(seed))

    counts64, weighted, norm, zero, one, is_zero, safe = (
        name(s) for s in ("counts64", "tfidf", "norm", "zero", "one", "is_zero", "safe_norm")
    )
    idf, axes = name("idf"), name("axes")
    container.add_initializer(idf, TensorProto.DOUBLE, [width], op.idf_.astype(np.float64))
    container.add_initializer(axes, TensorProto.INT64, [1], [1])
    container.add_initializer(zero, TensorProto.DOUBLE, [], [0.0])
    container.add_initializer(one, TensorProto.DOUBLE, [], [1.0])
    container.add_node("Cast", [counts.full_name], [counts64], to=TensorProto.DOUBLE)
    container.add_node("Mul", [counts64, idf], [weighted])
    container.add_node("ReduceL2", [weighted, axes], [norm], keepdims=1)
    # scikit-learn leaves rows without a known word at zero (norm 0 -> divide by 1).
    container.add_node("Equal", [norm, zero], [is_zero])
    container.add_node("Where", [is_zero, one, norm], [safe])
    container.add_node("Div", [weighted, safe], [operator.outputs[0].full_name])


def _tfidf_shape(operator: Any) -> None:
    width = max(operator.raw_operator.vocabulary_.values()) + 1
    rows = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = DoubleTensorType([rows, width])


CONVERTERS: dict[type, Converter] = {
    RandomForestClassifier: _double_trees(convert_sklearn_random_forest_classifier),
    HistGradientBoostingClassifier: _double_trees(convert_sklearn_random_forest_classifier),
    DecisionTreeClassifier: _double_trees(convert_sklearn_decision_tree_classifier),
    RandomForestRegressor: _double_trees(convert_sklearn_random_forest_regressor_converter),
    HistGradientBoostingRegressor: _double_trees(convert_sklearn_random_forest_regressor_converter),
    DecisionTreeRegressor: _double_trees(convert_sklearn_decision_tree_regressor),
    SimpleImputer: _imputer,
    OneHotEncoder: _one_hot,
    TfidfVectorizer: _tfidf,
    StableTfidfVectorizer: _tfidf,
}
# StableTfidfVectorizer has no skl2onnx alias of its own, so its output shape is declared here.
SHAPE_CALCULATORS: dict[type, Callable[[Any], None]] = {
    OneHotEncoder: _one_hot_shape,
    TfidfVectorizer: _tfidf_shape,
    StableTfidfVectorizer: _tfidf_shape,
}
