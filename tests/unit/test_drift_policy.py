"""The drift verdict's statistical promises, checked by seeded simulation.

Windows are simulated as profile counts: a window of ``n`` rows drawn from a known distribution
has multinomial counts over the reference's bins, with the exact bin probabilities (normal CDF
at the stored edges). That is what ``profile_window`` would count on raw rows, without making
the rows, so windows of ten million rows cost no more than windows of a hundred.

Rates are checked against binomial bounds at a one-in-a-million tail: if the true rate is at
most the promised one, a test fails with probability below 1e-6 whatever the random stream, so
no test depends on the exact floats of this machine. Every bound was seen to fail with the
statistics broken on purpose (no Benjamini-Hochberg, no pooling of sparse cells, the raw PSI
instead of the corrected one, a plain test instead of "above the tolerance").
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from kfops.drift import (
    DriftPolicy,
    ReferenceProfile,
    WindowProfile,
    build_reference_profile,
    detect_drift,
    merge_windows,
    profile_window,
    psi,
    psi_test,
)
from kfops.drift.stats import pool_sparse
from kfops.errors import ConfigError

N_NUMERIC = 20
CATEGORIES = [f"k{i}" for i in range(8)]
CAT_P = (1.0 / np.arange(1, 9)) / np.sum(1.0 / np.arange(1, 9))  # 37 % down to 5 %
REFERENCE_ROWS = 20_000
ALPHA = 0.05
KINDS = {**{f"num_{i:02d}": "numeric" for i in range(N_NUMERIC)}, "cat": "categorical"}


def upper_bound(trials: int, rate: float) -> int:
    """The most hits a rate of at most ``rate`` gives except with probability 1e-6."""
    return int(stats.binom.ppf(1 - 1e-6, trials, rate))


@pytest.fixture(scope="module")
def reference() -> ReferenceProfile:
    """The issue's set-up: 20 standard normal features + one categorical, 20,000 rows."""
    rng = np.random.default_rng(20240)
    data = {name: rng.normal(0.0, 1.0, REFERENCE_ROWS) for name in KINDS if name != "cat"}
    data["cat"] = np.asarray(CATEGORIES, dtype=object)[rng.choice(8, REFERENCE_ROWS, p=CAT_P)]
    return build_reference_profile(pd.DataFrame(data), KINDS)


def bin_probabilities(reference: ReferenceProfile, name: str, shift: float) -> np.ndarray:
    """Probabilities of ``reference``'s slots for N(shift, 1) (numeric) or CAT_P (categorical)."""
    fb = reference.features[name]
    if fb.kind == "numeric":
        cdf = stats.norm.cdf(np.asarray(fb.edges), loc=shift)
        return np.concatenate([np.diff(np.concatenate([[0.0], cdf, [1.0]])), [0.0]])
    return np.concatenate([CAT_P, [0.0, 0.0]])  # categories, __other__, null


def simulate(
    reference: ReferenceProfile, rows: int, rng: np.random.Generator, shift: float = 0.0
) -> WindowProfile:
    """A window of ``rows`` rows, ``num_00`` shifted by ``shift`` sd, as profile counts."""
    counts = {
        name: rng.multinomial(rows, bin_probabilities(reference, name, shift if i == 0 else 0.0))
        for i, name in enumerate(reference.features)
    }
    return WindowProfile(reference.profile_id, rows, counts)


def flagged(
    reference: ReferenceProfile,
    rows: int,
    windows: int,
    seed: int,
    shift: float = 0.0,
    policy: DriftPolicy | None = None,
    feature: str | None = None,
) -> int:
    """Windows whose verdict flags ``feature`` (or any feature when None)."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(windows):
        report = detect_drift(reference, simulate(reference, rows, rng, shift), policy)
        hits += (feature in report.drifted) if feature else report.dataset_drift
    return hits


# ---------------------------------------------------------------- false alarms


@pytest.mark.parametrize("rows", [100, 300, 1_000, 5_000, 20_000, 1_000_000, 10_000_000])
def test_null_windows_false_alarm_at_most_alpha(reference: ReferenceProfile, rows: int) -> None:
    windows = 100
    assert flagged(reference, rows, windows, seed=rows) <= upper_bound(windows, ALPHA)


@pytest.mark.parametrize("rows", [100, 1_000, 100_000])
def test_plain_tests_with_bh_also_hold_alpha(reference: ReferenceProfile, rows: int) -> None:
    # psi_threshold=0 is the plain homogeneity test: the sharpest check that the p-values and
    # the Benjamini-Hochberg step keep the chance of any false alarm at alpha (21 features
    # tested at 0.05 each without the correction would alarm in about 2 windows of 3).
    windows = 300
    hits = flagged(reference, rows, windows, seed=7 + rows, policy=DriftPolicy(psi_threshold=0))
    assert hits <= upper_bound(windows, ALPHA)


@pytest.mark.parametrize("rows", [30, 100])
def test_sparse_categories_keep_p_values_valid(rows: int) -> None:
    # 30 categories with a long tail in small windows: most cells expect fewer than one row,
    # where the chi-square approximation breaks down (10 % rejections at 5 % unpooled).
    rng = np.random.default_rng(rows)
    p = 1.0 / np.arange(1, 31) ** 1.2
    p /= p.sum()
    ref = rng.multinomial(REFERENCE_ROWS, p)
    trials = 3_000
    hits = sum(psi_test(ref, rng.multinomial(rows, p), 0.0).p_value < ALPHA for _ in range(trials))
    assert hits <= upper_bound(trials, ALPHA)


def test_shift_within_tolerance_is_not_drift_at_any_size(reference: ReferenceProfile) -> None:
    # 0.05 sd: PSI about 0.0024, a quarter of the default tolerance. Any plain test finds it in
    # ten million rows; the verdict must not.
    for rows in (1_000, 1_000_000, 10_000_000):
        hits = flagged(reference, rows, 50, seed=3, shift=0.05, feature="num_00")
        assert hits <= upper_bound(50, ALPHA), rows
    big = simulate(reference, 10_000_000, np.random.default_rng(4), 0.05)
    assert detect_drift(reference, big, DriftPolicy(psi_threshold=0)).drifted == ["num_00"]


# ---------------------------------------------------------------- power


def test_power_rises_with_the_window(reference: ReferenceProfile) -> None:
    windows = 50
    hits = {
        rows: flagged(reference, rows, windows, seed=11, shift=0.2, feature="num_00")
        for rows in (300, 1_000, 5_000, 20_000, 1_000_000)
    }
    # Expected about 8, 25, 50, 50, 50 of 50: the orderings below fail with probability < 1e-6.
    assert hits[300] < hits[1_000] < hits[5_000]
    assert hits[5_000] >= 45 and hits[20_000] >= 45 and hits[1_000_000] >= 45
    # The goal of issue 15: a 0.2 sd shift found at least 45 times in 50 at 20,000 rows.


@pytest.mark.parametrize("shift", [0.3, 0.5])
def test_larger_shifts_found_earlier(reference: ReferenceProfile, shift: float) -> None:
    rows = 1_000 if shift == 0.3 else 300
    assert flagged(reference, rows, 50, seed=12, shift=shift, feature="num_00") >= 45


def test_a_shifted_categorical_is_found_and_the_rest_are_not(reference: ReferenceProfile) -> None:
    rng = np.random.default_rng(5)
    moved = CAT_P * np.exp(0.3 * np.linspace(0.0, 2.0, 8))  # PSI about 0.05
    moved /= moved.sum()
    hits = 0
    for _ in range(50):
        window = simulate(reference, 20_000, rng)
        window.counts["cat"] = rng.multinomial(20_000, np.concatenate([moved, [0.0, 0.0]]))
        report = detect_drift(reference, window)
        hits += report.drifted == ["cat"]
    assert hits >= 45


def test_new_category_is_drift_and_nulls_are_not(reference: ReferenceProfile) -> None:
    # Values the reference never had (__other__): cells with no reference rows must count,
    # not be pooled away. A column that starts arriving empty (5 % nulls, none in training)
    # is not drift of its values: the missing-value check reports it
    # (tests/unit/test_monitoring_findings.py).
    rng = np.random.default_rng(6)
    window = simulate(reference, 5_000, rng)
    window.counts["cat"] = rng.multinomial(5_000, np.concatenate([CAT_P * 0.9, [0.1, 0.0]]))
    nulls = rng.multinomial(4_750, bin_probabilities(reference, "num_03", 0.0))
    nulls[-1] = 250  # 5 % of the rows arrive without num_03
    window.counts["num_03"] = nulls
    report = detect_drift(reference, window)
    assert sorted(report.drifted) == ["cat"]
    assert report.feature("num_03").window_null_rate == pytest.approx(0.05)


# ---------------------------------------------------------------- the corrected PSI


@pytest.mark.parametrize("rows", [100, 1_000])
def test_raw_psi_bias_and_its_correction(reference: ReferenceProfile, rows: int) -> None:
    rng = np.random.default_rng(rows)
    fb = reference.features["num_05"]
    ref = fb.psi_counts(reference.reference.counts["num_05"])
    p = bin_probabilities(reference, "num_05", 0.0)
    raw, corrected = [], []
    for _ in range(400):
        cur = fb.psi_counts(rng.multinomial(rows, p))
        raw.append(psi(ref, cur))
        corrected.append(psi_test(ref, cur, 0.0).psi_corrected)
    theory = 9 / rows + 9 / REFERENCE_ROWS  # (k - 1)(1/n + 1/m), k = 10 bins
    assert np.mean(raw) == pytest.approx(theory, rel=0.2)
    # Corrected: floored at 0, so slightly positive on average, but far below the raw bias.
    assert np.mean(corrected) < 0.25 * theory


def test_corrected_psi_estimates_a_real_shift_without_bias(reference: ReferenceProfile) -> None:
    fb = reference.features["num_00"]
    ref = fb.psi_counts(reference.reference.counts["num_00"])
    p0 = fb.psi_counts(reference.reference.counts["num_00"]) / REFERENCE_ROWS
    q = fb.psi_counts(bin_probabilities(reference, "num_00", 0.3))
    seen = p0 > 0
    truth = float(np.sum((q[seen] - p0[seen]) ** 2 / p0[seen]))  # chi-square divergence, ~PSI
    assert truth == pytest.approx(0.09 * 0.96, rel=0.1)  # PSI ~ 0.96 d**2 on deciles
    rng = np.random.default_rng(8)
    raw, corrected = [], []
    for _ in range(400):
        cur = fb.psi_counts(rng.multinomial(300, bin_probabilities(reference, "num_00", 0.3)))
        raw.append(psi(ref, cur))
        corrected.append(psi_test(ref, cur, 0.0).psi_corrected)
    assert np.mean(corrected) == pytest.approx(truth, rel=0.15)
    assert np.mean(raw) > truth + 0.02  # the raw PSI adds about 9/300


def test_scores_are_the_corrected_psi(reference: ReferenceProfile) -> None:
    report = detect_drift(reference, simulate(reference, 100, np.random.default_rng(9)))
    scores = report.scores()
    assert scores == {f.name: f.psi_corrected for f in report.features}
    raw = np.mean([f.psi for f in report.features])
    assert raw > 0.05 and np.mean(list(scores.values())) < 0.25 * raw


# ---------------------------------------------------------------- the test itself


def test_psi_test_matches_scipy() -> None:
    ref, cur = np.array([400, 300, 200, 100]), np.array([90, 110, 60, 40])
    chi2 = stats.chi2_contingency(np.vstack([ref, cur]), correction=False)
    plain = psi_test(ref, cur, 0.0)
    assert plain.statistic == pytest.approx(chi2.statistic)
    assert plain.dof == 3 and plain.p_value == pytest.approx(chi2.pvalue)
    n_eff = 1000 * 300 / 1300
    assert plain.n_eff == pytest.approx(n_eff)
    assert plain.psi_corrected == pytest.approx((chi2.statistic - 3) / n_eff)
    tolerant = psi_test(ref, cur, 0.01)
    assert tolerant.p_value == pytest.approx(stats.ncx2.sf(chi2.statistic, 3, n_eff * 0.01))
    assert tolerant.p_value > plain.p_value
    assert psi_test(np.array([0, 0]), cur[:2], 0.01).p_value == 1.0
    assert psi_test(np.array([5, 0]), np.array([7, 0]), 0.01).dof == 0  # one non-empty cell


def test_pooling_is_decided_by_column_totals_only() -> None:
    table = np.array([[1000.0, 600, 30, 5, 2, 0], [100, 60, 3, 1, 0, 0]])
    pooled = pool_sparse(table)
    assert pooled.sum() == table.sum() and (pooled.sum(axis=1) == table.sum(axis=1)).all()
    expected = pooled.sum(axis=1).min() * pooled.sum(axis=0) / pooled.sum()
    assert (expected >= 5).all()
    # Same column totals, different split between the rows: the same grouping.
    other = np.array([[1003.0, 610, 25, 6, 1, 0], [97, 50, 8, 0, 1, 0]])
    assert pool_sparse(other).sum(axis=0).tolist() == pooled.sum(axis=0).tolist()
    dense = np.array([[50.0, 50], [40, 60]])
    assert pool_sparse(dense).tolist() == dense.tolist()


def test_policy_knobs_and_removed_settings() -> None:
    assert DriftPolicy() == DriftPolicy(alpha=0.05, psi_threshold=0.01, min_rows=1)
    assert DriftPolicy.from_dict({"psi_threshold": 0}).psi_threshold == 0
    with pytest.raises(ConfigError, match="psi_threshold must be a number >= 0"):
        DriftPolicy(psi_threshold=-0.1)
    with pytest.raises(ConfigError, match="psi_threshold"):
        DriftPolicy(psi_threshold=float("nan"))
    with pytest.raises(ConfigError, match=r"\['ks_threshold'\] were removed: .*psi_threshold"):
        DriftPolicy.from_dict({"ks_threshold": 0.1})
    with pytest.raises(ConfigError, match="unknown drift policy settings"):
        DriftPolicy.from_dict({"psi": 0.1})
    with pytest.raises(ConfigError, match="min_rows must be an integer >= 1"):
        DriftPolicy(min_rows=0)
    with pytest.raises(ConfigError, match="psi_threshold"):
        DriftPolicy.from_dict({"psi_threshold": True})  # YAML "yes" is not a number


def test_a_looser_tolerance_flags_less(reference: ReferenceProfile) -> None:
    window = simulate(reference, 20_000, np.random.default_rng(10), shift=0.2)  # PSI ~ 0.038
    assert detect_drift(reference, window).drifted == ["num_00"]
    assert detect_drift(reference, window, DriftPolicy(psi_threshold=0.1)).drifted == []
    text = detect_drift(reference, window).to_markdown()
    assert "exceeds 0.01 with confidence" in text


# ---------------------------------------------------------------- merged profiles


def test_verdict_on_merged_hours_equals_verdict_on_the_day(reference: ReferenceProfile) -> None:
    rng = np.random.default_rng(12)
    hours = []
    for h in range(24):
        frame = pd.DataFrame({name: rng.normal(0.0, 1.0, 250) for name in KINDS if name != "cat"})
        frame["num_00"] += 0.3 if h >= 12 else 0.0  # drift starts at noon
        frame["cat"] = np.asarray(CATEGORIES, dtype=object)[rng.choice(8, 250, p=CAT_P)]
        frame.loc[frame.index % 50 == 0, "num_07"] = np.nan
        frame.loc[frame.index % 60 == 0, "cat"] = None
        hours.append(frame)
    day = pd.concat(hours, ignore_index=True)
    merged = merge_windows(profile_window(f, reference) for f in hours)
    whole = profile_window(day, reference)
    assert merged == whole  # integer counts: exact
    a, b = detect_drift(reference, merged), detect_drift(reference, whole)
    assert a.drifted == b.drifted and "num_00" in a.drifted
    for fa, fb in zip(a.features, b.features, strict=True):
        assert fa.p_adjusted == pytest.approx(fb.p_adjusted)
        assert fa.psi_corrected == pytest.approx(fb.psi_corrected)
