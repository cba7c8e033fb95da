"""Bless: the challenger against absolute thresholds and the champion on the same test rows."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Output

from kfops.components._image import IMAGE


# Returns the verdict as the single output: kfp.local (2.17.3) cannot evaluate a dsl.If on a
# named output of a multi-output component (the condition silently reads as false).
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def bless(
    evaluation: Input[Artifact],
    test: Input[Dataset],
    model_name: str,
    thresholds_json: str,
    max_regression: float,
    registry_root: str,
    run_id: str,
    job_id: str,
    decision: Output[Artifact],
    decision_report: Output[Markdown],
) -> bool:
    from pathlib import Path

    from kfops.components import _decode
    from kfops.io import write_json_atomic, write_text_atomic
    from kfops.steps import bless as step
    from kfops.steps._run import RunContext

    ctx = RunContext.of(registry_root, run_id, job_id)
    with ctx.task("bless"):
        inputs = step.BlessInputs(
            evaluation_path=Path(evaluation.path),
            test_path=Path(test.path),
            model_name=model_name,
            thresholds=_decode.thresholds(thresholds_json),
            max_regression=max_regression,
        )
        verdict = step.run(inputs, ctx)
    write_json_atomic(Path(decision.path), verdict.to_dict())
    write_text_atomic(Path(decision_report.path), verdict.to_markdown())
    decision.metadata["blessed"] = verdict.blessed
    return verdict.blessed
