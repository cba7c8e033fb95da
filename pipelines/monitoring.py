"""The monitoring pipeline: monitor one window -> (if the policy says so) the training pipeline.

`kfops schedule monitoring` makes it a KFP recurring run (cron); `kfops monitor` runs the same
window logic once, locally. Paths and URIs are string parameters (kfp.local takes no artifact
inputs).
"""

from kfp import dsl, kubernetes

from kfops.components._image import IMAGE
from kfops.components.monitor import monitor
from kfops.defaults import DEPLOY_NAMESPACE, MONITORING_WINDOW_HOURS, PUSHGATEWAY_JOB
from kfops.pipelines.resources import sized
from kfops.pipelines.training import (
    CLUSTER_REGISTRY_ROOT,
    CLUSTER_STORAGE_ROOT,
    REGISTRY_MOUNT_PATH,
    REGISTRY_PVC,
    training_pipeline,
    use_model_keys,
)

PIPELINE_NAME = "kfops-monitoring"


@dsl.pipeline(
    name=PIPELINE_NAME,
    description=(
        "Captured traffic of a served model -> data quality, drift and quality report, "
        "Pushgateway figures -> retraining on the fresh data when drift or decay crosses policy."
    ),
)
def monitoring_pipeline(
    model_name: str,
    registry_root: str = CLUSTER_REGISTRY_ROOT,
    capture_uri: str = f"{REGISTRY_MOUNT_PATH}/capture",
    labels_uri: str = "",
    window_hours: float = MONITORING_WINDOW_HOURS,
    window_end: str = "",
    policy_json: str = "{}",
    pushgateway: str = "",
    push_job: str = PUSHGATEWAY_JOB,
    retrain_data_uri: str = "",
    retrain: bool = True,
    # Passed to the retraining run (see pipelines/training.py). Its blessing thresholds are
    # the champion's (the monitor task's plan), as for every retrain: not a parameter here.
    deploy_target: str = "local",
    namespace: str = DEPLOY_NAMESPACE,
    canary_percent: int = 0,
    serving_image: str = IMAGE,
    storage_root: str = CLUSTER_STORAGE_ROOT,
    registry_pvc: str = REGISTRY_PVC,
):
    checked = monitor(
        model_name=model_name,
        registry_root=registry_root,
        capture_uri=capture_uri,
        labels_uri=labels_uri,
        window_hours=window_hours,
        window_end=window_end,
        policy_json=policy_json,
        pushgateway=pushgateway,
        push_job=push_job,
        retrain_data_uri=retrain_data_uri,
    ).set_display_name("monitor window")
    checked.set_caching_options(False)  # every scheduled run must look at fresh traffic
    sized(checked, "data")
    kubernetes.mount_pvc(checked, pvc_name=registry_pvc, mount_path=REGISTRY_MOUNT_PATH)
    use_model_keys(checked)  # it loads the champion: verified when the signing Secret exists

    with (
        dsl.If(retrain == True, name="retraining enabled"),  # noqa: E712
        dsl.If(checked.outputs["retrain"] == True, name="policy crossed"),  # noqa: E712
    ):
        training_pipeline(
            data_uri=checked.outputs["data_uri"],
            target=checked.outputs["target"],
            model_name=model_name,
            registry_root=registry_root,
            task=checked.outputs["task"],
            estimator=checked.outputs["estimator"],
            params_json=checked.outputs["params_json"],
            thresholds_json=checked.outputs["thresholds_json"],
            max_regression=checked.outputs["max_regression"],
            data_mix_json=checked.outputs["data_mix_json"],
            deploy_target=deploy_target,
            namespace=namespace,
            canary_percent=canary_percent,
            serving_image=serving_image,
            storage_root=storage_root,
            registry_pvc=registry_pvc,
            run_id=checked.outputs["run_id"],
        ).set_display_name("retrain")
