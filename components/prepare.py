"""Prepare: a deterministic, seeded (stratified for classification) train/test split."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from kfops.components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def prepare(
    snapshot: Input[Dataset],
    contract: Input[Artifact],
    test_size: float,
    seed: int,
    registry_root: str,
    run_id: str,
    train: Output[Dataset],
    test: Output[Dataset],
):
    from pathlib import Path

    from kfops.steps import prepare
    from kfops.steps._run import RunContext

    ctx = RunContext.cacheable(registry_root, run_id)
    with ctx.task("prepare"):
        inputs = prepare.PrepareInputs(
            snapshot_path=Path(snapshot.path),
            contract_path=Path(contract.path),
            train_path=Path(train.path),
            test_path=Path(test.path),
            test_size=test_size,
            seed=seed,
        )
        result = prepare.run(inputs, ctx)
    train.metadata["rows"] = result.train_rows
    test.metadata["rows"] = result.test_rows
