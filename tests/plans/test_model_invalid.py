"""Table tests of what makes a Model's plan say InvalidSpec instead of acting: a child its spec
would make that the schema refuses, an artifact store outside the allowed ones, a child the API
server refused. Each keeps the children as they are (the stable serves on) and posts one Event."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from modelship.api.model import ModelSpec, ModelStatus
from modelship.api.trainingjob import Fairness, Gates
from modelship.plans.model import plan
from plans.model_support import DEFAULTS, SPEC, T0, created_job, kinds, obs, ready


def spec_with(**fields: Any) -> ModelSpec:
    return ModelSpec.model_validate({**SPEC.model_dump(by_alias=True, exclude_none=True), **fields})


def ready_condition(status: ModelStatus) -> Any:
    return next(c for c in status.conditions if c.type == "Ready")


def serving_source(uri: str) -> tuple[ModelStatus, str]:
    """A Model that serves ``spec.source`` ``uri`` as its stable revision."""
    source = ModelSpec.model_validate({"source": {"uri": uri}, "serving": {"replicas": 1}})
    p = plan(obs(ModelStatus(), T0, spec=source))
    rev = p.status.canary_revision
    assert rev is not None
    p = plan(obs(p.status, T0, spec=source, revisions={rev: ready(1)}))
    assert p.status.stable_revision == rev
    return p.status, rev


# --- from spec.source to training: the served artifact is the champion -----------------------------

@pytest.mark.parametrize(("uri", "must_beat"), [
    ("https://models.example.org/iris/", True),
    ("https://models.example.org/iris.onnx", False),
    ("s3://b/a/iris/", True),
    ("file:///models/iris/", True),
])
def test_a_source_model_that_turns_to_training_scores_its_served_artifact(uri: str, must_beat: bool) -> None:
    served, rev = serving_source(uri)
    spec = spec_with(gates={"mustBeatChampion": must_beat})
    p = plan(obs(served, T0, spec=spec, revisions={rev: ready(1)}))
    assert created_job(p) == ("m-1", "initial")
    job = next(c.obj for c in p.children or [] if c.obj["kind"] == "TrainingJob")
    assert job["spec"].get("championUri") == (uri if must_beat else None)
    assert ready_condition(p.status).reason == "Available"


# --- a child the schema would refuse -----------------------------------------------------------------

def test_a_child_the_schema_would_refuse_is_an_invalid_spec_not_an_exception() -> None:
    # A spec object made without validation (as one stored before a rule existed may be read):
    # its TrainingJob breaks the TrainingJob's own rule.
    unchecked = SPEC.model_copy(update={"gates": Gates(fairness=Fairness(max_demographic_parity_difference=0.1))})
    p = plan(obs(ModelStatus(), T0, spec=unchecked))
    ready_c = ready_condition(p.status)
    assert ready_c.status == "False" and ready_c.reason == "InvalidSpec"
    assert "TrainingJobSpec" in ready_c.message and "gates.fairness needs dataset.sensitiveFeature" in ready_c.message
    assert p.children is None and p.status.training_jobs_created == 0  # nothing was started
    assert [(e.reason, e.warning) for e in p.events] == [("InvalidSpec", True)]
    assert plan(obs(p.status, T0, spec=unchecked)).events == []  # posted once


# --- spec.artifactStore: where the Model's artifacts and its prediction logs go --------------------

ALLOWED = ("s3://shared/models",)


@pytest.mark.parametrize(("source", "store", "invalid"), [
    (False, None, False),
    (False, "s3://b/a", False),                  # the operator's store (DEFAULTS)
    (True, "s3://shared/models/", False),        # an allowed prefix
    (True, "s3://b/a/ns/team-logs", False),      # inside the namespace's own location
    (True, "s3://attacker/logs", True),          # a source Model's prediction log would go there
    (False, "s3://attacker/logs", True),         # and a training Model's artifacts
    (True, "s3://b/a/other-ns", True),
])
def test_an_artifact_store_outside_the_allowed_ones_is_an_invalid_spec(
        source: bool, store: str | None, invalid: bool) -> None:
    fields: dict[str, Any] = {"serving": {"replicas": 1, "predictionLog": {}}}
    if store is not None:
        fields["artifactStore"] = store
    if source:
        fields = {**fields, "source": {"uri": "s3://b/a/m.onnx"}}
        spec = ModelSpec.model_validate(fields)
    else:
        spec = spec_with(**fields)
    o = replace(obs(ModelStatus(), T0, spec=spec), defaults=replace(DEFAULTS, allowed_output_prefixes=ALLOWED))
    p = plan(o)
    ready_c = ready_condition(p.status)
    if invalid:
        assert ready_c.reason == "InvalidSpec" and p.children is None
        assert f"spec.artifactStore {store} " in ready_c.message
        assert "(s3://b/a, s3://shared/models)" in ready_c.message  # the stores it may name
        assert [e.reason for e in p.events] == ["InvalidSpec"]
    else:
        assert ready_c.reason != "InvalidSpec" and kinds(p)  # it trains or deploys


# --- a child the API server refused ------------------------------------------------------------------

@pytest.mark.parametrize("stage", ["first", "serving", "canary"])
def test_a_refused_child_keeps_the_observed_status_but_for_ready(stage: str) -> None:
    from modelship.plans.model import refused

    served, rev = serving_source("s3://b/a/m-1/")
    status = {"first": ModelStatus(), "serving": served,
              "canary": served.model_copy(update={"canary_revision": "m-new"})}[stage]
    o = obs(status, T0, spec=spec_with(serving={"replicas": 1}), revisions={rev: ready(1)})
    message = "the API server refused to create Deployment m-new (422): Deployment \"m-new\" is invalid: ..."
    p = refused(o, message)
    ready_c = ready_condition(p.status)
    assert (ready_c.status, ready_c.reason, ready_c.message) == ("False", "InvalidSpec", message)
    assert p.children is None and p.requeue_after is None  # nothing touched; no timed retry of its own
    unchanged = ("stable_revision", "canary_revision", "history", "training_jobs_created", "rollout")
    assert {f: getattr(p.status, f) for f in unchanged} == {f: getattr(status, f) for f in unchanged}
    assert p.status.phase == (status.phase if status.stable_revision else "Failed")
    assert [(e.reason, e.warning) for e in p.events] == [("InvalidSpec", True)]
    assert refused(replace(o, status=p.status), message).events == []  # posted once
