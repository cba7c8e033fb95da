"""Analyze and validate: infer the data contract, check the data (and the champion's contract)."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Output

from kfops.components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def validate(
    snapshot: Input[Dataset],
    target: str,
    task: str,
    model_name: str,
    drop_columns: str,
    champion_key: str,  # the champion's version: part of the KFP cache key (kfops.caching)
    registry_root: str,
    run_id: str,
    contract: Output[Artifact],
    statistics: Output[Markdown],
    validation_report: Output[Markdown],
) -> str:
    from pathlib import Path

    from kfops import lifecycle
    from kfops.io import write_text_atomic

    ctx = lifecycle.RunContext.cacheable(registry_root, run_id)
    result = lifecycle.validate_step(
        Path(snapshot.path), target, task, model_name, Path(contract.path), ctx, drop_columns
    )
    write_text_atomic(Path(statistics.path), result.statistics_markdown)
    write_text_atomic(Path(validation_report.path), lifecycle.validation_markdown(result))
    contract.metadata["features"] = len(result.contract.features)
    return result.champion_version or ""
