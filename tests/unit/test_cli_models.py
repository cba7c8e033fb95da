"""`kfops models` and `kfops serve` name what is missing instead of printing an empty table."""

from __future__ import annotations

from pathlib import Path

import pytest

from kfops.cli import main
from kfops.registry import Registry


def test_unknown_model_is_named_with_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model.joblib"
    model.write_bytes(b"not loaded by `kfops models`")
    for name in ("synth", "penguins"):
        Registry(tmp_path).register(name, {"model.joblib": model}, {})
    assert main(["models", "nosuch", "--registry", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: unknown model 'nosuch' in {tmp_path}; known: penguins, synth"


def test_serve_on_an_empty_registry_says_to_train_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--registry", str(tmp_path), "--port", "0"]) == 2
    assert "has no models yet: train one with `kfops run`" in capsys.readouterr().err
