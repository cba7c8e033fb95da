"""Monitoring as a user meets it (issue 11, issue 16's monitoring part): the README's command
line, the label join and what it reports, missing values apart from drift, unseen categories,
drift ranked by importance, the HTML report's plots and numbers, and the retraining data mix."""

from __future__ import annotations

import base64
import json
import re
import shlex
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kfops.cli import build_parser
from kfops.datasets import make_synthetic
from kfops.drift import DriftReport, FeatureDrift
from kfops.errors import ConfigError
from kfops.monitoring import MonitoringPolicy, parse_time, read_labels, run_monitoring
from kfops.monitoring.capture import read_capture
from kfops.monitoring.labels import label_summary, match_labels
from kfops.monitoring.quality import check_null_shares, null_share_p_value
from kfops.registry import Registry
from kfops.steps import retrain
from kfops.steps.monitor import ReportPaths, write_reports
from tests.conftest import REPO_ROOT
from tests.unit.test_monitoring import MODEL, T0, make_registry, write_capture

WINDOW = {"start": T0, "end": T0 + 3600}


def importance(shares: dict[str, float]) -> dict:
    """A lineage ``importance`` record (kfops.explain.importance.Importance.to_dict())."""
    return {
        "metric": "f1_macro", "scoring": "f1_macro", "n_rows": 400, "n_repeats": 5, "seed": 42,
        "features": [{"feature": f, "mean": s, "std": 0.0, "share": s}
                     for f, s in sorted(shares.items(), key=lambda t: -t[1])],
    }  # fmt: skip


SHARES = {"num_00": 0.5, "num_01": 0.3, "num_02": 0.15, "num_03": 0.0, "cat_00": 0.05,
          "cat_01": 0.0}  # fmt: skip


# --------------------------------------------------------------------------- 1. the README


def readme_monitor_commands() -> list[list[str]]:
    """Every `kfops monitor ...` command line of the README, as a shell would split it."""
    text = (REPO_ROOT / "README.md").read_text()
    lines = re.findall(r"^(kfops monitor [^\n#]*)", text, re.M)
    assert lines, "the README shows no kfops monitor command"
    return [shlex.split(line) for line in lines]


def test_the_readme_monitor_commands_parse_as_written() -> None:
    parser = build_parser()
    commands = readme_monitor_commands()
    assert commands[0][:6] == ["kfops", "monitor", "--model", "penguins", "--start", "-2h"]
    for argv in commands:
        args = parser.parse_args(argv[1:])
        assert args.command == "monitor"
        if args.start is not None:  # the value reaches parse_time untouched
            assert parse_time(args.start, 0.0) > 0


@pytest.mark.parametrize(
    ("value", "seconds"), [("-2h", 7200), ("-30m", 1800), ("-1d", 86400), ("-90s", 90),
                           ("-1.5h", 5400)],
)  # fmt: skip
def test_relative_times_work_as_separate_arguments(value: str, seconds: float) -> None:
    args = build_parser().parse_args(["monitor", "--model", "m", "--start", value, "--end", "now"])
    assert args.start == value and args.end == "now"
    before = time.time()
    start = parse_time(args.start, 0.0)
    assert before - seconds - 1 <= start <= time.time() - seconds


def test_iso_and_epoch_times_still_parse() -> None:
    parser = build_parser()
    args = parser.parse_args(["monitor", "--start", "2026-11-26T10:00:00Z", "--end", "1764151200"])
    assert parse_time(args.start, 0) == T0
    assert parse_time(args.end, 0) == 1764151200.0
    # Options are still options: a flag after --start is not taken as its value.
    with pytest.raises(SystemExit):
        parser.parse_args(["monitor", "--start", "--json"])
    with pytest.raises(ConfigError, match="bad time"):
        parse_time("-2 hours", 0)
    # A unit it does not know reaches parse_time, whose message names the forms.
    args = parser.parse_args(["monitor", "--start", "-2x"])
    with pytest.raises(ConfigError, match=r"bad time '-2x': use ISO 8601, epoch seconds"):
        parse_time(args.start, 0)


# --------------------------------------------------------------------------- 2. labels


def test_label_join_counts_and_example_id_when_none_join(tmp_path: Path) -> None:
    capture = tmp_path / "capture"
    ids = write_capture(capture, make_synthetic(50, n_numeric=4, n_categorical=2, seed=2))
    labels = tmp_path / "labels.csv"
    # A user who labelled by their own row numbers: nothing can join.
    labels.write_text("id,label\n" + "".join(f"{i},1\n" for i in range(30)))
    join = match_labels(read_capture(capture, MODEL, **WINDOW), read_labels(labels))
    stats = join.stats()
    assert (stats["read"], stats["joined"], stats["unmatched"]) == (30, 0, 30)
    assert stats["example_id"] == ids[0] == "r0:0"
    line = label_summary(stats)
    assert "30 read from 1 file" in line and "0 joined" in line
    assert "<x-request-id>:<row>" in line and "'r0:0'" in line


def test_a_repeated_client_id_never_joins_one_label_twice(tmp_path: Path) -> None:
    capture = tmp_path / "capture"
    frame = make_synthetic(40, n_numeric=4, n_categorical=2, seed=3)
    write_capture(capture, frame.iloc[:20], prefix="a")
    # Twenty more requests, sent later with the same client ids (a0:0 .. a19:0) as the first.
    write_capture(capture, frame.iloc[20:], ts0=T0 + 600, prefix="a")
    write_capture(capture, frame.iloc[:5], ts0=T0 + 1200, prefix="u")  # unique ids
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"id": f"a{i}:0", "label": 1}) + "\n" for i in range(10))
                      + "".join(json.dumps({"id": f"u{i}:0", "label": 0}) + "\n"
                                for i in range(5)))  # fmt: skip
    join = match_labels(read_capture(capture, MODEL, **WINDOW), read_labels(labels))
    assert join.joined == 5 and set(join.frame["id"]) == {f"u{i}:0" for i in range(5)}
    assert (join.ambiguous_ids, join.ambiguous_rows) == (10, 20)
    assert "10 ids ambiguous (captured 20 times in all: not joined)" in label_summary(join.stats())


def test_monitor_reports_the_label_join(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from kfops.cli import main

    registry = make_registry(tmp_path)
    capture = tmp_path / "capture"
    ids = write_capture(capture, make_synthetic(200, n_numeric=4, n_categorical=2, seed=4))
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"id": i, "label": 0}) + "\n" for i in ids[:120]))
    code = main(["monitor", "--model", MODEL, "--registry", str(registry.root), "--capture-dir",
                 str(capture), "--labels-dir", str(labels), "--start", str(T0), "--end",
                 str(T0 + 3600), "--report-dir", str(tmp_path / "r"), "--no-retrain"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "labels: 120 read from 1 file, 120 joined to captured rows" in out
    result = json.loads((tmp_path / "r" / "result.json").read_text())
    assert result["labels"]["read"] == 120 and result["labels"]["joined"] == 120
    assert "120 joined" in (tmp_path / "r" / "report.html").read_text()


# --------------------------------------------------------------------------- 3. missing values


def with_nulls(frame: pd.DataFrame, column: str, share: float, seed: int) -> pd.DataFrame:
    """``share`` of ``column`` missing (NaN in training data)."""
    out = frame.copy()
    rng = np.random.default_rng(seed)
    out.loc[rng.random(len(out)) < share, column] = np.nan
    return out


def as_captured(frame: pd.DataFrame) -> pd.DataFrame:
    """Missing values as None: what a JSON capture line holds for null."""
    return frame.astype(object).where(frame.notna(), None)


def test_a_null_share_change_is_a_quality_finding_not_drift(tmp_path: Path) -> None:
    # Training data with 4 % missing num_03; the window has none: the 4 % -> 0 %.
    train = with_nulls(make_synthetic(2000, n_numeric=4, n_categorical=2, seed=1), "num_03",
                       0.04, seed=1)  # fmt: skip
    registry = make_registry(tmp_path, train=train)
    capture = tmp_path / "capture"
    write_capture(capture, make_synthetic(1500, n_numeric=4, n_categorical=2, seed=5))
    result = run_monitoring(MODEL, registry.root, capture, **WINDOW)
    assert result.drift is not None and "num_03" not in result.drift.drifted
    assert not result.retrain, result.reasons
    assert result.null_shares is not None and result.null_shares.changed == ["num_03"]
    row = next(f for f in result.null_shares.features if f.feature == "num_03")
    assert row.reference_share == pytest.approx(0.04, abs=0.01) and row.window_share == 0.0
    assert any("missing values changed: num_03" in w for w in result.warnings)
    # Its own report section, row and JSON record.
    paths = ReportPaths.in_dir(tmp_path / "r")
    write_reports(result, paths)
    assert "Missing values" in paths.html.read_text()
    assert re.search(
        r"\| num_03 \| [34]\.\d% \| 0\.0% \| -[34]\.\d pts \|", paths.markdown.read_text()
    )
    assert json.loads(paths.json.read_text())["null_shares"]["changed"] == ["num_03"]


def test_the_same_null_share_is_not_flagged(tmp_path: Path) -> None:
    train = with_nulls(make_synthetic(2000, n_numeric=4, n_categorical=2, seed=1), "num_03",
                       0.04, seed=1)  # fmt: skip
    registry = make_registry(tmp_path, train=train)
    capture = tmp_path / "capture"
    window = with_nulls(make_synthetic(1500, n_numeric=4, n_categorical=2, seed=5), "num_03",
                        0.04, seed=2)  # fmt: skip
    write_capture(capture, as_captured(window))
    result = run_monitoring(MODEL, registry.root, capture, **WINDOW)
    assert result.null_shares is not None and result.null_shares.changed == []


def test_null_share_test_holds_its_false_alarm_rate_and_finds_real_changes() -> None:
    # At a change of exactly the tolerance, at most alpha of windows are flagged (the test's
    # guarantee, with binomial slack); a change of 3x the tolerance is found nearly always.
    rng = np.random.default_rng(0)
    n, m, p, tol = 5000, 3000, 0.04, 0.01
    ref = rng.binomial(n, p, 2000)
    at_tolerance = rng.binomial(m, p + tol, 2000)
    far = rng.binomial(m, p + 3 * tol, 2000)
    alarms = np.mean(
        [null_share_p_value(r, n, w, m, tol) < 0.05 for r, w in zip(ref, at_tolerance, strict=True)]
    )
    found = np.mean(
        [null_share_p_value(r, n, w, m, tol) < 0.05 for r, w in zip(ref, far, strict=True)]
    )
    assert alarms <= 0.05 + 0.02
    assert found >= 0.95
    # No nulls anywhere: nothing to test.
    assert null_share_p_value(0, n, 0, m, tol) == 1.0


def test_null_check_uses_the_drift_report_counts() -> None:
    f = FeatureDrift("x", "numeric", "ok", False, "", reference_rows=1000, window_rows=500,
                     reference_null_rate=0.0, window_null_rate=0.2)  # fmt: skip
    g = FeatureDrift("y", "numeric", "ok", False, "", reference_rows=1000, window_rows=500,
                     reference_null_rate=0.1, window_null_rate=0.1)  # fmt: skip
    report = check_null_shares(DriftReport("ok", False, 500, 1000, [f, g]), tolerance=0.05)
    assert report.changed == ["x"]
    assert "5.0%" in report.describe()


def test_unseen_categories_are_reported_per_feature(tmp_path: Path) -> None:
    registry = make_registry(tmp_path)
    capture = tmp_path / "capture"
    frame = make_synthetic(300, n_numeric=4, n_categorical=2, seed=6)
    frame.loc[:29, "cat_01"] = "brand-new"
    write_capture(capture, frame)
    result = run_monitoring(MODEL, registry.root, capture, **WINDOW)
    assert [u["feature"] for u in result.unseen] == ["cat_01"]
    assert result.unseen[0]["rows"] == 30 and result.unseen[0]["examples"] == ["brand-new"]
    assert result.unseen[0]["share"] == pytest.approx(0.1)
    assert any("outside the contract's domain: cat_01 (30 rows)" in w for w in result.warnings)


# --------------------------------------------------------------------------- 4./6. the report


def drifted_window(tmp_path: Path, registry: Registry, **policy: object):
    capture = tmp_path / "capture"
    frame = make_synthetic(600, n_numeric=4, n_categorical=2, seed=7,
                           drift={"num_01": 1.5, "num_03": 1.5})  # fmt: skip
    frame["num_01"] = 4200 * 1.75  # 7349.999999999999: float noise, far out of range
    write_capture(capture, frame)
    return run_monitoring(
        MODEL, registry.root, capture, policy=MonitoringPolicy.from_dict(dict(policy)), **WINDOW
    )


def test_drift_is_ranked_by_importance_in_the_verdict_and_report(tmp_path: Path) -> None:
    registry = make_registry(tmp_path, lineage={"importance": importance(SHARES)})
    result = drifted_window(tmp_path, registry)
    assert result.ranking is not None
    assert [f.feature for f in result.ranking.features] == ["num_01", "num_03"]
    assert result.retrain
    assert "drift in num_01 (30% of importance), num_03 (0% of importance)" in result.reasons
    paths = ReportPaths.in_dir(tmp_path / "r")
    write_reports(result, paths)
    html = paths.html.read_text()
    assert "Drifted features by importance" in html
    assert "<td>num_01</td><td>30.0%</td>" in html
    md = paths.markdown.read_text()
    assert "| 1 | num_01 | 30.0% |" in md and "| 2 | num_03 | 0.0% |" in md


def test_importance_cut_ignores_drift_the_model_does_not_rely_on(tmp_path: Path) -> None:
    registry = make_registry(tmp_path, lineage={"importance": importance(SHARES)})
    # num_03 (0 %) drifted alone: ignored under a 5 % cut, acted on with the default (off).
    capture = tmp_path / "capture"
    write_capture(capture, make_synthetic(600, n_numeric=4, n_categorical=2, seed=8,
                                          drift={"num_03": 1.5}))  # fmt: skip
    cut = MonitoringPolicy(importance_min_share=0.05)
    ignored = run_monitoring(MODEL, registry.root, capture, policy=cut, **WINDOW)
    assert ignored.drift is not None and ignored.drift.drifted == ["num_03"]
    assert not ignored.retrain and ignored.ranking is not None
    assert ignored.ranking.ignored == ["num_03"]
    assert any("drift ignored below 5% of importance: num_03" in w for w in ignored.warnings)
    default = run_monitoring(MODEL, registry.root, capture, **WINDOW)
    assert default.retrain
    with pytest.raises(ConfigError, match="importance_min_share"):
        MonitoringPolicy(importance_min_share=1.5)


def test_without_importance_the_ranking_says_unknown(tmp_path: Path) -> None:
    result = drifted_window(tmp_path, make_registry(tmp_path))
    assert "drift in num_01 (importance unknown), num_03 (importance unknown)" in result.reasons


def test_html_report_plots_each_drifted_feature_and_rounds(tmp_path: Path) -> None:
    registry = make_registry(tmp_path, lineage={"importance": importance(SHARES)})
    result = drifted_window(tmp_path, registry)
    assert set(result.distributions) == {"num_01", "num_03"}
    dist = result.distributions["num_01"]
    assert sum(dist["reference"]) == pytest.approx(1.0) and sum(dist["window"]) == pytest.approx(1)
    assert dist["bins"][0][0] is None and dist["bins"][-1][1] is None
    paths = ReportPaths.in_dir(tmp_path / "r")
    write_reports(result, paths)
    html = paths.html.read_text()
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', html)
    assert [alt for alt, _ in images] == ["num_01: reference vs window",
                                          "num_03: reference vs window"]  # fmt: skip
    for _, data in images:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    # The out-of-range example 4200 * 1.75 = 7349.999999999999 is shown rounded, and no
    # number anywhere on the page carries float noise.
    assert "7349.999" not in html and "7349.999" not in paths.markdown.read_text()
    assert "outside the training range [-3.69907, 3.23436], e.g. [7350]" in html
    assert not re.search(r"\d\.\d{9,}", re.sub(r"base64,[^\"]+", "", html))


# --------------------------------------------------------------------------- 5. retraining


def labelled_retrain_setup(tmp_path: Path, rows: int = 160) -> tuple[Registry, Path, Path]:
    from kfops.data import write_snapshot

    train = make_synthetic(2000, n_numeric=4, n_categorical=2, seed=1)
    snapshot = write_snapshot(train, tmp_path / "train.parquet")
    registry = make_registry(tmp_path, lineage={
        "snapshot_uri": str(snapshot), "data_uri": "/nowhere.csv", "seed": 7,
        "data_fingerprint": "abc123",
        "blessing": {"policy": {"thresholds": {"accuracy": 0.8}, "max_regression": 0.02}},
    })  # fmt: skip
    capture, labels = tmp_path / "capture", tmp_path / "labels.jsonl"
    frame = make_synthetic(rows, n_numeric=4, n_categorical=2, seed=9, drift={"num_01": 2.0})
    ids = write_capture(capture, frame)
    labels.write_text("".join(json.dumps({"id": i, "label": int(t)}) + "\n"
                              for i, t in zip(ids, frame["target"], strict=True)))  # fmt: skip
    return registry, capture, labels


@pytest.mark.parametrize(("share", "reference_rows"), [(1.0, 2000), (0.5, 1000), (0.0, 0)])
def test_retrain_data_is_the_window_plus_reference_rows(
    tmp_path: Path, share: float, reference_rows: int
) -> None:
    registry, capture, labels = labelled_retrain_setup(tmp_path)
    window = run_monitoring(MODEL, registry.root, capture, labels_dir=labels, **WINDOW)
    assert window.retrain
    plan = retrain.plan(retrain.PlanInputs(
        window, registry.root, capture_dir=capture, labels_dir=labels,
        out_path=tmp_path / "retrain.parquet", reference_share=share,
    ))  # fmt: skip
    assert plan.retrain, plan.reason
    table = pd.read_parquet(plan.data_uri)
    assert len(table) == 160 + reference_rows
    mix = plan.data_mix
    assert (mix["window_rows"], mix["reference_rows"], mix["reference_share"]) == (
        160, reference_rows, share,
    )  # fmt: skip
    assert mix["champion"] == "v1" and mix["reference_fingerprint"] == "abc123"
    assert mix["window_start"] == T0 and mix["window_end"] == T0 + 3600
    assert mix["reference_uri"] == (str(tmp_path / "train.parquet") if share else "")
    # The window's rows are all there, after the reference rows.
    assert table.tail(160)["num_01"].mean() > 1.0
    # Recorded for the lineage: the training pipeline's data_mix_json parameter.
    params = retrain.training_params(registry.root, MODEL, plan.data_uri)
    from dataclasses import replace

    args = replace(params, data_mix=mix).pipeline_arguments("run-1")
    assert json.loads(args["data_mix_json"]) == mix


def test_retrain_is_held_to_the_champions_thresholds(tmp_path: Path) -> None:
    registry, capture, labels = labelled_retrain_setup(tmp_path)
    window = run_monitoring(MODEL, registry.root, capture, labels_dir=labels, **WINDOW)
    plan = retrain.plan(retrain.PlanInputs(
        window, registry.root, capture_dir=capture, labels_dir=labels,
        out_path=tmp_path / "retrain.parquet",
    ))  # fmt: skip
    # The policy the champion was blessed under (its lineage), not "no thresholds".
    assert plan.thresholds == {"accuracy": 0.8} and plan.max_regression == 0.02
    from kfops.cli.monitor import _plan_dict

    printed = _plan_dict(plan)
    assert json.loads(printed["thresholds_json"]) == {"accuracy": 0.8}
    assert json.loads(printed["data_mix_json"])["window_rows"] == 160


def test_unreadable_reference_data_stops_the_retrain_with_a_reason(tmp_path: Path) -> None:
    registry, capture, labels = labelled_retrain_setup(tmp_path)
    (tmp_path / "train.parquet").unlink()
    window = run_monitoring(MODEL, registry.root, capture, labels_dir=labels, **WINDOW)
    plan = retrain.plan(retrain.PlanInputs(
        window, registry.root, capture_dir=capture, labels_dir=labels,
        out_path=tmp_path / "retrain.parquet",
    ))  # fmt: skip
    assert not plan.retrain
    assert "training data of synth v1 cannot be read" in plan.reason


def test_policy_shares_are_validated() -> None:
    for key in ("max_null_share_change", "retrain_reference_share", "importance_min_share"):
        with pytest.raises(ConfigError, match=key):
            MonitoringPolicy.from_dict({key: -0.1})
        with pytest.raises(ConfigError, match=key):
            MonitoringPolicy.from_dict({key: True})
