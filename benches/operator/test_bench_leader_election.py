"""Two operator processes, one Lease: exactly one leads; a kill -9 of the
leader hands over when the Lease expires, a SIGTERM at once (the Lease is
released); a sampler checks throughout that never both lead."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from modelship.demo import stack
from modelship.demo.stack import OperatorProcess

# The timeout covers the wait for the machine's cluster-session lock (up to an hour) too.
pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(3600 + 240)]

ROOT = Path(__file__).resolve().parents[2]  # benches/operator → repo root
LEASE = "modelship-operator"
LEASE_SECONDS = 12  # the default


MIN_SAMPLES = 50  # reads of both operators' metric over the run (about 10 a second)
KILL_TAKEOVER_MAX_S = LEASE_SECONDS + 1.5  # README: a crashed leader is replaced within 14 s
TERM_TAKEOVER_MAX_S = 3.5  # the Lease is released on SIGTERM


def leads(op: OperatorProcess) -> bool:
    """What the operator's modelship_leader metric says. A refused connection is a process
    that does not lead (the operator serves /metrics before it campaigns and until it exits);
    any other error raises: the sampler must not count what it could not read as a follower."""
    for attempt in range(2):
        try:
            text = op.metrics()
            break
        except OSError as exc:
            reason = getattr(exc, "reason", None)
            if isinstance(exc, ConnectionRefusedError) or isinstance(reason, ConnectionRefusedError):
                return False
            reset = isinstance(exc, ConnectionResetError) or isinstance(reason, ConnectionResetError)
            if reset and attempt == 0:
                time.sleep(0.2)  # a process closing its listener as it exits: ask once more
                continue
            raise
    values = [line.split()[1] for line in text.splitlines() if line.startswith("modelship_leader ")]
    return values == ["1.0"]


class Sampler(threading.Thread):
    """Reads both operators' metric as a, b, a: a overlap is counted only when a
    led at both ends of the interval in which b was seen leading. A read that
    fails is recorded and fails the bench."""

    def __init__(self, a: OperatorProcess, b: OperatorProcess) -> None:
        super().__init__(daemon=True)
        self.a, self.b = a, b
        self.samples = 0
        self.both: list[float] = []
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            try:
                a1, b_, a2 = leads(self.a), leads(self.b), leads(self.a)
            except OSError as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            self.samples += 1
            if a1 and b_ and a2:
                self.both.append(time.monotonic())


def holder(cluster: Any, namespace: str) -> str:
    res = cluster.kubectl("get", "lease", LEASE, "-n", namespace, "-o", "json", check=False)
    return str(json.loads(res.stdout)["spec"].get("holderIdentity") or "") if res.returncode == 0 else ""


def take_over(new: OperatorProcess, started: float, limit: float) -> float:
    stack.wait_until(lambda: leads(new), limit, "the follower to lead", interval=0.05)
    return time.monotonic() - started


@pytest.fixture
def local_cluster() -> Any:
    from modelship.localcluster import testing

    with testing.session() as cluster:
        yield cluster


def test_one_leader_and_handover(local_cluster: Any, tmp_path: Path) -> None:
    local_cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    namespace = f"ha-{uuid.uuid4().hex[:6]}"
    local_cluster.kubectl("create", "namespace", namespace)
    ops: dict[str, OperatorProcess] = {}
    for name in ("op-a", "op-b"):
        env = {**local_cluster.env, "MODELSHIP_LEADER_ELECTION": "true", "MODELSHIP_POD_NAME": name,
               "MODELSHIP_LEASE_NAMESPACE": namespace, "MODELSHIP_NAMESPACES": json.dumps([namespace]),
               **{f"MODELSHIP_{p}_PORT": str(stack.free_port()) for p in ("HEALTH", "METRICS", "WEBHOOK")}}
        ops[name] = OperatorProcess(env, tmp_path / f"{name}.log")
    sampler = Sampler(ops["op-a"], ops["op-b"])
    try:
        for op in ops.values():
            op.start()  # returns once /healthz answers, which a follower does too
        sampler.start()

        first = stack.wait_until(lambda: holder(local_cluster, namespace), 30, "a holder of the Lease")
        stack.wait_until(lambda: leads(ops[first]), 30, f"{first} to report modelship_leader 1")
        other = "op-b" if first == "op-a" else "op-a"
        time.sleep(3)  # a few renewals: still one leader, and the follower stays healthy
        assert leads(ops[first]) and not leads(ops[other]) and ops[other].healthy()

        killed = time.monotonic()
        ops[first].kill()
        after_kill = take_over(ops[other], killed, LEASE_SECONDS + 5)
        assert holder(local_cluster, namespace) == other
        print(f"\ntakeover after kill -9 of the leader: {after_kill:.1f} s (Lease {LEASE_SECONDS} s; "
              f"bound {KILL_TAKEOVER_MAX_S} s)")
        assert after_kill <= KILL_TAKEOVER_MAX_S

        ops[first].start()  # its pod's container restarts under the same name: now a follower
        time.sleep(2.5)
        assert not leads(ops[first]) and leads(ops[other])

        terminated = time.monotonic()
        ops[other].stop()
        proc = ops[other].proc
        assert proc is not None and proc.returncode == 0, ops[other].log_tail()
        after_term = take_over(ops[first], terminated, 10)
        assert holder(local_cluster, namespace) == first
        print(f"takeover after SIGTERM of the leader: {after_term:.1f} s (the Lease was released; "
              f"bound {TERM_TAKEOVER_MAX_S} s)")
        assert after_term <= TERM_TAKEOVER_MAX_S
    finally:
        sampler.stop.set()
        for op in ops.values():
            op.stop()
        local_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    print(f"samples of both operators' modelship_leader: {sampler.samples}, both leading: {len(sampler.both)}, "
          f"failed reads: {len(sampler.errors)}")
    assert not sampler.errors, sampler.errors[:3]
    assert sampler.samples >= MIN_SAMPLES and sampler.both == []
