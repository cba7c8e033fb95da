"""Extract: read the raw source, write a Parquet snapshot, fingerprint it."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Output

from kfops.components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def extract(
    data_uri: str,
    data_key: str,  # sha256 of the bytes at data_uri: part of the KFP cache key (kfops.caching)
    registry_root: str,
    run_id: str,
    snapshot: Output[Dataset],
) -> NamedTuple("ExtractOutputs", fingerprint=str, rows=int):
    from collections import namedtuple
    from pathlib import Path

    from kfops.steps import extract
    from kfops.steps._run import RunContext

    ctx = RunContext.cacheable(registry_root, run_id)
    with ctx.task("extract"):
        fp = extract.run(extract.ExtractInputs(data_uri, Path(snapshot.path)), ctx)
    snapshot.metadata.update({"fingerprint": fp.sha256, "rows": fp.rows, "source": data_uri})
    return namedtuple("ExtractOutputs", ["fingerprint", "rows"])(fp.sha256, fp.rows)
