"""Read serving pods' /metrics (and their artifact metadata) over HTTP, straight at the pod IPs,
as Prometheus does. ``PodHTTP`` is what controllers hold; tests give them ``k8s.fake.FakePods``.

What a pod answers is read up to a cap (``MODELSHIP_SCRAPE_MAX_BYTES``,
4 MiB by default): a pod that answers more (a bug, or a hostile image) has
its answer refused with a logged reason, and the operator never holds more
than the cap per pod in memory.
"""

from __future__ import annotations

import functools
import logging
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)
Obj = dict[str, Any]
SERVING_PORT = 8080


@functools.cache
def default_max_bytes() -> int:
    """The cap from the operator's settings (read once; the chart sets ``MODELSHIP_SCRAPE_MAX_BYTES``)."""
    from modelship.settings import OperatorSettings

    return OperatorSettings().scrape_max_bytes


def ready_pods(pods: list[Obj]) -> list[Obj]:
    """Pods that are Running with an IP (counters of pods not yet ready are still worth reading)."""
    return [p for p in pods if (p.get("status") or {}).get("podIP") and (p.get("status") or {}).get("phase") == "Running"]


def fetch(pod: Obj, timeout: float, port: int = SERVING_PORT, path: str = "/metrics",
          max_bytes: int | None = None) -> str | None:
    """The pod's answer at ``path``, or None when it did not answer, failed, or answered over ``max_bytes``."""
    ip, name = pod["status"]["podIP"], pod["metadata"]["name"]
    limit = default_max_bytes() if max_bytes is None else max_bytes
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}{path}", timeout=timeout) as response:
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                log.warning("Refused %s of pod %s (%s): it declares %s bytes, over the cap of %d "
                            "(MODELSHIP_SCRAPE_MAX_BYTES)", path, name, ip, declared, limit)
                return None
            data: bytes = response.read(limit + 1)  # never more than the cap plus one byte, whatever is sent
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        log.info("Could not read %s of pod %s (%s): %s", path, name, ip, exc)
        return None
    if len(data) > limit:
        log.warning("Refused %s of pod %s (%s): the answer is over the cap of %d bytes "
                    "(MODELSHIP_SCRAPE_MAX_BYTES)", path, name, ip, limit)
        return None
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        log.warning("Refused %s of pod %s (%s): not UTF-8 text (%s)", path, name, ip, exc)
        return None


def scrape(pods: list[Obj], timeout: float, port: int = SERVING_PORT, max_bytes: int | None = None) -> dict[str, str]:
    """Pod name → its /metrics text, for every running pod that answered within the cap."""
    running = ready_pods(pods)
    if not running:
        return {}
    with ThreadPoolExecutor(max_workers=min(8, len(running))) as pool:
        texts = list(pool.map(lambda p: fetch(p, timeout, port, max_bytes=max_bytes), running))
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
