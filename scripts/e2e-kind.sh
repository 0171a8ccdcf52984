#!/usr/bin/env bash
# make e2e-kind: the same end-to-end suite on a kind cluster (one suite, two
# targets, chosen by KUBECONFIG). Needs Docker and kind; says so and fails
# where they are missing. Not part of `make test`.
#
#   1. a kind cluster `modelship-e2e` (reused when it exists; KEEP_KIND=1 keeps it)
#   2. the three images built with `docker build` under the tags `make images`
#      uses, loaded with `kind load docker-image`
#   3. host routes to the pod and service CIDRs through the kind node, so the
#      suite reaches pods and Services from the host as on the local cluster
#   4. pytest tests/e2e with KUBECONFIG=<kind's>, MODELSHIP_PREBUILT_IMAGES=1,
#      and <kubeconfig>.node-ip = the Docker network's gateway (where the
#      suite's S3 server listens, reachable from pods)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
CLUSTER=${KIND_CLUSTER:-modelship-e2e}
for tool in docker kind; do
  if ! command -v "$tool" >/dev/null; then
    echo "e2e-kind: '$tool' is not installed here; it needs Docker and kind (https://kind.sigs.k8s.io)." >&2
    exit 2
  fi
done
docker info >/dev/null 2>&1 || { echo "e2e-kind: the Docker daemon does not answer" >&2; exit 2; }

if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --wait 120s
fi
KUBECONFIG_FILE=$(mktemp --suffix=.kubeconfig)
kind get kubeconfig --name "$CLUSTER" > "$KUBECONFIG_FILE"
cleanup() {
  rm -f "$KUBECONFIG_FILE" "$KUBECONFIG_FILE.node-ip"
  if [ "${KEEP_KIND:-0}" != 1 ]; then kind delete cluster --name "$CLUSTER"; fi
}
trap cleanup EXIT

"$PY" -m modelship.cli images dockerfiles | while IFS=$'\t' read -r name ref dockerfile target; do
  echo "e2e-kind: building $name as $ref"
  docker build -q -f "$dockerfile" ${target:+--target "$target"} -t "$ref" .
  kind load docker-image --name "$CLUSTER" "$ref"
done

NODE_IP=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$CLUSTER-control-plane")
GATEWAY=$(docker network inspect kind -f '{{range .IPAM.Config}}{{.Gateway}} {{end}}' | tr ' ' '\n' | grep -m1 '\.')
echo "$GATEWAY" > "$KUBECONFIG_FILE.node-ip"
for cidr in 10.244.0.0/16 10.96.0.0/12; do
  ip route replace "$cidr" via "$NODE_IP" || echo "e2e-kind: could not route $cidr via $NODE_IP (run as root)" >&2
done

KUBECONFIG="$KUBECONFIG_FILE" MODELSHIP_PREBUILT_IMAGES=1 MODELSHIP_CLUSTER_TESTS=all \
  "$PY" -m pytest tests/e2e ${PYTEST_ARGS:-}
