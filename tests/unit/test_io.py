"""The one home of atomic writes (kfops.io.atomic_path): files get the process's normal mode,
not mkstemp's 0600, and a failed write changes nothing."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from kfops.data import write_snapshot
from kfops.io import atomic_path, default_file_mode, write_json_atomic, write_text_atomic


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_default_file_mode_follows_the_umask(umask: None) -> None:
    assert default_file_mode() == 0o644
    os.umask(0o027)
    assert default_file_mode() == 0o640


def test_atomic_writes_are_readable_like_other_files(tmp_path: Path, umask: None) -> None:
    from sklearn.dummy import DummyClassifier

    from kfops.training import save_model

    write_text_atomic(tmp_path / "a.txt", "x")
    write_json_atomic(tmp_path / "b.json", {"x": 1})
    write_snapshot(pd.DataFrame({"x": [1, 2]}), tmp_path / "c.parquet")
    save_model(DummyClassifier().fit([[0], [1]], [0, 1]), tmp_path / "d.joblib")  # type: ignore[arg-type]
    for name in ("a.txt", "b.json", "c.parquet", "d.joblib"):
        assert _mode(tmp_path / name) == 0o644, name
    os.umask(0o077)  # a user who wants private files gets them
    write_text_atomic(tmp_path / "private.txt", "x")
    assert _mode(tmp_path / "private.txt") == 0o600


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]
