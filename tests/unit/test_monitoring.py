"""kfops.monitoring: capture windows, labels, quality, policy and the Pushgateway export."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from kfops import monitoring
from kfops.contract import infer_contract
from kfops.contract_model import Contract
from kfops.datasets import make_synthetic
from kfops.drift import build_reference_profile
from kfops.errors import ConfigError, DataError
from kfops.io import write_json_atomic
from kfops.monitoring import MonitoringPolicy, read_capture, read_labels, run_monitoring
from kfops.registry import Registry
from kfops.steps import retrain
from kfops.training import train as train_model

MODEL = "synth"
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC).timestamp()


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return make_registry(tmp_path)


def make_registry(
    tmp_path: Path, lineage: dict | None = None, train: pd.DataFrame | None = None
) -> Registry:
    """A registered champion with contract, reference profile and training metrics; its
    lineage is ``{"estimator": ...}`` plus ``lineage`` (e.g. a permutation importance)."""
    if train is None:
        train = make_synthetic(2000, n_numeric=4, n_categorical=2, seed=1)
    contract = infer_contract(train, "target", "classification")
    src = tmp_path / "src"
    src.mkdir()
    contract.save(src / "contract.json")
    build_reference_profile(train, contract).save(src / "reference_profile.json")
    write_json_atomic(src / "metrics.json", {"accuracy": 0.9, "f1_macro": 0.9})
    joblib.dump(train_model(train, contract, "logistic_regression"), src / "model.joblib")
    reg = Registry(tmp_path / "registry")
    files = {n: src / n for n in ("contract.json", "reference_profile.json", "metrics.json",
                                   "model.joblib")}  # fmt: skip
    reg.register(
        MODEL, files, {"estimator": "logistic_regression", **(lineage or {})},
        aliases=("champion",),
    )  # fmt: skip
    return reg


def write_capture(
    capture: Path, frame: pd.DataFrame, ts0: float = T0, version: str = "v1", prefix: str = "r"
) -> list[str]:
    """Rows in the documented capture layout; predictions = target (a perfect model)."""
    ids = []
    by_file: dict[Path, list[str]] = {}
    for i, row in enumerate(frame.to_dict("records")):
        ts = ts0 + i * 0.5
        tm = time.gmtime(ts)
        path = (
            capture / MODEL / time.strftime("%Y-%m-%d", tm) / f"{time.strftime('%H', tm)}-1-0.jsonl"
        )
        target = int(row.pop("target"))
        rid = f"{prefix}{i}:0"
        ids.append(rid)
        rec = {"id": rid, "ts": ts, "model": MODEL, "version": version, "features": row,
               "prediction": target, "proba": {"0": 1.0 - target, "1": float(target)}}  # fmt: skip
        by_file.setdefault(path, []).append(json.dumps(rec))
    for path, lines in by_file.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fh.write("\n".join(lines) + "\n")
    return ids


def test_reads_a_window_and_counts_malformed_lines(tmp_path: Path) -> None:
    capture = tmp_path / "capture"
    write_capture(capture, make_synthetic(100, n_numeric=4, n_categorical=2, seed=2))
    day = capture / MODEL / "2026-11-26"
    with (day / "10-1-0.jsonl").open("a") as fh:
        fh.write('not json\n[1, 2]\n{"ts": 1}\n{"features": {}, "ts": "x"}\n')
        fh.write('{"id": "cut", "ts": ' + str(T0) + ', "features": {"num_00": 1.')  # truncated
    (day / "notes.txt").write_text("ignored")
    window = read_capture(capture, MODEL, T0, T0 + 3600)
    assert window.rows == 100
    assert window.malformed == 5
    assert window.files == 1
    assert "not valid JSON" in window.examples[0]
    assert list(window.features.columns)[:2] == ["num_00", "num_01"]
    # The time range is honoured: only the first 20 rows (0.5 s apart) are before T0 + 10.
    assert read_capture(capture, MODEL, T0, T0 + 10).rows == 20


def test_files_outside_the_window_are_not_opened(tmp_path: Path) -> None:
    capture = tmp_path / "capture"
    write_capture(capture, make_synthetic(10, n_numeric=4, n_categorical=2))
    other = capture / MODEL / "2026-11-20" / "03-1-0.jsonl"
    other.parent.mkdir(parents=True)
    other.write_text("garbage that would count as malformed\n")
    window = read_capture(capture, MODEL, T0 - 60, T0 + 3600)
    assert (window.rows, window.files, window.malformed) == (10, 1, 0)


def test_empty_window_is_a_clear_no_rows_result(tmp_path: Path, registry: Registry) -> None:
    result = run_monitoring(MODEL, registry.root, tmp_path / "nothing", start=T0, end=T0 + 60)
    assert result.status == "no_rows" and not result.retrain
    assert "no rows captured" in result.reasons[0]
    assert "NO_ROWS" in result.to_html()


def test_bad_window_bounds_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not before"):
        read_capture(tmp_path, MODEL, T0, T0)
    with pytest.raises(ConfigError, match="bad time"):
        monitoring.parse_time("yesterday-ish", 0.0)
    assert monitoring.parse_time("2026-11-26T10:00:00", 0.0) == T0
    before = time.time()
    parsed = monitoring.parse_time("-1h", 0.0)
    assert before - 3600 <= parsed <= time.time() - 3600  # read from the clock when called


def test_no_drift_on_traffic_like_training(tmp_path: Path, registry: Registry) -> None:
    capture = tmp_path / "capture"
    write_capture(capture, make_synthetic(1000, n_numeric=4, n_categorical=2, seed=5))
    result = run_monitoring(MODEL, registry.root, capture, start=T0, end=T0 + 3600)
    assert result.status == "ok", result.reasons
    assert not result.retrain
    assert result.rows == 1000
    assert result.data_quality is not None and result.data_quality["errors"] == 0
    assert set(result.drift_scores) >= {"num_00", "cat_00"}


def test_planted_drift_asks_for_retraining(tmp_path: Path, registry: Registry) -> None:
    capture = tmp_path / "capture"
    drifted = make_synthetic(1000, n_numeric=4, n_categorical=2, seed=6, drift={"num_01": 1.5})
    write_capture(capture, drifted)
    result = run_monitoring(MODEL, registry.root, capture, start=T0, end=T0 + 3600)
    assert result.retrain and result.status == "retrain"
    assert result.drift.drifted == ["num_01"]
    assert "drift in num_01" in result.reasons[0]
    page = result.to_html()
    assert "<table" in page and "num_01" in page and "RETRAIN" in page
    assert json.loads(json.dumps(result.to_dict()))["drift"]["drifted"] == ["num_01"]
    assert "num_01" in result.to_markdown()


def test_drift_policy_comes_from_the_monitoring_policy(tmp_path: Path, registry: Registry) -> None:
    capture = tmp_path / "capture"
    write_capture(capture, make_synthetic(1000, n_numeric=4, n_categorical=2, seed=6,
                                          drift={"num_01": 1.5}))  # fmt: skip
    policy = MonitoringPolicy(retrain_on_drift=False)
    result = run_monitoring(MODEL, registry.root, capture, start=T0, end=T0 + 3600, policy=policy)
    assert result.drift.dataset_drift and not result.retrain
    with pytest.raises(ConfigError, match="unknown drift policy"):
        MonitoringPolicy(drift={"bogus": 1})
    with pytest.raises(ConfigError, match="unknown monitoring policy"):
        MonitoringPolicy.from_dict({"max_drop": 1})


def test_too_few_rows_gives_no_verdict(tmp_path: Path, registry: Registry) -> None:
    capture = tmp_path / "capture"
    write_capture(capture, make_synthetic(20, n_numeric=4, n_categorical=2, drift={"num_01": 3}))
    result = run_monitoring(MODEL, registry.root, capture, start=T0, end=T0 + 3600)
    assert result.status == "too_few_rows" and not result.retrain


def test_rows_of_other_versions_are_left_out(tmp_path: Path, registry: Registry) -> None:
    capture = tmp_path / "capture"
    write_capture(capture, make_synthetic(300, n_numeric=4, n_categorical=2, seed=3,
                                          drift={"num_01": 3}), version="v0")  # fmt: skip
    write_capture(capture, make_synthetic(300, n_numeric=4, n_categorical=2, seed=4),
                  ts0=T0 + 600, prefix="s")  # fmt: skip
    result = run_monitoring(MODEL, registry.root, capture, start=T0, end=T0 + 3600)
    assert (result.rows, result.other_version_rows) == (300, 300)
    assert not result.retrain


def test_missing_feature_is_a_data_quality_error_not_a_retrain(
    tmp_path: Path, registry: Registry
) -> None:
    capture = tmp_path / "capture"
    frame = make_synthetic(500, n_numeric=4, n_categorical=2, seed=8, drift={"num_01": 2})
    write_capture(capture, frame.drop(columns=["num_03"]))
    result = run_monitoring(MODEL, registry.root, capture, start=T0, end=T0 + 3600)
    assert result.data_quality["errors"] >= 1
    assert "num_03" in result.drift.missing
    assert not result.retrain
    assert "violates the contract" in result.reasons[0]


def test_late_labels_measure_quality_and_detect_decay(tmp_path: Path, registry: Registry) -> None:
    capture = tmp_path / "capture"
    frame = make_synthetic(400, n_numeric=4, n_categorical=2, seed=9)
    ids = write_capture(capture, frame)
    labels = tmp_path / "labels"
    labels.mkdir()
    truth = frame["target"].to_numpy()
    # Half the labels disagree with the (captured) predictions: accuracy ~0.5 vs 0.9 trained.
    flipped = np.where(np.arange(len(truth)) % 2 == 0, 1 - truth, truth)
    with (labels / "a.jsonl").open("w") as fh:
        for rid, label in zip(ids[:300], flipped[:300], strict=True):
            fh.write(json.dumps({"id": rid, "label": int(label)}) + "\n")
        fh.write("{broken\n")
    pd.DataFrame({"id": ids[300:], "label": flipped[300:]}).to_csv(labels / "b.csv", index=False)
    read = read_labels(labels)
    assert (len(read.frame), read.malformed) == (400, 1)
    result = run_monitoring(
        MODEL, registry.root, capture, start=T0, end=T0 + 3600, labels_dir=labels
    )
    q = result.quality
    assert q is not None and q.labeled_rows == 400
    assert q.metrics["accuracy"] == pytest.approx(0.5)
    assert q.training_metrics["f1_macro"] == 0.9
    assert q.decayed and result.retrain
    assert any("quality decay" in r for r in result.reasons)
    assert "log_loss" in q.metrics


def test_good_labels_keep_quality(tmp_path: Path, registry: Registry) -> None:
    capture = tmp_path / "capture"
    frame = make_synthetic(300, n_numeric=4, n_categorical=2, seed=10)
    ids = write_capture(capture, frame)
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"id": i, "label": int(t)}) + "\n"
                              for i, t in zip(ids, frame["target"], strict=True)))  # fmt: skip
    result = run_monitoring(
        MODEL, registry.root, capture, start=T0, end=T0 + 3600, labels_dir=labels
    )
    assert result.quality.metrics["accuracy"] == 1.0
    assert not result.quality.decayed and not result.retrain


def test_build_training_data_joins_features_and_labels(tmp_path: Path, registry: Registry) -> None:
    capture = tmp_path / "capture"
    frame = make_synthetic(200, n_numeric=4, n_categorical=2, seed=11)
    ids = write_capture(capture, frame)
    labels = tmp_path / "labels"
    labels.mkdir()
    pairs = zip(ids[:150], frame["target"][:150], strict=True)
    (labels / "l.jsonl").write_text(
        "".join(json.dumps({"id": i, "label": int(t)}) + "\n" for i, t in pairs)
    )
    contract = Contract.load(registry.resolve(MODEL, "champion").path / "contract.json")
    path, rows = monitoring.build_training_data(
        capture, labels, MODEL, contract, tmp_path / "train.parquet", start=T0, end=T0 + 3600
    )
    table = pd.read_parquet(path)
    assert rows == 150 and len(table) == 150
    assert list(table.columns) == [*contract.feature_names, "target"]
    assert table["target"].tolist() == frame["target"][:150].tolist()
    with pytest.raises(DataError, match="only 150"):
        monitoring.build_training_data(capture, labels, MODEL, contract, tmp_path / "x.parquet",
                                       start=T0, end=T0 + 3600, min_rows=500)  # fmt: skip


def test_training_params_repeat_the_champion(registry: Registry) -> None:
    params = retrain.training_params(registry.root, MODEL, "/data/new.parquet")
    assert (params.target, params.task, params.estimator) == (
        "target", "classification", "logistic_regression",
    )  # fmt: skip
