"""Drift statistics: reference profiles, window profiles, PSI/KS/JS, streaming.

Build a ``ReferenceProfile`` once at training time (``build_reference_profile``), store it in
the model version as ``reference_profile.json``, count windows of traffic with
``profile_window`` (windows merge: a day is the merge of its hours) and compare them with
``detect_drift``. The model server uses ``StreamingDrift``, which shares the same code.
"""

from kfops.drift.profile import (
    OTHER,
    PROFILE_FILE,
    FeatureBins,
    ReferenceProfile,
    WindowProfile,
    build_reference_profile,
    merge_windows,
    profile_window,
)
from kfops.drift.report import DriftPolicy, DriftReport, FeatureDrift, detect_drift
from kfops.drift.stats import bh_adjust, chi2_pvalue, js_distance, ks_binned, psi
from kfops.drift.streaming import StreamingDrift

__all__ = [
    "OTHER",
    "PROFILE_FILE",
    "DriftPolicy",
    "DriftReport",
    "FeatureBins",
    "FeatureDrift",
    "ReferenceProfile",
    "StreamingDrift",
    "WindowProfile",
    "bh_adjust",
    "build_reference_profile",
    "chi2_pvalue",
    "detect_drift",
    "js_distance",
    "ks_binned",
    "merge_windows",
    "profile_window",
    "psi",
]
