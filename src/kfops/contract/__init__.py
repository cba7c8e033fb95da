"""Data contracts: infer one from training data, coerce raw frames to it, validate against it.

The contract (``contract.json``, see docs/ARCHITECTURE.md) records what a model expects: each
feature's kind, nullability, training range or category domain, and the target. One module per
job:

- ``inference``: ``infer_contract`` (and ``drop_null_target``) from training data;
- ``coercion``: ``coerce_frame``, so raw features always reach the model with the same dtypes
  (training calls it, and the fitted pipeline again inside);
- ``validation``: ``validate`` (pandera underneath) -> ``ValidationReport`` of blocking errors
  and warnings, for the pipeline's validate step and monitoring;
- ``describe``: the Markdown data-statistics table dashboards show.

The shapes themselves (``Contract``, ``FeatureSpec``, ``TargetSpec``) live in
``kfops.contract_model`` so serving and drift can use them without pandera.
"""

from kfops.contract._values import to_jsonable
from kfops.contract.coercion import coerce_frame
from kfops.contract.describe import describe
from kfops.contract.inference import drop_null_target, infer_contract
from kfops.contract.validation import ValidationReport, Violation, validate
from kfops.contract_model import (
    FEATURE_KINDS,
    SCHEMA_VERSION,
    TASKS,
    Contract,
    FeatureSpec,
    TargetSpec,
)

__all__ = [
    "FEATURE_KINDS",
    "SCHEMA_VERSION",
    "TASKS",
    "Contract",
    "FeatureSpec",
    "TargetSpec",
    "ValidationReport",
    "Violation",
    "coerce_frame",
    "describe",
    "drop_null_target",
    "infer_contract",
    "to_jsonable",
    "validate",
]
