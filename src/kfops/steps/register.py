"""Register: a blessed model becomes an immutable registry version, with lineage; `challenger`
points at it until the deploy step makes it the champion.

This step decides what goes into the version (the registry copies, hashes and signs whatever it
is given):

- always: ``model.joblib``, ``contract.json``, ``reference_profile.json``, ``metrics.json``,
  ``explainer.json`` (what the explainer needs, kfops.explain.contributions) and
  ``MODEL_CARD.md`` (kfops.explain.model_card);
- ``model.onnx`` only when its twin, converted at training, matches the pipeline on the whole
  held-out split (kfops.twin.record.judge). A twin that fails is left out, and the lineage
  says why (``lineage["twin"]``, the contract serving reads).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfops.contract_model import Contract
from kfops.explain.contributions import EXPLAINER_FILE
from kfops.explain.importance import Importance
from kfops.explain.model_card import MODEL_CARD_FILE, VersionFacts, render_model_card
from kfops.io import read_json, sha256_file, write_json_atomic, write_text_atomic
from kfops.params import resolve_estimator
from kfops.registry import CHALLENGER, CHAMPION, MODEL_FILE, ModelVersion, code_version
from kfops.steps._run import RunContext
from kfops.twin.record import CONVERTED, TWIN_FILE, TwinRecord, judge


@dataclass(frozen=True)
class RegisterInputs:
    model_name: str
    model_path: Path
    contract_path: Path
    profile_path: Path
    evaluation_path: Path
    importance_path: Path  # evaluate's permutation importance
    test_path: Path  # the held-out split the twin is verified on
    twin_path: Path  # train's ONNX twin (empty when there is none)
    twin: TwinRecord  # train's record of it: "converted" or "not_convertible"
    explainer_path: Path  # train's explainer.json
    # What the version was made from (data URI and fingerprint, estimator, params, seed,
    # blessing decision, tuning summary, ...): stored as lineage.json with the metrics and run.
    lineage: Mapping[str, Any]


def run(inputs: RegisterInputs, ctx: RunContext) -> ModelVersion:
    """The new version, or the champion itself when the model has the champion's exact bytes
    (retraining on unchanged data): no new version then, and the run record says which version
    it matched (``register.unchanged``)."""
    champion = ctx.registry.verify(inputs.model_name, missing_ok=True)
    if champion is not None and champion.model_sha256 == sha256_file(inputs.model_path):
        print(
            f"model unchanged: same bytes as champion {inputs.model_name} {champion.version}; "
            "no new version registered",
            flush=True,
        )
        ctx.record(
            "register",
            {
                "model": inputs.model_name,
                "version": champion.version,
                "sha256": champion.model_sha256,
                "unchanged": True,
                "matched": champion.version,
                "twin": (champion.lineage or {}).get("twin"),
            },
        )
        return champion
    # The metrics straight from the evaluation file (metrics.json in the version).
    metrics = {k: float(v) for k, v in read_json(inputs.evaluation_path)["metrics"].items()}
    the_contract = Contract.load(inputs.contract_path)
    twin = verified_twin(inputs, the_contract)
    importance = Importance.from_dict(read_json(inputs.importance_path))
    lineage = {
        **inputs.lineage,
        "estimator": resolve_estimator(
            str(inputs.lineage.get("estimator") or ""), the_contract.task
        ),
        "metrics": metrics,
        "run_id": ctx.run_id,
        "twin": twin.to_dict(),
        "importance": importance.to_dict(),
        # Set here (the registry would set the same) so that the model card can name it.
        "parent": ctx.registry.get_alias(inputs.model_name, CHAMPION),
    }
    # The card is written before the version has a number (the registry picks it when the
    # version is published): it names the model and the run; its directory names the version.
    facts = VersionFacts.from_lineage(
        {**lineage, "model": inputs.model_name, "code": code_version()}
    )
    with tempfile.TemporaryDirectory(prefix="kfops-register-") as tmp:
        staged = Path(tmp)
        write_json_atomic(staged / "metrics.json", metrics)
        write_text_atomic(
            staged / MODEL_CARD_FILE, render_model_card(facts, the_contract, metrics, importance)
        )
        files = {
            MODEL_FILE: Path(inputs.model_path),
            "contract.json": Path(inputs.contract_path),
            "reference_profile.json": Path(inputs.profile_path),
            "metrics.json": staged / "metrics.json",
            EXPLAINER_FILE: Path(inputs.explainer_path),
            MODEL_CARD_FILE: staged / MODEL_CARD_FILE,
        }
        if twin.verified:
            files[TWIN_FILE] = Path(inputs.twin_path)
        version = ctx.registry.register(inputs.model_name, files, lineage, aliases=(CHALLENGER,))
    ctx.record(
        "register",
        {
            "model": inputs.model_name,
            "version": version.version,
            "sha256": version.model_sha256,
            "twin": twin.to_dict(),
        },
    )
    return version


def verified_twin(inputs: RegisterInputs, contract: Contract) -> TwinRecord:
    """Train's twin record, judged on the whole held-out split when there is a twin to judge."""
    if inputs.twin.status != CONVERTED:
        return inputs.twin
    import pandas as pd

    from kfops import training

    return judge(
        inputs.twin,
        training.load_model(inputs.model_path),
        inputs.twin_path,
        pd.read_parquet(inputs.test_path),
        contract,
    )
