"""StreamingDrift: the server's drift counter shares binning and PSI with the batch path."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from kfops.drift import (
    ReferenceProfile,
    StreamingDrift,
    build_reference_profile,
    detect_drift,
    profile_window,
)
from kfops.errors import ConfigError
from tests.unit.test_drift import make_contract, make_frame


@pytest.fixture(scope="module")
def reference() -> ReferenceProfile:
    return build_reference_profile(make_frame(20_000, seed=1), make_contract())


def _rows(frame: pd.DataFrame) -> list[dict]:
    return frame.to_dict(orient="records")


def test_streaming_equals_batch_for_every_input_shape(reference: ReferenceProfile) -> None:
    frame = make_frame(1_000, 2, {"num_00": ("shift", 0.5)})
    frame.loc[::7, "num_01"] = np.nan
    frame.loc[::11, "cat_00"] = None
    expected = profile_window(frame, reference)

    one_by_one = StreamingDrift(reference, window_size=10_000)
    for row in _rows(frame):
        one_by_one.update(row)
    small = StreamingDrift(reference, window_size=10_000, small_batch=100)
    for start in range(0, 1_000, 100):  # 100-row batches: the value-by-value path
        part = frame.iloc[start : start + 100]
        small.update({k: v.to_numpy() for k, v in part.items()})
    large = StreamingDrift(reference, window_size=10_000, small_batch=10)
    for start in range(0, 1_000, 500):  # the numpy path
        large.update({k: v.tolist() for k, v in frame.iloc[start : start + 500].items()})
    as_frame = StreamingDrift(reference, window_size=10_000)
    as_frame.update(frame)
    server_form = StreamingDrift(reference, window_size=10_000)  # lists of python values
    for start in range(0, 1_000, 10):
        server_form.update({k: v.tolist() for k, v in frame.iloc[start : start + 10].items()})

    batch_scores = detect_drift(reference, expected).scores()
    for stream in (one_by_one, small, large, as_frame, server_form):
        assert stream.window() == expected
        assert stream.scores() == pytest.approx(batch_scores, abs=1e-12)
        assert stream.rows == 1_000
    # num_00 shifted; 1 in 7 num_01 and 1 in 11 cat_00 values became null (none in training):
    # a change of the null share, not of the values' distribution, so not drift.
    assert one_by_one.report().drifted == ["num_00"]


def test_numpy_scalars_and_python_scalars_agree(reference: ReferenceProfile) -> None:
    frame = make_frame(300, 3)
    a, b, c = StreamingDrift(reference), StreamingDrift(reference), StreamingDrift(reference)
    for i in range(len(frame)):
        a.update({k: frame[k].iloc[i] for k in frame.columns})  # numpy scalars
        b.update({k: frame[k].to_numpy()[i : i + 1] for k in frame.columns})  # 1-row arrays
        c.update({k: np.asarray(frame[k].to_numpy()[i]) for k in frame.columns})  # 0-d arrays
    assert a.window() == b.window() == c.window() == profile_window(frame, reference)


def test_tumbling_window_follows_recent_traffic(reference: ReferenceProfile) -> None:
    stream = StreamingDrift(reference, window_size=2_000, buckets=4)
    drifted = make_frame(3_000, 4, {"num_00": ("shift", 1.0)})
    stream.update(drifted)  # one large batch fills one sub-window, then rotates
    assert stream.scores()["num_00"] > 0.5
    for start in range(0, 4_000, 100):
        stream.update(make_frame(100, 100 + start, None))
    # Only the last window_size rows (4 sub-windows of 500) remain, all undrifted.
    assert stream.rows <= 2_000 and stream.total_rows == 7_000
    assert stream.scores()["num_00"] < 0.1
    assert stream.report().drifted == []
    assert len(stream._done) == 3  # memory: buckets - 1 finished sub-windows + the current one


def test_missing_column_in_stream_is_reported_missing(reference: ReferenceProfile) -> None:
    stream = StreamingDrift(reference)
    for row in _rows(make_frame(200, 5).drop(columns=["cat_03"])):
        stream.update(row)
    report = stream.report()
    assert report.missing == ["cat_03"] and not report.dataset_drift


def test_empty_stream_and_empty_updates(reference: ReferenceProfile) -> None:
    stream = StreamingDrift(reference)
    stream.update({})
    stream.update({"num_00": []})
    assert stream.rows == 0
    assert set(stream.scores().values()) == {0.0}
    assert stream.report().status == "no_data"
    with pytest.raises(ConfigError, match="window_size"):
        StreamingDrift(reference, window_size=2, buckets=4)


def test_concurrent_updates_lose_no_rows(reference: ReferenceProfile) -> None:
    stream = StreamingDrift(reference, window_size=1_000_000)
    rows = _rows(make_frame(400, 6))

    def feed() -> None:
        for row in rows:
            stream.update(row)

    threads = [threading.Thread(target=feed) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    window = stream.window()
    assert window.rows == 1_600
    assert all(int(c.sum()) == 1_600 for c in window.counts.values())


def test_gauge_scores_of_a_small_unchanged_window_are_not_inflated(
    reference: ReferenceProfile,
) -> None:
    # The raw PSI of 100 unchanged rows is about 9/100 per numeric feature, which a "PSI > 0.2"
    # alert can cross on noise; the exported score is the bias-corrected PSI.
    stream = StreamingDrift(reference)
    stream.update(make_frame(100, 7))
    report = stream.report()
    raw = [f.psi for f in report.features if f.psi is not None]
    scores = stream.scores()
    assert scores == pytest.approx(report.scores(), abs=1e-12)
    assert np.mean(raw) > 0.06 and np.mean(list(scores.values())) < 0.04
    assert report.drifted == []
    shifted = StreamingDrift(reference)
    shifted.update(make_frame(100, 8, {"num_00": ("shift", 1.0)}))
    assert shifted.scores()["num_00"] > 0.5  # a real shift still scores high
