"""Settings: precedence (flags > env > defaults), path resolution, parsing errors."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kfops.config import Settings, _env
from kfops.errors import ConfigError


def test_defaults_are_resolved_at_call_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    s = Settings.from_env({})
    assert s.registry_root == tmp_path.resolve() / ".kfops" / "registry"
    assert s.capture_dir == tmp_path.resolve() / ".kfops" / "registry" / "capture"
    assert s.keep_runs == 10
    assert s.model_name is None and s.kfp_host is None and s.kfp_namespace is None
    assert s.image == "kfops:0.1.0"
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    assert Settings.from_env({}).registry_root == other.resolve() / ".kfops" / "registry"


def test_env_over_defaults_and_relative_paths_become_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {
        "KFOPS_REGISTRY_ROOT": "reg",
        "KFOPS_MODEL_NAME": "penguins",
        "KFOPS_IMAGE": "kfops:dev",
        "KFOPS_KFP_HOST": "http://localhost:8888",
        "KFOPS_KFP_NAMESPACE": "kubeflow",
        "KFOPS_CAPTURE_DIR": "~/cap",
    }
    s = Settings.from_env(env)
    assert s.registry_root == tmp_path.resolve() / "reg" and s.registry_root.is_absolute()
    assert s.capture_dir == (Path.home() / "cap").resolve()
    assert (s.model_name, s.image, s.kfp_host, s.kfp_namespace) == (
        "penguins",
        "kfops:dev",
        "http://localhost:8888",
        "kubeflow",
    )


def test_capture_follows_the_registry_unless_set(tmp_path: Path) -> None:
    """`kfops serve` writes and `kfops monitor` reads <registry>/capture by default."""
    by_flag = Settings.from_env({}, registry_root=tmp_path / "reg")
    assert by_flag.capture_dir == tmp_path / "reg" / "capture"
    by_env = Settings.from_env({"KFOPS_REGISTRY_ROOT": str(tmp_path / "r2")})
    assert by_env.capture_dir == tmp_path / "r2" / "capture"
    explicit = Settings.from_env(
        {"KFOPS_CAPTURE_DIR": str(tmp_path / "cap")}, registry_root=tmp_path / "reg"
    )
    assert explicit.capture_dir == tmp_path / "cap"
    assert Settings.from_env({}, capture_dir=tmp_path / "c").capture_dir == tmp_path / "c"


def test_keep_runs_from_env_or_flag() -> None:
    assert Settings.from_env({"KFOPS_KEEP_RUNS": "3"}).keep_runs == 3
    assert Settings.from_env({"KFOPS_KEEP_RUNS": "3"}, keep_runs=0).keep_runs == 0
    with pytest.raises(ConfigError, match="KFOPS_KEEP_RUNS"):
        Settings.from_env({"KFOPS_KEEP_RUNS": "many"})


def test_kfp_host_falls_back_to_kf_pipelines_endpoint() -> None:
    assert Settings.from_env({"KF_PIPELINES_ENDPOINT": "http://a"}).kfp_host == "http://a"
    both = {"KF_PIPELINES_ENDPOINT": "http://a", "KFOPS_KFP_HOST": "http://b"}
    assert Settings.from_env(both).kfp_host == "http://b"
    assert (
        Settings.from_env({"KFOPS_KFP_HOST": "", "KF_PIPELINES_ENDPOINT": "http://a"}).kfp_host
        == "http://a"
    )


def test_flags_over_env_and_none_flags_ignored(tmp_path: Path) -> None:
    env = {"KFOPS_MODEL_NAME": "from-env", "KFOPS_REGISTRY_ROOT": str(tmp_path / "env")}
    s = Settings.from_env(env, model_name="from-flag", registry_root=None, image=None)
    assert s.model_name == "from-flag"
    assert s.registry_root == tmp_path / "env"
    assert s.image == "kfops:0.1.0"
    s2 = Settings.from_env(env, registry_root=tmp_path / "flag")
    assert s2.registry_root == tmp_path / "flag"


def test_reads_os_environ_when_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KFOPS_IMAGE", "kfops:from-os")
    assert Settings.from_env().image == "kfops:from-os"


def test_unknown_override_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown setting 'registy_root'"):
        Settings.from_env({}, registy_root="x")


def test_settings_is_frozen_and_serialisable(tmp_path: Path) -> None:
    s = Settings(registry_root=str(tmp_path))  # type: ignore[arg-type]
    assert s.registry_root == tmp_path.resolve()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.image = "x"  # type: ignore[misc]
    assert s.to_dict()["registry_root"] == str(tmp_path.resolve())


@dataclass(frozen=True)
class _Extended(Settings):
    """How another module adds typed settings: a field with env metadata."""

    port: int = field(default=8080, metadata=_env("KFOPS_PORT"))
    threshold: float = field(default=0.2, metadata=_env("KFOPS_THRESHOLD"))
    debug: bool = field(default=False, metadata=_env("KFOPS_DEBUG"))
    labels_dir: Path | None = field(default=None, metadata=_env("KFOPS_LABELS_DIR"))


def test_typed_fields_parse_and_report_the_variable(tmp_path: Path) -> None:
    s = _Extended.from_env(
        {
            "KFOPS_PORT": "9000",
            "KFOPS_THRESHOLD": "0.3",
            "KFOPS_DEBUG": "yes",
            "KFOPS_LABELS_DIR": str(tmp_path),
        }
    )
    assert (s.port, s.threshold, s.debug, s.labels_dir) == (9000, 0.3, True, tmp_path.resolve())
    assert _Extended.from_env({"KFOPS_PORT": "9000"}, port=7000).port == 7000
    assert _Extended.from_env({}, threshold=1).threshold == 1.0
    with pytest.raises(ConfigError, match="KFOPS_PORT: expected int, got 'eighty'"):
        _Extended.from_env({"KFOPS_PORT": "eighty"})
    with pytest.raises(ConfigError, match="KFOPS_DEBUG: expected a boolean"):
        _Extended.from_env({"KFOPS_DEBUG": "maybe"})
    with pytest.raises(ConfigError, match="--port: expected int"):
        _Extended.from_env({}, port="x")
