"""Gateway API routing on a real cluster: with ``trafficRouting: gatewayAPI`` the
rollout's split is an HTTPRoute's backend weights, exact at every step.

The local cluster has the Gateway API CRDs (installed here from their Go module)
but no Gateway controller, so the test follows the route the operator writes,
step by step, while traffic to the canary's analysis arrives through the
Model's own Service."""

from __future__ import annotations

import itertools
import json
import subprocess
import threading
import time
from typing import Any

import pytest
from helpers import Load, dataset, model_manifest, service_url

from conftest import S3, Namespace, Operator, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def gateway_api(local_cluster: Any) -> None:
    from modelship.localcluster import thirdparty

    thirdparty.install("gateway-api", local_cluster.kubeconfig)
    local_cluster.kubectl("wait", "--for=condition=Established", "crd/httproutes.gateway.networking.k8s.io",
                          "--timeout=60s")


def weights(route: dict[str, Any] | None) -> dict[str, int]:
    if route is None:
        return {}
    backends = route["spec"]["rules"][0]["backendRefs"]
    return {b["name"]: int(b["weight"]) for b in backends}


def test_canary_moves_through_httproute_weights_and_promotes(
        gateway_api: None, namespace: Namespace, s3: S3, operator: Operator) -> None:
    uri = s3.put(f"datasets/{namespace.name}/loans.csv", dataset(seed=11))
    # Step 2's pause (2 s) is shorter than its second canary pod takes to start: its weight must
    # still reach the route and be judged there before promotion.
    rollout = {"strategy": "Canary", "steps": [{"weight": 20, "pause": "8s"}, {"weight": 60, "pause": "2s"}],
               "analysis": {"maxErrorRatio": 0.05, "maxLatencyP99Ms": 1000, "minRequests": 5, "interval": "2s"},
               "onNoData": "proceed", "trafficRouting": "gatewayAPI", "gateway": {"name": "public"}}
    namespace.apply(model_manifest("routed", uri, rollout=rollout))
    st = wait_until(lambda: (s := (namespace.get("model", "routed") or {}).get("status") or {})
                    .get("phase") == "Serving" and s, 420, "the first version", interval=2)
    first = st["stableRevision"]
    route = wait_until(lambda: namespace.get("httproute", "routed"), 60, "the HTTPRoute")
    assert route["spec"]["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                            "name": "public"}]
    assert weights(route) == {"routed-stable": 100}
    # Accepted by the Gateway API's own validation, and only the model's public paths.
    paths = {m["path"]["value"] for r in route["spec"]["rules"] for m in r["matches"]}
    assert {"/v1/models/routed:predict", "/v2/models/routed/infer"} <= paths
    assert not paths & {"/", "/metrics", "/v2/models/routed/artifact", "/v2/models/routed/feedback"}
    stable_svc = namespace.get("service", "routed-stable")
    assert stable_svc["spec"]["selector"]["modelship.io/revision"] == first

    # A new version: follow every write to the route (a watch, not polling, so a step is not
    # missed however short it is) while the canary runs.
    seen: list[tuple[float, dict[str, int]]] = []
    argv = [namespace.cluster.kubectl_bin, "--kubeconfig", str(namespace.cluster.kubeconfig), "-n", namespace.name,
            "get", "httproute", "routed", "--watch", "-o", "json"]
    watch = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def follow() -> None:
        assert watch.stdout is not None
        text = ""
        for line in watch.stdout:  # pretty-printed objects, each ending with "}" at the margin
            text += line
            if line.rstrip("\n") == "}":
                w = weights(json.loads(text))
                text = ""
                if w and (not seen or seen[-1][1] != w):
                    seen.append((time.monotonic(), w))

    url = service_url(namespace, "routed")
    s3.put(f"datasets/{namespace.name}/loans.csv", dataset(seed=12))
    watcher = threading.Thread(target=follow, daemon=True)
    watcher.start()
    try:
        with Load(url) as load:
            namespace.kubectl("annotate", "model", "routed", "modelship.io/retrain=1", "--overwrite")
            canary = wait_until(lambda: ((namespace.get("model", "routed") or {}).get("status") or {})
                                .get("canaryRevision"), 300, "a canary")
            canary_svc = wait_until(lambda: namespace.get("service", "routed-canary"), 120, "the canary Service")
            assert canary_svc["spec"]["selector"]["modelship.io/revision"] == canary
            done = wait_until(lambda: (s := (namespace.get("model", "routed") or {}).get("status") or {})
                              .get("stableRevision") == canary and not s.get("canaryRevision") and s,
                              300, "promotion")
            time.sleep(2)
    finally:
        watch.terminate()
        watch.wait(10)
        watcher.join(5)
    routes = [w for _, w in seen]
    held = {w.get("routed-canary"): round(after - at, 1) for (at, w), (after, _) in itertools.pairwise(seen)}
    print(f"HTTPRoute weights seen: {routes}; seconds each canary weight held: {held}; "
          f"load {load.ok} ok, {load.failed} failed")
    assert load.failed == 0, load.failures
    canary_weights = [w.get("routed-canary") for w in routes if "routed-canary" in w]
    assert 20 in canary_weights and 60 in canary_weights, routes
    assert canary_weights == sorted(canary_weights), f"the canary's weight only rises: {routes}"
    # Each step's weight is served before the step passes: 60 % for step 2's whole 2 s pause, though
    # its pod took longer than that to start (it was promoted the moment the pod was ready, and
    # 60 % never reached the route). The operator's clock starts at the reconcile that writes the
    # route, a moment before the write reaches the watch.
    assert held[20] >= 5.0 and held[60] >= 1.0, held
    for w in routes:
        assert sum(w.values()) == 100, w
    assert routes[-1] == {"routed-stable": 100}
    assert namespace.get("service", "routed-stable")["spec"]["selector"]["modelship.io/revision"] == canary
    assert namespace.get("service", "routed-canary") is None
    assert done["history"][0]["outcome"] == "Promoted"
    assert first != canary
