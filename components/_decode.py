"""The KFP edge: pipeline parameters arrive as strings; decode them here, nowhere else.

JSON objects (estimator params, blessing thresholds, the monitoring policy, lineage values) and
comma-separated column lists become typed values before any kfops step sees them. Each error is
a ConfigError naming the parameter, raised inside the task boundary (``RunContext.task``) so a
training run records it like any other user error.
"""

from __future__ import annotations

import json
from typing import Any

from kfops.errors import ConfigError


def json_object(text: str | None, what: str) -> dict[str, Any]:
    """A JSON object; empty text means ``{}``."""
    if text is None or not str(text).strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what} are not valid JSON ({exc.msg}): {text!r}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{what} must be a JSON object, got {text!r}")
    return value


def params(text: str | None) -> dict[str, Any]:
    """Estimator parameters (``params_json``)."""
    return json_object(text, "estimator params")


def thresholds(text: str | None) -> dict[str, Any]:
    """Blessing thresholds, ``{metric: threshold}`` (``thresholds_json``)."""
    return json_object(text, "blessing thresholds")


def policy(text: str | None) -> dict[str, Any]:
    """Monitoring policy settings (``policy_json``)."""
    return json_object(text, "monitoring policy settings")


def columns(text: str | None) -> tuple[str, ...]:
    """A comma-separated column list (``drop_columns``); blanks are dropped."""
    return tuple(c.strip() for c in (text or "").split(",") if c.strip())
