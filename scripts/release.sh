#!/usr/bin/env bash
# Release from a shell (`make release`), what the main-branch workflow does: build the image
# tagged with the commit, push it, upload the compiled pipeline as a new pipeline version and
# optionally start it (RUN=1) or schedule it (SCHEDULE='0 3 * * *').
#   REGISTRY       where to push, e.g. ghcr.io/acme (required)
#   TAG            image tag and pipeline version name (default: the commit, git-<sha12>)
#   PIPELINE       training (default) or monitoring
#   KFOPS_KFP_HOST Kubeflow Pipelines endpoint (and KFOPS_KFP_TOKEN / _TOKEN_FILE / _NAMESPACE)
# Extra arguments go to the kfops command, e.g. --param data_uri=s3://bucket/data.parquet
set -euo pipefail

cd "$(dirname "$0")/.."
: "${REGISTRY:?set REGISTRY, e.g. REGISTRY=ghcr.io/acme make release}"
if [ -n "$(git status --porcelain --untracked-files=no)" ] && [ -z "${ALLOW_DIRTY:-}" ]; then
    echo "error: uncommitted changes: the image tag would not describe the code (ALLOW_DIRTY=1 to override)" >&2
    exit 2
fi
TAG="${TAG:-git-$(git rev-parse --short=12 HEAD)}"
PIPELINE="${PIPELINE:-training}"
IMAGE="$REGISTRY/kfops:$TAG"
KFOPS="${KFOPS:-.venv/bin/kfops}"

echo "==> build $IMAGE"
IMAGE="$IMAGE" bash scripts/build-image.sh
echo "==> push $IMAGE"
docker push "$IMAGE"

common=("$PIPELINE" --image "$IMAGE" --pipeline-name "kfops-$PIPELINE")
if [ -n "${SCHEDULE:-}" ]; then
    echo "==> upload version $TAG and schedule it ($SCHEDULE)"
    "$KFOPS" schedule "${common[@]}" --upload-version "$TAG" --cron "$SCHEDULE" "$@"
elif [ "${RUN:-0}" = "1" ]; then
    echo "==> upload version $TAG and start a run"
    "$KFOPS" submit "${common[@]}" --upload-version "$TAG" "$@"
else
    echo "==> upload version $TAG"
    "$KFOPS" upload "${common[@]}" --pipeline-version "$TAG"
fi
