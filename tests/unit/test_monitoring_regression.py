"""Monitoring a regression model: quality from late numeric labels, and decay in the right
direction (rmse is lower-is-better: worse means larger)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from kfops.contract import infer_contract
from kfops.datasets import make_synthetic
from kfops.drift import build_reference_profile
from kfops.evaluation import regression_metrics
from kfops.io import write_json_atomic
from kfops.monitoring import run_monitoring
from kfops.registry import Registry
from kfops.training import train as train_model
from tests.unit.test_monitoring import T0

MODEL = "price"
SHAPE = {"n_numeric": 4, "n_categorical": 2}


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory) -> tuple[Registry, object, dict]:
    """A registered regression champion whose metrics.json holds its held-out figures."""
    tmp = tmp_path_factory.mktemp("regression")
    data = make_synthetic(2500, task="regression", seed=1, **SHAPE)
    train, test = data.iloc[:2000], data.iloc[2000:]
    contract = infer_contract(train, "target", "regression")
    model = train_model(train, contract, "ridge")
    metrics = regression_metrics(
        test["target"].to_numpy(), model.predict(test.drop(columns=["target"]))
    )
    src = tmp / "src"
    src.mkdir()
    contract.save(src / "contract.json")
    build_reference_profile(train, contract).save(src / "reference_profile.json")
    write_json_atomic(src / "metrics.json", metrics)
    joblib.dump(model, src / "model.joblib")
    reg = Registry(tmp / "registry")
    files = {n: src / n for n in ("contract.json", "reference_profile.json", "metrics.json",
                                   "model.joblib")}  # fmt: skip
    reg.register(MODEL, files, {"estimator": "ridge"}, aliases=("champion",))
    return reg, model, metrics


def serve_window(capture: Path, model: object, frame: pd.DataFrame) -> dict[str, float]:
    """What the server captures for ``frame`` (numeric predictions, no probabilities); returns
    the true target of each row id."""
    features = frame.drop(columns=["target"])
    predictions = model.predict(features)  # type: ignore[attr-defined]
    path = capture / MODEL / time.strftime("%Y-%m-%d/%H", time.gmtime(T0))
    path = path.parent / f"{path.name}-1-0.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    truth = {}
    with path.open("w") as fh:
        for i, (row, pred, target) in enumerate(
            zip(features.to_dict("records"), predictions, frame["target"], strict=True)
        ):
            rid = f"r{i}:0"
            truth[rid] = float(target)
            fh.write(json.dumps({"id": rid, "ts": T0 + i * 0.5, "model": MODEL, "version": "v1",
                                 "features": row, "prediction": float(pred)}) + "\n")  # fmt: skip
    return truth


def labels(path: Path, values: dict[str, float]) -> Path:
    path.write_text("".join(json.dumps({"id": k, "label": v}) + "\n" for k, v in values.items()))
    return path


def test_regression_quality_from_late_labels_keeps_the_champion(
    tmp_path: Path, champion: tuple[Registry, object, dict]
) -> None:
    reg, model, trained = champion
    frame = make_synthetic(400, task="regression", seed=7, **SHAPE)
    truth = serve_window(tmp_path / "capture", model, frame)
    result = run_monitoring(MODEL, reg.root, tmp_path / "capture", start=T0, end=T0 + 3600,
                            labels_dir=labels(tmp_path / "l.jsonl", truth))  # fmt: skip
    q = result.quality
    assert q is not None and q.labeled_rows == 400 and q.primary_metric == "rmse"
    assert set(q.metrics) == {"rmse", "mae", "r2", "mape"}
    predicted = model.predict(frame.drop(columns=["target"]))  # type: ignore[attr-defined]
    expected = regression_metrics(frame["target"].to_numpy(), predicted)
    assert q.metrics == pytest.approx(expected, rel=1e-9)
    assert q.training_metrics["rmse"] == trained["rmse"]
    assert abs(q.degradation) < 0.2  # same concept: about the training error
    assert not q.decayed and result.status == "ok" and not result.retrain, result.reasons


def test_regression_decay_when_the_concept_moves(
    tmp_path: Path, champion: tuple[Registry, object, dict]
) -> None:
    reg, model, trained = champion
    frame = make_synthetic(400, task="regression", seed=8, **SHAPE)
    truth = serve_window(tmp_path / "capture", model, frame)
    moved = {k: v + 2.0 for k, v in truth.items()}  # the world shifted by 2 target units
    result = run_monitoring(MODEL, reg.root, tmp_path / "capture", start=T0, end=T0 + 3600,
                            labels_dir=labels(tmp_path / "l.jsonl", moved))  # fmt: skip
    q = result.quality
    assert q is not None and q.decayed and result.retrain and result.status == "retrain"
    assert q.metrics["rmse"] > 2.0 > trained["rmse"]
    assert q.degradation == pytest.approx((q.metrics["rmse"] - trained["rmse"]) / trained["rmse"])
    assert result.reasons == [f"quality decay: {q.reason}"]
    assert q.reason.startswith(f"rmse {q.metrics['rmse']:.4f} vs {trained['rmse']:.4f} at training")
    assert "rmse" in result.to_html()


def test_regression_smaller_error_is_not_decay(
    tmp_path: Path, champion: tuple[Registry, object, dict]
) -> None:
    reg, model, _ = champion
    frame = make_synthetic(200, task="regression", seed=9, **SHAPE)
    serve_window(tmp_path / "capture", model, frame)
    captured = [json.loads(x) for x in next((tmp_path / "capture").rglob("*.jsonl")).open()]
    exact = {r["id"]: r["prediction"] for r in captured}  # labels equal to the predictions
    result = run_monitoring(MODEL, reg.root, tmp_path / "capture", start=T0, end=T0 + 3600,
                            labels_dir=labels(tmp_path / "l.jsonl", exact))  # fmt: skip
    q = result.quality
    assert q is not None and q.metrics["rmse"] == 0.0 and q.degradation == -1.0
    assert not q.decayed and not result.retrain
    assert np.isfinite(q.metrics["mae"]) and q.metrics["mae"] == 0.0
