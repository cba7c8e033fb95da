"""Train: fit the sklearn Pipeline (preprocessing inside) and the drift reference profile."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from kfops.components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train(
    train: Input[Dataset],
    contract: Input[Artifact],
    estimator: str,
    params_json: str,
    seed: int,
    registry_root: str,
    run_id: str,
    job_id: str,
    model: Output[Model],
    reference_profile: Output[Artifact],
) -> str:
    import json
    from pathlib import Path

    from kfops import lifecycle

    ctx = lifecycle.RunContext.of(registry_root, run_id, job_id)
    params = lifecycle.train_step(
        Path(train.path),
        Path(contract.path),
        estimator,
        params_json,
        seed,
        Path(model.path),
        Path(reference_profile.path),
        ctx,
    )
    model.metadata.update({"estimator": estimator, "framework": "scikit-learn"})
    return json.dumps(params, sort_keys=True)
