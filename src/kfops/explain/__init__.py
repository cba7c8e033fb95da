"""Explanations: what a model relies on and why it predicted what it did.

- :mod:`~kfops.explain.importance` permutation importance of each raw column on held-out rows,
  with a bar chart for the evaluation report;
- :mod:`~kfops.explain.contributions` per-row additive contributions of each raw column (SHAP,
  an optional dependency: ``pip install 'kfops[explain]'``, imported only when an explainer is
  built);
- :mod:`~kfops.explain.columns` maps the estimator's input columns back to the raw columns;
- :mod:`~kfops.explain.model_card` a Markdown model card per registered version;
- :mod:`~kfops.explain.ranking` drifted features ranked by importance for monitoring.

Import the submodule you need; this package imports none of them (nor shap) by itself.
"""

from kfops.explain.errors import ExplainUnsupported, ExplanationMismatch

__all__ = ["ExplainUnsupported", "ExplanationMismatch"]
