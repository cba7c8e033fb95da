"""The Markdown model card and the importance ranking of drifted features."""

from __future__ import annotations

import pytest

from kfops.contract_model import Contract
from kfops.drift.report import FeatureDrift
from kfops.errors import ConfigError
from kfops.explain.importance import FeatureImportance, Importance
from kfops.explain.model_card import VersionFacts, render_model_card
from kfops.explain.ranking import rank_drift

FINGERPRINT = "sha256:5f1e0c" + "0" * 58

CONTRACT = Contract.from_dict(
    {
        "schema_version": 1,
        "task": "regression",
        "target": {"name": "price", "kind": "numeric", "dtype": "float64", "min": 12.5, "max": 990},
        "features": [
            {"name": "area_m2", "kind": "numeric", "dtype": "float64", "min": 18, "max": 412.5},
            {
                "name": "district",
                "kind": "categorical",
                "dtype": "object",
                "categories": [f"d{i:02d}" for i in range(14)],
            },
            {"name": "has_lift", "kind": "boolean", "dtype": "bool", "categories": [False, True]},
            {"name": "listing", "kind": "text", "dtype": "object", "nullable": False},
            {
                "name": "built",
                "kind": "datetime",
                "dtype": "datetime64[ns]",
                "min": "1951-01-01T00:00:00",
                "max": "2023-06-30T00:00:00",
            },
        ],
        "dropped": [
            {"name": "listing_id", "reason": "ID-like: every value is unique"},
            {"name": "notes|raw", "reason": "constant"},
        ],
        "fingerprint": FINGERPRINT,
    }
)

LINEAGE = {
    "model": "flats",
    "version": "v7",
    "created_at": "2026-05-01T10:00:00Z",
    "data_uri": "https://example.org/flats.csv",
    "data_fingerprint": FINGERPRINT,
    "estimator": "random_forest",
    "params": '{"n_estimators": 300}',  # KFP hands JSON text through
    "seed": "42",
    "test_size": 0.2,
    "parent": "v6",
    "run_id": "run-20260501-1",
    "code": {"kfops_version": "0.1.0", "git_commit": "abc1234", "git_dirty": False},
    "metrics": {"rmse": 41.25, "r2": 0.87},
}

IMPORTANCE = Importance(
    metric="rmse",
    scoring="neg_root_mean_squared_error",
    n_rows=400,
    n_repeats=5,
    seed=42,
    features=(
        FeatureImportance("area_m2", 55.0, 3.0, 0.7),
        FeatureImportance("district", 20.0, 2.0, 0.25),
        FeatureImportance("built", 3.9, 1.0, 0.05),
        FeatureImportance("has_lift", 0.0, 0.1, 0.0),
        FeatureImportance("listing", -0.2, 0.3, 0.0),
    ),
)


def test_model_card_holds_the_key_facts() -> None:
    facts = VersionFacts.from_lineage(LINEAGE)
    assert facts.params == {"n_estimators": 300} and facts.seed == 42
    card = render_model_card(facts, CONTRACT, LINEAGE["metrics"], IMPORTANCE)
    assert card.startswith("# Model card: flats v7\n")
    for fact in (
        "regression of `price`",
        "https://example.org/flats.csv",
        FINGERPRINT,
        "0.2 of the labeled rows, seed 42",
        "`random_forest`",
        '{"n_estimators": 300}',
        "| rmse | 41.25 |",
        "| r2 | 0.87 |",
        "| 1 | area_m2 | 70.0% |",
        "| 2 | district | 25.0% |",
        "| area_m2 | numeric | yes | 18 to 412.5 |",
        "`d00`, `d01`",
        "(+4 more)",
        "| listing | text | no | free text |",
        "1951-01-01T00:00:00 to 2023-06-30T00:00:00",
        "column `listing_id` is not used: ID-like: every value is unique",
        "column `notes\\|raw` is not used",  # a pipe cannot break the Markdown
        "`has_lift`, `listing`",  # no measurable effect on held-out rows
        "parent version: `v6`",
        "git commit: `abc1234`",
    ):
        assert fact in card, fact
    assert "`d13`" not in card  # the domain is cut after 10 values


def test_model_card_from_sparse_lineage_says_unknown() -> None:
    facts = VersionFacts.from_lineage({"model": "m", "version": "v1", "params": "not json"})
    card = render_model_card(facts, CONTRACT, {}, None)
    assert "- source: unknown" in card
    assert f"- fingerprint: `{FINGERPRINT}`" in card  # falls back to the contract's
    assert "No metrics recorded." in card
    assert "Not computed for this version." in card
    assert "`unknown`" in card  # estimator


def _verdict(name: str, drifted: bool, psi: float | None = None) -> FeatureDrift:
    return FeatureDrift(
        name=name,
        kind="numeric",
        status="drift" if drifted else "ok",
        drifted=drifted,
        reason="",
        psi=psi,
    )


def test_drifted_features_ranked_by_importance() -> None:
    verdicts = [
        _verdict("has_lift", True, psi=0.9),
        _verdict("area_m2", True, psi=0.3),
        _verdict("district", False, psi=0.01),
        _verdict("new_col", True, psi=0.5),  # the importance does not know it
        _verdict("built", True, psi=0.4),
        _verdict("listing", True, psi=0.8),
    ]
    ranking = rank_drift(verdicts, IMPORTANCE.shares())
    # Off by default: every drifted feature alerts; importance first, then PSI, unknown last.
    assert ranking.alerting == ["area_m2", "built", "has_lift", "listing", "new_col"]
    assert ranking.ignored == []
    assert ranking.annotation(top=2) == (
        "area_m2 (70% of importance), built (5% of importance) and 3 more"
    )
    filtered = rank_drift(verdicts, IMPORTANCE.shares(), min_share=0.05)
    assert filtered.alerting == ["area_m2", "built", "new_col"]
    assert filtered.ignored == ["has_lift", "listing"]
    assert filtered.to_dict()["min_share"] == 0.05
    only_minor = rank_drift([_verdict("has_lift", True)], IMPORTANCE.shares(), min_share=0.1)
    assert only_minor.alerting == [] and "no drifted feature" in only_minor.annotation()


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_ranking_rejects_a_bad_share(bad: float) -> None:
    with pytest.raises(ConfigError, match="min_share"):
        rank_drift([], {}, min_share=bad)
