"""The ONNX twin of a fitted kfops pipeline: convert, verify, run.

- ``convert`` (``kfops.twin.convert``): fitted pipeline + contract -> ``Twin`` (ONNX bytes) or
  ``NotConvertible`` (with the reason);
- ``verify`` (``kfops.twin.verify``): twin vs sklearn pipeline on a held-out split -> ``Verdict``;
- ``TwinRuntime`` (``kfops.twin.runtime``): onnxruntime session, coerced inputs -> predictions;
- ``TwinRecord`` (``kfops.twin.record``): what a model version's lineage says about its twin
  (``verified``, ``failed``, ``not_convertible``), the contract training writes and serving reads.

In front of the graph always runs ``kfops.coercion.Coercion.coerce``, the same function the
pipeline's own ``coerce`` step runs. See docs/ARCHITECTURE.md, "ONNX twin".
"""

from kfops.twin.convert import NotConvertible, Twin, convert
from kfops.twin.format import TWIN_FILE, TwinError, TwinInfo
from kfops.twin.record import TwinRecord
from kfops.twin.runtime import TwinRuntime
from kfops.twin.verify import Tolerance, Verdict, verify

__all__ = [
    "TWIN_FILE",
    "NotConvertible",
    "Tolerance",
    "Twin",
    "TwinError",
    "TwinInfo",
    "TwinRecord",
    "TwinRuntime",
    "Verdict",
    "convert",
    "verify",
]
