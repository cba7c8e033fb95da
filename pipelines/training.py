"""The training pipeline: extract -> validate -> prepare -> train -> evaluate -> bless ->
(if blessed) register -> deploy.

train also converts the model to its ONNX twin; register verifies the twin on the held-out split
and keeps it only when it matches. evaluate computes the permutation importance that register
puts in the lineage and the model card.

Runs unchanged under kfp.local (SubprocessRunner, DockerRunner) and on a Kubeflow cluster.
Paths and URIs are string parameters because kfp.local does not take artifact inputs.
"""

from kfp import dsl, kubernetes

from kfops.components._image import IMAGE
from kfops.components.bless import bless
from kfops.components.cache_keys import cache_keys
from kfops.components.deploy import deploy
from kfops.components.evaluate import evaluate
from kfops.components.extract import extract
from kfops.components.prepare import prepare
from kfops.components.register import register
from kfops.components.train import train
from kfops.components.tune import no_tuning, untuned_params
from kfops.components.validate import validate
from kfops.defaults import DEPLOY_NAMESPACE
from kfops.params import DEFAULTS
from kfops.pipelines.resources import sized
from kfops.pipelines.tuning import build_tune_pipeline
from kfops.predictor_pod import SIGNING_KEY_ITEM, SIGNING_SECRET, VERIFY_KEY_ITEM

PIPELINE_NAME = "kfops-training"
# On a cluster every step mounts the registry PVC here (kfp-kubernetes; ignored by kfp.local),
# and KServe mounts the same PVC: storageUri pvc://<registry_pvc>/registry/models/<m>/versions/<v>.
REGISTRY_MOUNT_PATH = "/mnt/kfops"
CLUSTER_REGISTRY_ROOT = f"{REGISTRY_MOUNT_PATH}/registry"
REGISTRY_PVC = "kfops-registry"
CLUSTER_STORAGE_ROOT = f"pvc://{REGISTRY_PVC}/registry"  # what KServe mounts versions from
# Rounds are unrolled and ParallelFor's parallelism is fixed when the spec is compiled; at run
# time tune_rounds may be lowered (not raised) and the budget (trials, seconds) cuts it short.
TUNE_MAX_ROUNDS = 3
TUNE_PARALLELISM = 2
tune = build_tune_pipeline(max_rounds=TUNE_MAX_ROUNDS, parallelism=TUNE_PARALLELISM)
# The deploy step waits this long for the new version to roll out (kfops.deploy).
DEPLOY_TIMEOUT_S = 600.0


def use_model_keys(task: dsl.PipelineTask, sign: bool = False) -> None:
    """The model keys (kfops.signing) from the optional Secret kfops-model-signing, as
    environment variables (ignored by kfp.local, where the shell's KFOPS_MODEL_* apply). With
    the Secret, register signs and every step that loads a version verifies; without it, the
    sha256 manifest alone is checked. Only the register task gets the signing key."""
    keys = {VERIFY_KEY_ITEM: "KFOPS_MODEL_VERIFY_KEY"}
    if sign:
        keys[SIGNING_KEY_ITEM] = "KFOPS_MODEL_SIGNING_KEY"
    kubernetes.use_secret_as_env(
        task, secret_name=SIGNING_SECRET, secret_key_to_env=keys, optional=True
    )


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Raw data to a validated, blessed, registered and deployed scikit-learn model.",
)
def training_pipeline(
    data_uri: str,
    target: str,
    model_name: str,
    registry_root: str = CLUSTER_REGISTRY_ROOT,
    task: str = DEFAULTS.task,
    estimator: str = DEFAULTS.estimator,
    params_json: str = "{}",
    thresholds_json: str = "{}",
    max_regression: float = DEFAULTS.max_regression,
    test_size: float = DEFAULTS.test_size,
    seed: int = DEFAULTS.seed,
    drop_columns: str = "",
    deploy_target: str = "local",
    namespace: str = DEPLOY_NAMESPACE,
    canary_percent: int = 0,
    serving_image: str = IMAGE,
    storage_root: str = CLUSTER_STORAGE_ROOT,
    registry_pvc: str = REGISTRY_PVC,
    tune_enabled: bool = False,
    tune_rounds: int = DEFAULTS.tune_rounds,
    tune_trials_per_round: int = DEFAULTS.tune_trials_per_round,
    tune_max_trials: int = DEFAULTS.tune_max_trials,
    tune_timeout_s: float = DEFAULTS.tune_timeout_s,
    search_space: str = "",
    data_mix_json: str = "{}",
    run_id: str = "",
    use_cache: bool = True,
):
    job_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
    run_ids = {"run_id": run_id, "job_id": job_id}
    run = {"registry_root": registry_root, **run_ids}
    # extract, validate and prepare take no job id, so KFP can reuse them when the data and
    # the champion are unchanged; cache_keys (never cached) says what "unchanged" means.
    cacheable = {"registry_root": registry_root, "run_id": run_id}

    tasks = []
    keys = cache_keys(
        data_uri=data_uri, registry_root=registry_root, model_name=model_name,
        use_cache=use_cache, **run_ids,
    ).set_display_name("cache keys")  # fmt: skip
    keys.set_caching_options(False)
    extracted = extract(
        data_uri=data_uri, data_key=keys.outputs["data"], **cacheable
    ).set_display_name("extract")
    validated = validate(
        snapshot=extracted.outputs["snapshot"],
        target=target,
        task=task,
        model_name=model_name,
        drop_columns=drop_columns,
        champion_key=keys.outputs["champion"],
        **cacheable,
    ).set_display_name("analyze and validate")
    prepared = prepare(
        snapshot=extracted.outputs["snapshot"],
        contract=validated.outputs["contract"],
        test_size=test_size,
        seed=seed,
        **cacheable,
    ).set_display_name("prepare")
    with dsl.If(tune_enabled == True, name="tuning"):  # noqa: E712
        tuned = tune(
            train=prepared.outputs["train"],
            contract=validated.outputs["contract"],
            task=task,
            estimator=estimator,
            params_json=params_json,
            search_space=search_space,
            n_rounds=tune_rounds,
            trials_per_round=tune_trials_per_round,
            max_trials=tune_max_trials,
            timeout_s=tune_timeout_s,
            seed=seed,
        ).set_display_name("tune")
    with dsl.Else(name="no tuning"):
        untuned = untuned_params(params_json=params_json).set_display_name("given parameters")
        skipped = no_tuning().set_display_name("no tuning")
    chosen_params = dsl.OneOf(tuned.outputs["best_params"], untuned.output)
    tuning_summary = dsl.OneOf(tuned.outputs["summary"], skipped.output)

    trained = train(
        train=prepared.outputs["train"],
        contract=validated.outputs["contract"],
        estimator=estimator,
        params_json=chosen_params,
        seed=seed,
        **run,
    ).set_display_name("train")
    evaluated = evaluate(
        model=trained.outputs["model"],
        test=prepared.outputs["test"],
        contract=validated.outputs["contract"],
        seed=seed,
        **run,
    ).set_display_name("evaluate")
    blessed = bless(
        evaluation=evaluated.outputs["evaluation"],
        test=prepared.outputs["test"],
        model_name=model_name,
        thresholds_json=thresholds_json,
        max_regression=max_regression,
        **run,
    ).set_display_name("bless")

    with dsl.If(blessed.outputs["Output"] == True, name="blessed"):  # noqa: E712
        registered = register(
            model_name=model_name,
            model=trained.outputs["model"],
            contract=validated.outputs["contract"],
            reference_profile=trained.outputs["reference_profile"],
            evaluation=evaluated.outputs["evaluation"],
            importance=evaluated.outputs["importance"],
            test=prepared.outputs["test"],
            twin=trained.outputs["twin"],
            twin_json=trained.outputs["twin_json"],
            explainer=trained.outputs["explainer"],
            snapshot=extracted.outputs["snapshot"],
            data_uri=data_uri,
            fingerprint=extracted.outputs["fingerprint"],
            estimator=estimator,
            params_json=trained.outputs["params_json"],
            seed=seed,
            test_size=test_size,
            decision=blessed.outputs["decision"],
            tuning_json=tuning_summary,
            data_mix_json=data_mix_json,
            **run,
        ).set_display_name("register")
        deployed = deploy(
            model_name=model_name,
            version=registered.outputs["Output"],
            registry_root=registry_root,
            target=deploy_target,
            namespace=namespace,
            image=serving_image,
            canary_percent=canary_percent,
            storage_root=storage_root,
            timeout_seconds=DEPLOY_TIMEOUT_S,
            **run_ids,
        ).set_display_name("deploy")
        tasks += [registered, deployed]
        sized(registered, "data")
        sized(deployed, "small")
    tasks += [keys, extracted, validated, prepared, trained, evaluated, blessed]
    for task in tasks:
        kubernetes.mount_pvc(task, pvc_name=registry_pvc, mount_path=REGISTRY_MOUNT_PATH)
        use_model_keys(task, sign=task is registered)
    for task, size in ((keys, "small"), (extracted, "data"), (validated, "data"),
                       (prepared, "data"), (trained, "train"), (evaluated, "data"),
                       (blessed, "data"), (untuned, "small"), (skipped, "small")):  # fmt: skip
        sized(task, size)
