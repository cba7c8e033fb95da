"""What Kubeflow Pipelines' cache needs to know about the cacheable training steps.

KFP reuses a task's outputs when its cache key matches an earlier execution's; the key holds
the task's input parameter values, its input artifacts' names, its outputs' types, its image,
command and PVC names (kubeflow/pipelines 2.17.0 backend/src/v2/cacheutils/cache.go,
``GenerateCacheKey``). So extract, validate and prepare must take nothing that differs per run
(``{{$.pipeline_job_uuid}}``, a fresh run id) and everything they depend on that is not an
input: the bytes behind ``data_uri`` (a file can change under the same path) and the champion
whose contract validate checks the data against (it lives in the registry). ``keys`` computes
both in a task that is never cached; ``use_cache=False`` adds a fresh nonce so every cacheable
step runs again (``kfops submit --no-cache``).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

from kfops.data import source_digest
from kfops.registry import Registry

CHAMPION = "champion"


@dataclass(frozen=True)
class CacheKeys:
    data: str  # sha256 of the source bytes (+ a nonce when caching is off)
    champion: str  # the champion's version id, "" when the model has none


def keys(
    data_uri: str, registry_root: str | os.PathLike[str], model_name: str, use_cache: bool = True
) -> CacheKeys:
    data = source_digest(data_uri)
    if not use_cache:
        data = f"{data}+nocache-{uuid.uuid4().hex}"
    champion = Registry(registry_root).get_alias(model_name, CHAMPION) or ""
    return CacheKeys(data=data, champion=champion)
