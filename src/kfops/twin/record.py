"""What a model version says about its ONNX twin: the contract between training and serving.

Training converts the fitted pipeline (``convert``) and registration verifies the twin on the
whole held-out split (``verify``). A registry version then holds:

- ``model.onnx`` (``TWIN_FILE``, listed in ``MANIFEST.json`` like every file) **only** when the
  twin was verified;
- ``lineage["twin"]``, always: ``TwinRecord.to_dict()``::

      {"status": "verified" | "failed" | "not_convertible",
       "file": "model.onnx" | null,          # the file in the version; null unless verified
       "reason": "",                          # why it is not used ("" when verified)
       "conversion": {...},                   # Twin.to_dict() or NotConvertible.to_dict()
       "verdict": {...} | null}               # Verdict.to_dict(); null when never compared

A server serves ``model.onnx`` when ``status`` is ``verified`` (and then a missing or corrupt
file is an error naming it), and the sklearn pipeline otherwise. A version registered before
twins existed has no ``twin`` key. In a run (not a version) a twin can also be ``converted``:
training made it but no registration verified it (the model was not blessed).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from kfops.errors import RegistryError
from kfops.twin.format import TWIN_FILE

Status = Literal["converted", "verified", "failed", "not_convertible"]
CONVERTED: Status = "converted"
VERIFIED: Status = "verified"
FAILED: Status = "failed"
NOT_CONVERTIBLE: Status = "not_convertible"
STATUSES: tuple[Status, ...] = (CONVERTED, VERIFIED, FAILED, NOT_CONVERTIBLE)


@dataclass(frozen=True)
class TwinRecord:
    """The twin's state for one model: what conversion said and, once registered, the verdict."""

    status: Status
    reason: str  # why the twin is not used; "" when verified or only converted
    conversion: dict[str, Any]
    verdict: dict[str, Any] | None = None

    @property
    def verified(self) -> bool:
        return self.status == VERIFIED

    @property
    def file(self) -> str | None:
        """The twin's file name in the version; None when the version has no twin."""
        return TWIN_FILE if self.verified else None

    @classmethod
    def from_conversion(cls, conversion: Mapping[str, Any]) -> TwinRecord:
        """Training's outcome (``Twin.to_dict()`` / ``NotConvertible.to_dict()``)."""
        if conversion.get("convertible"):
            return cls(CONVERTED, "", dict(conversion))
        reason = str(conversion.get("reason") or "not convertible")
        return cls(NOT_CONVERTIBLE, reason, dict(conversion))

    def judged(self, verdict: Mapping[str, Any] | None, reason: str = "") -> TwinRecord:
        """The record once registration compared the twin: ``verdict`` is
        ``Verdict.to_dict()`` (None when the twin could not even be run; ``reason`` says why)."""
        if self.status != CONVERTED:
            return self
        data = dict(verdict) if verdict is not None else None
        if data is not None and data.get("passed") and not reason:
            return TwinRecord(VERIFIED, "", self.conversion, data)
        why = reason or str((data or {}).get("reason") or "verification did not pass")
        return TwinRecord(FAILED, why, self.conversion, data)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "file": self.file,
            "reason": self.reason,
            "conversion": dict(self.conversion),
            "verdict": None if self.verdict is None else dict(self.verdict),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TwinRecord:
        """Read ``lineage["twin"]`` (or a run record's); RegistryError names what is wrong."""
        status = data.get("status") if isinstance(data, Mapping) else None
        if status not in STATUSES:
            raise RegistryError(
                f"twin record has status {status!r}; expected one of {', '.join(STATUSES)}"
            )
        conversion = data.get("conversion")
        verdict = data.get("verdict")
        return cls(
            status=status,
            reason=str(data.get("reason") or ""),
            conversion=dict(conversion) if isinstance(conversion, Mapping) else {},
            verdict=dict(verdict) if isinstance(verdict, Mapping) else None,
        )

    def summary(self) -> str:
        """One line for a run summary."""
        if self.status == NOT_CONVERTIBLE:
            return f"none: not convertible ({self.reason})"
        if self.status == CONVERTED:
            return "converted, not verified (nothing was registered)"
        if self.status == FAILED:
            return f"not used: verification failed ({self.reason})"
        verdict = self.verdict or {}
        tolerance = verdict.get("tolerance") or {}
        return (
            f"verified on {verdict.get('rows')} held-out rows, {verdict.get('compared')} "
            f"within atol={_g(tolerance.get('atol'))} rtol={_g(tolerance.get('rtol'))} "
            f"(largest difference {_g(verdict.get('max_abs_diff'))} absolute, "
            f"{_g(verdict.get('max_rel_diff'))} relative)"
        )


def _g(value: Any) -> str:
    return format(value, ".2g") if isinstance(value, int | float) else str(value)


def judge(
    record: TwinRecord, pipeline: Any, twin_path: str | os.PathLike[str], frame: Any, contract: Any
) -> TwinRecord:
    """Registration's check of a converted twin (the file at ``twin_path``) against
    ``pipeline`` on ``frame`` (the whole held-out split): ``verified`` or ``failed`` with the
    reason. A record that is not ``converted`` comes back unchanged.

    Anything that goes wrong while comparing (a corrupt file, onnxruntime refusing an input)
    fails the twin, never the registration: the sklearn pipeline is still a good model.
    """
    if record.status != CONVERTED:
        return record
    from kfops.twin.format import TwinError
    from kfops.twin.runtime import TwinRuntime
    from kfops.twin.verify import verify

    try:
        verdict = verify(pipeline, TwinRuntime.load(twin_path), frame, contract)
    except TwinError as exc:
        return record.judged(None, str(exc))
    except Exception as exc:  # any failure means "not verified", with the reason
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        return record.judged(None, f"comparing it raised {type(exc).__name__}: {first}")
    return record.judged(verdict.to_dict())
