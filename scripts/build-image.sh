#!/usr/bin/env bash
# Build the project image kfops:<version> (`make image`). Environment:
#   BASE_IMAGE     base to build on (default kfops-base:bookworm when present, else python:3.11-slim-bookworm)
#   IMAGE          tag to give (default kfops:<kfops.__version__>; never left untagged)
#   PIP_CA_BUNDLE  CA bundle pip trusts inside the build (copied to docker/certs/ for the build
#                  stage only, removed afterwards; never in the final image). Default: this
#                  machine's bundle when there is one, so a TLS-intercepting proxy the host
#                  trusts works out of the box; PIP_CA_BUNDLE= (empty) uses the base image's.
# A pip TLS failure inside the build ends with one line naming it and PIP_CA_BUNDLE (pip itself
# would only report that no version of the first requirement could be found).
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
if [ -z "${PIP_CA_BUNDLE+set}" ]; then
    # Debian/Ubuntu, then Fedora/RHEL: the bundle the host's own tools trust.
    for bundle in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
        if [ -f "$bundle" ]; then
            PIP_CA_BUNDLE="$bundle"
            break
        fi
    done
fi
build_log="$(mktemp)"
copied_ca=""
trap 'rm -f "$build_log" $copied_ca' EXIT
if [ -n "${PIP_CA_BUNDLE:-}" ]; then
    if [ ! -f "$PIP_CA_BUNDLE" ]; then
        echo "error: PIP_CA_BUNDLE=$PIP_CA_BUNDLE is not a file" >&2
        exit 2
    fi
    copied_ca=docker/certs/extra-ca.crt
    cp "$PIP_CA_BUNDLE" "$copied_ca"
fi

previous="$(docker image inspect "$IMAGE" --format '{{.Id}}' 2>/dev/null || true)"
start=$(date +%s)
if docker build --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "VERSION=$VERSION" \
    -t "$IMAGE" . 2>&1 | tee "$build_log"; then
    :
else
    status=$?
    if grep -qE 'CERTIFICATE_VERIFY_FAILED|SSLCertVerificationError|certificate verify failed' \
        "$build_log"; then
        echo "error: pip in the image build could not verify the package index's TLS" \
            "certificate (CERTIFICATE_VERIFY_FAILED, PIP_CA_BUNDLE=${PIP_CA_BUNDLE:-<none>}):" \
            "set PIP_CA_BUNDLE to a CA bundle that includes your proxy's CA" >&2
    fi
    exit "$status"
fi
# The image this tag named before is now untagged: remove it so rebuilds do not pile up
# (the build cache lives in other layers and stays).
current="$(docker image inspect "$IMAGE" --format '{{.Id}}')"
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
    docker rmi "$previous" >/dev/null 2>&1 || true
fi
echo "image $IMAGE (base $BASE_IMAGE) built in $(($(date +%s) - start)) s"
docker image inspect "$IMAGE" --format '{{.Size}}' |
    awk -v img="$IMAGE" '{printf "image %s size %.0f MB\n", img, $1 / 1e6}'
