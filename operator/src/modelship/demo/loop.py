"""The demo's cluster stage: the whole loop on the local cluster, shown as it happens.

train → gates → serve → traffic → drift → retrain → canary → promote, with the
quickstart's own manifests, the real operator, real trainer and serving pods,
and a local S3 store. Progress lines say what is happening now; the end is a
summary of versions, metrics, drift before and after, and stage times.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelship.demo import data, groundtruth, stack
from modelship.demo.client import http, service_url
from modelship.demo.stack import S3

ROOT = Path(__file__).resolve().parents[4]
NAMESPACE = "modelship-demo"
MODEL = "loans"
DATASET_KEY = "datasets/loans/latest.csv"


def say(text: str = "") -> None:
    print(text, flush=True)


@dataclass
class Kubectl:
    binary: str
    kubeconfig: Path

    def run(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        res = subprocess.run([self.binary, "--kubeconfig", str(self.kubeconfig), *args], input=stdin,
                             capture_output=True, text=True, timeout=120, check=False)
        if check and res.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {res.stderr.strip()}")
        return res.stdout

    def json(self, *args: str) -> Any:
        out = self.run(*args, "-o", "json", check=False)
        return json.loads(out) if out.strip() else None


@dataclass
class Traffic:
    """A steady stream of predictions through the Service; ``shift`` changes what it sends."""

    url: str
    shift: data.Shift = data.NO_SHIFT
    sent: int = 0
    failed: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        seed = 1000
        while not self._stop.is_set():
            seed += 1
            code, _ = http("POST", self.url, {"instances": data.instances(10, seed=seed, shift=self.shift)})
            if code == 200:
                self.sent += 10
            else:
                self.failed += 1
            time.sleep(0.05)

    def start(self) -> Traffic:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


class Watcher:
    """Prints each new fact about the Model, its TrainingJobs and its DriftMonitor once."""

    def __init__(self, kubectl: Kubectl) -> None:
        self.k = kubectl
        self.seen: set[str] = set()
        self.started = time.monotonic()

    def note(self, key: str, text: str) -> None:
        if key not in self.seen:
            self.seen.add(key)
            say(f"   [{time.monotonic() - self.started:6.1f}s] {text}")

    def model(self) -> dict[str, Any]:
        return dict((self.k.json("get", "model", MODEL, "-n", NAMESPACE) or {}).get("status") or {})

    def poll(self) -> dict[str, Any]:
        for tj in (self.k.json("get", "trainingjobs", "-n", NAMESPACE) or {}).get("items", []):
            name, st = tj["metadata"]["name"], tj.get("status") or {}
            trigger = tj["spec"].get("trigger")
            self.note(f"tj/{name}", f"TrainingJob {name} created (trigger {trigger})")
            if st.get("phase") == "Running":
                self.note(f"tj/{name}/run", f"TrainingJob {name} is training in its pod")
            if st.get("phase") == "Succeeded":
                gates = ", ".join(f"{g['name']} {'ok' if g['passed'] else 'FAILED'}" for g in st.get("gates", []))
                self.note(f"tj/{name}/ok", f"TrainingJob {name} succeeded: {st.get('bestEstimator')} "
                          f"{st.get('metric')}={st.get('score', 0):.3f} in {st.get('durationSeconds', 0):.0f}s; "
                          f"gates: {gates}")
            if st.get("phase") == "Failed":
                self.note(f"tj/{name}/fail", f"TrainingJob {name} failed: {st.get('message')}")
        model = self.k.json("get", "model", MODEL, "-n", NAMESPACE) or {}
        st = dict(model.get("status") or {})
        steps = (model.get("spec") or {}).get("rollout", {}).get("steps", [])
        canary, stable = st.get("canaryRevision"), st.get("stableRevision")
        stage = (st.get("rollout") or {}).get("stage")
        if canary and stable and stage == "Shadow":
            percent = ((model.get("spec") or {}).get("rollout", {}).get("shadow") or {}).get("percent", 100)
            self.note(f"shadow/{canary}", f"Shadow {canary}: gets {percent}% of live requests mirrored, "
                      "answers no user; judged on errors, p99 and agreement with the stable")
        elif canary and stable:
            step = int(st.get("canaryStep") or 0)
            where = (f"step {step + 1}/{len(steps)} ({steps[step]['weight']}%)" if step < len(steps)
                     else "all steps passed, promoting")
            self.note(f"canary/{canary}/{step}/{st.get('canaryWeight')}",
                      f"Canary {canary}: {where}; {st.get('canaryWeight')}% of ready pods")
        elif canary:
            self.note(f"deploy/{canary}", f"Deploying the first revision {canary}")
        if stable:
            self.note(f"stable/{stable}", f"{stable} is stable and serves at {st.get('url')}")
        for h in st.get("history", []):
            if h.get("outcome") == "RolledBack":
                self.note(f"rb/{h.get('revision')}", f"Rolled back {h.get('revision')}: {h.get('reason')}")
            if h.get("outcome") == "Refused" and h.get("revision"):
                self.note(f"refused/{h.get('revision')}", f"Refused {h.get('revision')}: {h.get('reason')}")
        return st

    def wait(self, done: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.poll()
            if done(st):
                return st
            time.sleep(2)
        raise TimeoutError(f"{what} did not happen within {timeout:.0f}s; see `kubectl -n {NAMESPACE} describe model {MODEL}`")


def monitor_status(k: Kubectl) -> dict[str, Any]:
    return dict((k.json("get", "driftmonitor", MODEL, "-n", NAMESPACE) or {}).get("status") or {})


def run_loop(cluster: Any, images: dict[str, str], workdir: Path, timings: dict[str, float],
             keep: bool = False) -> int:
    k = Kubectl(cluster.kubectl_bin, cluster.kubeconfig)
    with stack.s3_server(cluster.node_ip) as s3:
        return _with_store(k, cluster, images, s3, workdir, timings, keep)


def _stage(timings: dict[str, float], name: str, started: float) -> None:
    timings[name] = time.monotonic() - started


def _with_store(k: Kubectl, cluster: Any, images: dict[str, str], s3: S3, workdir: Path,
                timings: dict[str, float], keep: bool = False) -> int:
    k.run("create", "namespace", NAMESPACE, check=False)
    k.run("create", "secret", "generic", stack.SECRET, "-n", NAMESPACE,
          *[f"--from-literal={key}={v}" for key, v in stack.KEYS.items()], check=False)
    s3.put(DATASET_KEY, data.to_csv(4000, seed=7))
    values = stack.chart_values(images, s3)
    say(f"\n▶ helm install modelship charts/modelship -n {stack.RELEASE_NAMESPACE} --create-namespace "
        f"(the CRDs, the operator pod and its RBAC; images {images['operator'].rsplit(':', 1)[1]})")
    t = time.monotonic()
    with stack.chart_operator(cluster.kubectl, cluster.kubeconfig, values, workdir, keep=keep) as operator:
        _stage(timings, "helm install → operator leading", t)
        pods = ", ".join(p["metadata"]["name"] for p in operator.pods())
        say(f"   operator pod {pods} leads; `kubectl logs -n {stack.RELEASE_NAMESPACE} deploy/modelship`; "
            f"artifacts in S3 at {s3.endpoint}")
        watcher = Watcher(k)
        say("\n▶ kubectl apply -f examples/quickstart/model.yaml")
        t = time.monotonic()
        k.run("apply", "-n", NAMESPACE, "-f", str(ROOT / "examples" / "quickstart" / "model.yaml"))
        st = watcher.wait(lambda s: s.get("phase") == "Serving", 600, "the first version to serve")
        _stage(timings, "apply → serving (train, gates, deploy)", t)
        first = st["stableRevision"]
        svc = k.json("get", "service", MODEL, "-n", NAMESPACE)
        url = service_url(svc, MODEL)
        code, body = http("POST", url, {"instances": data.instances(3, seed=99)})
        say(f"   POST {url} → {code} {json.dumps(body)}")
        say(k.run("get", "models,trainingjobs", "-n", NAMESPACE))

        say("▶ kubectl apply -f examples/quickstart/driftmonitor.yaml; normal traffic")
        k.run("apply", "-n", NAMESPACE, "-f", str(ROOT / "examples" / "quickstart" / "driftmonitor.yaml"))
        traffic = Traffic(url).start()
        try:
            t = time.monotonic()
            before = stack.wait_until(lambda: (m := monitor_status(k)).get("state") and m, 300, "a first drift verdict",
                                      interval=2)
            say(f"   DriftMonitor: {before['state']}, max PSI {before.get('maxScore', 0):.3f} over "
                f"{before.get('samples')} samples")
            say("\n▶ The customer base changes: new data at the dataset URI, shifted live traffic")
            s3.put(DATASET_KEY, data.to_csv(4000, seed=8, shift=data.DEMO_SHIFT))
            traffic.shift = data.DEMO_SHIFT
            t = time.monotonic()
            last = ""
            drifted: dict[str, Any] = {}
            deadline = time.monotonic() + 400
            while time.monotonic() < deadline:
                m = monitor_status(k)
                scores = ", ".join(f"{s['feature']} {s['score']:.2f}" for s in m.get("scores", [])[:3])
                line = f"{m.get('state')}: {scores}"
                if line != last:
                    watcher.note(f"dm/{line}", f"DriftMonitor {line}")
                    last = line
                if m.get("state") == "Drift":
                    drifted = m
                    break
                time.sleep(3)
            if not drifted:
                raise TimeoutError("the DriftMonitor did not reach Drift in 400 s")
            _stage(timings, "shifted traffic → Drift", t)
            t = time.monotonic()
            st = watcher.wait(lambda s: s.get("stableRevision") not in (None, first) and not s.get("canaryRevision"),
                              900, "the retrained version to be promoted")
            _stage(timings, "Drift → retrained, canary, promoted", t)
            time.sleep(25)
            after = monitor_status(k)
        finally:
            traffic.stop()
        say(f"\n   traffic during the loop: {traffic.sent} predictions, {traffic.failed} failed requests")
        # Ground truth (issue 20): logged predictions, late labels, live accuracy, retrain on production rows.
        gt = groundtruth.run_stage(k, watcher, url, s3, ROOT, timings, _stage, NAMESPACE, MODEL, say)
        summary(k, gt.get("status", st), before, drifted, after, timings)
        for line in groundtruth.summary_lines(gt):
            say(line)
    return 0


def summary(k: Kubectl, st: dict[str, Any], before: dict[str, Any], drifted: dict[str, Any],
            after: dict[str, Any], timings: dict[str, float]) -> None:
    say("\n══ Summary ══")
    say(k.run("get", "models,trainingjobs,driftmonitors", "-n", NAMESPACE))
    say("Versions (newest first):")
    for h in st.get("history", []):
        metrics = ", ".join(f"{m} {v:.3f}" for m, v in sorted(h.get("metrics", {}).items())[:3])
        say(f"  {h.get('revision') or '-':<22} {h.get('trainingJob') or '-':<10} trigger {h.get('trigger') or '-':<12}"
            f" {h['outcome']:<11} {metrics}")
    say("Drift (max PSI):")
    say(f"  before the shift {before.get('maxScore', 0):.3f} ({before.get('state')})")
    say(f"  shifted traffic vs the first model  {drifted.get('maxScore', 0):.3f} ({drifted.get('state')})")
    say(f"  shifted traffic vs the retrained model  {after.get('maxScore', 0):.3f} ({after.get('state')}, "
        f"reference {after.get('referenceRevision')})")
    say("Stage times:")
    for name, seconds in timings.items():
        say(f"  {name:<40} {seconds:6.1f} s")

