"""The monitoring pipeline compiles, and `kfops monitor` runs one window from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from kfops.cli import main
from kfops.datasets import make_synthetic
from tests.unit.test_monitoring import MODEL, T0, registry, write_capture  # noqa: F401


def test_monitoring_pipeline_compiles(tmp_path: Path) -> None:
    from kfops.pipelines.compile import compile_pipeline

    path = compile_pipeline("monitoring", tmp_path / "monitoring.yaml", "kfops:0.1.0")
    # Two documents: the pipeline spec, then the Kubernetes platform spec (the registry PVC).
    spec, platform = yaml.safe_load_all(path.read_text())
    assert spec["pipelineInfo"]["name"] == "kfops-monitoring"
    assert "/mnt/kfops" in str(platform) and "registry_pvc" in str(platform)
    tasks = spec["root"]["dag"]["tasks"]
    assert "monitor" in tasks
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert {"model_name", "registry_root", "capture_uri", "labels_uri", "pushgateway"} <= set(
        params
    )
    # The retrain's blessing bar is the champion's, from the monitor task's plan: the
    # pipeline has no thresholds of its own, and the nested training pipeline reads the
    # monitor task's outputs (with the data mix for the lineage).
    assert not {"thresholds_json", "max_regression"} & set(params)
    retrain = yaml.safe_dump(spec["components"])
    for name in ("thresholds_json", "max_regression", "data_mix_json"):
        assert f"componentInputParameter: pipelinechannel--monitor-{name}" in retrain, name
    text = path.read_text()
    assert "comp-kfops-training" in text  # the nested training pipeline, behind the conditions
    assert "kfops:0.1.0" in text
    # Byte-stable: the same inputs compile to the same spec.
    again = compile_pipeline("monitoring", tmp_path / "again.yaml", "kfops:0.1.0")
    assert again.read_text() == text


def test_kfops_monitor_reports_a_window(tmp_path: Path, registry, capsys) -> None:  # noqa: F811
    capture = tmp_path / "capture"
    write_capture(capture, make_synthetic(600, n_numeric=4, n_categorical=2, seed=6,
                                          drift={"num_01": 1.5}))  # fmt: skip
    out_dir = tmp_path / "report"
    code = main([
        "monitor", "--model", MODEL, "--registry", str(registry.root), "--capture-dir",
        str(capture), "--start", str(T0), "--end", str(T0 + 3600), "--report-dir", str(out_dir),
        "--json",
    ])  # fmt: skip
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["result"]["status"] == "retrain"
    assert out["plan"]["retrain"] is False and "no labels" in out["plan"]["reason"]
    assert (out_dir / "report.html").read_text().startswith("<!doctype html>")
    assert json.loads((out_dir / "result.json").read_text())["drift"]["drifted"] == ["num_01"]


def test_kfops_monitor_empty_window_and_bad_input(tmp_path: Path, registry, capsys) -> None:  # noqa: F811
    base = ["monitor", "--model", MODEL, "--registry", str(registry.root), "--capture-dir",
            str(tmp_path / "none"), "--report-dir", str(tmp_path / "r")]  # fmt: skip
    assert main(base) == 0
    assert "no_rows" in capsys.readouterr().out
    assert main([*base, "--start", "last tuesday"]) == 2
    assert "bad time 'last tuesday'" in capsys.readouterr().err
    assert main(["monitor", "--model", "nope", "--registry", str(registry.root)]) == 2
    assert "nope" in capsys.readouterr().err
    policy = tmp_path / "policy.yaml"
    policy.write_text("max_drop: 0.1\n")
    assert main([*base, "--policy", str(policy)]) == 2
    assert "unknown monitoring policy settings ['max_drop']" in capsys.readouterr().err


def test_pushgateway_down_is_a_clear_error(tmp_path: Path, registry, capsys) -> None:  # noqa: F811
    from tests.conftest import free_port

    capture = tmp_path / "capture"
    write_capture(capture, make_synthetic(200, n_numeric=4, n_categorical=2, seed=3))
    code = main([
        "monitor", "--model", MODEL, "--registry", str(registry.root), "--capture-dir",
        str(capture), "--start", str(T0), "--end", str(T0 + 3600), "--report-dir",
        str(tmp_path / "r"), "--pushgateway", f"http://127.0.0.1:{free_port()}",
    ])  # fmt: skip
    assert code == 2
    assert "cannot push to the Pushgateway" in capsys.readouterr().err


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("KFOPS_MODEL_NAME", "KFOPS_CAPTURE_DIR", "KFOPS_REGISTRY_ROOT"):
        monkeypatch.delenv(var, raising=False)
