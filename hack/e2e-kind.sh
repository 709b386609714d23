#!/usr/bin/env bash
# End to end on kind (needs Docker, kind, kubectl; helm is built when missing):
# build both images, install the chart, run the example app in a `restricted` namespace, then
# restart it twice -- `restart-wrapper trigger` through kubectl exec, and a `kubectl cp` into its
# watched directory -- and check the program was re-executed while the container never restarted
# and the synced file stayed.
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

log "deploying the example app"
# A tag other than :latest defaults to IfNotPresent, so the image kind loaded is used.
sed "s#image: example-app#image: example-app:$tag#" examples/app/k8s.yaml | k -n "$apps" apply -f -
k -n "$apps" rollout status deploy/example --timeout=180s
pod=$(k -n "$apps" get pod -l app=example -o jsonpath='{.items[0].metadata.name}')

starts() { k -n "$apps" logs "$pod" -c app | grep -c 'started pid=' || true; }
wait_starts() {
  for _ in $(seq 60); do [ "$(starts)" -ge "$1" ] && return 0; sleep 1; done
  k -n "$apps" logs "$pod" -c app >&2
  fail "expected $1 starts"
}
wait_starts 1
[ "$(k -n "$apps" get pod "$pod" -o jsonpath='{.spec.initContainers[0].name}')" = restart-process-install ] \
  || fail "the pod was not mutated"

log "restart 1: restart-wrapper trigger through kubectl exec (no shell in the command)"
k -n "$apps" exec "$pod" -c app -- /restart-process/restart-wrapper trigger
wait_starts 2

log "restart 2: kubectl cp into the watched directory"
greeting=$(mktemp)
echo "synced by e2e" > "$greeting"
k -n "$apps" cp "$greeting" "$pod:/app/data/greeting.txt" -c app
wait_starts 3
k -n "$apps" logs "$pod" -c app | grep -q 'greeting="synced by e2e"' || fail "the restarted program did not read the synced file"

pids=$(k -n "$apps" logs "$pod" -c app | sed -n 's/.*started pid=\([0-9]*\).*/\1/p' | sort -u | wc -l)
[ "$pids" -ge 3 ] || fail "the program was not re-executed (pids: $pids)"
[ "$(k -n "$apps" get pod "$pod" -o jsonpath='{.status.containerStatuses[0].restartCount}')" = 0 ] \
  || fail "the container restarted; the restart should happen inside it"
[ "$(k -n "$apps" exec "$pod" -c app -- cat /app/data/greeting.txt)" = "synced by e2e" ] \
  || fail "the synced file is gone"

log "PASSED: 3 starts, restartCount 0, synced file kept"
