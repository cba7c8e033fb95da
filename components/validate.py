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

    from kfops.components import _decode
    from kfops.io import write_text_atomic
    from kfops.reports.validation import validation_markdown
    from kfops.steps import validate
    from kfops.steps._run import RunContext

    ctx = RunContext.cacheable(registry_root, run_id)
    with ctx.task("validate"):
        inputs = validate.ValidateInputs(
            snapshot_path=Path(snapshot.path),
            target=target,
            task=task,
            model_name=model_name,
            contract_path=Path(contract.path),
            drop_columns=_decode.columns(drop_columns),
        )
        result = validate.run(inputs, ctx)
    write_text_atomic(Path(statistics.path), result.statistics_markdown)
    write_text_atomic(
        Path(validation_report.path),
        validation_markdown(result.report, result.contract, result.champion_version),
    )
    contract.metadata["features"] = len(result.contract.features)
    return result.champion_version or ""
