"""Issue 18 end to end, under a fixed load of 50 requests/s through the Model's Service:
a faulty canary rolled back within its bound with ready capacity never below spec, the analysis
interval honoured, a good version promoted within its pauses, and a candidate judged in shadow,
where a bad one is refused with 0 failed user requests."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from helpers import dataset, model_manifest, service_url
from rollout_watch import RateLoad, Sample, Watch, diagnosis, programming_latency

from conftest import S3, Namespace, Operator, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1500)]

RATE = 50.0  # requests/s through the Service
# A 20 %-faulty canary at RATE, amid the suite: its failures last until the decision, which on 2
# loaded cores (or kind's nodes) can come later than alone (MAX_ABORT_SECONDS). It fails in step 1,
# where the stable keeps all its pods, so the canary goes at the decision: only requests already on
# their way to its pod fail after it (kube-proxy's rules follow the endpoints within a second or so).
# The comparison with Argo Rollouts in one run, and its tighter bound, is the bench's (benches/rollouts).
MAX_FAILED = 32
MAX_FAILED_AFTER = 4  # of which after the decision
# From the canary's first ready pod to the rollback decision. It is judged every 2 s (analysis.interval)
# on the requests that reached it, which start once kube-proxy carries its endpoint: 2.0-3.5 s on the
# local cluster, alone or amid the suite; on kind 4.0 s alone and 8.0 s amid its suite (2026-12-05).
# The bench holds the tighter bound (6 s) and the comparison with Argo Rollouts (benches/rollouts).
MAX_ABORT_SECONDS = 10.0
PROMOTE_SLACK_SECONDS = 3.0  # a good version: promoted within its pauses plus this
REPLICAS = 4
STEPS = [{"weight": 25, "pause": "10s"}, {"weight": 50, "pause": "10s"}, {"weight": 75, "pause": "10s"}]
PAUSES = 30.0


def manifest(name: str, uri: str, interval: str = "2s", shadow: dict[str, Any] | None = None) -> dict[str, Any]:
    doc = model_manifest(name, uri)
    doc["spec"]["serving"]["replicas"] = REPLICAS
    doc["spec"]["rollout"] = {"steps": STEPS, "onNoData": "pause", **({"shadow": shadow} if shadow else {}),
                              "analysis": {"maxErrorRatio": 0.01, "maxLatencyP99Ms": 1000, "minRequests": 20,
                                           "interval": interval}}
    return doc


def status(ns: Namespace, name: str) -> dict[str, Any]:
    return dict((ns.get("model", name) or {}).get("status") or {})


def serving(ns: Namespace, name: str) -> dict[str, Any]:
    return wait_until(lambda: (s := status(ns, name)).get("phase") == "Serving" and not s.get("canaryRevision")
                      and s, 600, f"{name} serving")  # type: ignore[no-any-return]


def outcome(s: Sample, revision: str) -> str | None:
    return next((h.get("outcome") for h in s.history if h.get("revision") == revision), None)


def canary_ready_at(watch: Watch, revision: str) -> float:
    first = watch.first(lambda s: s.ready.get(revision, 0) >= 1 and s.stable != revision)
    assert first is not None, "the canary never had a ready pod"
    return first.at


def retrain(ns: Namespace, name: str, token: str, faults: dict[str, str] | None = None) -> str:
    """A new version (retrain annotation); returns its revision once it is the candidate."""
    before = status(ns, name).get("stableRevision")
    ns.kubectl("annotate", "model", name, "--overwrite",
               f"modelship.io/test-canary-env={json.dumps(faults or {})}", f"modelship.io/retrain={token}")
    return wait_until(lambda: (c := status(ns, name).get("canaryRevision")) and c != before and c,  # type: ignore[no-any-return]
                      300, "a new candidate", interval=0.5)


def test_exact_canary(namespace: Namespace, s3: S3, operator: Operator, local_cluster: Any) -> None:
    uri = s3.put(f"datasets/{namespace.name}/loans.csv", dataset(seed=11))
    namespace.apply(manifest("exact", uri))
    serving(namespace, "exact")
    target = service_url(namespace, "exact")

    # A good version is promoted within its configured pauses (+3 s) after its first ready pod.
    proxy = programming_latency()
    with RateLoad(target, RATE) as load, Watch(str(local_cluster.kubeconfig), namespace.name, "exact") as watch:
        good = retrain(namespace, "exact", "1")
        wait_until(lambda: status(namespace, "exact").get("stableRevision") == good, 300, "promotion", interval=0.5)
        # The status can change after the sampler's last look: wait until it has seen it too.
        promoted = wait_until(lambda: watch.first(lambda s: s.stable == good), 10, "the sampler to see the promotion",
                              interval=0.2)
    took = promoted.at - canary_ready_at(watch, good)
    print(f"good version: promoted {took:.1f} s after its first ready pod ({PAUSES:.0f} s of pauses); "
          f"{load.ok} ok, {load.failed} failed")
    assert load.failed == 0, diagnosis(load, watch, proxy)
    assert took <= PAUSES + PROMOTE_SLACK_SECONDS
    assert not watch.errors and len(watch.samples) >= took  # sampled twice a second throughout
    # Between analyses Progressing shows the last one's figures, kept in status.rollout.figures (the
    # CRD's schema has the field: the API server would prune it otherwise).
    shown = [s for s in watch.samples if s.figures and s.progressing and s.progressing.endswith(f"; so far {s.figures}")]
    assert shown, [(s.figures, s.progressing) for s in watch.samples][-10:]

    # A version answering 500 to 20 % of requests: rolled back fast, capacity never below spec.
    proxy = programming_latency()
    with RateLoad(target, RATE) as load, Watch(str(local_cluster.kubeconfig), namespace.name, "exact") as watch:
        bad = retrain(namespace, "exact", "2", {"MODELSHIP_FAULT_ERROR_RATIO": "0.2"})
        wait_until(lambda: not status(namespace, "exact").get("canaryRevision"), 300, "the rollback", interval=0.5)
        time.sleep(2)
    decided = watch.first(lambda s: outcome(s, bad) == "RolledBack")
    assert decided is not None
    ready_at = canary_ready_at(watch, bad)
    abort = decided.at - ready_at
    during = [s for s in watch.samples if s.at >= ready_at - 5]
    after = sum(1 for t in load.failed_at if t > decided.at)
    print(f"faulty canary at {RATE:.0f} req/s: rolled back {abort:.1f} s after its first ready pod; "
          f"{load.failed} failed of {load.ok + load.failed} ({after} after the decision); "
          f"ready endpoints min {min(s.endpoints for s in during)}; "
          f"{next((h.get('reason') for h in decided.history if h.get('revision') == bad), None)}")
    assert abort <= MAX_ABORT_SECONDS
    assert load.failed <= MAX_FAILED, diagnosis(load, watch, proxy)
    assert after <= MAX_FAILED_AFTER, diagnosis(load, watch, proxy)
    assert min(s.endpoints for s in during) >= REPLICAS, [(round(s.at, 1), s.endpoints) for s in during]
    assert status(namespace, "exact")["stableRevision"] == good
    fast = abort

    # The same version under a 20 s analysis interval (a spec change: it is tried again). The end
    # of a step's pause is judged too, so the pauses grow past the interval here.
    spec = namespace.get("model", "exact")["spec"]  # type: ignore[index]
    spec["rollout"]["analysis"]["interval"] = "20s"
    spec["rollout"]["steps"] = [{**step, "pause": "40s"} for step in STEPS]
    with Watch(str(local_cluster.kubeconfig), namespace.name, "exact") as watch, RateLoad(target, RATE):
        namespace.kubectl("patch", "model", "exact", "--type=merge", "-p", json.dumps({"spec": spec}))
        wait_until(lambda: status(namespace, "exact").get("canaryRevision") == bad, 120, "the retry", interval=0.5)
        wait_until(lambda: not status(namespace, "exact").get("canaryRevision"), 300, "the second rollback",
                   interval=0.5)
        ready_at = canary_ready_at(watch, bad)
        again = wait_until(lambda: watch.first(lambda s: s.canary is None and s.at > ready_at),
                           10, "the sampler to see the second rollback", interval=0.2)
    slow = again.at - ready_at
    print(f"analysis interval 2 s: rolled back after {fast:.1f} s; 20 s: after {slow:.1f} s")
    assert slow >= 15 and slow - fast >= 10


def test_shadow_refuses_a_wrong_model_with_no_failed_request(
        namespace: Namespace, s3: S3, operator: Operator, local_cluster: Any) -> None:
    uri = s3.put(f"datasets/{namespace.name}/loans.csv", dataset(seed=12))
    namespace.apply(manifest("shadowed", uri))
    first = serving(namespace, "shadowed")["stableRevision"]
    target = service_url(namespace, "shadowed")

    # Turning the shadow on changes the stable's pod template (it mirrors): the same artifact rolls
    # out as a canary (the stable it replaces mirrors nothing yet), and no request fails.
    spec = namespace.get("model", "shadowed")["spec"]  # type: ignore[index]
    spec["rollout"]["shadow"] = {"duration": "10s", "percent": 100}
    with RateLoad(target, RATE) as load, Watch(str(local_cluster.kubeconfig), namespace.name, "shadowed") as watch:
        namespace.kubectl("patch", "model", "shadowed", "--type=merge", "-p", json.dumps({"spec": spec}))
        wait_until(lambda: (s := status(namespace, "shadowed")).get("stableRevision") not in (None, first)
                   and not s.get("canaryRevision"), 300, "promotion of the mirroring stable", interval=0.5)
    assert any(s.stage == "Canary" for s in watch.samples) and not any(s.stage == "Shadow" for s in watch.samples)
    assert load.failed == 0, load.failures

    # A good new version: judged in shadow, then a canary, then promoted; no request fails.
    with RateLoad(target, RATE) as load, Watch(str(local_cluster.kubeconfig), namespace.name, "shadowed") as watch:
        good = retrain(namespace, "shadowed", "0")
        wait_until(lambda: status(namespace, "shadowed").get("stableRevision") == good, 300,
                   "promotion through shadow and canary", interval=0.5)
    assert any(s.stage == "Shadow" for s in watch.samples) and any(s.stage == "Canary" for s in watch.samples)
    print(f"good version through shadow and canary: {load.ok} ok, {load.failed} failed")
    assert load.failed == 0, load.failures

    # A version that is Ready and healthy but answers the other class: refused in shadow.
    with RateLoad(target, RATE) as load, Watch(str(local_cluster.kubeconfig), namespace.name, "shadowed") as watch:
        wrong = retrain(namespace, "shadowed", "1", {"MODELSHIP_FAULT_FLIP_LABELS": "true"})
        wait_until(lambda: not status(namespace, "shadowed").get("canaryRevision"), 300, "the refusal", interval=0.5)
    entry = next(h for h in status(namespace, "shadowed")["history"] if h.get("revision") == wrong)
    print(f"wrong version: {entry['reason']}; users: {load.ok} ok, {load.failed} failed")
    assert entry["outcome"] == "Refused" and "agreement" in entry["reason"]
    assert not any(s.ready.get(wrong) for s in watch.samples)  # never a canary pod: no user saw it
    assert load.failed == 0, load.failures

    # And one that answers 500 to 20 % of requests.
    with RateLoad(target, RATE) as load:
        faulty = retrain(namespace, "shadowed", "2", {"MODELSHIP_FAULT_ERROR_RATIO": "0.2"})
        wait_until(lambda: not status(namespace, "shadowed").get("canaryRevision"), 300, "the refusal", interval=0.5)
    entry = next(h for h in status(namespace, "shadowed")["history"] if h.get("revision") == faulty)
    print(f"faulty version: {entry['reason']}; users: {load.ok} ok, {load.failed} failed")
    assert entry["outcome"] == "Refused" and "error ratio" in entry["reason"]
    assert load.failed == 0, load.failures
