"""Register: a blessed model becomes an immutable registry version with its lineage; its ONNX
twin joins it only when verified on the held-out split. Shows the version's model card."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Model, Output

from kfops.components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def register(
    model_name: str,
    model: Input[Model],
    contract: Input[Artifact],
    reference_profile: Input[Artifact],
    evaluation: Input[Artifact],
    importance: Input[Artifact],
    test: Input[Dataset],
    twin: Input[Model],
    twin_json: str,
    explainer: Input[Artifact],
    snapshot: Input[Dataset],
    data_uri: str,
    fingerprint: str,
    estimator: str,
    params_json: str,
    seed: int,
    test_size: float,
    decision: Input[Artifact],
    tuning_json: str,
    registry_root: str,
    run_id: str,
    job_id: str,
    model_card: Output[Markdown],
    data_mix_json: str = "{}",
) -> str:
    from pathlib import Path

    from kfops.components import _decode
    from kfops.explain.model_card import MODEL_CARD_FILE
    from kfops.io import read_json, write_text_atomic
    from kfops.steps import register as step
    from kfops.steps._run import RunContext
    from kfops.twin.record import TwinRecord

    ctx = RunContext.of(registry_root, run_id, job_id)
    with ctx.task("register"):
        lineage = {
            "data_uri": data_uri,
            "data_fingerprint": fingerprint,
            "snapshot_uri": snapshot.uri,
            "estimator": estimator,
            "params": _decode.params(params_json),
            "seed": seed,
            "test_size": test_size,
            "blessing": read_json(Path(decision.path)),
            "kfp_job_id": job_id,
            "tuning": _decode.json_object(tuning_json, "tuning summary"),
        }
        # A retrain's data: the labelled window plus reference rows (steps/retrain.DataMix).
        data_mix = _decode.json_object(data_mix_json, "data mix")
        if data_mix:
            lineage["data_mix"] = data_mix
        inputs = step.RegisterInputs(
            model_name=model_name,
            model_path=Path(model.path),
            contract_path=Path(contract.path),
            profile_path=Path(reference_profile.path),
            evaluation_path=Path(evaluation.path),
            importance_path=Path(importance.path),
            test_path=Path(test.path),
            twin_path=Path(twin.path),
            twin=TwinRecord.from_dict(_decode.json_object(twin_json, "twin record")),
            explainer_path=Path(explainer.path),
            lineage=lineage,
        )
        version = step.run(inputs, ctx)
    write_text_atomic(Path(model_card.path), version.file(MODEL_CARD_FILE).read_text())
    print(f"twin: {TwinRecord.from_dict(version.lineage['twin']).summary()}")
    return version.version
