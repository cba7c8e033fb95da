"""Train: fit the sklearn Pipeline (preprocessing inside), the drift reference profile, the
explainer's background, and the ONNX twin (verified later, at registration)."""

from typing import NamedTuple

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
    twin: Output[Model],
    explainer: Output[Artifact],
) -> NamedTuple("TrainOutputs", params_json=str, twin_json=str):
    import json
    from collections import namedtuple
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
            twin_path=Path(twin.path),
            explainer_path=Path(explainer.path),
        )
        result = step.run(inputs, ctx)
    model.metadata.update({"estimator": estimator, "framework": "scikit-learn"})
    twin.metadata.update({"framework": "onnx", "status": result.twin.status})
    if result.twin.reason:
        twin.metadata["reason"] = result.twin.reason
    print(f"twin: {result.twin.summary()}")
    outputs = namedtuple("TrainOutputs", ["params_json", "twin_json"])
    return outputs(
        json.dumps(result.params, sort_keys=True),
        json.dumps(result.twin.to_dict(), sort_keys=True),
    )
