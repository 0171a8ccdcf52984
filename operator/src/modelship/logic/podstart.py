"""Why a pod cannot start: no node can hold it, or a container waits for a reason that will not
fix itself.

A Job counts such a pod as active, and a Deployment as not yet ready, so without this a
TrainingJob whose pod waits for a missing Secret, an image that cannot be pulled or a node
with 64 free CPUs says Running until ``activeDeadlineSeconds`` (a serving revision: "0/N pods
ready" until the progress deadline). These need a person (create the Secret, fix the image,
ask for less or add capacity; an autoscaler may add the node by itself), in the words of the
kubelet or the scheduler; ``ContainerCreating`` and ``PodInitializing`` pass by themselves and
are not reported. Kubernetes keeps retrying, so the run stays Running: a fix lets it start.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from modelship.logic.conditions import Reason

Obj = dict[str, Any]

POD_NOT_STARTING = Reason.POD_NOT_STARTING
IMAGE_PULL = frozenset({"ErrImagePull", "ImagePullBackOff"})
STUCK_REASONS = frozenset({"CreateContainerConfigError", "CreateContainerError", "InvalidImageName"}) | IMAGE_PULL
UNSCHEDULABLE = "Unschedulable"  # the scheduler's PodScheduled=False reason: no node fits the pod
RETRIED_IN_NEW_WORDS = (IMAGE_PULL, frozenset({UNSCHEDULABLE}))
MAX_DETAIL = 600  # the kubelet's pull errors can be long; the condition stays readable


@dataclass(frozen=True)
class Stuck:
    pod: str
    container: str | None  # None: the pod has no node (reason Unschedulable)
    reason: str  # the kubelet's waiting reason, or the scheduler's
    detail: str  # its message (e.g. secret "s3" not found; 0/1 nodes are available: 1 Insufficient cpu.)

    @property
    def prefix(self) -> str:
        return f"Pod {self.pod} cannot start: " + (f"container {self.container}: " if self.container else "")

    def message(self) -> str:
        detail = self.detail if len(self.detail) <= MAX_DETAIL else self.detail[:MAX_DETAIL] + "..."
        return self.prefix + (f"{self.reason}: {detail}" if detail else self.reason)


def _live(pod: Obj) -> bool:
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    return not meta.get("deletionTimestamp") and status.get("phase", "Pending") in ("Pending", "Running")


def _stuck(pod: Obj) -> Stuck | None:
    status = pod.get("status") or {}
    name = (pod.get("metadata") or {}).get("name", "?")
    scheduled: Obj = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), {})
    if scheduled.get("status") == "False" and scheduled.get("reason") == UNSCHEDULABLE:
        return Stuck(name, None, UNSCHEDULABLE, str(scheduled.get("message") or "").strip())
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STUCK_REASONS:
            return Stuck(name, cs.get("name", "?"), waiting["reason"], str(waiting.get("message") or "").strip())
    return None


def _same_cause(stuck: Stuck, previous: str | None) -> bool:
    """``previous`` (a message reported before) names this pod and container and the same cause:
    the same reason, or one that retries in new words (ErrImagePull / ImagePullBackOff)."""
    same = next((group for group in RETRIED_IN_NEW_WORDS if stuck.reason in group), frozenset({stuck.reason}))
    return bool(previous) and any(str(previous).startswith(f"{stuck.prefix}{r}") for r in same)


def waiting(pods: Iterable[Obj]) -> tuple[Stuck, ...]:
    """Every live pod (by name) the scheduler finds no node for, or with a container waiting for a
    reason in ``STUCK_REASONS``."""
    live = sorted((p for p in pods if _live(p)), key=lambda p: (p.get("metadata") or {}).get("name", ""))
    return tuple(s for p in live if (s := _stuck(p)) is not None)


def choose(stuck: Sequence[Stuck], previous: str | None) -> Stuck | None:
    """The pod to report: the one ``previous`` names while it still waits for that cause, else the
    first by name. The replicas of one revision wait for one cause and start waiting in any
    order; keeping the pod already named keeps one report (and one Event) for them all."""
    return next((s for s in stuck if _same_cause(s, previous)), stuck[0] if stuck else None)


def cannot_start(pods: Iterable[Obj], previous: str | None = None) -> Stuck | None:
    """``choose`` among the pods that are ``waiting``."""
    return choose(waiting(pods), previous)


def message(stuck: Stuck, previous: str | None) -> str:
    """The message to report. For a cause that retries in new words the first text seen is kept
    for the same pod and container, so the status and its Event do not change on every retry: an
    image pull alternates between ErrImagePull (the registry's error) and ImagePullBackOff
    (waiting to retry), and the scheduler words each attempt anew (its counts of nodes and
    preemption victims). Other causes speak once: another text is another cause (another Secret)."""
    retried = any(stuck.reason in group for group in RETRIED_IN_NEW_WORDS)
    return str(previous) if retried and _same_cause(stuck, previous) else stuck.message()


__all__ = ["IMAGE_PULL", "POD_NOT_STARTING", "STUCK_REASONS", "UNSCHEDULABLE", "Stuck", "cannot_start", "choose", "message",
           "waiting"]
