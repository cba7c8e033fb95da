"""Request validation against a data contract, without pandas on the request path.

The design notes measure a one-row DataFrame through pandas-based checks as costing more than
the model itself, so a contract is compiled once (``RequestSchema``) into one small checker per
feature, and a request is checked value by value into column lists. Every problem found is kept
(up to ``MAX_ERRORS``) so the 4xx body names each bad field, not only the first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kfops.contract_model import Contract, FeatureSpec
from kfops.errors import KfopsError
from kfops.parsing import (
    MAX_INT_BITS,
    NA_STRINGS,
    Unreadable,
    category_key,
    describe,
    is_missing,
    iso_text,
    read_bool,
    read_datetime,
    read_number,
    type_name,
    unnamed_header,
)

# Bounded reason vocabulary: these are also the values of the `reason` metric label.
REASONS: tuple[str, ...] = (
    "malformed_request",  # not JSON / not an object / unknown protocol fields
    "bad_shape",  # rows of the wrong length, tensors whose shape does not match their data
    "missing_feature",
    "unknown_feature",
    "wrong_type",
    "out_of_domain",  # a category (or boolean) value the model never saw
    "null_not_allowed",  # null / NaN where the contract says not nullable
    "batch_too_large",
    "bad_parameter",
)
MAX_ERRORS = 50
DEFAULT_MAX_ROWS = 10_000
# Names V2 callers may use for a single [n, k] tensor; any other single non-feature name works too.
PROBA_OUTPUT = "probabilities"


@dataclass(frozen=True)
class FieldError:
    field: str
    reason: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason, "message": self.message}


class RequestError(KfopsError):
    """A client request the model cannot answer; the server maps it to HTTP ``status``."""

    def __init__(self, errors: Sequence[FieldError], status: int = 422) -> None:
        self.errors = list(errors)
        self.status = status
        first = self.errors[0] if self.errors else FieldError("", "malformed_request", "bad")
        more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        super().__init__(f"{first.field}: {first.message}{more}")

    @property
    def reasons(self) -> list[str]:
        return sorted({e.reason for e in self.errors})

    def body(self) -> dict[str, Any]:
        return {"error": str(self), "errors": [e.to_dict() for e in self.errors]}


def _reject(field_name: str, reason: str, message: str, status: int = 400) -> RequestError:
    return RequestError([FieldError(field_name, reason, message)], status=status)


class _Bad(Exception):
    """Raised by a feature checker; cheap because it only happens for bad input."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.message = message


_MAX_DIM = 2**31
_describe = describe
_type_name = type_name
_UNSEEN = object()

Checker = Callable[[Any], Any]


def _null(nullable: bool, what: str = "null") -> None:
    if not nullable:
        raise _Bad("null_not_allowed", f"{what} is not allowed for this feature")


def _numeric_checker(spec: FeatureSpec, strict: bool) -> Checker:
    nullable = spec.nullable

    def check(value: Any) -> Any:
        kind = type(value)
        if kind is float and value == value and not math.isinf(value):
            return value  # the common case first
        try:
            number = read_number(value)
        except Unreadable as exc:
            raise _Bad("wrong_type", str(exc)) from None
        if number is None:
            _null(nullable, "NaN" if kind is float else "null")
            return math.nan
        return number

    return check


def _categorical_checker(spec: FeatureSpec, strict: bool) -> Checker:
    """Known values come back as the contract's own category value; unseen ones as sent (the
    encoder ignores them; ``RequestSchema.unseen`` counts them), or 422 when ``strict``."""
    nullable = spec.nullable
    known = {category_key(c): c for c in spec.categories} if spec.categories else None
    shown = ", ".join(repr(c) for c in (spec.categories or ())[:20])
    boolean = spec.kind == "boolean"

    def check(value: Any) -> Any:
        kind = type(value)
        if boolean:
            try:
                value = read_bool(value)
            except Unreadable as exc:
                raise _Bad("wrong_type", str(exc)) from None
            kind = type(value)
        elif kind not in (str, int, float, bool) and value is not None:
            raise _Bad(
                "wrong_type",
                f"expected a category value, got {_type_name(value)} {_describe(value)}",
            )
        elif kind is int and value.bit_length() > MAX_INT_BITS:
            raise _Bad("out_of_domain", f"{_describe(value)} is not one of: {shown}")
        if value is None or (kind is float and value != value):
            _null(nullable, "NaN" if kind is float else "null")
            return None
        if known is None:
            return value
        found = known.get(category_key(value), _UNSEEN)
        if found is not _UNSEEN:
            return found
        if kind is str and value in NA_STRINGS:  # read_csv reads these as missing
            _null(nullable)
            return None
        if strict:
            raise _Bad("out_of_domain", f"{_describe(value)} is not one of: {shown}")
        return value

    return check


def _text_checker(spec: FeatureSpec, strict: bool) -> Checker:
    nullable = spec.nullable

    def check(value: Any) -> Any:
        kind = type(value)
        if kind is str and value not in NA_STRINGS:
            return value
        if is_missing(value):
            _null(nullable)
            return None
        if kind is int or kind is float:  # a number in a text column: its text, as a CSV has it
            if kind is int and value.bit_length() > MAX_INT_BITS:
                raise _Bad("wrong_type", f"expected a string, got {_describe(value)}")
            return category_key(value)
        raise _Bad("wrong_type", f"expected a string, got {_type_name(value)} {_describe(value)}")

    return check


def _datetime_checker(spec: FeatureSpec, strict: bool) -> Checker:
    """Dates come back as ISO 8601 text (the coercion reads it without pandas)."""
    nullable = spec.nullable
    formats = tuple(spec.formats or ())

    def check(value: Any) -> Any:
        try:
            moment = read_datetime(value, formats)
        except Unreadable as exc:
            raise _Bad("wrong_type", str(exc)) from None
        if moment is None:
            _null(nullable)
            return None
        return iso_text(moment)

    return check


_CHECKERS: dict[str, Callable[[FeatureSpec, bool], Checker]] = {
    "numeric": _numeric_checker,
    "categorical": _categorical_checker,
    "boolean": _categorical_checker,
    "text": _text_checker,
    "datetime": _datetime_checker,
}


@dataclass
class Batch:
    """A validated request: one list per feature (contract order) and request options."""

    columns: list[list[Any]]
    rows: int
    probabilities: bool = False
    request_id: str | None = None
    # V2 only: which outputs the caller asked for (None = the defaults).
    outputs: list[str] | None = None
    # feature -> values of categories (or booleans) the model never saw, served anyway
    unseen: dict[str, int] = field(default_factory=dict)


@dataclass
class _Collector:
    errors: list[FieldError] = field(default_factory=list)

    def add(self, field_name: str, reason: str, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(FieldError(field_name, reason, message))

    @property
    def full(self) -> bool:
        return len(self.errors) >= MAX_ERRORS


class RequestSchema:
    """A contract compiled for request checking (built once per loaded model version)."""

    def __init__(
        self,
        contract: Contract,
        max_rows: int = DEFAULT_MAX_ROWS,
        strict_categories: bool = False,
    ) -> None:
        self.contract = contract
        self.names: list[str] = contract.feature_names
        self.index = {name: i for i, name in enumerate(self.names)}
        self.name_set = frozenset(self.names)
        # A row of the training file also has the target and the dropped columns: ignored.
        self.ignored = contract.ignored_columns - self.name_set
        # An empty header is "Unnamed: <i>" to read_csv and "" to other readers: both name it.
        self.unnamed = unnamed_header([*self.names, *sorted(self.ignored)])
        self.strict_categories = strict_categories
        self.checkers: list[Checker] = [
            _CHECKERS[f.kind](f, strict_categories) for f in contract.features
        ]
        self.width = len(self.names)
        self.max_rows = max_rows
        self.classifier = contract.task == "classification"
        # (column index, feature, category keys) of the features with a known domain
        self._domains = [
            (j, f.name, frozenset(category_key(c) for c in f.categories))
            for j, f in enumerate(contract.features)
            if f.kind in ("categorical", "boolean") and f.categories
        ]

    def unseen(self, columns: list[list[Any]]) -> dict[str, int]:
        """Per feature, how many values of validated ``columns`` the model never saw in
        training (a strict schema refuses them instead)."""
        out: dict[str, int] = {}
        for j, name, keys in self._domains:
            count = 0
            for value in columns[j]:
                if value is not None and category_key(value) not in keys:
                    count += 1
            if count:
                out[name] = count
        return out

    # --- shared -------------------------------------------------------------------------------

    def _check_rows_count(self, n: int, where: str) -> None:
        if n == 0:
            raise _reject(where, "bad_shape", "no rows: send at least one instance")
        if n > self.max_rows:
            raise _reject(
                where,
                "batch_too_large",
                f"{n} rows is more than the limit of {self.max_rows} per request",
                status=422,
            )

    def _probabilities_flag(self, params: Any, where: str) -> bool:
        if params is None:
            return False
        if not isinstance(params, Mapping):
            raise _reject(where, "bad_parameter", "parameters must be a JSON object")
        flag = params.get("probabilities", False)
        if not isinstance(flag, bool):
            raise _reject(
                f"{where}.probabilities", "bad_parameter", "probabilities must be true or false"
            )
        if flag and not self.classifier:
            raise _reject(
                f"{where}.probabilities",
                "bad_parameter",
                "probabilities are only available for classification models",
                status=422,
            )
        return flag

    def _finish(self, errors: _Collector) -> None:
        if errors.errors:
            raise RequestError(errors.errors, status=422)

    def _batch(self, columns: list[list[Any]], n: int, probabilities: bool = False) -> Batch:
        unseen = {} if self.strict_categories else self.unseen(columns)
        return Batch(columns=columns, rows=n, probabilities=probabilities, unseen=unseen)

    # --- V1: {"instances": [...], "parameters": {...}} ---------------------------------------

    def parse_v1(self, body: Any) -> Batch:
        if not isinstance(body, Mapping):
            raise _reject(
                "body",
                "malformed_request",
                'the request body must be a JSON object like {"instances": [...]}',
            )
        extra = [k for k in body if k not in ("instances", "parameters")]
        if extra:
            hint = " (V2 requests go to /v2/models/<name>/infer)" if "inputs" in extra else ""
            raise _reject(
                str(extra[0]),
                "malformed_request",
                f"unknown top-level field(s) {sorted(map(str, extra))}; expected 'instances' "
                f"and optional 'parameters'{hint}",
            )
        instances = body.get("instances")
        if not isinstance(instances, list):
            raise _reject(
                "instances", "malformed_request", "'instances' must be a list of rows or objects"
            )
        probabilities = self._probabilities_flag(body.get("parameters"), "parameters")
        n = len(instances)
        self._check_rows_count(n, "instances")
        width = self.width
        checkers = self.checkers
        names = self.names
        columns: list[list[Any]] = [[None] * n for _ in range(width)]
        errors = _Collector()
        for r, row in enumerate(instances):
            kind = type(row)
            if kind is list:
                if len(row) != width:
                    errors.add(
                        f"instances[{r}]",
                        "bad_shape",
                        f"row has {len(row)} values, the model expects {width} in this order: "
                        f"{names}",
                    )
                    continue
                for j in range(width):
                    try:
                        columns[j][r] = checkers[j](row[j])
                    except _Bad as bad:
                        errors.add(f"instances[{r}].{names[j]}", bad.reason, bad.message)
            elif kind is dict:
                if self.unnamed is not None and "" in row and self.unnamed not in row:
                    row = {(self.unnamed if k == "" else k): v for k, v in row.items()}
                if row.keys() != self.name_set:
                    self._key_errors(row, f"instances[{r}]", errors)
                for j in range(width):
                    name = names[j]
                    if name not in row:
                        continue
                    try:
                        columns[j][r] = checkers[j](row[name])
                    except _Bad as bad:
                        errors.add(f"instances[{r}].{name}", bad.reason, bad.message)
            else:
                errors.add(
                    f"instances[{r}]",
                    "bad_shape",
                    f"each instance must be a list of {width} values or an object keyed by "
                    f"feature name, got {_type_name(row)}",
                )
            if errors.full:
                break
        self._finish(errors)
        return self._batch(columns, n, probabilities)

    def _key_errors(self, row: Mapping[str, Any], where: str, errors: _Collector) -> None:
        for name in self.names:
            if name not in row:
                errors.add(f"{where}.{name}", "missing_feature", "required feature is missing")
        for key in row:
            if key not in self.index and key not in self.ignored:
                errors.add(
                    f"{where}.{key}",
                    "unknown_feature",
                    f"not a feature of this model; features are {self.names}",
                )

    # --- V2 / Open Inference Protocol --------------------------------------------------------

    def parse_v2(self, request: Any) -> Batch:
        """Check a kserve ``InferRequest``: one [n, k] tensor, or one input per feature."""
        inputs = list(getattr(request, "inputs", None) or [])
        params = _plain_parameters(getattr(request, "parameters", None))
        probabilities = self._probabilities_flag(params, "parameters")
        outputs = [o.name for o in (getattr(request, "request_outputs", None) or [])]
        if outputs:
            unknown = [o for o in outputs if o not in ("predict", PROBA_OUTPUT)]
            if unknown:
                raise _reject(
                    "outputs",
                    "bad_parameter",
                    f"unknown output(s) {unknown}; available: ['predict', '{PROBA_OUTPUT}']",
                )
            if PROBA_OUTPUT in outputs:
                if not self.classifier:
                    raise _reject(
                        "outputs",
                        "bad_parameter",
                        "probabilities are only available for classification models",
                        status=422,
                    )
                probabilities = True
        if not inputs:
            raise _reject(
                "inputs", "bad_shape", "no inputs: send one [n, k] tensor or one input per feature"
            )
        if len(inputs) == 1 and (inputs[0].name not in self.index or self.width == 1):
            batch = self._v2_tensor(inputs[0])
        else:
            batch = self._v2_named(inputs)
        batch.probabilities = probabilities
        batch.request_id = getattr(request, "id", None)
        batch.outputs = outputs or None
        return batch

    def _v2_tensor(self, tensor: Any) -> Batch:
        where = f"inputs[{tensor.name!r}]"
        shape = _shape(tensor, where)
        data = _flat_data(tensor, where)
        width = self.width
        if len(shape) == 1 and shape[0] == width:
            shape = [1, width]
        if len(shape) != 2 or shape[1] != width:
            raise _reject(
                f"{where}.shape",
                "bad_shape",
                f"shape {shape} does not fit: a single tensor must be [n, {width}] with the "
                f"features in this order: {self.names}",
            )
        n = shape[0]
        self._check_rows_count(n, f"{where}.shape")
        if len(data) != n * width:
            raise _reject(
                f"{where}.data",
                "bad_shape",
                f"shape {shape} needs {n * width} values, data has {len(data)}",
            )
        checkers = self.checkers
        names = self.names
        columns: list[list[Any]] = [[None] * n for _ in range(width)]
        errors = _Collector()
        for r in range(n):
            base = r * width
            for j in range(width):
                try:
                    columns[j][r] = checkers[j](data[base + j])
                except _Bad as bad:
                    errors.add(f"{where}[{r}].{names[j]}", bad.reason, bad.message)
            if errors.full:
                break
        self._finish(errors)
        return self._batch(columns, n)

    def _v2_named(self, inputs: list[Any]) -> Batch:
        errors = _Collector()
        by_name: dict[str, Any] = {}
        for tensor in inputs:
            if tensor.name in by_name:
                errors.add(f"inputs[{tensor.name!r}]", "bad_shape", "input given twice")
            elif tensor.name in self.ignored:
                continue
            elif tensor.name not in self.index:
                errors.add(
                    f"inputs[{tensor.name!r}]",
                    "unknown_feature",
                    f"not a feature of this model; features are {self.names}",
                )
            else:
                by_name[tensor.name] = tensor
        for name in self.names:
            if name not in by_name:
                errors.add(f"inputs[{name!r}]", "missing_feature", "required feature is missing")
        self._finish(errors)
        n: int | None = None
        columns: list[list[Any]] = []
        for j, name in enumerate(self.names):
            tensor = by_name[name]
            where = f"inputs[{name!r}]"
            shape = _shape(tensor, where)
            if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
                raise _reject(f"{where}.shape", "bad_shape", f"shape {shape} must be [n] or [n, 1]")
            if n is None:
                n = shape[0]
                self._check_rows_count(n, f"{where}.shape")
            elif shape[0] != n:
                raise _reject(
                    f"{where}.shape",
                    "bad_shape",
                    f"has {shape[0]} rows, other inputs have {n}; all inputs need the same n",
                )
            data = _flat_data(tensor, where)
            if len(data) != n:
                raise _reject(
                    f"{where}.data", "bad_shape", f"shape {shape} needs {n} values, got {len(data)}"
                )
            check = self.checkers[j]
            column = [None] * n
            for r in range(n):
                try:
                    column[r] = check(data[r])
                except _Bad as bad:
                    errors.add(f"{where}[{r}]", bad.reason, bad.message)
                    if errors.full:
                        break
            columns.append(column)
        self._finish(errors)
        assert n is not None
        return self._batch(columns, n)


def _plain_parameters(params: Any) -> Any:
    if params is None or isinstance(params, Mapping):
        return params
    dump = getattr(params, "model_dump", None)  # pydantic Parameters of kserve's datamodel
    return dump() if callable(dump) else params


def _shape(tensor: Any, where: str) -> list[int]:
    shape = tensor.shape
    if (
        not isinstance(shape, list | tuple)
        or not shape
        or len(shape) > 8
        or not all(type(d) is int and 0 <= d < _MAX_DIM for d in shape)
    ):
        shown = [_describe(d) for d in shape[:8]] if isinstance(shape, list | tuple) else shape
        raise _reject(f"{where}.shape", "bad_shape", f"shape {shown!r} is not a list of sizes")
    return list(shape)


def _flat_data(tensor: Any, where: str) -> list[Any]:
    data = tensor.data
    if data is None:  # binary tensor extension: kserve keeps the bytes in _raw_data
        try:
            data = tensor.as_numpy().tolist()
        except Exception as exc:  # undecodable client bytes are a client error
            raise _reject(
                f"{where}.data", "malformed_request", f"cannot decode tensor: {exc}"
            ) from None
    if hasattr(data, "tolist"):
        data = data.tolist()
    if not isinstance(data, list):
        raise _reject(f"{where}.data", "malformed_request", "data must be a list")
    if data and isinstance(data[0], list):
        flat: list[Any] = []
        for item in data:
            if isinstance(item, list):
                if item and isinstance(item[0], list):
                    raise _reject(f"{where}.data", "bad_shape", "data nests deeper than [n, k]")
                flat.extend(item)
            else:
                raise _reject(f"{where}.data", "bad_shape", "data mixes lists and values")
        return flat
    for item in data:
        if isinstance(item, list):
            raise _reject(f"{where}.data", "bad_shape", "data mixes lists and values")
    return data
