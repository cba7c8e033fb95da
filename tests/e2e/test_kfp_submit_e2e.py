"""Upload the training pipeline to a real Kubeflow Pipelines, run that version, wait for it.

The upload makes the pipeline appear in the dashboard's Pipelines list with its description
(`kfops upload` does the same); the run then runs the uploaded version, as a release does.

Runs only when KFOPS_E2E_KFP_HOST points at a KFP endpoint (scripts/e2e-kind.sh sets it after
`make kind-up`); skipped with that reason otherwise, also in CI, where no cluster can run.
The run deploys to the cluster: the deploy step applies the InferenceService named after the
model in KFOPS_E2E_NAMESPACE, which scripts/e2e-kind.sh then waits for and calls.

Optional: KFOPS_E2E_IMAGE (default kfops:<version>), KFOPS_E2E_MODEL (default penguins),
KFOPS_E2E_NAMESPACE (where the pipeline pods and kfops run, default kubeflow: KFP standalone),
KFOPS_E2E_DATA_URI (a URI the pipeline pods can read; default the penguins CSV inside the
image), KFOPS_E2E_REGISTRY_ROOT (default the registry PVC's mount, /mnt/kfops/registry),
KFOPS_E2E_TIMEOUT (seconds, default 1800), plus the usual KFOPS_KFP_TOKEN/TOKEN_FILE and, on
multi-user Kubeflow only, KFOPS_KFP_NAMESPACE (standalone KFP refuses a namespace).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from kfops import __version__, submit
from kfops.pipelines.training import CLUSTER_REGISTRY_ROOT

pytestmark = pytest.mark.e2e

HOST = os.environ.get("KFOPS_E2E_KFP_HOST")
# The penguins CSV bundled in the image (venv /opt/venv, Python 3.11): every pod can read it.
IMAGE_PENGUINS = "/opt/venv/lib/python3.11/site-packages/palmerpenguins/data/penguins.csv"


def e2e_image() -> str:
    return os.environ.get("KFOPS_E2E_IMAGE", f"kfops:{__version__}")


def e2e_arguments(image: str) -> dict[str, Any]:
    """The training run's parameters: train on penguins, register on the PVC, deploy to KServe."""
    return {
        "data_uri": os.environ.get("KFOPS_E2E_DATA_URI", IMAGE_PENGUINS),
        "target": "species",
        "model_name": os.environ.get("KFOPS_E2E_MODEL", "penguins"),
        "registry_root": os.environ.get("KFOPS_E2E_REGISTRY_ROOT", CLUSTER_REGISTRY_ROOT),
        "deploy_target": "cluster",
        "namespace": os.environ.get("KFOPS_E2E_NAMESPACE", "kubeflow"),
        "serving_image": image,
    }


def test_arguments_fit_the_compiled_pipeline(tmp_path: Path) -> None:
    # No cluster needed: the same check submit_run makes before it sends anything.
    image = e2e_image()
    package = submit.compile_package("training", tmp_path / "training.yaml", image)
    arguments = e2e_arguments(image)
    checked = submit.check_arguments(submit.load_package(package), arguments)
    assert checked["deploy_target"] == "cluster"
    assert checked["registry_root"].startswith("/mnt/kfops/")


@pytest.mark.skipif(
    not HOST, reason="KFOPS_E2E_KFP_HOST is not set: no Kubeflow Pipelines to submit to"
)
def test_training_run_succeeds_on_kubeflow(tmp_path: Path) -> None:
    image = e2e_image()
    package = submit.compile_package("training", tmp_path / "training.yaml", image)
    target = submit.KfpTarget.resolve(host=HOST)
    version = submit.upload_version(
        target,
        package,
        pipeline_name=os.environ.get("KFOPS_E2E_PIPELINE", "kfops-training"),
        version_name=f"e2e-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}",
    )
    # Listed in the dashboard with the pipeline's own description.
    client = submit.make_client(target)
    listed = client.get_pipeline(version.pipeline_id)
    description = submit.load_package(package)["pipelineInfo"]["description"]
    assert listed.description == description, listed
    result = submit.submit_run(
        target,
        version=version,
        arguments=e2e_arguments(image),
        experiment="kfops-e2e",
        run_name=f"kfops-e2e-{os.getpid()}",
        wait=True,
        timeout=float(os.environ.get("KFOPS_E2E_TIMEOUT", "1800")),
        poll_seconds=10,
    )
    assert result.state == "SUCCEEDED", f"run ended {result.state}: {result.url}"


@pytest.mark.skipif(
    not HOST, reason="KFOPS_E2E_KFP_HOST is not set: no Kubeflow Pipelines to submit to"
)
def test_real_endpoint_answers_healthz() -> None:
    info = submit.check_endpoint(submit.KfpTarget.resolve(host=HOST))
    assert "multi_user" in info or info == {} or "commit_sha" in info
