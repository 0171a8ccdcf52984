"""Helpers for the end-to-end tests: the demo model, a load generator, predictions."""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modelship.demo import client, data
from modelship.demo.client import http

ROOT = Path(__file__).resolve().parents[2]


def model_manifest(name: str, dataset_uri: str, **spec_overrides: Any) -> dict[str, Any]:
    """The quickstart Model, made quick: one candidate, small steps, short pauses."""
    doc = yaml.safe_load((ROOT / "examples" / "quickstart" / "model.yaml").read_text())
    doc["metadata"] = {"name": name}
    spec = doc["spec"]
    spec["training"]["dataset"]["uri"] = dataset_uri
    spec["training"]["candidates"] = [{"estimator": "LogisticRegression", "params": {"C": [1.0]}}]
    spec["training"]["search"] = {"strategy": "grid", "cvFolds": 2}
    spec["serving"] = {"replicas": 2, "resources": {"requests": {"cpu": "50m", "memory": "128Mi"},
                                                    "limits": {"memory": "512Mi"}}}
    spec["rollout"] = {"strategy": "Canary", "steps": [{"weight": 50, "pause": "15s"}],
                       "analysis": {"maxErrorRatio": 0.05, "maxLatencyP99Ms": 1000, "minRequests": 10,
                                    "interval": "3s"},
                       "onNoData": "pause"}
    for key, value in spec_overrides.items():
        spec[key] = copy.deepcopy(value)
    return doc


def dataset(seed: int, rows: int = 2000, shift: data.Shift = data.NO_SHIFT) -> bytes:
    return data.to_csv(rows, seed=seed, shift=shift)


def service_url(ns: Any, name: str, timeout: float = 30) -> str:
    """The Model's v1 predict URL once its Service answers (``client.service_url``, as the demo
    waits): tests that count every request must not start while kube-proxy opens the ClusterIP."""
    svc = ns.get("service", name)
    assert svc is not None, "the Model's Service is missing"
    return client.service_url(svc, name, timeout)


def post(url: str, body: Any, timeout: float = 5) -> tuple[int, Any]:
    """POST JSON on a new connection: the demo's client (status 0 when nothing answered)."""
    return http("POST", url, body, timeout)


@dataclass
class Load:
    """Continuous predictions through the Service, one new connection per request
    (so kube-proxy spreads them over every ready pod), counting every outcome.

    ``rate``: requests per second over all threads, paced evenly (a test that
    bounds failed requests needs a known rate); None sends as fast as each
    thread's request and a 20 ms pause allow."""

    url: str
    threads: int = 4
    rate: float | None = None
    ok: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    failed_at: list[float] = field(default_factory=list)  # time.monotonic() of each failure
    started: float = 0.0
    stopped: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def sent(self) -> int:
        return self.ok + self.failed

    @property
    def achieved_rate(self) -> float:
        """Requests per second actually sent (for a test to check the pace it asked for)."""
        return self.sent / max(1e-9, (self.stopped or time.monotonic()) - self.started)

    def _run(self, seed: int) -> None:
        rows = data.instances(50, seed=seed)
        period = self.threads / self.rate if self.rate else 0.0
        next_at = self.started + seed * period / self.threads  # threads staggered over one period
        i = 0
        while not self._stop.is_set():
            if period:
                if self._stop.wait(max(0.0, next_at - time.monotonic())):
                    break
                next_at += period
            try:
                code, body = post(self.url, {"instances": [rows[i % len(rows)]]})
                good = code == 200
                detail = f"{code} {str(body)[:120]}"
            except Exception as exc:  # a timeout mid-response, a reset: a failed request
                good, detail = False, f"{type(exc).__name__}: {exc}"
            with self._lock:
                if good:
                    self.ok += 1
                else:
                    self.failed += 1
                    self.failed_at.append(time.monotonic())
                    if len(self.failures) < 20:
                        self.failures.append(detail)
            i += 1
            if not period:
                time.sleep(0.02)

    def __enter__(self) -> Load:
        self.started = time.monotonic()
        for n in range(self.threads):
            t = threading.Thread(target=self._run, args=(n,), daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(timeout=10)
        self.stopped = time.monotonic()


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return {}
