"""Reading tables from files and URLs, fingerprints, Parquet snapshots."""

from __future__ import annotations

import functools
import http.server
import importlib.util
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kfops.data import (
    FINGERPRINT_FILE,
    Fingerprint,
    extract,
    fingerprint,
    load_snapshot,
    read_table,
)
from kfops.datasets import default_data_path, make_messy
from kfops.errors import DataError
from kfops.io import read_json, sha256_file
from tests.conftest import free_port

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"
SMALL = FIXTURES / "penguins_small.csv"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def http_base() -> Iterator[str]:
    """A real HTTP server on a free port serving tests/fixtures/data."""
    handler = functools.partial(_QuietHandler, directory=str(FIXTURES))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# -- reading ------------------------------------------------------------------------------------


def test_read_csv_keeps_dates_as_strings(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("when,x\n2021-01-02,1\n2021-02-03,2\n")
    df = read_table(str(path))
    assert df["when"].dtype == object and df["when"].iloc[0] == "2021-01-02"
    assert df["x"].dtype == np.int64


def test_read_local_file_url_and_pathlike() -> None:
    expected = pd.read_csv(SMALL)
    pd.testing.assert_frame_equal(read_table(SMALL), expected)
    pd.testing.assert_frame_equal(read_table(SMALL.as_uri()), expected)


def test_read_parquet_by_suffix_and_by_magic_bytes(tmp_path: Path) -> None:
    df = make_messy(40, seed=1)
    df.to_parquet(tmp_path / "m.parquet", index=False)
    df.to_parquet(tmp_path / "no_suffix", index=False)
    df.to_csv(tmp_path / "csv_no_suffix", index=False)
    pd.testing.assert_frame_equal(read_table(tmp_path / "m.parquet"), df)
    pd.testing.assert_frame_equal(read_table(tmp_path / "no_suffix"), df)
    assert read_table(tmp_path / "csv_no_suffix").shape == df.shape


def test_read_gzipped_csv(tmp_path: Path) -> None:
    df = pd.read_csv(SMALL)
    df.to_csv(tmp_path / "s.csv.gz", index=False)
    pd.testing.assert_frame_equal(read_table(tmp_path / "s.csv.gz"), df)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data file not found: .*nope\.csv"):
        read_table(tmp_path / "nope.csv")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is a directory, expected a CSV or Parquet file"):
        read_table(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(DataError, match=r"data file .*empty\.csv is empty"):
        read_table(path)
    blank = tmp_path / "blank.csv"
    blank.write_text("\n\n")
    with pytest.raises(DataError, match=r"blank\.csv is empty"):
        read_table(blank)


def test_header_without_rows(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text("a,b,c\n")
    with pytest.raises(DataError, match=r"header\.csv has a header but no rows"):
        read_table(path)


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "model.csv"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(DataError, match=r"model\.csv is not a CSV or Parquet file \(it looks bin"):
        read_table(path)


def test_undecodable_text(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(b"name,city\n\xe9t\xe9,K\xf6ln\n")
    with pytest.raises(
        DataError, match=r"latin\.csv is not a readable text CSV \(.*\); save it as UTF-8"
    ):
        read_table(path)


def test_malformed_csv(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,2\n3,4,5,6\n")
    with pytest.raises(DataError, match=r"ragged\.csv is not a valid CSV: .*Expected 2 fields"):
        read_table(path)


def test_corrupt_parquet(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1" + b"\x01garbage" * 10)
    with pytest.raises(DataError, match=r"broken\.parquet is not a valid Parquet file"):
        read_table(path)


def test_http_download(http_base: str) -> None:
    df = read_table(f"{http_base}/penguins_small.csv")
    pd.testing.assert_frame_equal(df, pd.read_csv(SMALL))


def test_http_not_found_names_url_and_status(http_base: str) -> None:
    url = f"{http_base}/missing.csv"
    with pytest.raises(DataError, match=rf"could not download {url}: HTTP 404"):
        read_table(url)


def test_http_connection_refused_names_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/data.csv"
    with pytest.raises(DataError, match=rf"could not download {url}: ConnectionError"):
        read_table(url)


def test_fsspec_memory_filesystem() -> None:
    # memory:// is a real fsspec filesystem: the same path s3:// takes once s3fs is installed.
    fs = fsspec.filesystem("memory")
    with fs.open("/kfops-test/small.csv", "wb") as fh:
        fh.write(SMALL.read_bytes())
    try:
        df = read_table("memory://kfops-test/small.csv")
        pd.testing.assert_frame_equal(df, pd.read_csv(SMALL))
        with pytest.raises(DataError, match=r"data file not found: memory://kfops-test/nope"):
            read_table("memory://kfops-test/nope.csv")
    finally:
        fs.rm("/kfops-test", recursive=True)


def test_unknown_scheme() -> None:
    with pytest.raises(DataError, match=r"cannot read foo://x/y\.csv: unknown URL scheme 'foo'"):
        read_table("foo://x/y.csv")


@pytest.mark.skipif(importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed")
def test_s3_without_s3fs_says_what_is_missing() -> None:
    with pytest.raises(DataError, match=r"cannot read s3://bucket/d\.csv: the 's3' filesystem"):
        read_table("s3://bucket/d.csv")


# -- fingerprints -------------------------------------------------------------------------------


def test_fingerprint_same_for_csv_and_parquet(tmp_path: Path) -> None:
    from_csv = read_table(default_data_path())
    from_csv.to_parquet(tmp_path / "p.parquet", index=False)
    from_parquet = read_table(tmp_path / "p.parquet")
    # The object column 'sex' has nulls: NaN from CSV, None from Parquet; same fingerprint.
    assert from_parquet["sex"].isna().sum() == 11
    a, b = fingerprint(from_csv), fingerprint(from_parquet)
    assert a == b
    assert a.rows == 344 and a.columns == 8
    assert a.schema["species"] == "object" and a.schema["year"] == "int64"


def test_fingerprint_sees_values_names_and_dtypes_not_the_index() -> None:
    df = pd.read_csv(SMALL)
    base = fingerprint(df).sha256
    assert fingerprint(df.set_axis(range(100, 130))).sha256 == base
    changed = df.copy()
    changed.loc[0, "island"] = "Dream"
    assert fingerprint(changed).sha256 != base
    assert fingerprint(df.rename(columns={"year": "yr"})).sha256 != base
    assert fingerprint(df.astype({"year": "float64"})).sha256 != base


def test_fingerprint_dict_round_trip() -> None:
    fp = fingerprint(pd.read_csv(SMALL), source_uri="file:///x.csv")
    data = fp.to_dict()
    assert data["source_uri"] == "file:///x.csv"
    assert Fingerprint.from_dict(data) == fp
    with pytest.raises(DataError, match="malformed fingerprint"):
        Fingerprint.from_dict({"rows": 1})


# -- snapshots ----------------------------------------------------------------------------------


def test_extract_writes_snapshot_and_fingerprint(tmp_path: Path) -> None:
    snap = tmp_path / "out" / "snapshot.parquet"
    fp = extract(str(default_data_path()), snap)
    assert snap.read_bytes()[:4] == b"PAR1"
    assert read_json(snap.parent / FINGERPRINT_FILE) == fp.to_dict()
    assert fp.source_uri == str(default_data_path())
    df = load_snapshot(snap)
    pd.testing.assert_frame_equal(df, read_table(default_data_path()), check_dtype=True)
    assert fingerprint(df).sha256 == fp.sha256


def test_extract_is_byte_deterministic(tmp_path: Path) -> None:
    a = tmp_path / "a" / "s.parquet"
    b = tmp_path / "b" / "s.parquet"
    extract(SMALL, a)
    extract(SMALL, b)
    assert sha256_file(a) == sha256_file(b)
    assert (a.parent / FINGERPRINT_FILE).read_bytes() != b""


def test_extract_of_bad_input_writes_nothing(tmp_path: Path) -> None:
    snap = tmp_path / "s.parquet"
    with pytest.raises(DataError, match=r"data file not found: .*missing\.csv"):
        extract(tmp_path / "missing.csv", snap)
    assert not snap.exists() and not (tmp_path / FINGERPRINT_FILE).exists()


def test_load_snapshot_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no data snapshot at .*x\.parquet"):
        load_snapshot(tmp_path / "x.parquet")


def test_nested_values_still_fingerprint_and_snapshot(tmp_path: Path) -> None:
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "tags": [["a"], ["b", "c"], []]})
    df.to_parquet(tmp_path / "nested.parquet", index=False)
    back = read_table(tmp_path / "nested.parquet")  # list cells come back as numpy arrays
    assert fingerprint(back).sha256 == fingerprint(df).sha256
    changed = df.assign(tags=[["a"], ["b"], []])
    assert fingerprint(changed).sha256 != fingerprint(df).sha256


_SAFE_TEXT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz ,\"'", min_size=1, max_size=12).map(
    lambda s: "s" + s  # never empty, never a number or an NA token once read back from CSV
)


@st.composite
def _frames(draw: st.DrawFn) -> pd.DataFrame:
    rows = draw(st.integers(min_value=1, max_value=30))
    ints = draw(st.lists(st.integers(-(2**40), 2**40), min_size=rows, max_size=rows))
    floats = draw(
        st.lists(
            st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False, width=64)),
            min_size=rows,
            max_size=rows,
        )
    )
    texts = draw(st.lists(st.one_of(st.none(), _SAFE_TEXT), min_size=rows, max_size=rows))
    frame = pd.DataFrame(
        {
            "i": np.array(ints, dtype=np.int64),
            "f": np.array([np.nan if v is None else v for v in floats], dtype=np.float64),
            "t": pd.Series([np.nan if v is None else v for v in texts], dtype=object),
        }
    )
    # A column with no value at all reads back from CSV as float64: keep one string present.
    if frame["t"].isna().all():
        frame.loc[0, "t"] = "sx"
    return frame


@settings(max_examples=40, deadline=None)
@given(frame=_frames())
def test_fingerprint_is_the_same_from_csv_and_parquet(frame: pd.DataFrame) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        csv, parquet = Path(tmp) / "t.csv", Path(tmp) / "t.parquet"
        frame.to_csv(csv, index=False)
        frame.to_parquet(parquet, index=False)
        a, b = read_table(csv), read_table(parquet)
        assert fingerprint(a) == fingerprint(b) == fingerprint(frame)


# -- separators ---------------------------------------------------------------------------------


def _european(rows: int = 30) -> pd.DataFrame:
    """Values that contain the other separators: commas in names, a '|' in a note."""
    return pd.DataFrame(
        {
            "name": [f"Smith, J{i}" for i in range(rows)],
            "amount": [1.5 * i for i in range(rows)],
            "note": ["a|b" if i % 3 else "plain" for i in range(rows)],
            "day": [f"2014/03/{1 + i % 28:02d}" for i in range(rows)],
        }
    )


@pytest.mark.parametrize(
    ("file_name", "sep"),
    [
        ("semi.csv", ";"),
        ("tabs.tsv", "\t"),
        ("tabs.txt", "\t"),
        ("pipes.csv", "|"),
        ("semi.csv.gz", ";"),
        ("tabs.tsv.bz2", "\t"),
        ("comma.csv.xz", ","),
    ],
)
def test_separator_is_sniffed(tmp_path: Path, file_name: str, sep: str) -> None:
    df = _european()
    if sep == "|":
        df = df.drop(columns="note")
    path = tmp_path / file_name
    df.to_csv(path, sep=sep, index=False)
    pd.testing.assert_frame_equal(read_table(path), df)


def test_tsv_url_keeps_its_suffixes() -> None:
    from kfops.data import _suffix_of

    assert _suffix_of("/data/x.tsv.gz") == ".tsv.gz"
    assert _suffix_of("/data/x.csv") == ".csv"
    assert _suffix_of("/data/x.parquet") == ".parquet"


def test_one_long_column_names_the_separator_tried_and_the_likely_one(tmp_path: Path) -> None:
    # The header splits on ';' but the rows do not (a stray ';' in one row): nothing sniffs,
    # so the table would read as one column of 'a;b;c'.
    path = tmp_path / "odd.csv"
    path.write_text("a;b;c\n1;2;3\n4;5;6;7\n8;9;10\n")
    with pytest.raises(DataError) as err:
        read_table(path)
    message = str(err.value)
    assert "reads as a single column 'a;b;c' with separator ','" in message
    assert "looks separated by ';'" in message


def test_a_single_column_without_separators_reads_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    path.write_text("value\n1\n2\n3\n")
    assert list(read_table(path).columns) == ["value"]


def test_semicolon_files_with_decimal_commas_read_as_numbers(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "name;price;day\nA, Inc.;1,5;2014/03/03\nB;2,25;2014/03/04\nC;-3,0;2014/03/05\n"
    )
    df = read_table(path)
    assert df["price"].tolist() == [1.5, 2.25, -3.0]
    assert df["name"].tolist() == ["A, Inc.", "B", "C"]
    # A ';' file with decimal points keeps them; one that mixes both is left to the contract.
    path.write_text("x;y\n1.5;a\n2.5;b\n")
    assert read_table(path)["x"].tolist() == [1.5, 2.5]
    path.write_text("x;y\n1.5;a\n2,5;b\n")
    assert read_table(path)["x"].tolist() == ["1.5", "2,5"]
