"""What the rollout steps measure: the stable's size, and counters as the status keeps them."""

from __future__ import annotations

from collections.abc import Mapping

from modelship.api.model import PodCounters, RolloutProgress
from modelship.logic.scrape import RequestCounters
from modelship.plans.model.observation import Draft, Observation


def to_status(counters: Mapping[str, RequestCounters]) -> list[PodCounters]:
    return [PodCounters(pod=pod, **c.to_wire()) for pod, c in sorted(counters.items())]


def from_status(progress: RolloutProgress | None) -> dict[str, RequestCounters]:
    if progress is None:
        return {}
    return {c.pod: RequestCounters.from_wire({"byCode": c.by_code, "latency": c.latency}) for c in progress.baseline}


def total_replicas(obs: Observation, d: Draft) -> int:
    """The stable's size: spec.serving.replicas, or what the HPA chose within its bounds."""
    autoscaling = d.spec.serving.autoscaling
    if autoscaling is None:
        return d.spec.serving.replicas
    stable = obs.revisions.get(d.status.stable_revision) if d.status.stable_revision else None
    observed = stable.state.replicas if stable is not None else 0
    return max(autoscaling.min_replicas, min(observed, autoscaling.max_replicas))
