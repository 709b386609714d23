#!/usr/bin/env bash
# End to end on kind (needs Docker, kind, kubectl; helm is built when missing):
# build both images, install the chart, then run the live-update scenario (tests/support/live_update.py,
# the one tests/node runs on a kubelet without Docker) in a `restricted` namespace: the example
# app restarted by `kubectl cp` + `restart-wrapper trigger` through kubectl exec, and by a
# `kubectl cp` into its watched directory -- re-executed each time while the container never
# restarted and the synced file stayed.
#
#   KIND_NODE_IMAGE=kindest/node:v1.33.1 hack/e2e-kind.sh      (default: kind's own default)
#   KEEP_CLUSTER=1 hack/e2e-kind.sh                             (leave the cluster for a look)
set -euo pipefail

cd "$(dirname "$0")/.."
cluster=${KIND_CLUSTER:-restart-process-e2e}
tag=e2e
system=restart-process-system
apps=restart-process-e2e
log() { echo "e2e: $*" >&2; }
fail() { log "FAILED: $*"; exit 1; }

for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || fail "$tool is required"
done
helm=$(command -v helm || true)
[ -n "$helm" ] || helm="$(hack/build-control-plane.sh)/helm"

log "creating kind cluster $cluster"
kind create cluster --name "$cluster" ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"} --wait 120s
cleanup() { [ -n "${KEEP_CLUSTER:-}" ] || kind delete cluster --name "$cluster"; }
trap cleanup EXIT
context="kind-$cluster"
k() { kubectl --context "$context" "$@"; }

log "building images"
docker build --target wrapper -t "restart-process/restart-wrapper:$tag" .
docker build --target webhook -t "restart-process/webhook:$tag" .
docker build -t "example-app:$tag" examples/app
for image in "restart-process/restart-wrapper:$tag" "restart-process/webhook:$tag" "example-app:$tag"; do
  kind load docker-image "$image" --name "$cluster"
done

log "installing the chart"
"$helm" upgrade --install rpw charts/restart-process-webhook --kube-context "$context" \
  --namespace "$system" --create-namespace --wait --timeout 180s \
  --set image.tag="$tag" --set image.pullPolicy=Never \
  --set wrapper.image.tag="$tag" --set wrapper.image.pullPolicy=Never

k create namespace "$apps"
k label namespace "$apps" pod-security.kubernetes.io/enforce=restricted

# Ready means the mutation actually happens (the caBundle is in and the server answers),
# checked with a server-side dry-run, as cert-manager's `cmctl check api` does.
log "waiting for the webhook to mutate"
probe=""
for _ in $(seq 60); do
  probe=$(k -n default run probe --image="example-app:$tag" --restart=Never --dry-run=server \
    --annotations=restart-process.dev/enabled=true -o jsonpath='{.spec.initContainers[0].name}' \
    --command -- /app/bin/example 2>/dev/null || true)
  [ "$probe" = "restart-process-install" ] && break
  sleep 2
done
[ "$probe" = "restart-process-install" ] || fail "the webhook never mutated a pod"

# The scenario itself is shared with the node tests (tests/node), which run it on a kubelet on the
# test machine: tests/support/live_update.py deploys examples/app/k8s.yaml and restarts it both ways.
log "running the live-update scenario (tests/support/live_update.py)"
# A tag other than :latest defaults to IfNotPresent, so the image kind loaded is used.
"${PYTHON:-.venv/bin/python}" -m tests.support.live_update --context "$context" --namespace "$apps" --image "example-app:$tag" \
  || fail "the live-update scenario"
log "PASSED: both ways re-executed the program inside the container (restartCount 0, synced file kept)"
