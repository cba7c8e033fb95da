"""Extract: read the raw source (CSV or Parquet, any URI), write a Parquet snapshot, fingerprint
it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kfops import data
from kfops.steps._run import RunContext


@dataclass(frozen=True)
class ExtractInputs:
    data_uri: str  # path, file://, http(s):// or any fsspec URI
    snapshot_path: Path  # where the Parquet snapshot goes


def run(inputs: ExtractInputs, ctx: RunContext) -> data.Fingerprint:
    """The snapshot's fingerprint (sha256 of content and schema, rows, columns)."""
    ctx.record("start", {"status": "running", "data_uri": inputs.data_uri})
    fp = data.extract(inputs.data_uri, Path(inputs.snapshot_path))
    ctx.record("extract", {"data_uri": inputs.data_uri, "fingerprint": fp.to_dict()})
    return fp
