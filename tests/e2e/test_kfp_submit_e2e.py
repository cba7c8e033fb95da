"""Submit the training pipeline to a real Kubeflow Pipelines and wait for it.

Runs only when KFOPS_E2E_KFP_HOST points at a KFP endpoint (scripts/e2e-kind.sh sets it after
`make kind-up`); skipped with that reason otherwise, also in CI, where no cluster can run.
Optional: KFOPS_E2E_IMAGE (default kfops:<version>), KFOPS_E2E_DATA_URI (a URI the pipeline
pods can read; default the bundled penguins CSV inside the image), KFOPS_E2E_REGISTRY_ROOT,
KFOPS_E2E_TIMEOUT (seconds, default 1800), plus the usual KFOPS_KFP_NAMESPACE/TOKEN/TOKEN_FILE.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kfops import __version__, submit

pytestmark = pytest.mark.e2e

HOST = os.environ.get("KFOPS_E2E_KFP_HOST")


@pytest.mark.skipif(
    not HOST, reason="KFOPS_E2E_KFP_HOST is not set: no Kubeflow Pipelines to submit to"
)
def test_training_run_succeeds_on_kubeflow(tmp_path: Path) -> None:
    image = os.environ.get("KFOPS_E2E_IMAGE", f"kfops:{__version__}")
    package = submit.compile_package("training", tmp_path / "training.yaml", image)
    data_uri = os.environ.get(
        "KFOPS_E2E_DATA_URI",
        "/opt/venv/lib/python3.11/site-packages/palmerpenguins/data/penguins.csv",
    )
    arguments = {
        "data_uri": data_uri,
        "target": "species",
        "model_name": "penguins",
        "registry_root": os.environ.get("KFOPS_E2E_REGISTRY_ROOT", "/tmp/kfops/registry"),
    }
    target = submit.KfpTarget.resolve(host=HOST)
    result = submit.submit_run(
        target,
        package,
        arguments=arguments,
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
