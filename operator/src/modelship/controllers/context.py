"""What a reconcile needs besides the object: settings, the API, the pods' HTTP, caches."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from modelship.k8s.client import Api
from modelship.settings import OperatorSettings


class Pods(Protocol):
    def metrics(self, pods: list[dict[str, Any]]) -> dict[str, str]: ...

    def get(self, pod: dict[str, Any], path: str) -> str | None: ...


@dataclass
class Context:
    settings: OperatorSettings
    kube: Api  # k8s.client.Kube, or k8s.fake.FakeKube in tests
    pods: Pods
    discovery_seconds: float = 60.0
    _apis: dict[str, tuple[float, bool]] = field(default_factory=dict)
    _cache: dict[str, Any] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def has_api(self, group_version: str) -> bool:
        """Whether the cluster serves an API (a CRD's), asked at most once a minute."""
        now = time.monotonic()
        with self._guard:
            seen = self._apis.get(group_version)
        if seen is not None and now - seen[0] < self.discovery_seconds:
            return seen[1]
        served = bool(self.kube.has_api(group_version))
        with self._guard:
            self._apis[group_version] = (now, served)
        return served

    def forget_api(self, group_version: str) -> None:
        """The API answered 404 after discovery said it was served (a CRD removed): ask again next time."""
        with self._guard:
            self._apis.pop(group_version, None)

    def cached(self, key: str) -> Any:
        with self._guard:
            return self._cache.get(key)

    def remember(self, key: str, value: Any, limit: int = 256) -> None:
        """Keep ``value`` (immutable data such as an artifact's metadata) for later reconciles."""
        with self._guard:
            if len(self._cache) >= limit:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = value
