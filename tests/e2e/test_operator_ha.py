"""The operator as the chart runs it: a `helm upgrade` that rolls it leaves the
serving Model alone, and with two replicas exactly one acts; when the leader's
pod dies the other takes over and a rollout in progress completes.

Runs after the other end-to-end modules (see conftest's ordering) and leaves the
release as it found it: one replica, the session's values."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from typing import Any

import pytest
from helpers import Load, dataset, model_manifest, service_url

from conftest import S3, Namespace, Operator, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]


def status(ns: Namespace, name: str) -> dict[str, Any]:
    return dict((ns.get("model", name) or {}).get("status") or {})


def operator_nodes_available(operator: Operator) -> int:
    """Nodes an operator pod may run on (no NoSchedule taint)."""
    items = json.loads(operator.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    return sum(1 for n in items if not any(t.get("effect") == "NoSchedule"
                                           for t in (n.get("spec") or {}).get("taints") or []))


# A sample reads every operator pod's modelship_leader (about 0.3-1 s a round); a test that
# says "never two leaders" must have looked often enough, during the roll or takeover too.
MIN_LEADER_SAMPLES = 40
MIN_SAMPLES_DURING_TAKEOVER = 5
TAKEOVER_MAX_S = 15


class LeaderSampler(threading.Thread):
    """Samples which pods say they lead; records every sample with two leaders.

    Every error (a pod listing that fails, a running pod whose /metrics cannot be
    read) is recorded, not skipped: a sample that could not look is not a sample
    with one leader, and the tests fail on any."""

    def __init__(self, operator: Operator) -> None:
        super().__init__(daemon=True)
        self.operator, self.stop = operator, threading.Event()
        self.samples: list[tuple[float, list[str]]] = []  # (monotonic time, leaders)
        self.errors: list[str] = []
        self.lock = threading.Lock()  # held for each sample: change `skip` under it
        self.skip: tuple[str, ...] = ()  # pods not to ask (frozen)

    def run(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                try:
                    self.samples.append((time.monotonic(), self.operator.leaders(exclude=self.skip, strict=True)))
                except Exception as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            time.sleep(0.3)

    def both(self) -> list[list[str]]:
        return [s for _, s in self.samples if len(s) > 1]

    def between(self, start: float, end: float) -> int:
        return sum(start <= t <= end for t, _ in self.samples)

    def check(self) -> None:
        """Never two leaders, no sample that failed, and enough samples to mean it."""
        assert not self.errors, f"{len(self.errors)} leader samples failed: {self.errors[:3]}"
        assert len(self.samples) >= MIN_LEADER_SAMPLES, f"only {len(self.samples)} leader samples"
        assert not self.both(), f"two leaders at once: {self.both()[:3]}"


def test_helm_upgrade_to_namespaced_mode_rolls_the_operator_without_disturbing_the_model(
        namespace: Namespace, s3: S3, operator: Operator) -> None:
    """A `helm upgrade` that changes a value (here: watchNamespaces, from all namespaces to
    this one) rolls the operator pod; the Model keeps serving every request, never two
    operators act, and the next version rolls out under the namespaced Role alone."""
    uri = s3.put(f"datasets/{namespace.name}/loans.csv", dataset(seed=61))
    namespace.apply(model_manifest("steady", uri))
    first = wait_until(lambda: (s := status(namespace, "steady")).get("phase") == "Serving"
                       and s["stableRevision"], 420, "the Model to serve", 2)
    before = {p["metadata"]["name"] for p in operator.pods()}
    sampler = LeaderSampler(operator)
    sampler.start()
    try:
        with Load(service_url(namespace, "steady"), threads=2) as load:
            operator.upgrade(f"watchNamespaces={{{namespace.name}}}")
            # helm --wait returns once the new pod is ready; the old one may still be terminating.
            after = wait_until(lambda: (names := {p["metadata"]["name"] for p in operator.pods()})
                               .isdisjoint(before) and names, 90, "the old operator pod to go")
            upgraded_ok, upgraded_failed = load.ok, load.failed
            # Namespaced mode: a Role here, no ClusterRole for the kinds.
            roles = [r["metadata"]["name"] for r in namespace.list("role")]
            assert "modelship" in roles, roles
            assert operator.kubectl("get", "clusterrole", "modelship", check=False).returncode != 0
            s3.put(f"datasets/{namespace.name}/loans.csv", dataset(seed=62))
            namespace.kubectl("annotate", "model", "steady", "modelship.io/retrain=1", "--overwrite")
            done = wait_until(lambda: (s := status(namespace, "steady")).get("stableRevision") not in (None, first)
                              and not s.get("canaryRevision") and s, 420, "the rollout under the Role")
        sampler.stop.set()
        sampler.join(5)
        print(f"helm upgrade: operator pods {sorted(before)} → {sorted(after)}; {upgraded_ok} requests ok, "
              f"{upgraded_failed} failed during the upgrade; then {done['stableRevision']} promoted in namespaced "
              f"mode; {load.ok} ok, {load.failed} failed in all; {len(sampler.samples)} leader samples, "
              f"{len(sampler.errors)} failed")
        assert load.failed == 0, load.failures
        sampler.check()
        assert done["history"][0]["outcome"] == "Promoted"
    finally:
        sampler.stop.set()
        operator.upgrade()  # back to the session's values: all namespaces


def test_two_replicas_one_leads_and_the_other_takes_over_a_rollout(
        namespace: Namespace, s3: S3, operator: Operator) -> None:
    operator.upgrade("replicas=2")
    try:
        wait_until(lambda: len([p for p in operator.pods() if operator._ready(p)]) == 2, 180, "two ready replicas")
        # The chart's default podAntiAffinity keeps the replicas apart where there are nodes to do so.
        nodes = {p["spec"]["nodeName"] for p in operator.pods() if operator._ready(p)}
        if operator_nodes_available(operator) >= 2:
            assert len(nodes) == 2, f"both operator replicas on {nodes}"
        uri = s3.put(f"datasets/{namespace.name}/loans.csv", dataset(seed=62))
        namespace.apply(model_manifest("handover", uri))
        first = wait_until(lambda: (s := status(namespace, "handover")).get("phase") == "Serving"
                           and s["stableRevision"], 420, "the Model to serve", 2)
        sampler = LeaderSampler(operator)
        sampler.start()
        s3.put(f"datasets/{namespace.name}/loans.csv", dataset(seed=63))
        with Load(service_url(namespace, "handover"), threads=2) as load:
            namespace.kubectl("annotate", "model", "handover", "modelship.io/retrain=1", "--overwrite")
            wait_until(lambda: status(namespace, "handover").get("canaryRevision"), 300, "a canary")
            leaders = wait_until(operator.leaders, 30, "a leader")
            assert len(leaders) == 1, leaders
            old = leaders[0]
            pid = operator.host_pid_of(old)
            assert pid is not None, f"no host process for pod {old}"
            # The leader's pod dies without a goodbye: its process is frozen (a hung node: no
            # renewal, no release, nothing answers), then the pod is force-deleted. SIGKILL alone
            # would let the kubelet restart the container under the same name, which resumes the
            # Lease as its own; that is a restart, not a handover.
            with sampler.lock:  # no sample is asking the pod when it freezes, and none asks it after
                sampler.skip = (old,)
                os.kill(pid, signal.SIGSTOP)
            killed = time.monotonic()
            operator.kubectl("delete", "pod", "-n", operator.namespace, old, "--grace-period=0", "--force",
                             check=False)
            new = wait_until(lambda: operator.leaders(exclude=(old,)), 60, "another leader", interval=0.25)
            takeover = time.monotonic() - killed
            during = sampler.between(killed, killed + takeover)
            done = wait_until(lambda: (s := status(namespace, "handover")).get("stableRevision") not in
                              (None, first) and not s.get("canaryRevision") and s, 420, "the rollout to finish")
        sampler.stop.set()
        sampler.join(5)
        print(f"leader {old} killed; {new[0]} leads after {takeover:.1f} s (bound {TAKEOVER_MAX_S} s); rollout "
              f"promoted {done['stableRevision']}; load {load.ok} ok, {load.failed} failed; "
              f"{len(sampler.samples)} leader samples ({during} during the takeover), {len(sampler.errors)} failed")
        assert takeover <= TAKEOVER_MAX_S, f"takeover took {takeover:.1f} s"
        sampler.check()
        assert during >= MIN_SAMPLES_DURING_TAKEOVER, f"only {during} leader samples during the takeover"
        assert load.failed == 0, load.failures
        assert sorted(t["metadata"]["name"] for t in namespace.list("trainingjob")) == ["handover-1", "handover-2"]
        assert done["history"][0]["outcome"] == "Promoted"
    finally:
        operator.upgrade("replicas=1")
