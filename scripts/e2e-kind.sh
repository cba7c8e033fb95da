#!/usr/bin/env bash
# End to end on the kind cluster from scripts/kind-up.sh (`make e2e-kind`): upload the training
# pipeline to Kubeflow Pipelines as a new version of `kfops-training` (so it is listed, with its
# description, in the dashboard's Pipelines list), run that version with deploy_target=cluster
# and wait for it, then wait for the InferenceService the pipeline's deploy step applied (named
# after the model) and call it. On kind, KFP standalone runs the pipeline pods in its namespace, kubeflow, so kfops
# (registry PVC, InferenceService) lives there too. Port-forwards are stopped on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
CLUSTER="${KIND_CLUSTER:-kfops}"
NAMESPACE="${KFOPS_E2E_NAMESPACE:-kubeflow}"   # manifests/overlays/kind `namespace:`
MODEL="${KFOPS_E2E_MODEL:-penguins}"           # also the InferenceService's name
KFP_PORT="${KFP_PORT:-8080}"
MODEL_PORT="${MODEL_PORT:-8081}"
BIN="${BIN:-.venv/bin}"
if ! command -v kubectl >/dev/null 2>&1 && [ -x "$BIN/kubectl" ]; then
    PATH="$PWD/$BIN:$PATH"
fi
for tool in kubectl curl "$BIN/pytest"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "error: $tool not found (kubectl and curl on PATH; pytest: make venv)" >&2
        exit 2
    fi
done
kubectl config use-context "kind-$CLUSTER" >/dev/null
if ! kubectl -n "$NAMESPACE" get pvc kfops-registry >/dev/null 2>&1; then
    echo "error: no PersistentVolumeClaim kfops-registry in namespace $NAMESPACE: run make kind-up" >&2
    exit 2
fi

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

wait_port() {
    for _ in $(seq 1 60); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 1
    done
    echo "error: nothing listens on 127.0.0.1:$1" >&2
    return 1
}

echo "==> port-forward Kubeflow Pipelines to localhost:$KFP_PORT"
kubectl -n kubeflow port-forward svc/ml-pipeline-ui "$KFP_PORT:80" >/dev/null &
pids+=($!)
wait_port "$KFP_PORT"

echo "==> upload the training pipeline, run it (model $MODEL, deploy to $NAMESPACE) and wait"
KFOPS_E2E_KFP_HOST="http://127.0.0.1:$KFP_PORT" KFOPS_E2E_NAMESPACE="$NAMESPACE" \
    KFOPS_E2E_MODEL="$MODEL" "$BIN/pytest" -q -m e2e tests/e2e/test_kfp_submit_e2e.py

echo "==> wait for InferenceService $NAMESPACE/$MODEL"
kubectl -n "$NAMESPACE" wait --for condition=Ready --timeout=600s "inferenceservice/$MODEL"

echo "==> call the deployed model"
kubectl -n "$NAMESPACE" port-forward "svc/$MODEL-predictor" "$MODEL_PORT:80" >/dev/null &
pids+=($!)
wait_port "$MODEL_PORT"
response="$(curl -sf -H 'Content-Type: application/json' \
    "http://127.0.0.1:$MODEL_PORT/v1/models/$MODEL:predict" \
    -d '{"instances": [{"island": "Biscoe", "bill_length_mm": 48.6, "bill_depth_mm": 16.0,
         "flipper_length_mm": 230.0, "body_mass_g": 5800.0, "sex": "male", "year": 2008}]}')"
echo "$response"
case "$response" in
    *predictions*) echo "e2e-kind: OK" ;;
    *) echo "error: unexpected answer from the model" >&2; exit 1 ;;
esac
