"""One typed settings object for every kfops entry point.

Precedence: explicit overrides (CLI flags) > environment (``KFOPS_*``) > defaults. Nothing is
read at import time: call :meth:`Settings.from_env` when a command starts.

To add a setting, add a dataclass field with ``metadata=_env("KFOPS_NAME")``; ``from_env``
picks it up, parses it from the field's type (str, int, float, bool, Path, or ``| None`` of
those) and reports a bad value as a :class:`ConfigError` naming the variable.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfops.defaults import DEPLOY_NAMESPACE, IMAGE, KEEP_RUNS
from kfops.errors import ConfigError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _env(*names: str) -> dict[str, tuple[str, ...]]:
    """Field metadata: the environment variables for a field, first match wins."""
    return {"env": names}


def _default_home() -> Path:
    # Evaluated when a Settings is created, never at import time.
    return Path.cwd() / ".kfops"


@dataclass(frozen=True)
class Settings:
    """Resolved kfops settings. Paths are always absolute."""

    registry_root: Path = field(
        default_factory=lambda: _default_home() / "registry", metadata=_env("KFOPS_REGISTRY_ROOT")
    )
    # None: the caller picks a default (usually derived from the data set).
    model_name: str | None = field(default=None, metadata=_env("KFOPS_MODEL_NAME"))
    image: str = field(default=IMAGE, metadata=_env("KFOPS_IMAGE"))
    kfp_host: str | None = field(
        default=None, metadata=_env("KFOPS_KFP_HOST", "KF_PIPELINES_ENDPOINT")
    )
    kfp_namespace: str | None = field(default=None, metadata=_env("KFOPS_KFP_NAMESPACE"))
    # Payload capture of `kfops serve`, read by `kfops monitor`: <registry_root>/capture unless
    # set (from_env derives it from the registry root it resolved; kfops.run_roots).
    capture_dir: Path = field(
        default_factory=lambda: _default_home() / "registry" / "capture",
        metadata=_env("KFOPS_CAPTURE_DIR"),
    )
    # Local runs whose pipeline root and log are kept (kfops.run_roots.prune); 0 keeps all.
    keep_runs: int = field(default=KEEP_RUNS, metadata=_env("KFOPS_KEEP_RUNS"))
    # Where a Kubeflow training run deploys a blessed model: "cluster" applies the
    # InferenceService in deploy_namespace, "local" only moves the champion alias.
    deploy_target: str = field(default="cluster", metadata=_env("KFOPS_DEPLOY_TARGET"))
    deploy_namespace: str = field(default=DEPLOY_NAMESPACE, metadata=_env("KFOPS_DEPLOY_NAMESPACE"))
    # Signed model versions (kfops.signing): each a PEM file path or the PEM text itself.
    # The signing key (register) lives outside the registry; loaders need only the verify key.
    model_signing_key: str | None = field(default=None, metadata=_env("KFOPS_MODEL_SIGNING_KEY"))
    model_verify_key: str | None = field(default=None, metadata=_env("KFOPS_MODEL_VERIFY_KEY"))
    # The retraining trigger (kfops.trigger): the bearer token Alertmanager must send, where its
    # dedupe/cooldown state is kept (default <registry_root>/../trigger), and on Kubeflow the
    # comma-separated models it may retrain (locally: the models in the registry).
    webhook_token_file: Path | None = field(default=None, metadata=_env("KFOPS_WEBHOOK_TOKEN_FILE"))
    trigger_state_dir: Path | None = field(default=None, metadata=_env("KFOPS_TRIGGER_STATE_DIR"))
    trigger_models: str | None = field(default=None, metadata=_env("KFOPS_TRIGGER_MODELS"))

    def __post_init__(self) -> None:
        # Accept str paths from callers, store absolute Paths so later chdir() cannot move them.
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None and Path in _base_types(hints[f.name]):
                object.__setattr__(self, f.name, Path(value).expanduser().resolve())

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``) and non-None ``overrides``.

        Empty environment values count as unset. An unknown override name or an unparsable
        value raises ConfigError.
        """
        env = os.environ if environ is None else environ
        hints = typing.get_type_hints(cls)
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise ConfigError(f"unknown setting {unknown[0]!r}; known: {', '.join(sorted(known))}")
        values: dict[str, Any] = {}
        for name, f in known.items():
            if overrides.get(name) is not None:
                values[name] = _parse(hints[name], overrides[name], f"--{name.replace('_', '-')}")
                continue
            for var in f.metadata.get("env", ()):
                raw = env.get(var)
                if raw is not None and raw.strip() != "":
                    values[name] = _parse(hints[name], raw.strip(), var)
                    break
        if "capture_dir" not in values and "registry_root" in values:
            from kfops.run_roots import capture_root

            values["capture_dir"] = capture_root(Path(values["registry_root"]))
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()
        }


def _base_types(hint: Any) -> tuple[type, ...]:
    """``Path | None`` -> (Path,); ``str`` -> (str,)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return tuple(a for a in typing.get_args(hint) if a is not type(None))
    return (hint,)


def _parse(hint: Any, value: Any, source: str) -> Any:
    """Convert ``value`` (a string from env/CLI, or an already typed value) to ``hint``."""
    (kind, *_rest) = _base_types(hint)
    if not isinstance(value, str):
        if kind is Path and isinstance(value, os.PathLike):
            return Path(value)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, kind):
            return value
        raise ConfigError(f"{source}: expected {kind.__name__}, got {value!r}")
    if kind is bool:
        low = value.lower()
        if low in _TRUE or low in _FALSE:
            return low in _TRUE
        raise ConfigError(f"{source}: expected a boolean (true/false), got {value!r}")
    if kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            raise ConfigError(f"{source}: expected {kind.__name__}, got {value!r}") from None
    return kind(value)
