#!/usr/bin/env bash
# Build a Python base image from Debian packages, for machines that cannot pull from a public
# registry: debootstrap a minimal bookworm with python3 + venv + pip, then `docker import` it.
# Usage: scripts/base-image.sh [TAG]   (default kfops-base:bookworm; MIRROR overrides the mirror)
set -euo pipefail

TAG="${1:-${BASE_IMAGE_TAG:-kfops-base:bookworm}}"
SUITE="${SUITE:-bookworm}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"

if ! command -v debootstrap >/dev/null 2>&1; then
    echo "error: debootstrap not found: apt-get install debootstrap" >&2
    exit 2
fi
if ! docker info >/dev/null 2>&1; then
    echo "error: no Docker daemon answers (docker info failed): start dockerd first" >&2
    exit 2
fi

ROOTFS="$(mktemp -d /tmp/kfops-rootfs.XXXXXX)"
trap 'rm -rf "$ROOTFS"' EXIT

echo "debootstrap $SUITE into $ROOTFS ..."
debootstrap --variant=minbase \
    --include=python3,python3-venv,python3-pip,ca-certificates \
    "$SUITE" "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1 || {
    tail -n 30 "$ROOTFS.log" >&2
    exit 1
}
rm -f "$ROOTFS.log"

# Trim what a container never needs: apt lists and caches, docs, man pages, locales.
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/* \
    "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/*
find "$ROOTFS"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'en*' -exec rm -rf {} + 2>/dev/null || true

tar -C "$ROOTFS" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    - "$TAG"
echo "built $TAG"
