"""The cache keys of the cacheable training steps follow the data's bytes and the champion."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from kfops import caching
from kfops.data import source_digest
from kfops.errors import DataError
from tests.unit.test_serving_fixtures import MODEL, make_registry, register_version


def test_same_bytes_same_key_changed_bytes_new_key(tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    data.write_text("a,b\n1,2\n")
    first = caching.keys(str(data), tmp_path / "registry", MODEL)
    assert first.data == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    assert caching.keys(f"file://{data}", tmp_path / "registry", MODEL) == first
    data.write_text("a,b\n1,3\n")  # same path, new content: extract must run again
    assert caching.keys(str(data), tmp_path / "registry", MODEL).data != first.data


def test_champion_is_part_of_the_key(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("a\n1\n")
    registry = tmp_path / "registry"
    assert caching.keys(str(data), registry, MODEL).champion == ""  # no registry yet
    make_registry(registry)
    assert caching.keys(str(data), registry, MODEL).champion == "v1"
    register_version(registry, aliases=("champion",))
    assert caching.keys(str(data), registry, MODEL).champion == "v2"


def test_no_cache_gives_a_fresh_key_every_time(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("a\n1\n")
    one = caching.keys(str(data), tmp_path, MODEL, use_cache=False)
    two = caching.keys(str(data), tmp_path, MODEL, use_cache=False)
    assert one.data != two.data and one.data.startswith(source_digest(data))


def test_http_source_is_hashed(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_bytes(b"x,y\n1,2\n")
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/d.csv"
        assert source_digest(url) == hashlib.sha256(b"x,y\n1,2\n").hexdigest()
        with pytest.raises(DataError, match="HTTP 404"):
            source_digest(url.replace("d.csv", "missing.csv"))
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("uri", "match"), [("", "no data path"), ("/no/such.csv", "not found")])
def test_bad_sources_are_one_clear_error(uri: str, match: str, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=match):
        source_digest(uri)
    with pytest.raises(DataError, match="is a directory"):
        source_digest(tmp_path)
