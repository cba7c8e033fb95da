#!/usr/bin/env bash
# Download the CRD schemas the manifest tests validate against, pinned by commit and checked by
# sha256, into DIR (default build/crds); then run the tests with KFOPS_CRDS_DIR=DIR. The PR
# workflow template (templates/github/workflows/kfops-pr.yml) does this, so a user's CI checks
# the manifests instead of skipping those tests. Files already there with the right hash are
# kept. The pins are those of ../shared/crds/README.md; tests/unit/test_scripts.py checks that
# the hashes below are the files the tests use.
#   KSERVE_CRD_URL, PROMETHEUS_CRD_URL  other base URLs (a mirror, or file:// for tests)
set -euo pipefail

cd "$(dirname "$0")/.."
DEST="${1:-build/crds}"
# kserve/kserve config/crd/full/ at VERSION 0.20.0 (commit aaac4e29).
KSERVE_CRD_URL="${KSERVE_CRD_URL:-https://raw.githubusercontent.com/kserve/kserve/aaac4e294dae2c7b1aa1886447793f3aa1c30912/config/crd/full}"
# prometheus-operator/prometheus-operator example/prometheus-operator-crd-full/ (operator 0.93.0).
PROMETHEUS_CRD_URL="${PROMETHEUS_CRD_URL:-https://raw.githubusercontent.com/prometheus-operator/prometheus-operator/6adcebc5076c34f4f55f8f5f7b1e528929373ac7/example/prometheus-operator-crd-full}"

for tool in curl sha256sum; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "error: $tool not found on PATH" >&2
        exit 2
    fi
done
mkdir -p "$DEST"

fetch() {
    local base="$1" name="$2" sum="$3" got
    if [ -f "$DEST/$name" ] && echo "$sum  $DEST/$name" | sha256sum -c --status; then
        return
    fi
    if ! curl -fsSL --retry 3 -o "$DEST/$name.part" "$base/$name"; then
        rm -f "$DEST/$name.part"
        echo "error: could not download $base/$name" >&2
        exit 1
    fi
    got="$(sha256sum "$DEST/$name.part" | cut -d' ' -f1)"
    if [ "$got" != "$sum" ]; then
        rm -f "$DEST/$name.part"
        echo "error: $base/$name has sha256 $got, not the pinned $sum" >&2
        exit 1
    fi
    mv "$DEST/$name.part" "$DEST/$name"
}

fetch "$KSERVE_CRD_URL" serving.kserve.io_inferenceservices.yaml 57c3bf13f77de94678bf2ae3748056ec071ad2b9e88d6a28f44fb4710758fcff
fetch "$KSERVE_CRD_URL" serving.kserve.io_servingruntimes.yaml 5a262831474e7bd23e7c4f76556d84e1a11fb3ad74a78a6d18cfc71fd8fca7a2
fetch "$KSERVE_CRD_URL" serving.kserve.io_clusterservingruntimes.yaml f721d19516670d4a81181e231b1e58cbc32c36435969182ae457fad537151cc8
fetch "$PROMETHEUS_CRD_URL" monitoring.coreos.com_alertmanagerconfigs.yaml ed67579ac03568a1daaa3add976450d24cb81d54996b195ad88ea65cd2967e84
fetch "$PROMETHEUS_CRD_URL" monitoring.coreos.com_alertmanagers.yaml 0e8eccd22699818c93f619c8fe2d92dbbd783a7e9232827a886dedeac1fb5dc1
fetch "$PROMETHEUS_CRD_URL" monitoring.coreos.com_podmonitors.yaml 45a93443daa687d3654f7e9631909ff7edcdf3ec09c5e60251b74aa2722aee5d
fetch "$PROMETHEUS_CRD_URL" monitoring.coreos.com_prometheuses.yaml c0eed4b2c38a58e3a5be7e2f5846df067804c694b0c9316b35029ab68fa183a4
fetch "$PROMETHEUS_CRD_URL" monitoring.coreos.com_prometheusrules.yaml 78be98554b9c8506ab2b4f4feb91c5f3a56e536a0a510f3a8e876a459970d56d
fetch "$PROMETHEUS_CRD_URL" monitoring.coreos.com_servicemonitors.yaml a99047972c9dd7679ce2050b9968e8a08773492e671b3e17abd476d42aa78a32
echo "CRD schemas in $DEST: run the tests with KFOPS_CRDS_DIR=$DEST"
