"""Deploy: serve a blessed version (local: move `champion`; cluster: also an InferenceService)."""

from kfp import dsl

from kfops.components._image import IMAGE


# KFP copies a lightweight component's source into the task, so its defaults must be literals:
# namespace's is kfops.defaults.DEPLOY_NAMESPACE (a test keeps the two equal).
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def deploy(
    model_name: str,
    version: str,
    registry_root: str,
    target: str = "local",
    namespace: str = "kfops",
    image: str = "",
    canary_percent: int = 0,
    mode: str = "Standard",
    storage_root: str = "pvc://kfops-registry",
    timeout_seconds: float = 300.0,
    run_id: str = "",
    job_id: str = "",
) -> str:
    from pathlib import Path

    from kfops.steps import deploy as step
    from kfops.steps._run import RunContext

    inputs = step.DeployInputs(
        registry_root=Path(registry_root),
        model_name=model_name,
        version=version,
        target=target,
        namespace=namespace,
        image=image,
        # Ints come back as floats through kfp.local: normalise before the range check.
        canary_percent=int(canary_percent),
        mode=mode,
        storage_root=storage_root,
        timeout_seconds=timeout_seconds,
    )
    ctx = RunContext.of(registry_root, run_id, job_id) if run_id or job_id else None
    return step.run(inputs, ctx).summary
