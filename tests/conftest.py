"""Shared test helpers.

Tests that need an outside binary or service call ``require_binary``/``require`` so they skip
with a visible reason on a laptop, and FAIL when ``KFOPS_REQUIRE_INTEGRATION=1`` (CI).

Tests never sleep for a fixed time and never bound wall-clock time: what happens in another
thread or process is awaited with ``wait_for`` (a condition and a generous deadline), so a slow
or busy machine makes a test slower, not red.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

T = TypeVar("T")


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


def wait_for(predicate: Callable[[], T], timeout: float, what: str, every: float = 0.05) -> T:
    """Poll ``predicate`` until it returns something truthy and return that; after ``timeout``
    seconds fail naming ``what`` and the last value seen. The deadline only bounds a wait for
    something that should happen: a slow machine passes, a condition that never holds fails."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what} (last: {value!r})")
        time.sleep(every)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a server started by a test; kill it if it does not stop within 20 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def registry_root(tmp_path: Path) -> Path:
    root = tmp_path / "registry"
    root.mkdir()
    return root
