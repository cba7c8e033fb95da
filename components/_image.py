"""The image every component runs in.

Components are compiled with this default tag; `kfops compile --image` and the docker runner
rewrite it in the compiled spec (kfops.pipelines.compile), so no setting is read at import time.
"""

from kfops.defaults import IMAGE

__all__ = ["IMAGE"]
