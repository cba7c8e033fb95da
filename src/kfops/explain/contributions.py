"""Per-row additive contributions of the columns the user sent, for a fitted kfops Pipeline.

For each row: the prediction, a base value, and one contribution per raw column, such that
``base_value + sum(contributions) == output`` (checked on every call, to 1e-6 relative to the
size of the terms). Which score ``output`` is depends on the estimator and is stated in every
result (``Explanations.output``):

============================  =========  ==================================================
estimator                     method     output explained
============================  =========  ==================================================
any regressor                 linear,    ``value``: the prediction itself
                              tree
linear classifier (logistic)  linear     ``margin``: ``decision_function`` of the predicted
                                         class, i.e. its log-odds against the other class
                                         (binary) or its logit before the softmax (multiclass)
random forest, decision tree  tree       ``probability``: ``predict_proba`` of the predicted
classifier                               class
gradient boosting classifier  tree       ``margin``: as for a linear classifier (the trees
(HistGradientBoosting)                   add up in log-odds, not in probability)
============================  =========  ==================================================

Explainers (SHAP, imported lazily so serving without explanations never loads it): linear
models (an estimator with ``coef_`` and ``intercept_``) use ``shap.LinearExplainer`` against
the mean of the training rows (:class:`Background`, no training rows kept); tree models use
``shap.TreeExplainer`` with ``tree_path_dependent`` perturbation (no background, base value =
the training data's expected output, read from the trees' node counts). Both are exact and
cost one pass over the model per row. Any other estimator raises :class:`ExplainUnsupported`
when the explainer is built, not per request: there is no approximate fallback (see
docs/ARCHITECTURE.md, "Explanations", for why).

Contributions are computed on the estimator's input columns and summed back to the raw
columns (:mod:`kfops.explain.columns`); a raw column the preprocessing drops gets 0.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import is_classifier

from kfops.errors import ConfigError, DataError, RegistryError
from kfops.explain.columns import FeatureMap, feature_map, split_pipeline
from kfops.explain.errors import ExplainUnsupported, ExplanationMismatch
from kfops.io import read_json, write_json_atomic

Method = Literal["linear", "tree"]
Output = Literal["value", "probability", "margin"]

# base + sum(contributions) must reproduce the output to this, relative to the terms' size.
ADDITIVITY_TOLERANCE = 1e-6
# Training rows averaged for a linear model's base value (a seeded sample when larger).
BACKGROUND_ROWS = 1000
# What a model version keeps for its explainer (written at training, read by the server):
# {"format_version": 1, "background": Background.to_dict() or null (the estimator needs none)}.
EXPLAINER_FILE = "explainer.json"
EXPLAINER_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Background:
    """Mean of the estimator's input columns over training rows: all a linear model's
    explainer needs. JSON-serialisable; holds no training row."""

    means: tuple[float, ...]
    n_rows: int

    def to_dict(self) -> dict[str, Any]:
        return {"means": list(self.means), "n_rows": self.n_rows}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Background:
        return cls(means=tuple(float(v) for v in data["means"]), n_rows=int(data["n_rows"]))


def summarise_background(
    pipeline: Any, rows: pd.DataFrame, max_rows: int = BACKGROUND_ROWS, seed: int = 0
) -> Background:
    """The :class:`Background` of ``pipeline`` over ``rows`` (e.g. the training split; a seeded
    sample of ``max_rows`` when larger)."""
    if len(rows) == 0:
        raise DataError("no rows to summarise the explanation background from")
    if len(rows) > max_rows:
        rows = rows.sample(n=max_rows, random_state=seed)
    transform, _ = split_pipeline(pipeline)
    matrix = _dense(transform.transform(rows))
    return Background(means=tuple(float(v) for v in matrix.mean(axis=0)), n_rows=len(rows))


def needs_background(pipeline: Any) -> bool:
    """True when the pipeline's explainer needs a :class:`Background`: a linear estimator."""
    _, estimator = split_pipeline(pipeline)
    return _is_linear(estimator)


def _is_linear(estimator: Any) -> bool:
    return hasattr(estimator, "coef_") and hasattr(estimator, "intercept_")


def write_explainer_file(
    path: str | os.PathLike[str], pipeline: Any, train_rows: pd.DataFrame
) -> Background | None:
    """Write ``EXPLAINER_FILE`` for ``pipeline`` from its training rows: the background when the
    estimator needs one (only means of the estimator's input columns, no training row)."""
    background = summarise_background(pipeline, train_rows) if needs_background(pipeline) else None
    write_json_atomic(
        Path(path),
        {
            "format_version": EXPLAINER_FORMAT_VERSION,
            "background": None if background is None else background.to_dict(),
        },
    )
    return background


def read_explainer_file(path: str | os.PathLike[str]) -> Background | None:
    """The background stored in a version's ``EXPLAINER_FILE`` (None: the estimator needs
    none). A missing or foreign file is one RegistryError naming it."""
    target = Path(path)
    try:
        data = read_json(target)
        if data.get("format_version") != EXPLAINER_FORMAT_VERSION:
            raise ValueError(f"format_version {data.get('format_version')!r}")
        raw = data["background"]
        return None if raw is None else Background.from_dict(raw)
    except FileNotFoundError:
        raise RegistryError(f"no explainer file at {target}") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RegistryError(f"{target} is not a kfops explainer file ({exc})") from None


@dataclass(frozen=True)
class RowExplanation:
    """One row: ``base_value + sum(contributions.values()) == output`` (the ``output`` score of
    the prediction; for classification the score of ``explained_class``, the predicted
    class)."""

    prediction: Any
    output: float
    base_value: float
    contributions: dict[str, float]
    explained_class: Any = None

    def to_dict(self) -> dict[str, Any]:
        data = {
            "prediction": _plain(self.prediction),
            "output": self.output,
            "base_value": self.base_value,
            "contributions": dict(self.contributions),
        }
        if self.explained_class is not None:
            data["explained_class"] = _plain(self.explained_class)
        return data


@dataclass(frozen=True)
class Explanations:
    """Explanations of a batch of rows, with the method and the score they explain."""

    method: Method
    output: Output
    features: tuple[str, ...]
    rows: tuple[RowExplanation, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "output": self.output,
            "exact": True,
            "features": list(self.features),
            "explanations": [row.to_dict() for row in self.rows],
        }


class Explainer:
    """An exact explainer bound to one fitted Pipeline. Build it once per loaded model with
    :func:`make_explainer`; :meth:`explain` is then safe to call per request."""

    def __init__(
        self,
        pipeline: Any,
        fmap: FeatureMap,
        shap_explainer: Any,
        method: Method,
        output: Output,
    ) -> None:
        self._transform, self._estimator = split_pipeline(pipeline)
        self._shap = shap_explainer
        self.feature_map = fmap
        self.method: Method = method
        self.output: Output = output

    @property
    def features(self) -> tuple[str, ...]:
        return self.feature_map.features

    def explain(self, rows: pd.DataFrame) -> Explanations:
        """Explain ``rows`` (the same frame the Pipeline's ``predict`` takes)."""
        if len(rows) == 0:
            raise DataError("no rows to explain")
        missing = [name for name in self.features if name not in rows.columns]
        if missing:
            raise DataError(f"rows to explain lack column(s) {missing} the model takes")
        matrix = _dense(self._transform.transform(rows))
        return self.explain_matrix(matrix)

    def explain_matrix(self, matrix: np.ndarray) -> Explanations:
        """Explain rows already transformed into the estimator's input columns."""
        if matrix.ndim != 2 or matrix.shape[1] != self.feature_map.width:
            raise DataError(
                f"expected {self.feature_map.width} estimator input columns, got "
                f"{matrix.shape[1] if matrix.ndim == 2 else matrix.shape}"
            )
        bad = ~np.isfinite(matrix).all(axis=1)
        if bad.any():
            raise DataError(
                f"row {int(np.flatnonzero(bad)[0])} has values too large to explain "
                "(non-finite after preprocessing)"
            )
        estimator = self._estimator
        predicted = np.asarray(estimator.predict(matrix))
        values, base = self._shap_values(matrix)
        n_rows = matrix.shape[0]
        if is_classifier(estimator):
            classes = np.asarray(estimator.classes_)
            k = np.searchsorted(classes, predicted)
            reference = self._class_scores(matrix, k)
            if values.ndim == 3:  # one output per class: take the predicted class's
                values = values[np.arange(n_rows), :, k]
                base = base[k]
            else:  # one output, the score of classes_[1]: flip it for classes_[0]
                flip = k == 0
                sign = np.where(flip, -1.0, 1.0)
                offset = np.where(flip & (self.output == "probability"), 1.0, 0.0)
                values = values * sign[:, None]
                base = offset + sign * base
        else:
            reference = predicted.astype(np.float64)
            k = None
        base = np.broadcast_to(np.asarray(base, dtype=np.float64), (n_rows,))
        per_feature = self.feature_map.sum_by_feature(values)
        self._check_additivity(base, values, reference)
        rows = tuple(
            RowExplanation(
                prediction=predicted[i],
                output=float(reference[i]),
                base_value=float(base[i]),
                contributions=dict(zip(self.features, per_feature[i].tolist(), strict=True)),
                explained_class=predicted[i] if k is not None else None,
            )
            for i in range(n_rows)
        )
        return Explanations(self.method, self.output, self.features, rows)

    def _shap_values(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.method == "tree":
            raw = self._shap.shap_values(matrix, check_additivity=False)
        else:
            raw = self._shap.shap_values(matrix)
        if isinstance(raw, list):  # older shap: one array per output
            raw = np.stack(raw, axis=-1)
        values = np.asarray(raw, dtype=np.float64)
        base = np.asarray(self._shap.expected_value, dtype=np.float64)
        if values.ndim == 3 and values.shape[2] == 1:
            values, base = values[:, :, 0], base.reshape(-1)[0]
        if values.ndim == 2 and base.ndim == 1 and base.size == 1:
            base = base.reshape(())
        return values, base

    def _class_scores(self, matrix: np.ndarray, k: np.ndarray) -> np.ndarray:
        """The explained score of class ``k[i]`` for each row."""
        rows = np.arange(matrix.shape[0])
        if self.output == "probability":
            return np.asarray(self._estimator.predict_proba(matrix), dtype=np.float64)[rows, k]
        scores = np.asarray(self._estimator.decision_function(matrix), dtype=np.float64)
        if scores.ndim == 1:  # binary: the margin of classes_[1]
            return np.where(k == 0, -scores, scores)
        return scores[rows, k]

    def _check_additivity(
        self, base: np.ndarray, values: np.ndarray, reference: np.ndarray
    ) -> None:
        total = base + values.sum(axis=1)
        if not (np.isfinite(total).all() and np.isfinite(reference).all()):
            raise DataError("a row's score is not finite; its values are too large to explain")
        scale = np.maximum(1.0, np.abs(base) + np.abs(values).sum(axis=1))
        error = np.abs(total - reference) / scale
        if (error > ADDITIVITY_TOLERANCE).any():
            i = int(np.argmax(error))
            raise ExplanationMismatch(
                f"{self.method} explanation of row {i} does not add up: base + contributions = "
                f"{total[i]!r}, model {self.output} = {reference[i]!r}"
            )


def make_explainer(pipeline: Any, background: Background | None = None) -> Explainer:
    """Build the exact explainer of a fitted Pipeline, or raise :class:`ExplainUnsupported`.

    ``background`` (from :func:`summarise_background` on the training rows) is required for
    linear models and ignored by tree models.
    """
    fmap = feature_map(pipeline)
    _, estimator = split_pipeline(pipeline)
    classifier = is_classifier(estimator)
    shap = _import_shap()
    method: Method
    output: Output
    if _is_linear(estimator):
        if background is None:
            raise ConfigError(
                "explaining a linear model needs its background (summarise_background on the "
                "training rows)"
            )
        if len(background.means) != fmap.width:
            raise ConfigError(
                f"the explanation background has {len(background.means)} columns but the "
                f"model takes {fmap.width}: it was made for another model"
            )
        masker = np.asarray(background.means, dtype=np.float64).reshape(1, -1)
        try:
            shap_explainer = shap.LinearExplainer(estimator, masker)
        except Exception as exc:  # shap raises bare Exceptions for models it cannot read
            raise ExplainUnsupported(
                f"{type(estimator).__name__} cannot be explained as a linear model: {exc}"
            ) from None
        method, output = "linear", ("margin" if classifier else "value")
    else:
        try:
            shap_explainer = shap.TreeExplainer(
                estimator, feature_perturbation="tree_path_dependent"
            )
        except Exception:  # InvalidModelError and friends: not a tree model shap can read
            raise ExplainUnsupported(
                f"{type(estimator).__name__} has no exact fast explainer; supported are linear "
                "models (logistic/linear/ridge regression) and tree models (random forest, "
                "gradient boosting, decision tree)"
            ) from None
        tree_output = getattr(shap_explainer.model, "tree_output", None)
        if not classifier:
            method, output = "tree", "value"
        elif tree_output == "probability":
            method, output = "tree", "probability"
        elif tree_output == "log_odds" and hasattr(estimator, "decision_function"):
            method, output = "tree", "margin"
        else:
            raise ExplainUnsupported(
                f"{type(estimator).__name__}: its trees add up to {tree_output!r}, which is not "
                "a score kfops can report"
            )
    explainer = Explainer(pipeline, fmap, shap_explainer, method, output)
    _self_check(explainer, background)
    return explainer


def _self_check(explainer: Explainer, background: Background | None) -> None:
    """Refuse at load time what would fail per request: an estimator whose explained output
    is not the score we compare against (e.g. a regressor with a log link predicts exp of
    what its trees add up to)."""
    probes = [np.zeros(explainer.feature_map.width)]
    if background is not None:
        probes.append(np.asarray(background.means, dtype=np.float64))
    try:
        explainer.explain_matrix(np.vstack(probes))
    except ExplanationMismatch as exc:
        raise ExplainUnsupported(
            f"explanations of this model do not add up to its {explainer.output} ({exc}); "
            "estimators with a non-identity link (e.g. a Poisson loss) are not supported"
        ) from None


def _import_shap() -> Any:
    try:
        with warnings.catch_warnings():
            # shap's plotting module warns about matplotlib deprecations at import: not ours.
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            import shap
    except ImportError:
        raise ExplainUnsupported(
            "explanations need the optional dependency shap: pip install 'kfops[explain]'"
        ) from None
    except Exception as exc:
        # Seen: numba (under shap) refuses to import once builtins.print has been replaced,
        # which kfp.local leaves behind after running ParallelFor tasks in threads.
        raise ExplainUnsupported(
            f"the optional dependency shap failed to import ({type(exc).__name__}: {exc})"
        ) from None
    return shap


def _dense(matrix: Any) -> np.ndarray:
    if hasattr(matrix, "toarray"):  # a sparse preprocessing output
        matrix = matrix.toarray()
    return np.asarray(matrix, dtype=np.float64)


def _plain(value: Any) -> Any:
    """numpy scalars to Python scalars for JSON."""
    return value.item() if isinstance(value, np.generic) else value
