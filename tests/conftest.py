"""Shared test helpers.

Tests that need an outside binary or service call ``require_binary``/``require`` so they skip
with a visible reason on a laptop, and FAIL when ``KFOPS_REQUIRE_INTEGRATION=1`` (CI).
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def integration_required() -> bool:
    return os.environ.get("KFOPS_REQUIRE_INTEGRATION") == "1"


def require(condition: bool, reason: str) -> None:
    """Skip (or fail under KFOPS_REQUIRE_INTEGRATION=1) when ``condition`` is false."""
    if condition:
        return
    if integration_required():
        pytest.fail(f"KFOPS_REQUIRE_INTEGRATION=1 but {reason}")
    pytest.skip(reason)


def require_binary(name: str) -> str:
    path = shutil.which(name)
    require(path is not None, f"binary {name!r} not found on PATH")
    assert path is not None
    return path


def crds_dir() -> Path:
    """The real CRD schemas: ../shared/crds beside the clone (as CI lays it out), or
    KFOPS_CRDS_DIR; a clone elsewhere on a developer machine falls back to /work/shared/crds."""
    env = os.environ.get("KFOPS_CRDS_DIR")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "crds"
    if not path.is_dir() and not env:
        path = Path("/work/shared/crds")
    require(path.is_dir(), f"CRD schemas not found at {path} (set KFOPS_CRDS_DIR)")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def registry_root(tmp_path: Path) -> Path:
    root = tmp_path / "registry"
    root.mkdir()
    return root
