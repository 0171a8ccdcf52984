"""What the Model controller observed, and what its plan hands back (types only, plus the draft
that the plan's steps pass along)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modelship.api.common import Condition
from modelship.api.model import HistoryEntry, ModelSpec, ModelStatus
from modelship.api.trainingjob import TrainingJobStatus
from modelship.builders.common import Child, PodEnvironment
from modelship.logic.canary import DeploymentState, RolloutAction
from modelship.logic.podstart import Stuck
from modelship.logic.scrape import RequestCounters
from modelship.plans.common import Event

Obj = dict[str, Any]
RETRAIN_ANNOTATION = "modelship.io/retrain"
# Test-only: JSON env for a new version's pods (MODELSHIP_FAULT_* keys only), honoured only
# when the operator runs with allowTestFaults.
FAULT_ENV_ANNOTATION = "modelship.io/test-canary-env"


@dataclass(frozen=True)
class ServingDefaults:
    """The operator's settings that reach a Model's children."""

    serving_image: str
    artifact_store: str
    environment: PodEnvironment = field(default_factory=PodEnvironment)
    history_limit: int = 10
    allow_test_faults: bool = False
    allowed_output_prefixes: tuple[str, ...] = ()  # stores a Model's spec.artifactStore may name besides artifact_store


@dataclass(frozen=True)
class ObservedTrainingJob:
    name: str
    number: int
    trigger: str
    status: TrainingJobStatus


@dataclass(frozen=True)
class ObservedRevision:
    """A serving Deployment the Model owns."""

    state: DeploymentState
    template: Obj | None = None  # its pod template as stored
    image: str | None = None  # the imageID its running pods report, when it was looked up


@dataclass(frozen=True)
class Observation:
    owner: Obj  # apiVersion, kind, metadata (name, namespace, uid): owner of every child
    generation: int | None
    spec: ModelSpec | str  # a message when the spec is invalid
    status: ModelStatus
    now: datetime
    defaults: ServingDefaults
    annotations: Mapping[str, str] = field(default_factory=dict)
    training_jobs: tuple[ObservedTrainingJob, ...] = ()
    revisions: Mapping[str, ObservedRevision] = field(default_factory=dict)
    canary_counters: Mapping[str, RequestCounters] | None = None  # the candidate's pods (shadow or canary)
    shadow: ObservedRevision | None = None  # the candidate's shadow Deployment, while it exists
    stable_tallies: Mapping[str, Mapping[str, float]] | None = None  # stable pods' shadow comparison
    gateway_api: bool = False  # the cluster serves gateway.networking.k8s.io/v1
    canary_stuck: tuple[Stuck, ...] = ()  # pods of the deploying revision that wait on what only a person can fix

    @property
    def name(self) -> str:
        return str(self.owner["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.owner["metadata"]["namespace"])


@dataclass(frozen=True)
class Artifact:
    """What a revision serves."""

    uri: str
    sha256: str | None


@dataclass(frozen=True)
class Candidate:
    """The revision the Model should serve: an artifact under today's pod template."""

    revision: str
    artifact: Artifact
    template: Obj
    entry: HistoryEntry | None = None  # the history entry of the TrainingJob that made it


@dataclass(frozen=True)
class Draft:
    """The plan as its steps build it: the status so far and what the steps decided."""

    status: ModelStatus
    spec: ModelSpec
    history: tuple[HistoryEntry, ...] = ()
    events: tuple[Event, ...] = ()
    rollout_events: tuple[str, ...] = ()
    create: tuple[str, str] | None = None  # TrainingJob to create: (name, trigger)
    current: ObservedTrainingJob | None = None  # the TrainingJob of the version in question
    trained: Condition | None = None
    training_in_flight: bool = False
    candidate: Candidate | None = None
    action: RolloutAction | None = None
    progressing: Condition | None = None
    shadow_replicas: int | None = None  # the shadow Deployment's size, while the shadow runs
    requeue_after: float | None = None  # when the plan wants to look again (seconds)
    replicas: Mapping[str, int] = field(default_factory=dict)  # revision -> replicas, for revisions kept

    def event(self, reason: str, message: str, warning: bool = False) -> tuple[Event, ...]:
        return (*self.events, Event(reason, message, warning))


@dataclass
class Plan:
    status: ModelStatus
    children: list[Child] | None  # None: leave the children as they are (the spec is invalid)
    events: list[Event] = field(default_factory=list)
    rollout_events: list[str] = field(default_factory=list)  # started, promoted, rolled_back
    action: RolloutAction | None = None
    requeue_after: float | None = None  # reconcile again after this many seconds (timed steps)
