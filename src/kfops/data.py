"""Data ingestion: read a table from anywhere, fingerprint it, snapshot it as Parquet.

``read_table`` accepts a local path, ``file://``, ``http(s)://`` (requests) and any scheme fsspec
knows (``s3://`` once s3fs is installed). Every failure a user can cause is a ``DataError``
with one message naming the file. CSV date columns stay strings here: the data contract decides
which columns are dates.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import hashlib
import io
import lzma
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
import pandas as pd

from kfops.datasets import CSV_SUFFIXES, PARQUET_SUFFIXES, table_format
from kfops.errors import DataError
from kfops.io import atomic_path, write_json_atomic

PARQUET_MAGIC = b"PAR1"
HTTP_TIMEOUT = (10.0, 120.0)  # (connect, read) seconds
FINGERPRINT_FILE = "fingerprint.json"
_SNIFF_BYTES = 8192
# Separators sniffed from a text file's first lines, in order of preference on a tie.
SEPARATORS: tuple[str, ...] = (",", ";", "\t", "|")
_SEPARATOR_NAMES = {",": "','", ";": "';'", "\t": "tab", "|": "'|'"}
_SNIFF_LINES = 50
_SNIFF_TEXT_BYTES = 1 << 16


@dataclass(frozen=True)
class Fingerprint:
    """What a table is: a content hash plus its shape and schema (and where it came from)."""

    sha256: str
    rows: int
    columns: int
    schema: dict[str, str] = field(default_factory=dict)
    source_uri: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fingerprint:
        try:
            return cls(
                sha256=str(data["sha256"]),
                rows=int(data["rows"]),
                columns=int(data["columns"]),
                schema={str(k): str(v) for k, v in dict(data.get("schema", {})).items()},
                source_uri=str(data.get("source_uri", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"malformed fingerprint: {exc}") from exc


def fingerprint(df: pd.DataFrame, source_uri: str = "") -> Fingerprint:
    """Content hash over column names, dtypes and row values (the index is ignored)."""
    digest = hashlib.sha256()
    schema = {str(col): str(dtype) for col, dtype in df.dtypes.items()}
    for col, dtype in schema.items():
        digest.update(f"{col}\x1f{dtype}\x1e".encode())
    if len(df.columns) and len(df):
        try:
            hashed = pd.util.hash_pandas_object(df, index=False)
        except TypeError:
            # Lists/dicts (Parquet list columns, nested JSON) are unhashable: hash their text
            # instead, so such data can still be snapshotted and the column dropped later.
            nested = _nested_columns(df)
            flat = df.assign(**{c: df[c].map(_repr_cell) for c in nested})
            hashed = pd.util.hash_pandas_object(flat, index=False)
        digest.update(hashed.to_numpy().tobytes())
    return Fingerprint(
        sha256=digest.hexdigest(),
        rows=len(df),
        columns=len(df.columns),
        schema=schema,
        source_uri=source_uri,
    )


def _nested_columns(df: pd.DataFrame) -> list[str]:
    return [
        str(col)
        for col in df.columns
        if df[col].dtype == object
        and any(isinstance(v, list | dict | set | tuple | np.ndarray) for v in df[col].to_numpy())
    ]


def _repr_cell(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return repr(value.tolist())
    return repr(value) if isinstance(value, list | dict | set | tuple) else value


def _is_url(uri: str) -> bool:
    scheme = urlsplit(uri).scheme
    # A one-letter "scheme" is a Windows drive letter, not a URL.
    return len(scheme) > 1


@contextmanager
def _download_http(uri: str) -> Iterator[Path]:
    import requests

    suffix = _suffix_of(urlsplit(uri).path)
    with tempfile.TemporaryDirectory(prefix="kfops-download-") as tmp:
        local = Path(tmp) / f"data{suffix}"
        try:
            with requests.get(uri, stream=True, timeout=HTTP_TIMEOUT) as resp:
                if resp.status_code != 200:
                    reason = f" {resp.reason}" if resp.reason else ""
                    raise DataError(f"could not download {uri}: HTTP {resp.status_code}{reason}")
                with open(local, "wb") as fh:
                    for chunk in resp.iter_content(chunk_size=1 << 20):
                        fh.write(chunk)
        except requests.RequestException as exc:
            raise DataError(f"could not download {uri}: {type(exc).__name__}: {exc}") from exc
        yield local


@contextmanager
def _download_fsspec(uri: str) -> Iterator[Path]:
    import fsspec

    scheme = urlsplit(uri).scheme
    try:
        fsspec.get_filesystem_class(scheme)
    except ValueError as exc:
        raise DataError(f"cannot read {uri}: unknown URL scheme {scheme!r}") from exc
    except ImportError as exc:
        # fsspec knows the scheme but its filesystem package (s3fs, gcsfs, ...) is missing.
        raise DataError(
            f"cannot read {uri}: the {scheme!r} filesystem is not installed ({exc})"
        ) from exc
    suffix = _suffix_of(urlsplit(uri).path)
    with tempfile.TemporaryDirectory(prefix="kfops-download-") as tmp:
        local = Path(tmp) / f"data{suffix}"
        try:
            with fsspec.open(uri, "rb") as src, open(local, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except FileNotFoundError as exc:
            raise DataError(f"data file not found: {uri}") from exc
        except IsADirectoryError as exc:
            raise DataError(f"{uri} is a directory, expected a CSV or Parquet file") from exc
        except Exception as exc:  # remote filesystems raise many kinds (auth, network, ...)
            raise DataError(f"cannot read {uri}: {type(exc).__name__}: {exc}") from exc
        yield local


def _suffix_of(path: str) -> str:
    name = path.rsplit("/", 1)[-1].lower()
    # Longest first: ".tsv.gz" must keep both parts (the format and the compression).
    for suffix in sorted(CSV_SUFFIXES + PARQUET_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    return os.path.splitext(name)[1]


def read_table(uri: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a CSV or Parquet table from a path or URL into a DataFrame.

    The format comes from the suffix, else from the Parquet magic bytes, else CSV.
    """
    uri = os.fspath(uri)
    if not uri:
        raise DataError("no data path given")
    if _is_url(uri):
        parts = urlsplit(uri)
        if parts.scheme == "file":
            return _read_local(Path(unquote(parts.path)), uri)
        opener = _download_http if parts.scheme in ("http", "https") else _download_fsspec
        with opener(uri) as local:
            return _read_local(local, uri)
    return _read_local(Path(uri), uri)


def _read_local(path: Path, label: str) -> pd.DataFrame:
    if path.is_dir():
        raise DataError(f"{label} is a directory, expected a CSV or Parquet file")
    if not path.exists():
        raise DataError(f"data file not found: {label}")
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError as exc:
        raise DataError(f"cannot read {label}: {exc.strerror or exc}") from exc
    if size == 0:
        raise DataError(f"data file {label} is empty")
    fmt = table_format(path)
    if fmt is None:
        fmt = "parquet" if head.startswith(PARQUET_MAGIC) else "csv"
    if fmt == "parquet":
        df = _read_parquet(path, label)
    else:
        compressed = path.name.lower().endswith((".gz", ".bz2", ".xz", ".zip", ".zst"))
        # NUL bytes never occur in a text CSV; pandas might otherwise "parse" binary garbage.
        if not compressed and b"\x00" in head:
            raise DataError(f"{label} is not a CSV or Parquet file (it looks binary)")
        df = _read_csv(path, label)
    if len(df.columns) == 0:
        raise DataError(f"data file {label} has no columns")
    if len(df) == 0:
        raise DataError(f"data file {label} has a header but no rows")
    if not all(isinstance(c, str) for c in df.columns):
        df.columns = [str(c) for c in df.columns]
    return df


def _text_head(path: Path) -> str:
    """The first lines of a (possibly compressed) text file, decoded leniently."""
    name = path.name.lower()
    opener: Any = open
    if name.endswith(".gz"):
        opener = gzip.open
    elif name.endswith(".bz2"):
        opener = bz2.open
    elif name.endswith(".xz"):
        opener = lzma.open
    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                members = archive.namelist()
                raw = archive.open(members[0]).read(_SNIFF_TEXT_BYTES) if members else b""
        elif name.endswith(".zst"):
            return ""  # no zstd reader here: pandas reads it with the default separator
        else:
            with opener(path, "rb") as fh:
                raw = fh.read(_SNIFF_TEXT_BYTES)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, lzma.LZMAError):
        return ""  # pandas reports the broken file with its own message
    text = raw.decode("utf-8", errors="replace")
    if len(raw) == _SNIFF_TEXT_BYTES:  # drop the cut-off last line
        text = text[: text.rfind("\n") + 1] or text
    return text


def sniff_separator(text: str) -> str:
    """The separator of delimited text: the candidate that splits the header into the most
    columns while every sniffed line has that many fields (quotes respected); ',' when none
    does."""
    lines = [line for line in text.splitlines()[:_SNIFF_LINES] if line.strip()]
    if not lines:
        return ","
    best, best_columns = ",", 1
    for sep in SEPARATORS:
        try:
            rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=sep))
        except csv.Error:
            continue
        widths = {len(row) for row in rows if row}
        columns = len(rows[0]) if rows else 0
        if len(widths) == 1 and columns > best_columns:
            best, best_columns = sep, columns
    return best


_COMMA_DECIMAL = re.compile(r"-?\d+,\d+")
_POINT_DECIMAL = re.compile(r"-?\d+\.\d+")


def sniff_decimal(text: str, sep: str) -> str:
    """',' when a file separated by something else writes its numbers 1,5 (as European
    spreadsheets export ';' files) and none 1.5; else '.'."""
    if sep == ",":
        return "."
    lines = [line for line in text.splitlines()[:_SNIFF_LINES] if line.strip()]
    cells = [c.strip() for row in csv.reader(io.StringIO("\n".join(lines[1:])), delimiter=sep)
             for c in row]  # fmt: skip
    comma = any(_COMMA_DECIMAL.fullmatch(c) for c in cells)
    point = any(_POINT_DECIMAL.fullmatch(c) for c in cells)
    return "," if comma and not point else "."


def _separator_hint(df: pd.DataFrame, sep: str) -> str | None:
    """When the table read as one column whose header holds another separator, the message."""
    if len(df.columns) != 1:
        return None
    header = str(df.columns[0])
    others = [s for s in SEPARATORS if s != sep and s in header]
    if not others:
        return None
    likely = max(others, key=header.count)
    return (
        f"reads as a single column {header[:80]!r} with separator {_SEPARATOR_NAMES[sep]}; "
        f"its header looks separated by {_SEPARATOR_NAMES[likely]}, but the rows do not split "
        "into the same number of fields on it (check quoting and stray separators in values)"
    )


def _read_csv(path: Path, label: str) -> pd.DataFrame:
    head = _text_head(path)
    sep = sniff_separator(head)
    decimal = sniff_decimal(head, sep)
    try:
        # low_memory=False: infer each column's type from all rows, not per chunk, so one
        # column never ends up half numbers, half strings. float_precision="round_trip": the
        # default fast parser is off by one ulp for ~30% of 17-digit floats, which would give
        # the same table different fingerprints from CSV and Parquet (about 2x parse time).
        df = pd.read_csv(
            path, sep=sep, decimal=decimal, low_memory=False, float_precision="round_trip"
        )
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"data file {label} is empty") from exc
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{label} is not a readable text CSV ({exc.reason} at byte {exc.start}); "
            "save it as UTF-8"
        ) from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"{label} is not a valid CSV: {str(exc).strip()}") from exc
    except (OSError, EOFError, ValueError) as exc:  # bad compression, ...
        raise DataError(f"cannot read {label} as CSV: {exc}") from exc
    hint = _separator_hint(df, sep)
    if hint:
        raise DataError(f"{label} {hint}")
    return df


def _read_parquet(path: Path, label: str) -> pd.DataFrame:
    import pyarrow as pa

    try:
        df = pd.read_parquet(path, engine="pyarrow")
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(f"{label} is not a valid Parquet file: {exc}") from exc
    # Parquet gives None for missing strings where CSV gives NaN: use NaN so both read the same.
    for col in df.columns:
        if df[col].dtype == object and df[col].hasnans:
            df[col] = df[col].where(df[col].notna(), np.nan)
    return df


def write_snapshot(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``df`` as Parquet with deterministic bytes, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(df, preserve_index=False)
    with atomic_path(target) as tmp:
        # Fixed writer settings (no timestamps are written) make the bytes depend on the data
        # and the pyarrow version only.
        pq.write_table(table, tmp, compression="zstd", write_statistics=True)
    return target


def extract(uri: str | os.PathLike[str], snapshot_path: str | os.PathLike[str]) -> Fingerprint:
    """Read ``uri``, write a Parquet snapshot and ``fingerprint.json`` beside it."""
    source = os.fspath(uri)
    df = read_table(source)
    fp = fingerprint(df, source_uri=source)
    snapshot = write_snapshot(df, snapshot_path)
    write_json_atomic(snapshot.parent / FINGERPRINT_FILE, fp.to_dict())
    return fp


def load_snapshot(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a Parquet snapshot written by ``extract``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no data snapshot at {path}")
    return _read_parquet(path, str(path))


def source_digest(uri: str | os.PathLike[str]) -> str:
    """sha256 of the bytes behind ``uri`` (path, ``file://``, ``http(s)://`` or fsspec URL).

    The pipeline's cache key for extract: KFP reuses a task's outputs when its inputs are equal,
    so a changed file at the same URI must give a different input (kfops.caching).
    """
    source = os.fspath(uri)
    if not source:
        raise DataError("no data path given")
    if _is_url(source) and urlsplit(source).scheme != "file":
        opener = (
            _download_http if urlsplit(source).scheme in ("http", "https") else _download_fsspec
        )
        with opener(source) as local:
            return _sha256_file(local, source)
    path = Path(unquote(urlsplit(source).path)) if _is_url(source) else Path(source)
    return _sha256_file(path, source)


def _sha256_file(path: Path, label: str) -> str:
    if path.is_dir():
        raise DataError(f"{label} is a directory, expected a CSV or Parquet file")
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except FileNotFoundError:
        raise DataError(f"data file not found: {label}") from None
    except OSError as exc:
        raise DataError(f"cannot read {label}: {exc.strerror or exc}") from None
    return digest.hexdigest()
