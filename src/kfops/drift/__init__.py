"""Drift statistics: reference profiles, window profiles, the drift verdict, streaming.

Build a ``ReferenceProfile`` once at training time (``build_reference_profile``), store it in
the model version as ``reference_profile.json``, count windows of traffic with
``profile_window`` (windows merge: a day is the merge of its hours) and compare them with
``detect_drift`` under a ``DriftPolicy``: a feature drifts when its bias-corrected PSI exceeds
the policy's tolerance with confidence (``kfops.drift.report`` says what that guarantees at
every window size). The model server uses ``StreamingDrift``, which shares the same code.
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
from kfops.drift.stats import (
    PsiTest,
    bh_adjust,
    js_distance,
    ks_distance,
    psi,
    psi_test,
    psi_tests,
)
from kfops.drift.streaming import StreamingDrift

__all__ = [
    "OTHER",
    "PROFILE_FILE",
    "DriftPolicy",
    "DriftReport",
    "FeatureBins",
    "FeatureDrift",
    "PsiTest",
    "ReferenceProfile",
    "StreamingDrift",
    "WindowProfile",
    "bh_adjust",
    "build_reference_profile",
    "detect_drift",
    "js_distance",
    "ks_distance",
    "merge_windows",
    "profile_window",
    "psi",
    "psi_test",
    "psi_tests",
]
