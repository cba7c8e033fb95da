"""The monitoring pipeline under kfp.local: a drifted, labelled window retrains the model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kfops.datasets import make_synthetic
from tests.unit.test_monitoring import MODEL, make_registry, write_capture

pytestmark = pytest.mark.integration


def test_monitoring_pipeline_retrains_on_a_drifted_labelled_window(tmp_path: Path) -> None:
    import kfp.local
    from kfp import components

    from kfops.pipelines.compile import compile_pipeline

    # The champion's training data and blessing bar, where its lineage records them: the
    # retrain trains on that data plus the labelled window, and is held to that bar.
    train = make_synthetic(2000, n_numeric=4, n_categorical=2, seed=1)
    train.to_csv(tmp_path / "train.csv", index=False)
    bar = {"thresholds": {"accuracy": 0.6}, "max_regression": 0.05}
    registry = make_registry(
        tmp_path, lineage={"data_uri": str(tmp_path / "train.csv"), "blessing": {"policy": bar}}
    )
    capture, labels = tmp_path / "capture", tmp_path / "labels"
    labels.mkdir()
    frame = make_synthetic(1500, n_numeric=4, n_categorical=2, seed=6, drift={"num_01": 1.5})
    # A recent window: the pipeline looks at the last hour.
    import time

    ids = write_capture(capture, frame, ts0=time.time() - 1200)
    (labels / "l.jsonl").write_text("".join(
        json.dumps({"id": i, "label": int(t)}) + "\n"
        for i, t in zip(ids, frame["target"], strict=True)
    ))  # fmt: skip
    spec = compile_pipeline("monitoring", tmp_path / "monitoring.yaml", "kfops:0.1.0")
    pipeline = components.load_component_from_file(str(spec))
    kfp.local.init(
        runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root")
    )
    task = pipeline(
        model_name=MODEL, registry_root=str(registry.root), capture_uri=str(capture),
        labels_uri=str(labels), window_hours=1.0,
    )  # fmt: skip
    del task
    # The window asked for retraining; the nested training pipeline registered v2 on it.
    versions = [v.version for v in registry.versions(MODEL)]
    assert versions == ["v1", "v2"], versions
    v2 = registry.resolve(MODEL, "v2")
    assert "retrain-data" in v2.lineage["data_uri"]
    mix = v2.lineage["data_mix"]
    assert (mix["window_rows"], mix["reference_rows"], mix["champion"]) == (1500, 2000, "v1")
    assert mix["reference_uri"] == str(tmp_path / "train.csv")
    # Blessed under the champion's thresholds, not the pipeline's (there are none any more).
    policy = v2.lineage["blessing"]["policy"]
    assert policy["thresholds"] == {"accuracy": 0.6} and policy["max_regression"] == 0.05
    # The monitor task's report (every kfops report now shares one page shell and doctype).
    reports = list((tmp_path / "root").rglob("monitor/report"))
    html = [p for p in reports if p.is_file() and p.read_text().startswith("<!doctype html>")]
    assert html and "num_01" in html[0].read_text()
