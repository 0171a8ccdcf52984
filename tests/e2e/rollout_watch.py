"""What a person watching a rollout sees, sampled twice a second: the Model's revisions, each
revision's ready pods, and the ready endpoints behind the Model's Service; and a load at a fixed
request rate that counts every failure."""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Self

from helpers import Load
from kubernetes import client, config


@dataclass
class Sample:
    at: float
    stable: str | None
    canary: str | None
    ready: dict[str, int]  # Deployment name -> ready pods
    endpoints: int  # ready addresses behind the Model's Service
    stage: str | None  # status.rollout.stage
    history: list[dict[str, Any]]
    figures: str | None = None  # status.rollout.figures: what the last analysis measured
    progressing: str | None = None  # the Progressing condition's message


@dataclass
class Watch:
    """Samples a Model every ``period`` seconds from its own thread (the API client, not kubectl)."""

    kubeconfig: str
    namespace: str
    model: str
    period: float = 0.5
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        api = config.new_client_from_config(config_file=self.kubeconfig)
        self.apps, self.custom, self.discovery = client.AppsV1Api(api), client.CustomObjectsApi(api), \
            client.DiscoveryV1Api(api)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> Sample:
        model = self.custom.get_namespaced_custom_object("modelship.io", "v1alpha1", self.namespace, "models",
                                                         self.model)
        st = model.get("status") or {}
        deps = self.apps.list_namespaced_deployment(self.namespace, label_selector=f"modelship.io/model={self.model}")
        slices = self.discovery.list_namespaced_endpoint_slice(
            self.namespace, label_selector=f"kubernetes.io/service-name={self.model}")
        ready = sum(1 for s in slices.items for e in s.endpoints or []
                    if e.conditions is not None and e.conditions.ready)
        return Sample(time.monotonic(), st.get("stableRevision"), st.get("canaryRevision"),
                      {d.metadata.name: d.status.ready_replicas or 0 for d in deps.items}, ready,
                      (st.get("rollout") or {}).get("stage"), list(st.get("history") or []),
                      (st.get("rollout") or {}).get("figures"),
                      next((c.get("message") for c in st.get("conditions") or [] if c.get("type") == "Progressing"), None))

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                self.samples.append(self._sample())
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(max(0.0, self.period - (time.monotonic() - t0)))

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def first(self, predicate: Any) -> Sample | None:
        return next((s for s in self.samples if predicate(s)), None)


def RateLoad(url: str, rate: float = 50.0, threads: int = 8) -> Load:
    """``rate`` requests per second through the Service (a new connection each, so kube-proxy
    spreads them over every ready pod), on a fixed schedule: the e2e helpers' paced ``Load``."""
    return Load(url, threads=threads, rate=rate)


# kube-proxy's metrics on the local cluster's node (this host); kind's nodes keep theirs inside.
KUBE_PROXY_METRICS = "http://127.0.0.1:10249/metrics"
_BUCKET = re.compile(r'^kubeproxy_network_programming_duration_seconds_bucket\{[^}]*\ble="([^"]+)"[^}]*\} (\S+)$',
                     re.M)


def programming_latency() -> dict[str, float]:
    """kube-proxy's network-programming latency histogram (``le`` -> count): how long after a
    pod changed (Ready, deleted) its rules carried the change. Empty where it cannot be read."""
    try:
        with urllib.request.urlopen(KUBE_PROXY_METRICS, timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for le, n in _BUCKET.findall(text):  # summed over ip_family
        out[le] = out.get(le, 0.0) + float(n)
    return out


def diagnosis(load: Load, watch: Watch, proxy_before: dict[str, float]) -> str:
    """Why requests failed, as far as the test can see: each failure's time next to what the
    sampler saw then, and how late kube-proxy programmed the changes meanwhile (a refused
    connection through a Service is a rule that still names a pod that stopped listening, or
    none at all)."""
    lines = [f"{load.failed} failed of {load.sent}; first failures: {load.failures[:5]}"]
    for at in load.failed_at[:20]:
        s = min(watch.samples, key=lambda x: abs(x.at - at), default=None)
        seen = "no sample" if s is None else (f"sample {s.at - at:+.1f} s: stable {s.stable} canary {s.canary} "
                                               f"ready {s.ready} endpoints {s.endpoints}")
        lines.append(f"  failure at {at - load.started:.1f} s into the load; {seen}")
    after = programming_latency()
    if after:
        delta = {le: after[le] - proxy_before.get(le, 0.0) for le in after
                 if le in ("1", "2", "5", "8", "10", "20", "60", "+Inf")}
        lines.append(f"  kube-proxy programming latency during the load (le: changes): {delta}")
    return "\n".join(lines)
