"""Evaluate: metrics and permutation importance on the held-out split, as the Kubeflow
dashboard renders them."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from kfops.components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate(
    model: Input[Model],
    test: Input[Dataset],
    contract: Input[Artifact],
    seed: int,
    registry_root: str,
    run_id: str,
    job_id: str,
    evaluation: Output[Artifact],
    importance: Output[Artifact],
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    report: Output[HTML],
):
    from pathlib import Path

    from kfops.io import write_text_atomic
    from kfops.reports.evaluation import render_report
    from kfops.steps import evaluate as step
    from kfops.steps._run import RunContext

    ctx = RunContext.of(registry_root, run_id, job_id)
    with ctx.task("evaluate"):
        inputs = step.EvaluateInputs(
            model_path=Path(model.path),
            test_path=Path(test.path),
            contract_path=Path(contract.path),
            evaluation_path=Path(evaluation.path),
            importance_path=Path(importance.path),
            seed=seed,
        )
        result = step.run(inputs, ctx)
    for name, value in {**result.evaluation.metrics, **result.importance.metrics()}.items():
        metrics.log_metric(name, value)
    if result.curves is not None:
        classification_metrics.log_confusion_matrix(result.curves.labels, result.curves.matrix)
        classification_metrics.log_roc_curve(
            result.curves.fpr, result.curves.tpr, result.curves.thresholds
        )
    importance.metadata["metric"] = result.importance.metric
    page = render_report(result.evaluation, "Evaluation", None, result.importance)
    write_text_atomic(Path(report.path), page)
