"""Why a trainer pod cannot start: a container waiting for a reason that will not fix itself.

A Job counts such a pod as active, so without this a TrainingJob whose pod
waits for a missing Secret or an image that cannot be pulled says Running
until ``activeDeadlineSeconds``. These reasons need a person (create the
Secret, fix the image); ``ContainerCreating`` and ``PodInitializing`` pass by
themselves and are not reported. Kubernetes keeps retrying, so the run stays
Running: a Secret created later lets it start.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from modelship.logic.conditions import Reason

Obj = dict[str, Any]

POD_NOT_STARTING = Reason.POD_NOT_STARTING
IMAGE_PULL = frozenset({"ErrImagePull", "ImagePullBackOff"})
STUCK_REASONS = frozenset({"CreateContainerConfigError", "CreateContainerError", "InvalidImageName"}) | IMAGE_PULL
MAX_DETAIL = 600  # the kubelet's pull errors can be long; the condition stays readable


@dataclass(frozen=True)
class Stuck:
    pod: str
    container: str
    reason: str  # the kubelet's waiting reason
    detail: str  # the kubelet's waiting message (e.g. secret "s3" not found)

    @property
    def prefix(self) -> str:
        return f"Pod {self.pod} cannot start: container {self.container}: "

    def message(self) -> str:
        detail = self.detail if len(self.detail) <= MAX_DETAIL else self.detail[:MAX_DETAIL] + "..."
        return self.prefix + (f"{self.reason}: {detail}" if detail else self.reason)


def _live(pod: Obj) -> bool:
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    return not meta.get("deletionTimestamp") and status.get("phase", "Pending") in ("Pending", "Running")


def cannot_start(pods: Iterable[Obj]) -> Stuck | None:
    """The first live pod (by name) with a container waiting for a reason in ``STUCK_REASONS``."""
    for pod in sorted((p for p in pods if _live(p)), key=lambda p: (p.get("metadata") or {}).get("name", "")):
        status = pod.get("status") or {}
        for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in STUCK_REASONS:
                return Stuck((pod.get("metadata") or {}).get("name", "?"), cs.get("name", "?"), waiting["reason"],
                             str(waiting.get("message") or "").strip())
    return None


def message(stuck: Stuck, previous: str | None) -> str:
    """The message to report. An image pull alternates between ErrImagePull (the registry's
    error) and ImagePullBackOff (waiting to retry); the first text seen is kept for the same
    container, so the status and its Event do not change on every retry."""
    if previous and stuck.reason in IMAGE_PULL and any(previous.startswith(stuck.prefix + r) for r in IMAGE_PULL):
        return previous
    return stuck.message()


__all__ = ["IMAGE_PULL", "POD_NOT_STARTING", "STUCK_REASONS", "Stuck", "cannot_start", "message"]
