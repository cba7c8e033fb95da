"""Which column the user sent each of the estimator's input columns comes from.

A kfops model is an sklearn ``Pipeline``: transformers that take the raw columns by name, then
the estimator. Explanations are computed on the estimator's input (one-hot, TF-IDF, date parts,
...) and summed back to the raw columns, so this module maps every estimator input column to
exactly one raw column. It reads public fitted attributes (``Pipeline`` steps,
``ColumnTransformer.transformers_`` / ``output_indices_`` / ``feature_names_in_`` and each
transformer's ``get_feature_names_out``) and, for kfops' own coercion step (which renames the
raw columns to positional inputs ``f0``, ``f4_year``, ...), the mapping ``kfops.coercion``
exposes (``Coercion.inputs_of``), never kfops' step names, so other transformers may join.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from kfops.coercion import CoerceStep
from kfops.explain.errors import ExplainUnsupported


@dataclass(frozen=True)
class FeatureMap:
    """``owners[i]`` is the index in ``features`` of the raw column that estimator input
    column ``i`` comes from. Raw columns the preprocessing drops own no column (their
    contribution is 0)."""

    features: tuple[str, ...]
    owners: tuple[int, ...]

    @property
    def width(self) -> int:
        return len(self.owners)

    @functools.cached_property
    def _indicator(self) -> np.ndarray:
        indicator = np.zeros((self.width, len(self.features)))
        indicator[np.arange(self.width), list(self.owners)] = 1.0
        return indicator

    def sum_by_feature(self, values: np.ndarray) -> np.ndarray:
        """Sum the last axis (estimator input columns) into raw features: (..., width) ->
        (..., len(features)). A sum keeps additivity exact up to rounding."""
        return np.asarray(values, dtype=np.float64) @ self._indicator


def split_pipeline(pipeline: Any) -> tuple[Pipeline, Any]:
    """(the transforming steps, the final estimator) of a fitted ``Pipeline``."""
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) < 2:
        raise ExplainUnsupported(
            f"explanations need an sklearn Pipeline of preprocessing steps and an estimator, "
            f"got {type(pipeline).__name__}"
        )
    return pipeline[:-1], pipeline[-1]


def feature_map(pipeline: Any) -> FeatureMap:
    """Map the estimator's input columns of a fitted Pipeline to the raw columns it takes."""
    transform, estimator = split_pipeline(pipeline)
    steps = _flatten(transform)
    features = _raw_features(pipeline, steps)
    # The current columns' names -> index in ``features`` of the raw column each comes from.
    owner_of = {name: i for i, name in enumerate(features)}
    transformers = [s for s in steps if isinstance(s, ColumnTransformer)]
    if len(transformers) > 1:
        raise ExplainUnsupported("the pipeline has more than one ColumnTransformer")
    if transformers:
        ct = transformers[0]
        position = steps.index(ct)
        for step in steps[:position]:
            owner_of = _through(step, owner_of)
        owners = _column_transformer_owners(ct, owner_of)
        names = _names_out(ct)
        for step in steps[position + 1 :]:
            _require_one_to_one(step, names)
    else:
        # No ColumnTransformer: every step must keep the columns one-to-one (e.g. a scaler)
        # or be the coercion step, whose inputs say which raw column each came from.
        for step in steps:
            owner_of = _through(step, owner_of)
        owners = list(owner_of.values())
    expected = getattr(estimator, "n_features_in_", len(owners))
    if expected != len(owners):
        raise ExplainUnsupported(
            f"the estimator takes {expected} columns but the preprocessing maps {len(owners)}"
        )
    return FeatureMap(features=tuple(features), owners=tuple(owners))


def _through(step: Any, owner_of: dict[str, int]) -> dict[str, int]:
    """The column owners after ``step``: the coercion step renames (and a datetime column
    becomes several parts); any other step must keep its columns one-to-one."""
    if isinstance(step, CoerceStep):
        coercion = step.coercion
        missing = [name for name, _ in coercion.features if name not in owner_of]
        if missing:
            raise ExplainUnsupported(
                f"the coercion step reads column(s) {missing} the model does not take"
            )
        return {
            g.name: owner_of[feature]
            for feature, _ in coercion.features
            for g in coercion.inputs_of(feature)
        }
    _require_one_to_one(step, list(owner_of))
    return owner_of


def _flatten(transform: Pipeline) -> list[Any]:
    steps: list[Any] = []
    for _, step in transform.steps:
        if isinstance(step, Pipeline):
            steps.extend(_flatten(step))
        elif step is not None and step != "passthrough":
            steps.append(step)
    return steps


def _raw_features(pipeline: Pipeline, steps: list[Any]) -> list[str]:
    if steps and isinstance(steps[0], CoerceStep):
        # The coercion step selects the raw columns by name, in contract order.
        return [str(name) for name, _ in steps[0].coercion.features]
    names = getattr(pipeline, "feature_names_in_", None)
    if names is None:
        names = next(
            (
                getattr(s, "feature_names_in_", None)
                for s in steps
                if hasattr(s, "feature_names_in_")
            ),
            None,
        )
    if names is None:
        raise ExplainUnsupported(
            "the model was fitted without column names, so contributions cannot be named"
        )
    return [str(n) for n in names]


def _names_out(step: Any, names: Sequence[str] | None = None) -> list[str] | None:
    try:
        out = step.get_feature_names_out(names) if names is not None else None
        if out is None:
            out = step.get_feature_names_out()
    except (AttributeError, ValueError, TypeError):
        return None
    return [str(n) for n in out]


def _require_one_to_one(step: Any, names: Sequence[str] | None) -> None:
    out = _names_out(step, names) if names is not None else None
    if names is None or out != list(names):
        raise ExplainUnsupported(
            f"preprocessing step {type(step).__name__} does not keep its columns one-to-one, "
            "so contributions cannot be traced back to the columns sent"
        )


def _selected_names(ct: ColumnTransformer, columns: Any) -> list[str]:
    """The input column names a ColumnTransformer entry selects (names, indices, slice, mask)."""
    names_in = [str(n) for n in ct.feature_names_in_]
    if isinstance(columns, str):
        return [columns]
    if isinstance(columns, slice):
        return names_in[columns]
    values = list(np.asarray(columns).ravel()) if not isinstance(columns, list) else columns
    if values and all(isinstance(v, bool | np.bool_) for v in values):
        return [n for n, keep in zip(names_in, values, strict=True) if keep]
    if values and all(isinstance(v, int | np.integer) for v in values):
        return [names_in[int(v)] for v in values]
    return [str(v) for v in values]


def _column_transformer_owners(ct: ColumnTransformer, index: dict[str, int]) -> list[int]:
    """Owner (raw column index) of each output column; ``index``: input name -> owner."""
    if not hasattr(ct, "feature_names_in_"):
        raise ExplainUnsupported(
            "the ColumnTransformer was fitted without column names, so contributions cannot be "
            "named"
        )
    width = max((s.stop for s in ct.output_indices_.values()), default=0)
    owners = [-1] * width
    for name, transformer, columns in ct.transformers_:
        out = ct.output_indices_.get(name, slice(0, 0))
        n_out = out.stop - out.start
        if transformer == "drop" or n_out == 0:
            continue
        inputs = _selected_names(ct, columns)
        unknown = [c for c in inputs if c not in index]
        if unknown:
            raise ExplainUnsupported(
                f"column(s) {unknown} reach the ColumnTransformer but are not columns the "
                "model takes"
            )
        if len(inputs) == 1:  # everything a one-column transformer makes (TF-IDF, one-hot)
            blocks = [0] * n_out
        elif transformer == "passthrough":
            blocks = list(range(len(inputs)))
        else:
            names = _names_out(transformer, inputs)
            if names is None or len(names) != n_out:
                raise ExplainUnsupported(
                    f"transformer {name!r} ({type(transformer).__name__}) does not name its "
                    "output columns, so they cannot be traced back to its inputs"
                )
            blocks = assign_blocks(inputs, names, what=name)
        for offset, block in enumerate(blocks):
            owners[out.start + offset] = index[inputs[block]]
    if -1 in owners:
        raise ExplainUnsupported("some ColumnTransformer output columns have no input column")
    return owners


def assign_blocks(inputs: Sequence[str], outputs: Sequence[str], what: str = "") -> list[int]:
    """Assign each output name to the input it was made from.

    A multi-column transformer names its outputs ``<input>`` (one-to-one) or
    ``<input>_<suffix>`` (one-hot categories, date parts) in input order, so the outputs fall
    into consecutive blocks, one per input, where every name starts with its input's name and
    no name repeats within a block. Names alone can still be ambiguous (inputs ``a`` and
    ``a_b``, outputs ``a_b_1, a_b_2``): we take the unique split that gives every input at
    least one column, else the unique split at all, else refuse rather than guess.
    """
    n, k = len(outputs), len(inputs)

    def matches(o: int, j: int) -> bool:
        return outputs[o] == inputs[j] or outputs[o].startswith(inputs[j] + "_")

    def block_ends(o: int, j: int, min_len: int) -> list[int]:
        """Ends e such that outputs[o:e] can be input j's block."""
        ends, seen, e = [], set(), o
        while True:
            if e - o >= min_len:
                ends.append(e)
            if e == n or not matches(e, j) or outputs[e] in seen:
                return ends
            seen.add(outputs[e])
            e += 1

    for min_len in (1, 0):
        # ways[j][o]: number of splits (capped at 2) of outputs[o:] among inputs[j:].
        ways = [[0] * (n + 1) for _ in range(k + 1)]
        ways[k][n] = 1
        for j in range(k - 1, -1, -1):
            for o in range(n, -1, -1):
                ways[j][o] = min(2, sum(ways[j + 1][e] for e in block_ends(o, j, min_len)))
        if ways[0][0] == 1:
            assignment: list[int] = []
            o = 0
            for j in range(k):
                e = next(e for e in block_ends(o, j, min_len) if ways[j + 1][e] > 0)
                assignment += [j] * (e - o)
                o = e
            return assignment
        if ways[0][0] > 1:
            break  # ambiguous even when every input must get a column: do not guess
    label = f" of transformer {what!r}" if what else ""
    raise ExplainUnsupported(
        f"cannot tell which input each output column{label} comes from "
        f"(inputs {list(inputs)}, outputs {list(outputs)[:8]}...)"
    )
