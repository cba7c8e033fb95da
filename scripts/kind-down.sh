#!/usr/bin/env bash
# Delete the kind cluster made by scripts/kind-up.sh (`make kind-down`).
set -euo pipefail
CLUSTER="${KIND_CLUSTER:-kfops}"
if ! command -v kind >/dev/null 2>&1; then
    echo "error: kind not found on PATH" >&2
    exit 2
fi
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    kind delete cluster --name "$CLUSTER"
else
    echo "no kind cluster named $CLUSTER"
fi
