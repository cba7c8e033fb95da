"""The wheel (and so the image) holds every package of the source tree: pyproject lists the
sub-packages by hand (the mapped components/ and pipelines/ folders hide them from find)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_source_package_is_listed_in_pyproject() -> None:
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    src = ROOT / "src"
    found = {
        ".".join(init.parent.relative_to(src).parts) for init in src.glob("kfops/**/__init__.py")
    }
    assert found, "no packages found under src/kfops"
    missing = sorted(found - listed)
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {missing}"
