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

    from kfops import lifecycle

    ctx = lifecycle.RunContext.cacheable(registry_root, run_id)
    n_train, n_test = lifecycle.prepare_step(
        Path(snapshot.path),
        Path(contract.path),
        Path(train.path),
        Path(test.path),
        test_size,
        seed,
        ctx,
    )
    train.metadata["rows"] = n_train
    test.metadata["rows"] = n_test
