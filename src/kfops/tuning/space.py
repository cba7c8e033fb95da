"""Search spaces: which estimator parameters a tuning run searches, and over which values.

Defaults per scikit-learn class are configuration in ``search_spaces.yaml`` (next to this
module); a run may override them with JSON or YAML text (or a file path). Every mistake is a
``ConfigError`` naming the parameter at fault, raised before any trial runs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from kfops.errors import ConfigError

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

SPACES_FILE = Path(__file__).with_name("search_spaces.yaml")

ParamKind = Literal["float", "int", "categorical"]
_SPEC_KEYS = ("type", "low", "high", "log", "step", "choices")
_KINDS: tuple[str, ...] = ("float", "int", "categorical")


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_int(value: Any) -> bool:
    return is_number(value) and float(value).is_integer()


@dataclass(frozen=True)
class ParamSpec:
    """One tunable parameter: a numeric range (optionally log-scaled or stepped) or choices."""

    name: str
    kind: ParamKind
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] | None = None

    def distribution(self) -> BaseDistribution:
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.kind == "categorical":
            return CategoricalDistribution(list(self.choices or ()))
        assert self.low is not None and self.high is not None
        if self.kind == "int":
            return IntDistribution(
                int(self.low), int(self.high), log=self.log, step=int(self.step or 1)
            )
        return FloatDistribution(float(self.low), float(self.high), log=self.log, step=self.step)

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "categorical":
            return {"choices": list(self.choices or ())}
        data: dict[str, Any] = {"type": self.kind, "low": self.low, "high": self.high}
        if self.log:
            data["log"] = True
        if self.step is not None:
            data["step"] = self.step
        return data


def parse_param(estimator: str, name: str, raw: Any) -> ParamSpec:
    """Validate one parameter entry of a search space (see ``search_spaces.yaml`` for syntax)."""
    where = f"search space of {estimator!r}: parameter {name!r}"
    if isinstance(raw, list):
        raw = {"choices": raw}
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{where} must be a mapping like {{low: 1, high: 10}} or a list of choices, got {raw!r}"
        )
    unknown = [key for key in raw if key not in _SPEC_KEYS]
    if unknown:
        raise ConfigError(
            f"{where} has unknown key {unknown[0]!r}; allowed: {', '.join(_SPEC_KEYS)}"
        )
    kind = raw.get("type")
    if kind is not None and kind not in _KINDS:
        raise ConfigError(f"{where} has type {kind!r}; expected one of {', '.join(_KINDS)}")
    if "choices" in raw:
        return _parse_choices(where, name, raw, kind)
    if kind == "categorical":
        raise ConfigError(f"{where} is categorical but has no 'choices'")
    return _parse_range(where, name, raw, kind)


def _parse_choices(where: str, name: str, raw: Mapping[str, Any], kind: Any) -> ParamSpec:
    extra = [key for key in ("low", "high", "log", "step") if key in raw]
    if extra:
        raise ConfigError(f"{where} has both 'choices' and {extra[0]!r}: use one or the other")
    if kind not in (None, "categorical"):
        raise ConfigError(f"{where} has 'choices' but type {kind!r}; choices are categorical")
    choices = raw["choices"]
    if not isinstance(choices, list) or not choices:
        raise ConfigError(f"{where} needs a non-empty list of choices, got {choices!r}")
    for choice in choices:
        if choice is not None and not isinstance(choice, str | int | float | bool):
            raise ConfigError(
                f"{where}: choice {choice!r} is not a string, number, boolean or null"
            )
    # Optuna finds a choice by ==, so 1, 1.0 and True would be one choice to it.
    for i, later in enumerate(choices):
        if any((type(c) is not str and c == later) or c is later for c in choices[:i]):
            raise ConfigError(f"{where} lists choice {later!r} more than once")
        if isinstance(later, str) and later in choices[:i]:
            raise ConfigError(f"{where} lists choice {later!r} more than once")
    return ParamSpec(name=name, kind="categorical", choices=tuple(choices))


def _parse_range(where: str, name: str, raw: Mapping[str, Any], kind: Any) -> ParamSpec:
    if "low" not in raw or "high" not in raw:
        raise ConfigError(f"{where} needs 'low' and 'high' (or a list of 'choices')")
    low, high = raw["low"], raw["high"]
    for key, value in (("low", low), ("high", high)):
        if not is_number(value) or not math.isfinite(float(value)):
            raise ConfigError(f"{where}: {key} must be a finite number, got {value!r}")
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be true or false, got {log!r}")
    step = raw.get("step")
    if kind is None:
        kind = "int" if isinstance(low, int) and isinstance(high, int) else "float"
    if low > high:
        raise ConfigError(f"{where}: low {low!r} is greater than high {high!r}")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log scale needs positive bounds, got low={low!r}")
    if step is not None:
        if log:
            raise ConfigError(
                f"{where} has both 'log' and 'step'; Optuna supports one or the other"
            )
        if not is_number(step) or step <= 0:
            raise ConfigError(f"{where}: step must be a positive number, got {step!r}")
    if kind == "int":
        for key, value in (("low", low), ("high", high), ("step", step)):
            if value is not None and not is_int(value):
                raise ConfigError(f"{where} is an int range but {key} is {value!r}")
        return ParamSpec(
            name=name,
            kind="int",
            low=int(low),
            high=int(high),
            log=log,
            step=int(step) if step is not None else None,
        )
    return ParamSpec(
        name=name,
        kind="float",
        low=float(low),
        high=float(high),
        log=log,
        step=float(step) if step is not None else None,
    )


@dataclass(frozen=True)
class SearchSpace:
    """The validated search space of one estimator."""

    estimator: str
    params: tuple[ParamSpec, ...]

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def distributions(self) -> dict[str, BaseDistribution]:
        return {p.name: p.distribution() for p in self.params}

    def to_dict(self) -> dict[str, Any]:
        return {p.name: p.to_dict() for p in self.params}


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice (PyYAML silently keeps the last one)."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise ConfigError(f"search space lists {key!r} more than once (contradictory entries)")
        seen.add(key)
    return dict(loader.construct_mapping(node))


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def load_space_text(text: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    """Parse a search-space override: JSON or YAML text, or the path of such a file.

    Empty text means "no override" (None). JSON is read by the YAML parser (YAML 1.1 is a
    superset for the JSON anyone writes by hand), with duplicate keys rejected.
    """
    if text is None:
        return None
    source = os.fspath(text)
    if not source.strip():
        return None
    label = "search space"
    if "\n" not in source and source.strip().endswith((".json", ".yaml", ".yml")):
        path = Path(source.strip()).expanduser()
        if not path.is_file():
            raise ConfigError(f"search space file not found: {path}")
        source, label = path.read_text(encoding="utf-8"), f"search space file {path}"
    try:
        data = yaml.load(source, Loader=_UniqueKeyLoader)  # SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise ConfigError(f"{label} is not valid JSON/YAML: {problem}{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{label} must be a mapping of parameter to range, got {data!r}")
    return data


def default_spaces() -> dict[str, Any]:
    """The shipped defaults, keyed by scikit-learn class name."""
    data = load_space_text(SPACES_FILE)
    assert data is not None
    return data


def _estimator_class_and_params(task: str, estimator: str) -> tuple[str, list[str]]:
    from kfops.training import make_estimator

    model = make_estimator(task, estimator, {})
    return type(model).__name__, sorted(model.get_params(deep=False))


def resolve_space(
    task: str,
    estimator: str,
    override: str | Mapping[str, Any] | None = None,
    fixed_params: Mapping[str, Any] | None = None,
) -> SearchSpace:
    """The search space for ``estimator``: the user's override if given, else the default.

    An override replaces the default space of the estimator. It is either ``{param: spec}`` or
    ``{estimator_name: {param: spec}, ...}`` (one file for several estimators). Parameters in
    ``fixed_params`` are left out of a default space; in a given space they are contradictory.
    Raises ConfigError for an empty space, a bad range, an unknown parameter (not in the
    estimator's ``get_params()``) or a parameter both fixed and searched.
    """
    from kfops.training import ESTIMATORS

    cls_name, valid = _estimator_class_and_params(task, estimator)
    raw = load_space_text(override) if isinstance(override, str | os.PathLike) else override
    if raw is None:
        defaults = default_spaces()
        if cls_name not in defaults:
            raise ConfigError(
                f"no default search space for estimator {estimator!r} ({cls_name}); "
                "give one with a search space override"
            )
        # Parameters the user fixed are pinned, not searched: drop them from the default.
        raw = {k: v for k, v in defaults[cls_name].items() if k not in (fixed_params or {})}
        origin = "default"
    else:
        names = {name for table in ESTIMATORS.values() for name in table}
        if estimator in raw and isinstance(raw[estimator], Mapping):
            raw = raw[estimator]
        elif raw and all(key in names for key in raw):
            raise ConfigError(
                f"search space has entries for {', '.join(sorted(raw))} but not for "
                f"estimator {estimator!r}"
            )
        origin = "given"
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(
            f"the {origin} search space of {estimator!r} is empty (after leaving out fixed "
            "params): nothing to tune"
        )
    params: list[ParamSpec] = []
    fixed = dict(fixed_params or {})
    for name, spec in raw.items():
        if not isinstance(name, str):
            raise ConfigError(f"search space of {estimator!r}: parameter name {name!r} is not text")
        if name not in valid:
            raise ConfigError(
                f"search space of {estimator!r}: unknown parameter {name!r} for {cls_name}; "
                f"valid parameters: {', '.join(valid)}"
            )
        if name in fixed:
            raise ConfigError(
                f"parameter {name!r} is both fixed (params={fixed[name]!r}) and in the search "
                f"space of {estimator!r}: remove it from one of them"
            )
        param = parse_param(estimator, name, spec)
        _check_values(task, estimator, param, fixed)
        params.append(param)
    return SearchSpace(estimator=estimator, params=tuple(params))


def _check_values(task: str, estimator: str, param: ParamSpec, fixed: dict[str, Any]) -> None:
    """Every choice and both bounds must be values the estimator accepts (sklearn's own
    parameter constraints), so a typo fails the configuration instead of every trial."""
    from kfops.training import make_estimator

    values = list(param.choices or ()) if param.kind == "categorical" else [param.low, param.high]
    for value in values:
        try:
            make_estimator(task, estimator, {**fixed, param.name: value})
        except ConfigError as exc:
            raise ConfigError(
                f"search space of {estimator!r}: parameter {param.name!r} value {value!r} is "
                f"not accepted: {' '.join(str(exc).split())}"
            ) from None
