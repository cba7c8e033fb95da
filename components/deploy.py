"""Deploy: serve a blessed version (local: move `champion`; cluster: also an InferenceService)."""

from kfp import dsl

from kfops.components._image import IMAGE
from kfops.defaults import DEPLOY_NAMESPACE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def deploy(
    model_name: str,
    version: str,
    registry_root: str,
    target: str = "local",
    namespace: str = DEPLOY_NAMESPACE,
    image: str = "",
    canary_percent: int = 0,
    mode: str = "Standard",
    storage_root: str = "pvc://kfops-registry",
    timeout_seconds: float = 300.0,
    run_id: str = "",
    job_id: str = "",
) -> str:
    from kfops import deploy as kdeploy
    from kfops import lifecycle

    cfg = kdeploy.cluster_config(model_name, namespace, image, mode, storage_root)
    # Ints come back as floats through kfp.local: normalise before the range check.
    summary = kdeploy.deploy_version(
        registry_root, model_name, version, target, cfg, int(canary_percent),
        timeout=timeout_seconds,
    )  # fmt: skip
    if run_id or job_id:
        ctx = lifecycle.RunContext.of(registry_root, run_id, job_id)
        payload = {"model": model_name, "version": version, "target": target, "summary": summary}
        ctx.record("deploy", payload)
    return summary
