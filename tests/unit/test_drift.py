"""Drift statistics, profiles and verdicts (kfops.drift), on real numpy/scipy computations."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from kfops.contract_model import Contract, FeatureSpec, TargetSpec
from kfops.drift import (
    OTHER,
    PROFILE_FILE,
    DriftPolicy,
    ReferenceProfile,
    WindowProfile,
    bh_adjust,
    build_reference_profile,
    detect_drift,
    js_distance,
    ks_distance,
    merge_windows,
    profile_window,
    psi,
    psi_test,
)
from kfops.errors import ConfigError, DataError

N_NUM, N_CAT = 20, 5
CATS = ["a", "b", "c", "d", "e"]
BASE_P = np.array([0.35, 0.25, 0.2, 0.15, 0.05])


def make_contract(n_num: int = N_NUM, n_cat: int = N_CAT, extra: tuple = ()) -> Contract:
    feats = [FeatureSpec(f"num_{i:02d}", "numeric", "float64", True) for i in range(n_num)]
    feats += [FeatureSpec(f"cat_{i:02d}", "categorical", "object", True) for i in range(n_cat)]
    return Contract(
        "classification",
        TargetSpec("y", "categorical", "int64", (0, 1)),
        (*feats, *extra),
    )


def make_frame(rows: int, seed: int, drift: dict[str, tuple[str, float]] | None = None):
    """Mixed distributions; ``drift`` maps a column to (kind of change, size)."""
    rng = np.random.default_rng(seed)
    drift = drift or {}
    data: dict[str, np.ndarray] = {}
    for i in range(N_NUM):
        name = f"num_{i:02d}"
        kind = i % 4
        if kind == 0:
            col = rng.normal(10.0, 2.0, rows)
        elif kind == 1:
            col = rng.lognormal(0.0, 0.8, rows)
        elif kind == 2:
            col = rng.uniform(-5.0, 5.0, rows)
        else:
            col = rng.poisson(4.0, rows).astype(float)  # many ties
        change, size = drift.get(name, ("", 0.0))
        std = col.std()
        if change == "shift":
            col = col + size * std
        elif change == "scale":
            col = col.mean() + (col - col.mean()) * size
        data[name] = col
    for j in range(N_CAT):
        name = f"cat_{j:02d}"
        p = BASE_P.copy()
        change, size = drift.get(name, ("", 0.0))
        if change == "reweight":
            p = p * np.exp(size * np.linspace(0, 2, len(p)))
            p = p / p.sum()
        data[name] = np.asarray(CATS, dtype=object)[rng.choice(len(CATS), rows, p=p)]
    return pd.DataFrame(data)


@pytest.fixture(scope="module")
def contract() -> Contract:
    return make_contract()


@pytest.fixture(scope="module")
def reference(contract: Contract) -> ReferenceProfile:
    return build_reference_profile(make_frame(100_000, seed=1), contract)


# ---------------------------------------------------------------- statistics on known inputs


def test_psi_known_values() -> None:
    assert psi(np.array([50, 50]), np.array([50, 50])) == 0.0
    expected = (0.25 - 0.5) * np.log(0.25 / 0.5) + (0.75 - 0.5) * np.log(0.75 / 0.5)
    assert psi(np.array([50, 50]), np.array([25, 75])) == pytest.approx(expected)
    # An empty bin is floored at eps instead of giving inf.
    assert np.isfinite(psi(np.array([100, 0]), np.array([50, 50])))
    assert psi(np.array([0, 0]), np.array([1, 2])) == 0.0


def test_psi_normal_mean_shift_matches_theory() -> None:
    # PSI of N(0,1) vs N(d,1) is the symmetric KL divergence d^2 (minus binning loss).
    rng = np.random.default_rng(0)
    edges = np.quantile(rng.normal(size=200_000), np.arange(1, 10) / 10)
    a = np.bincount(np.searchsorted(edges, rng.normal(0, 1, 200_000)), minlength=10)
    b = np.bincount(np.searchsorted(edges, rng.normal(0.5, 1, 200_000)), minlength=10)
    assert 0.2 < psi(a, b) <= 0.25 * 1.02


def test_ks_distance_equals_scipy_on_unbinned_data() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=300), rng.normal(0.3, 1, size=300)
    grid = np.unique(np.concatenate([x, y]))  # one bin per distinct value: no binning loss
    cx = np.bincount(np.searchsorted(grid, x), minlength=len(grid))
    cy = np.bincount(np.searchsorted(grid, y), minlength=len(grid))
    assert ks_distance(cx, cy) == pytest.approx(stats.ks_2samp(x, y).statistic)
    assert ks_distance(np.array([0, 0]), np.array([1, 1])) == 0.0


def test_ks_on_profile_bins_is_close_to_raw_ks(contract: Contract) -> None:
    a, b = make_frame(20_000, 5), make_frame(20_000, 6, {"num_00": ("shift", 0.3)})
    ref = build_reference_profile(a, contract)
    win = profile_window(b, ref)
    report = detect_drift(ref, win)
    raw = stats.ks_2samp(a["num_00"], b["num_00"]).statistic
    binned = report.feature("num_00").ks
    assert binned is not None and binned <= raw + 1e-12 and raw - binned < 0.02


def test_js_distance_known_values() -> None:
    assert js_distance(np.array([10, 10]), np.array([5, 5])) == 0.0
    assert js_distance(np.array([10, 0]), np.array([0, 10])) == pytest.approx(1.0)
    p, q = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    assert js_distance(p * 100, q * 100) == pytest.approx(jensenshannon(p, q, base=2))


def test_plain_chi2_test() -> None:
    assert psi_test(np.array([100, 200, 0]), np.array([100, 200, 0]), 0).p_value == 1.0
    assert psi_test(np.array([500, 500]), np.array([300, 700]), 0).p_value < 1e-10
    assert psi_test(np.array([5, 0]), np.array([7, 0]), 0).p_value == 1.0  # one non-empty bin


def test_bh_adjust_matches_definition() -> None:
    p = [0.01, 0.04, 0.03, 0.5]
    # sorted: .01 .03 .04 .5 -> p*m/rank = .04 .06 .0533 .5 -> cumulative min from the top.
    assert bh_adjust(p) == pytest.approx([0.04, 0.0533333, 0.0533333, 0.5], rel=1e-5)
    assert bh_adjust([]) == []


# ---------------------------------------------------------------- verdicts


@pytest.mark.parametrize("seed", [2, 3])
def test_no_false_alarm_on_same_distribution_at_100k_rows(
    reference: ReferenceProfile, seed: int
) -> None:
    report = detect_drift(reference, profile_window(make_frame(100_000, seed), reference))
    assert report.tested == 25
    assert report.drifted == [] and not report.dataset_drift and report.status == "ok"
    assert max(report.scores().values()) < 0.01


def test_planted_drift_found_and_nothing_else(reference: ReferenceProfile) -> None:
    planted = {
        "num_00": ("shift", 0.5),
        "num_05": ("scale", 1.6),
        "num_10": ("shift", 0.4),
        "num_15": ("shift", 0.5),
        "cat_02": ("reweight", 1.0),
    }
    window = profile_window(make_frame(100_000, 7, planted), reference)
    report = detect_drift(reference, window)
    assert sorted(report.drifted) == sorted(planted)
    assert report.dataset_drift and report.status == "drift"
    assert report.drift_share == pytest.approx(5 / 25)
    assert report.feature("num_05").reason.startswith("drift: PSI corrected")


def test_trivial_shift_at_large_n_is_significant_but_not_drift(
    reference: ReferenceProfile,
) -> None:
    window = profile_window(make_frame(100_000, 8, {"num_00": ("shift", 0.05)}), reference)
    fb = reference.features["num_00"]
    ref, cur = (
        fb.psi_counts(reference.reference.counts["num_00"]),
        fb.psi_counts(window.counts["num_00"]),
    )
    assert psi_test(ref, cur, 0.0).p_value < 1e-6  # any plain test sees it ...
    row = detect_drift(reference, window).feature("num_00")
    assert not row.drifted  # ... but its PSI (~0.0024) is below the tolerance (0.01)
    assert row.psi_corrected is not None and row.psi_corrected < 0.005
    assert row.reason.startswith("no drift") and "not shown above 0.01" in row.reason


def test_one_strong_feature_makes_the_dataset_drift(reference: ReferenceProfile) -> None:
    window = profile_window(make_frame(50_000, 9, {"num_03": ("shift", 1.0)}), reference)
    report = detect_drift(reference, window)
    assert report.drifted == ["num_03"] and report.dataset_drift
    assert report.drift_share == pytest.approx(0.04)


def test_small_window_does_not_flag_noise(reference: ReferenceProfile) -> None:
    # At 100 rows PSI is noisy, but nothing is significant after correction.
    report = detect_drift(reference, profile_window(make_frame(100, 10), reference))
    assert report.drifted == []


def test_missing_feature_and_empty_window(reference: ReferenceProfile) -> None:
    frame = make_frame(1_000, 11).drop(columns=["num_01", "cat_00"])
    report = detect_drift(reference, profile_window(frame, reference))
    assert report.missing == ["num_01", "cat_00"]
    assert report.feature("num_01").status == "missing" and not report.dataset_drift
    assert "Missing from the window: num_01, cat_00" in report.to_markdown()

    empty = detect_drift(reference, profile_window(make_frame(1_000, 11).iloc[:0], reference))
    assert empty.status == "no_data" and not empty.dataset_drift and empty.window_rows == 0
    assert empty.drift_share == 0.0 and "0 rows" in empty.to_markdown()
    assert detect_drift(reference, reference.empty_window()).status == "no_data"


def test_policy_thresholds_and_validation(reference: ReferenceProfile) -> None:
    window = profile_window(make_frame(100_000, 8, {"num_00": ("shift", 0.05)}), reference)
    strict = DriftPolicy(psi_threshold=0.001)
    assert detect_drift(reference, window, strict).drifted == ["num_00"]
    with pytest.raises(ConfigError, match="alpha"):
        DriftPolicy(alpha=0)
    with pytest.raises(ConfigError, match="ks_threshold"):
        DriftPolicy.from_dict({"ks_threshold": 0.2})
    with pytest.raises(ConfigError, match="unknown drift policy settings"):
        DriftPolicy.from_dict({"psi": 0.1})
    assert DriftPolicy.from_dict({"psi_threshold": 0.1}).psi_threshold == 0.1


def test_report_renderings(reference: ReferenceProfile) -> None:
    window = profile_window(make_frame(20_000, 12, {"cat_01": ("reweight", 1.5)}), reference)
    report = detect_drift(reference, window)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["drifted"] == ["cat_01"] and data["dataset_drift"] is True
    assert data["features"][0]["name"] == "num_00" and data["policy"]["alpha"] == 0.05
    md = report.to_markdown()
    assert "| cat_01 | categorical | drift |" in md
    page = report.to_html(title="Window <1>")
    assert page.startswith("<!doctype html>") and "Window &lt;1&gt;" in page
    assert '<tr class="drift"><td>cat_01</td>' in page


def test_untested_kinds_and_booleans() -> None:
    extra = (
        FeatureSpec("flag", "boolean", "bool", False),
        FeatureSpec("note", "text", "object", True),
        FeatureSpec("when", "datetime", "datetime64[ns]", True),
    )
    contract = make_contract(1, 0, extra)
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "num_00": rng.normal(size=2000),
            "flag": rng.random(2000) < 0.3,
            "note": np.where(rng.random(2000) < 0.1, None, "text"),
            "when": pd.date_range("2024-01-01", periods=2000, freq="h"),
        }
    )
    ref = build_reference_profile(df, contract)
    assert ref.features["flag"].categories == (False, True)
    cur = df.assign(flag=rng.random(2000) < 0.8)
    report = detect_drift(ref, profile_window(cur, ref))
    assert report.drifted == ["flag"]
    assert report.feature("note").status == "untested"
    assert report.feature("note").window_null_rate == pytest.approx(df["note"].isna().mean())
    assert report.tested == 2


# ---------------------------------------------------------------- binning and profiles


def test_numeric_bins_are_open_ended_and_right_closed(reference: ReferenceProfile) -> None:
    fb = reference.features["num_00"]
    assert len(fb.edges) == 99 and set(fb.coarse_edges) <= set(fb.edges)
    assert len(fb.coarse_edges) == 9
    values = [-1e300, fb.edges[0], np.nextafter(fb.edges[0], np.inf), 1e300, np.inf, np.nan]
    counts = fb.count(values)
    assert counts[0] == 2  # far below the range and the first edge itself (right-closed)
    assert counts[1] == 1 and counts[len(fb.edges)] == 2 and counts[-1] == 1  # +inf outer, NaN
    ties = reference.features["num_03"]  # poisson: deduplicated edges
    assert len(ties.edges) < 99 and len(set(ties.edges)) == len(ties.edges)


def test_categorical_bins_other_and_null(reference: ReferenceProfile) -> None:
    fb = reference.features["cat_00"]
    assert fb.categories == tuple(CATS)  # most frequent first
    counts = fb.count(pd.Series(["a", "zzz", None, np.nan, "e"], dtype=object))
    assert counts.tolist() == [1, 0, 0, 0, 1, 1, 2]  # a..e, __other__, null
    assert OTHER == "__other__"


def test_max_categories_folds_the_tail_into_other(contract: Contract) -> None:
    df = make_frame(1000, 0)
    df["cat_00"] = [f"v{i % 80}" for i in range(1000)]
    ref = build_reference_profile(df, contract, max_categories=10)
    assert len(ref.features["cat_00"].categories) == 10
    assert ref.reference.counts["cat_00"][10] == 1000 - 10 * 13  # 80 values x 12-13 rows


values_strategy = st.lists(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-100, 100),
        st.none(),
        st.sampled_from(["a", "b", "x", "1.5", "abc"]),
        st.booleans(),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(values=values_strategy)
def test_scalar_slot_agrees_with_vectorised_count(
    reference: ReferenceProfile, values: list
) -> None:
    for name in ("num_00", "num_03", "cat_00"):
        fb = reference.features[name]
        expected = np.bincount([fb.slot(v) for v in values], minlength=fb.slots)
        assert fb.count(values).tolist() == expected.tolist(), name


@settings(max_examples=30, deadline=None)
@given(cuts=st.lists(st.integers(0, 3000), min_size=1, max_size=4))
def test_windows_merge_like_concatenation(reference: ReferenceProfile, cuts: list) -> None:
    frame = make_frame(3000, 13)
    bounds = [0, *sorted(cuts), 3000]
    parts = [profile_window(frame.iloc[a:b], reference) for a, b in itertools.pairwise(bounds)]
    assert merge_windows(parts) == profile_window(frame, reference)


def test_merge_is_associative_and_commutative(reference: ReferenceProfile) -> None:
    a, b, c = (profile_window(make_frame(500, s), reference) for s in (14, 15, 16))
    assert (a.merge(b)).merge(c) == a.merge(b.merge(c)) == c + b + a
    day = merge_windows([a, b, c])
    assert day.rows == 1500 and a.rows == 500  # merging does not mutate its inputs
    other = WindowProfile("different", 1, {})
    with pytest.raises(DataError, match="different reference profiles"):
        a.merge(other)
    with pytest.raises(DataError, match="different reference profile"):
        detect_drift(reference, other)
    with pytest.raises(DataError, match="no window profiles"):
        merge_windows([])


def test_window_from_mapping_of_columns(reference: ReferenceProfile) -> None:
    frame = make_frame(200, 17)
    as_lists = {k: v.tolist() for k, v in frame.items()}
    assert profile_window(as_lists, reference) == profile_window(frame, reference)
    with pytest.raises(DataError, match="different lengths"):
        profile_window({"num_00": [1.0, 2.0], "cat_00": ["a"]}, reference)


def test_json_round_trip(reference: ReferenceProfile, tmp_path) -> None:
    reference.save(tmp_path)  # a version directory -> reference_profile.json
    path = tmp_path / PROFILE_FILE
    assert path.is_file() and path.stat().st_size < 100_000  # KBs, not MBs
    loaded = ReferenceProfile.load(tmp_path)
    assert loaded.to_dict() == reference.to_dict()
    assert loaded.profile_id == reference.profile_id and loaded.reference == reference.reference
    window = profile_window(make_frame(5000, 18, {"num_02": ("shift", 0.6)}), loaded)
    assert detect_drift(loaded, window).to_dict() == detect_drift(reference, window).to_dict()
    window.save(tmp_path / "w.json")
    assert WindowProfile.load(tmp_path / "w.json") == window
    # Byte-stable: saving again gives the same bytes.
    before = path.read_bytes()
    loaded.save(path)
    assert path.read_bytes() == before


def test_bad_profiles_and_training_frames(contract: Contract, tmp_path) -> None:
    with pytest.raises(DataError, match="no reference profile"):
        ReferenceProfile.load(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        ReferenceProfile.load(tmp_path / "bad.json")
    (tmp_path / "old.json").write_text('{"schema_version": 99}')
    with pytest.raises(DataError, match="schema_version 99"):
        ReferenceProfile.load(tmp_path / "old.json")
    (tmp_path / "cut.json").write_text('{"schema_version": 1, "features": [{"name": "x"}]}')
    with pytest.raises(DataError, match="malformed reference profile"):
        ReferenceProfile.load(tmp_path / "cut.json")
    with pytest.raises(DataError, match=r"lacks contract features \['num_00'\]"):
        build_reference_profile(make_frame(10, 0).drop(columns=["num_00"]), contract)
    with pytest.raises(DataError, match="no rows"):
        build_reference_profile(make_frame(10, 0).iloc[:0], contract)
    with pytest.raises(ConfigError, match="fine_bins"):
        build_reference_profile(make_frame(10, 0), contract, bins=10, fine_bins=95)


def test_all_null_numeric_reference(contract: Contract) -> None:
    df = make_frame(500, 0)
    df["num_00"] = np.nan
    ref = build_reference_profile(df, contract)
    assert ref.features["num_00"].edges == ()
    row = detect_drift(ref, profile_window(make_frame(500, 1), ref)).feature("num_00")
    # The null rate went from 100 % to 0 %: the missing-value check's finding, not drift
    # (kfops.monitoring.quality.check_null_shares); with no non-null reference value there is
    # no distribution to compare.
    assert not row.drifted and row.psi == 0.0
    assert row.window_null_rate == 0.0 and row.reference_null_rate == 1.0


def test_profile_columns_by_kind_for_predictions() -> None:
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"prediction": rng.choice(["yes", "no"], 5000, p=[0.2, 0.8])})
    ref = build_reference_profile(train, {"prediction": "categorical"})
    live = pd.DataFrame({"prediction": rng.choice(["yes", "no"], 5000, p=[0.5, 0.5])})
    assert detect_drift(ref, profile_window(live, ref)).drifted == ["prediction"]
    with pytest.raises(ConfigError, match="unknown column kinds"):
        build_reference_profile(train, {"prediction": "label"})


def test_nullable_extension_dtypes(reference: ReferenceProfile) -> None:
    fb = reference.features["num_03"]
    ints = pd.Series([1, None, 7, 100], dtype="Int64")
    assert fb.count(ints).tolist() == fb.count([1.0, np.nan, 7.0, 100.0]).tolist()
    cats = reference.features["cat_00"]
    strings = pd.Series(["a", None, "q"], dtype="string")
    assert cats.count(strings).tolist() == [1, 0, 0, 0, 0, 1, 1]
