"""Register: a blessed model becomes an immutable registry version with its lineage."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model

from kfops.components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def register(
    model_name: str,
    model: Input[Model],
    contract: Input[Artifact],
    reference_profile: Input[Artifact],
    evaluation: Input[Artifact],
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
) -> str:
    from pathlib import Path

    from kfops.components import _decode
    from kfops.io import read_json
    from kfops.steps import register as step
    from kfops.steps._run import RunContext

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
        inputs = step.RegisterInputs(
            model_name=model_name,
            model_path=Path(model.path),
            contract_path=Path(contract.path),
            profile_path=Path(reference_profile.path),
            evaluation_path=Path(evaluation.path),
            lineage=lineage,
        )
        version = step.run(inputs, ctx)
    return version.version
