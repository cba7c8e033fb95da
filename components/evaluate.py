"""Evaluate: metrics on the held-out split, as the Kubeflow dashboard renders them."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from kfops.components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate(
    model: Input[Model],
    test: Input[Dataset],
    contract: Input[Artifact],
    registry_root: str,
    run_id: str,
    job_id: str,
    evaluation: Output[Artifact],
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    report: Output[HTML],
):
    from pathlib import Path

    from kfops import lifecycle
    from kfops.io import write_text_atomic
    from kfops.reports.evaluation import render_report

    ctx = lifecycle.RunContext.of(registry_root, run_id, job_id)
    result = lifecycle.evaluate_step(
        Path(model.path), Path(test.path), Path(contract.path), Path(evaluation.path), ctx
    )
    for name, value in result.metrics.items():
        metrics.log_metric(name, value)
    ui = lifecycle.dashboard_curves(result)
    if ui is not None:
        classification_metrics.log_confusion_matrix(ui.labels, ui.matrix)
        classification_metrics.log_roc_curve(ui.fpr, ui.tpr, ui.thresholds)
    write_text_atomic(Path(report.path), render_report(result, "Evaluation", None))
