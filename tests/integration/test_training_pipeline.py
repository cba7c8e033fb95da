"""The training pipeline end to end with kfp.local, twice, and the registry it leaves."""

from __future__ import annotations

from pathlib import Path

import pytest

from kfops import tracking
from kfops.datasets import default_data_path
from kfops.io import read_json
from kfops.local_runner import TrainingParams, run_training
from kfops.registry import Registry

pytestmark = pytest.mark.integration


def _params(registry: Path, **overrides: object) -> TrainingParams:
    values: dict[str, object] = {
        "data_uri": str(default_data_path()),
        "target": "species",
        "model_name": "penguins",
        "registry_root": str(registry),
        "thresholds": {"f1_macro": 0.6},
    }
    values.update(overrides)
    return TrainingParams(**values)  # type: ignore[arg-type]


def test_runs_register_versions_with_lineage_judge_against_champion_and_skip_repeats(
    tmp_path: Path,
) -> None:
    registry_root = tmp_path / "registry"
    first = run_training(_params(registry_root))
    assert first.status == "succeeded"
    assert first.blessed is True
    assert first.version == "v1"
    assert first.metrics["f1_macro"] >= 0.9
    assert any("no champion" in reason for reason in first.reasons)
    assert first.aliases.get("champion") == "v1"
    # The twin was verified at registration; the importance was measured at evaluation.
    assert first.twin is not None and first.twin["status"] == "verified", first.twin
    assert first.importance is not None and first.importance["metric"] == "f1_macro"

    second = run_training(_params(registry_root))
    assert second.blessed is True
    # Same data and seed: judged against v1 on the same rows, no regression.
    assert any("champion v1" in reason for reason in second.reasons), second.reasons
    assert second.fingerprint == first.fingerprint
    # Deterministic training gives v1's exact bytes: reported unchanged, nothing registered.
    assert (second.version, second.unchanged) == ("v1", True)
    assert second.model_sha256 == first.model_sha256
    assert second.aliases["champion"] == "v1"
    assert tracking.load_run(registry_root, second.run_id).steps["register"]["matched"] == "v1"

    # Other parameters, other bytes: a new version that becomes the champion.
    third = run_training(_params(registry_root, params={"C": 0.9}))
    assert (third.version, third.unchanged, third.blessed) == ("v2", False, True)
    assert third.aliases["champion"] == "v2"

    registry = Registry(registry_root)
    versions = registry.versions("penguins")
    assert [v.version for v in versions] == ["v1", "v2"]
    for version in versions:
        registry.verify_dir(version.path)
        files = set(version.manifest["files"])
        assert {"model.joblib", "contract.json", "reference_profile.json", "metrics.json"} <= files
        assert {"model.onnx", "explainer.json", "MODEL_CARD.md"} <= files
        lineage = version.lineage
        assert lineage["twin"]["status"] == "verified" and lineage["twin"]["verdict"]["passed"]
        assert {f["feature"] for f in lineage["importance"]["features"]} == {
            f["name"] for f in read_json(version.path / "contract.json")["features"]
        }
        assert lineage["data_fingerprint"] == first.fingerprint
        assert lineage["estimator"] == "logistic_regression"
        assert lineage["blessing"]["blessed"] is True
        assert lineage["run_id"] in {first.run_id, third.run_id}
        assert "kfops" in str(lineage.get("code_version", lineage))

    runs = tracking.list_runs(registry_root)
    assert {r.run_id for r in runs} == {first.run_id, second.run_id, third.run_id}
    assert all(r.status == "succeeded" for r in runs)
    table = tracking.compare_table(runs)
    assert first.run_id in table and "f1_macro" in table


def test_rejected_model_changes_no_alias(tmp_path: Path) -> None:
    registry_root = tmp_path / "registry"
    run_training(_params(registry_root))
    # An impossible threshold: the challenger is not blessed, nothing is registered.
    rejected = run_training(_params(registry_root, thresholds={"log_loss": 0.0001}))
    assert rejected.blessed is False
    assert rejected.version is None
    assert any("log_loss" in r and "fail" in r for r in rejected.reasons), rejected.reasons
    # Converted at training, never verified: nothing was registered.
    assert rejected.twin is not None and rejected.twin["status"] == "converted"
    registry = Registry(registry_root)
    assert [v.version for v in registry.versions("penguins")] == ["v1"]
    assert registry.get_alias("penguins", "champion") == "v1"


def test_tuned_run_trains_with_the_best_trial_and_records_the_study(tmp_path: Path) -> None:
    registry_root = tmp_path / "registry"
    summary = run_training(
        _params(
            registry_root,
            estimator="random_forest",
            params={"n_jobs": 1},
            tune=True,
            tune_rounds=2,
            tune_trials_per_round=2,
        )
    )
    assert summary.blessed is True and summary.version == "v1"
    lineage = Registry(registry_root).resolve("penguins", "v1").lineage
    tuning = lineage["tuning"]
    assert tuning["complete"] == 4 and tuning["estimator"] == "random_forest"
    # The train step used the fixed params plus the best trial's params.
    assert lineage["params"] == {"n_jobs": 1, **tuning["best_params"]}


def test_bad_search_space_is_refused_before_any_task_runs(tmp_path: Path) -> None:
    from kfops.errors import ConfigError

    registry_root = tmp_path / "registry"
    with pytest.raises(ConfigError, match="n_trees"):
        run_training(
            _params(
                registry_root,
                estimator="random_forest",
                tune=True,
                search_space='{"n_trees": {"type": "int", "low": 10, "high": 50}}',
            )
        )
    assert not (registry_root / "runs").exists() or not any((registry_root / "runs").iterdir())
