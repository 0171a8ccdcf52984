"""Read serving pods' /metrics (and their artifact metadata) over HTTP, straight at the pod IPs,
as Prometheus does. ``PodHTTP`` is what controllers hold; tests give them ``k8s.fake.FakePods``."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)
Obj = dict[str, Any]
SERVING_PORT = 8080


def ready_pods(pods: list[Obj]) -> list[Obj]:
    """Pods that are Running with an IP (counters of pods not yet ready are still worth reading)."""
    return [p for p in pods if (p.get("status") or {}).get("podIP") and (p.get("status") or {}).get("phase") == "Running"]


def fetch(pod: Obj, timeout: float, port: int = SERVING_PORT, path: str = "/metrics") -> str | None:
    ip = pod["status"]["podIP"]
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}{path}", timeout=timeout) as response:
            return str(response.read().decode())
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        log.info("Could not read %s of pod %s (%s): %s", path, pod["metadata"]["name"], ip, exc)
        return None


def scrape(pods: list[Obj], timeout: float, port: int = SERVING_PORT) -> dict[str, str]:
    """Pod name → its /metrics text, for every running pod that answered."""
    running = ready_pods(pods)
    if not running:
        return {}
    with ThreadPoolExecutor(max_workers=min(8, len(running))) as pool:
        texts = list(pool.map(lambda p: fetch(p, timeout, port), running))
    return {p["metadata"]["name"]: t for p, t in zip(running, texts, strict=True) if t is not None}


class PodHTTP:
    """Reads from serving pods with one timeout."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def metrics(self, pods: list[Obj]) -> dict[str, str]:
        """Pod name → its /metrics text, for every running pod that answered."""
        return scrape(pods, self.timeout)

    def get(self, pod: Obj, path: str) -> str | None:
        return fetch(pod, self.timeout, path=path)
