"""The data contract as typed objects: what a model expects of its input.

Inference and validation live in ``kfops.contract``; this module only holds the shapes so that
training, serving and drift can share them without importing pandera.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from kfops.errors import ContractError
from kfops.io import read_json, write_json_atomic

SCHEMA_VERSION = 1

FeatureKind = Literal["numeric", "boolean", "categorical", "text", "datetime"]
Task = Literal["classification", "regression"]
FEATURE_KINDS: tuple[str, ...] = ("numeric", "boolean", "categorical", "text", "datetime")
# How boolean columns read as 0/1 wherever they appear (CSV text, Python bools, numbers).
BOOL_WORDS: dict[str, float] = {
    "true": 1.0,
    "false": 0.0,
    "t": 1.0,
    "f": 0.0,
    "yes": 1.0,
    "no": 0.0,
    "y": 1.0,
    "n": 0.0,
    "1": 1.0,
    "0": 0.0,
    "1.0": 1.0,
    "0.0": 0.0,
}
TASKS: tuple[str, ...] = ("classification", "regression")


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    kind: FeatureKind
    dtype: str
    nullable: bool
    min: float | str | None = None  # numeric: float; datetime: ISO string
    max: float | str | None = None
    categories: tuple[Any, ...] | None = None  # categorical/boolean domain seen in training
    # datetime: the strptime formats training read the column's text in (kfops.parsing)
    formats: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.categories is not None:
            data["categories"] = list(self.categories)
        if self.formats is not None:
            data["formats"] = list(self.formats)
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        kind = data.get("kind")
        if kind not in FEATURE_KINDS:
            raise ContractError(f"feature {data.get('name')!r}: unknown kind {kind!r}")
        cats = data.get("categories")
        formats = data.get("formats")
        if formats is not None and not (
            isinstance(formats, list) and all(isinstance(f, str) for f in formats)
        ):
            raise ContractError(f"feature {data.get('name')!r}: formats must be a list of strings")
        return cls(
            name=str(data["name"]),
            kind=kind,
            dtype=str(data.get("dtype", "object")),
            nullable=bool(data.get("nullable", True)),
            min=data.get("min"),
            max=data.get("max"),
            categories=tuple(cats) if cats is not None else None,
            formats=tuple(formats) if formats is not None else None,
        )


@dataclass(frozen=True)
class TargetSpec:
    name: str
    kind: Literal["categorical", "numeric"]
    dtype: str
    classes: tuple[Any, ...] | None = None  # classification
    min: float | None = None  # regression
    max: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.classes is not None:
            data["classes"] = list(self.classes)
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetSpec:
        classes = data.get("classes")
        return cls(
            name=str(data["name"]),
            kind=data["kind"],
            dtype=str(data.get("dtype", "object")),
            classes=tuple(classes) if classes is not None else None,
            min=data.get("min"),
            max=data.get("max"),
        )


@dataclass(frozen=True)
class Contract:
    task: Task
    target: TargetSpec
    features: tuple[FeatureSpec, ...]
    dropped: tuple[dict[str, str], ...] = field(default_factory=tuple)
    fingerprint: str | None = None

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def feature(self, name: str) -> FeatureSpec:
        for spec in self.features:
            if spec.name == name:
                return spec
        raise ContractError(f"unknown feature {name!r}; the contract has {self.feature_names}")

    @property
    def ignored_columns(self) -> frozenset[str]:
        """Columns of the training data that are not features (the target, dropped columns):
        a request may carry them, as a row of the training file does; they are ignored."""
        return frozenset([self.target.name, *(str(d.get("name")) for d in self.dropped)])

    def features_of(self, *kinds: str) -> list[str]:
        return [f.name for f in self.features if f.kind in kinds]

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "task": self.task,
            "target": self.target.to_dict(),
            "features": [f.to_dict() for f in self.features],
            "dropped": [dict(d) for d in self.dropped],
        }
        if self.fingerprint:
            data["fingerprint"] = self.fingerprint
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Contract:
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ContractError(
                f"contract schema_version {data.get('schema_version')!r} is not supported "
                f"(expected {SCHEMA_VERSION})"
            )
        if data.get("task") not in TASKS:
            raise ContractError(f"contract task {data.get('task')!r} is not one of {TASKS}")
        return cls(
            task=data["task"],
            target=TargetSpec.from_dict(data["target"]),
            features=tuple(FeatureSpec.from_dict(f) for f in data["features"]),
            dropped=tuple(dict(d) for d in data.get("dropped", [])),
            fingerprint=data.get("fingerprint"),
        )

    def save(self, path: str | Path) -> None:
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> Contract:
        path = Path(path)
        if not path.is_file():
            raise ContractError(f"no data contract at {path}")
        try:
            return cls.from_dict(read_json(path))
        except (KeyError, TypeError, ValueError) as exc:
            raise ContractError(f"data contract {path} is malformed: {exc}") from exc
