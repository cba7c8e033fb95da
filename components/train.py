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

    from kfops.components import _decode
    from kfops.steps import train as step
    from kfops.steps._run import RunContext

    ctx = RunContext.of(registry_root, run_id, job_id)
    with ctx.task("train"):
        inputs = step.TrainInputs(
            train_path=Path(train.path),
            contract_path=Path(contract.path),
            estimator=estimator,
            params=_decode.params(params_json),
            seed=seed,
            model_path=Path(model.path),
            profile_path=Path(reference_profile.path),
        )
        result = step.run(inputs, ctx)
    model.metadata.update({"estimator": estimator, "framework": "scikit-learn"})
    return json.dumps(result.params, sort_keys=True)
