#!/usr/bin/env bash
# CI helper: make sure Docker works, then build the base image (once) and the project image.
# Installs docker.io and debootstrap from apt only when missing; starts dockerd in the
# background when no daemon answers. Prints build times and the image size.
set -euo pipefail

cd "$(dirname "$0")/.."
BASE_IMAGE="${BASE_IMAGE:-kfops-base:bookworm}"
VERSION="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' src/kfops/__init__.py)"
IMAGE="${IMAGE:-kfops:$VERSION}"

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
if [ "${#need[@]}" -gt 0 ]; then
    echo "apt-get install ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
    echo "starting dockerd (log: /tmp/kfops-dockerd.log)"
    nohup dockerd >/tmp/kfops-dockerd.log 2>&1 &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    if ! docker info >/dev/null 2>&1; then
        tail -n 30 /tmp/kfops-dockerd.log >&2
        echo "error: dockerd did not come up within 60 s" >&2
        exit 1
    fi
fi

if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    echo "base image $BASE_IMAGE present"
else
    start=$(date +%s)
    bash scripts/base-image.sh "$BASE_IMAGE"
    echo "base image built in $(($(date +%s) - start)) s"
fi

# build-image.sh lets pip trust this machine's CA bundle by default (PIP_CA_BUNDLE).
BASE_IMAGE="$BASE_IMAGE" IMAGE="$IMAGE" bash scripts/build-image.sh
