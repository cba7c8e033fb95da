#!/usr/bin/env bash
# Build the project image kfops:<version> (`make image`). Environment:
#   BASE_IMAGE     base to build on (default kfops-base:bookworm when present, else python:3.11-slim-bookworm)
#   IMAGE          tag to give (default kfops:<kfops.__version__>; never left untagged)
#   PIP_CA_BUNDLE  extra CA bundle pip must trust inside the build (copied to docker/certs/)
set -euo pipefail

cd "$(dirname "$0")/.."
VERSION="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' src/kfops/__init__.py)"
IMAGE="${IMAGE:-kfops:$VERSION}"
if [ -z "${BASE_IMAGE:-}" ]; then
    if docker image inspect kfops-base:bookworm >/dev/null 2>&1; then
        BASE_IMAGE=kfops-base:bookworm
    else
        BASE_IMAGE=python:3.11-slim-bookworm
    fi
fi
if ! docker info >/dev/null 2>&1; then
    echo "error: no Docker daemon answers (docker info failed): start dockerd or Docker Desktop" >&2
    exit 2
fi
case "$BASE_IMAGE" in
    kfops-base:*)
        if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
            echo "error: base image $BASE_IMAGE not found: run make base-image, or set BASE_IMAGE (e.g. python:3.11-slim-bookworm)" >&2
            exit 2
        fi
        ;;
esac
if [ -n "${PIP_CA_BUNDLE:-}" ]; then
    if [ ! -f "$PIP_CA_BUNDLE" ]; then
        echo "error: PIP_CA_BUNDLE=$PIP_CA_BUNDLE is not a file" >&2
        exit 2
    fi
    cp "$PIP_CA_BUNDLE" docker/certs/extra-ca.crt
fi

previous="$(docker image inspect "$IMAGE" --format '{{.Id}}' 2>/dev/null || true)"
start=$(date +%s)
docker build --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "VERSION=$VERSION" \
    -t "$IMAGE" .
# The image this tag named before is now untagged: remove it so rebuilds do not pile up
# (the build cache lives in other layers and stays).
current="$(docker image inspect "$IMAGE" --format '{{.Id}}')"
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
    docker rmi "$previous" >/dev/null 2>&1 || true
fi
echo "image $IMAGE (base $BASE_IMAGE) built in $(($(date +%s) - start)) s"
docker image inspect "$IMAGE" --format '{{.Size}}' |
    awk -v img="$IMAGE" '{printf "image %s size %.0f MB\n", img, $1 / 1e6}'
