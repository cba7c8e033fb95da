"""Streaming monitoring: chunked reads fold to the same counts as whole windows; hourly
profiles merge to the same verdict as raw rows; only closed hours are compacted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from kfops.contract import validate
from kfops.contract_model import Contract
from kfops.datasets import make_synthetic
from kfops.drift import ReferenceProfile, profile_window
from kfops.monitoring import hourly, join_labels, read_capture, read_labels, run_monitoring
from kfops.monitoring.capture import CaptureScan, iter_capture
from kfops.monitoring.fold import StreamingLabelJoin, WindowFold, fold_chunk, hour_folds_merge
from kfops.monitoring.window import read_window
from kfops.registry import Registry
from tests.unit.test_monitoring import MODEL, T0, make_registry, write_capture

HOUR = 3600.0


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return make_registry(tmp_path)


def champion(registry: Registry) -> tuple[str, Contract, ReferenceProfile]:
    mv = registry.resolve(MODEL, "champion")
    return mv.version, Contract.load(mv.path / "contract.json"), ReferenceProfile.load(mv.path)


def messy_frame(rows: int, seed: int) -> pd.DataFrame:
    """Traffic with every data-quality finding: nulls, unreadable numbers, out-of-range values,
    unseen categories, an extra column, a feature absent from part of the rows."""
    frame = make_synthetic(rows, n_numeric=4, n_categorical=2, seed=seed).astype(object)
    rng = np.random.default_rng(seed)
    frame.loc[rng.random(rows) < 0.1, "num_00"] = None
    frame.loc[rng.random(rows) < 0.03, "num_01"] = "n/a"
    frame.loc[rng.random(rows) < 0.05, "num_02"] = 1e9
    frame.loc[rng.random(rows) < 0.05, "cat_00"] = "never-seen"
    frame["extra"] = np.where(rng.random(rows) < 0.5, "x", None)
    return frame


def write_messy(
    capture: Path, frame: pd.DataFrame, ts0: float = T0, step: float = 0.5
) -> list[str]:
    """Like write_capture, but rows 100..199 lack num_03 (a payload without it) and a few
    versions differ; the target becomes the prediction."""
    ids = []
    by_file: dict[Path, list[str]] = {}
    for i, row in enumerate(frame.to_dict("records")):
        ts = ts0 + i * step
        hour = pd.Timestamp(ts, unit="s", tz="UTC")
        path = capture / MODEL / hour.strftime("%Y-%m-%d") / f"{hour.strftime('%H')}-1-0.jsonl"
        target = int(row.pop("target"))
        if 100 <= i < 200:
            row.pop("num_03")
        rid = f"m{i}:0"
        ids.append(rid)
        rec = {"id": rid, "ts": ts, "model": MODEL, "version": "v0" if i % 17 == 0 else "v1",
               "features": row, "prediction": target}  # fmt: skip
        by_file.setdefault(path, []).append(json.dumps(rec))
    for path, lines in by_file.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fh.write("\n".join(lines) + "\n")
    return ids


def fold_window(capture: Path, registry: Registry, start: float, end: float, chunk_rows: int,
                scan: CaptureScan | None = None) -> WindowFold:  # fmt: skip
    version, contract, reference = champion(registry)
    folds: dict[float, WindowFold] = {}
    for chunk in iter_capture(capture, MODEL, start, end, chunk_rows=chunk_rows, scan=scan):
        hour_folds_merge(fold_chunk(chunk, reference, contract, version), folds)
    out = WindowFold.empty(reference)
    for fold in folds.values():
        out = out.merge(fold)
    return out


def sorted_violations(report: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Violations without their examples: which (up to) five failing values a report shows
    depends on pandera's order of failure cases, which is not the rows' order."""
    return sorted(
        (v["column"] or "", v["rule"], v["severity"], v["count"], v["message"].split(", e.g.")[0])
        for v in report["violations"]
    )


def examples_by_rule(report: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    return {(v["column"] or "", v["rule"]): {str(e) for e in v["examples"]}
            for v in report["violations"]}  # fmt: skip


def test_chunked_folds_equal_the_whole_window_read_at_once(
    tmp_path: Path, registry: Registry
) -> None:
    capture = tmp_path / "capture"
    frame = messy_frame(900, seed=21)
    write_messy(capture, frame, step=6.0)  # 900 rows over 1.5 hours: two hour folds
    start, end = T0, T0 + 2 * HOUR
    version, contract, reference = champion(registry)

    # The pre-streaming computation: the whole window in memory.
    window = read_capture(capture, MODEL, start, end)
    served = (window.meta["version"].fillna(version) == version).to_numpy()
    feats = window.features[served].reset_index(drop=True)
    whole_report = validate(feats, contract, check_target=False).to_dict()
    whole_profile = profile_window(feats, reference)
    assert whole_report["warnings"] >= 4  # the fixture really has findings to merge

    for chunk_rows in (7, 64, 10_000):
        fold = fold_window(capture, registry, start, end, chunk_rows)
        assert fold.rows == int(served.sum())
        assert fold.other_version_rows == int((~served).sum())
        assert fold.window_profile() == whole_profile
        report = fold.quality.to_report(contract).to_dict()
        assert {k: report[k] for k in ("ok", "rows", "columns", "errors", "warnings")} == {
            k: whole_report[k] for k in ("ok", "rows", "columns", "errors", "warnings")
        }
        assert sorted_violations(report) == sorted_violations(whole_report)
        ours, theirs = examples_by_rule(report), examples_by_rule(whole_report)
        for key, examples in theirs.items():
            # Five (or all, when fewer) distinct failing values of the same column and rule.
            assert len(ours[key]) == len(examples), key
            if len(examples) < 5:
                assert ours[key] == examples, key


def test_window_level_rules_are_decided_on_the_totals(tmp_path: Path, registry: Registry) -> None:
    """A feature missing from every row is a missing column; all-null in every chunk is an
    all-null error; null in some chunks only is neither (as on the whole window)."""
    capture = tmp_path / "capture"
    frame = make_synthetic(60, n_numeric=4, n_categorical=2, seed=3).astype(object)
    frame = frame.drop(columns=["num_03"])
    frame["num_02"] = None
    frame.loc[:29, "num_01"] = None  # null in the first chunks only
    write_capture(capture, frame)
    _, contract, _ = champion(registry)
    fold = fold_window(capture, registry, T0, T0 + HOUR, chunk_rows=10)
    report = fold.quality.to_report(contract)
    whole = validate(read_capture(capture, MODEL, T0, T0 + HOUR).features, contract,
                     check_target=False)  # fmt: skip
    assert sorted(v.message for v in report.errors) == sorted(v.message for v in whole.errors)
    assert {(v.column, v.rule) for v in report.errors} == {
        ("num_03", "missing_column"), ("num_02", "all_null"),
    }  # fmt: skip
    assert "num_03" not in fold.window_profile().counts  # reported as missing by the verdict


def test_reader_holds_at_most_a_chunk_and_reads_lazily(tmp_path: Path) -> None:
    capture = tmp_path / "capture"
    write_capture(capture, make_synthetic(95, n_numeric=4, n_categorical=2, seed=4))
    scan = CaptureScan()
    chunks = iter_capture(capture, MODEL, T0, T0 + HOUR, chunk_rows=10, scan=scan)
    first = next(chunks)
    # Lazy: the first chunk is handed over after ten lines, not after reading the window.
    assert (first.rows, scan.lines) == (10, 10)
    sizes = [first.rows, *(c.rows for c in chunks)]
    assert max(sizes) <= 10 and sum(sizes) == 95 and scan.lines == 95


def test_malformed_lines_are_skipped_and_counted_across_chunks(tmp_path: Path) -> None:
    capture = tmp_path / "capture"
    write_capture(capture, make_synthetic(30, n_numeric=4, n_categorical=2, seed=5))
    path = capture / MODEL / "2026-11-26" / "10-1-0.jsonl"
    lines = path.read_text().splitlines()
    bad = ["not json", "[1, 2]", '{"ts": 1}', '{"features": {}, "ts": "x"}']
    pairs = zip(lines, bad + [""] * (len(lines) - len(bad)), strict=True)
    mixed = [x for pair in pairs for x in pair if x]
    path.write_text("\n".join(mixed) + '\n{"id": "cut", "ts": ' + str(T0) + ', "feat')
    scan = CaptureScan()
    rows = sum(c.rows for c in iter_capture(capture, MODEL, T0, T0 + HOUR, chunk_rows=4,
                                            scan=scan))  # fmt: skip
    assert (rows, scan.malformed, scan.lines) == (30, 5, 35)
    assert [e.split(": ", 1)[1] for e in scan.examples] == [
        "not valid JSON (truncated?)", "not a JSON object", "no 'features' object",
        "no numeric 'ts'", "not valid JSON (truncated?)",
    ]  # fmt: skip


def test_streamed_label_join_equals_the_join_of_the_whole_window(
    tmp_path: Path, registry: Registry
) -> None:
    capture = tmp_path / "capture"
    frame = make_synthetic(200, n_numeric=4, n_categorical=2, seed=6)
    ids = write_capture(capture, frame)
    labels_dir = tmp_path / "labels.jsonl"
    picked = [*ids[::3], "not-captured:0"]
    labels_dir.write_text("".join(json.dumps({"id": i, "label": n % 2}) + "\n"
                                  for n, i in enumerate(picked)))  # fmt: skip
    labels = read_labels(labels_dir)
    whole = join_labels(read_capture(capture, MODEL, T0, T0 + HOUR), labels)
    join = StreamingLabelJoin(labels, keep_features=True)
    for chunk in iter_capture(capture, MODEL, T0, T0 + HOUR, chunk_rows=9):
        join.add(chunk.features, chunk.meta)
    pd.testing.assert_frame_equal(join.joined, whole, check_dtype=False)
    assert join.features.index.equals(whole.index) and len(join.features) == len(ids[::3])


def test_hourly_profiles_give_the_verdict_of_raw_rows(tmp_path: Path, registry: Registry) -> None:
    capture = tmp_path / "capture"
    # Three hours of traffic (one row every 9 s), drifted features, data-quality findings.
    frame = messy_frame(1200, seed=7)
    frame["num_01"] = pd.to_numeric(frame["num_01"], errors="coerce") + 2.0
    write_messy(capture, frame, step=9.0)
    start, end = T0, T0 + 3 * HOUR

    raw = run_monitoring(MODEL, registry.root, capture, start=start, end=end,
                         hourly_profiles=False, chunk_rows=50)  # fmt: skip
    first = run_monitoring(MODEL, registry.root, capture, start=start, end=end, chunk_rows=50)
    assert first.capture["hours_compacted"] == 3 and first.capture["hours_from_profiles"] == 0
    day = capture / MODEL / "2026-11-26"
    assert sorted(p.name for p in day.glob("*.profile.json")) == [
        "10.v1.profile.json", "11.v1.profile.json", "12.v1.profile.json",
    ]  # fmt: skip
    assert not list(day.glob(".profile.*"))  # no temporary file left behind

    merged = run_monitoring(MODEL, registry.root, capture, start=start, end=end)
    assert merged.capture["hours_from_profiles"] == 3
    assert merged.capture["files"] == 0  # not one raw row read
    assert raw.drift is not None and "num_01" in raw.drift.drifted
    assert raw.capture["malformed"] > 0  # NaN written as bare NaN: not JSON, skipped
    for result in (first, merged):
        assert result.drift is not None
        assert result.drift.to_dict() == raw.drift.to_dict()
        assert result.data_quality == raw.data_quality
        assert (result.rows, result.other_version_rows, result.status) == (
            raw.rows, raw.other_version_rows, raw.status,
        )  # fmt: skip
        assert result.capture["malformed"] == raw.capture["malformed"]

    # A day = the merge of its hours, also for a window that cuts an hour: the partial hour is
    # read raw, the full hours come from their profiles.
    cut = run_monitoring(MODEL, registry.root, capture, start=start + 1800, end=end)
    cut_raw = run_monitoring(MODEL, registry.root, capture, start=start + 1800, end=end,
                             hourly_profiles=False)  # fmt: skip
    assert cut.capture["hours_from_profiles"] == 2
    assert cut.drift is not None and cut_raw.drift is not None
    assert cut.drift.to_dict() == cut_raw.drift.to_dict()
    assert cut.data_quality is not None and cut_raw.data_quality is not None
    assert sorted_violations(cut.data_quality) == sorted_violations(cut_raw.data_quality)


def test_labels_are_joined_on_profiled_hours_too(tmp_path: Path, registry: Registry) -> None:
    capture = tmp_path / "capture"
    frame = make_synthetic(400, n_numeric=4, n_categorical=2, seed=8)
    ids = write_capture(capture, frame, ts0=T0 + 10)
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"id": i, "label": int(t)}) + "\n"
                              for i, t in zip(ids, frame["target"], strict=True)))  # fmt: skip
    run_monitoring(MODEL, registry.root, capture, start=T0, end=T0 + HOUR)  # compacts hour 10
    result = run_monitoring(MODEL, registry.root, capture, start=T0, end=T0 + HOUR,
                            labels_dir=labels)  # fmt: skip
    assert result.capture["hours_from_profiles"] == 1
    assert result.quality is not None and result.quality.labeled_rows == 400
    assert result.rows == 400  # the profiled hour's rows are joined, not counted twice


def test_only_closed_hours_are_compacted(tmp_path: Path, registry: Registry) -> None:
    capture = tmp_path / "capture"
    write_capture(capture, make_synthetic(200, n_numeric=4, n_categorical=2, seed=9))
    version, contract, reference = champion(registry)

    def read(now: float) -> list[float]:
        return read_window(capture, MODEL, version, T0, T0 + HOUR, reference, contract,
                           now=now).compacted_hours  # fmt: skip

    assert not hourly.is_closed(T0, now=T0 + HOUR + hourly.CLOSE_AFTER_S - 1)
    assert read(T0 + HOUR + 5) == []  # the hour ended seconds ago: rows may still arrive
    assert not list(capture.rglob("*.profile.json"))
    assert read(T0 + HOUR + hourly.CLOSE_AFTER_S) == [T0]
    # A partial hour is never compacted (its other rows were not read).
    partial = read_window(capture, MODEL, version, T0 + 60, T0 + 2 * HOUR, reference, contract)
    assert partial.compacted_hours == [T0 + HOUR] and partial.profiled_hours == []


def test_a_profile_whose_files_changed_is_not_used(tmp_path: Path, registry: Registry) -> None:
    capture = tmp_path / "capture"
    write_capture(capture, make_synthetic(200, n_numeric=4, n_categorical=2, seed=10))
    first = run_monitoring(MODEL, registry.root, capture, start=T0, end=T0 + HOUR)
    assert first.capture["hours_compacted"] == 1
    # A late writer appends rows to the hour: the profile no longer describes it.
    write_capture(capture, make_synthetic(50, n_numeric=4, n_categorical=2, seed=11),
                  ts0=T0 + 3000, prefix="late")  # fmt: skip
    again = run_monitoring(MODEL, registry.root, capture, start=T0, end=T0 + HOUR)
    assert again.capture["hours_from_profiles"] == 0 and again.capture["hours_compacted"] == 1
    assert again.rows == 250
    third = run_monitoring(MODEL, registry.root, capture, start=T0, end=T0 + HOUR)
    assert third.capture["hours_from_profiles"] == 1 and third.rows == 250
    # A corrupt profile is ignored (and rewritten), never a failed window.
    path = next(capture.rglob("*.profile.json"))
    path.write_text("{truncated")
    fourth = run_monitoring(MODEL, registry.root, capture, start=T0, end=T0 + HOUR)
    assert fourth.rows == 250 and fourth.capture["hours_compacted"] == 1
