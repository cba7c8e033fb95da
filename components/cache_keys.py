"""Cache keys: what the cacheable steps (extract, validate, prepare) depend on beyond their inputs.

Never cached itself (the pipeline switches its caching off): it hashes the data behind
data_uri and reads the champion, so an unchanged source reuses extract/validate/prepare and a
changed one (same URI, new bytes) or a new champion runs them again (kfops.caching).
"""

from typing import NamedTuple

from kfp import dsl

from kfops.components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def cache_keys(
    data_uri: str,
    registry_root: str,
    model_name: str,
    use_cache: bool,
    run_id: str = "",
    job_id: str = "",
) -> NamedTuple("CacheKeys", data=str, champion=str):
    from collections import namedtuple

    from kfops import caching
    from kfops.steps._run import RunContext

    # The first task to read the data: an unreadable source ends the run here, as extract's
    # one-line error (this task is never cached, so it may take the job id).
    ctx = RunContext.of(registry_root, run_id, job_id)
    with ctx.task("extract"):
        found = caching.keys(data_uri, registry_root, model_name, bool(use_cache))
    return namedtuple("CacheKeys", ["data", "champion"])(found.data, found.champion)
