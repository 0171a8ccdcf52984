"""Which Models the timer may leave alone: ``logic.model.at_rest``."""

from __future__ import annotations

from typing import Any

import pytest

from modelship.logic.model import at_rest


def body(generation: int = 3, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "m", "namespace": "ns", "generation": generation}, "status": status}


@pytest.mark.parametrize(
    ("obj", "expected", "why"),
    [
        (body(observedGeneration=3, phase="Serving", stableRevision="a1"), True, "serving, spec acted on"),
        (body(observedGeneration=3, phase="Failed"), True, "failed: only a spec change or retrain helps"),
        (body(observedGeneration=2, phase="Serving", stableRevision="a1"), False, "a new spec not acted on"),
        (body(phase="Serving"), False, "never reconciled"),
        (body(observedGeneration=3, phase="Serving", stableRevision="a1", canaryRevision="b2"), False,
         "a canary waits for its pauses"),
        (body(observedGeneration=3, phase="Progressing", stableRevision="a1"), False, "rolling out"),
        (body(observedGeneration=3, phase="Training"), False, "training"),
        (body(observedGeneration=3, phase="Degraded", stableRevision="a1"), False, "stable not available"),
        ({"metadata": {"generation": 1}}, False, "no status at all"),
        (body(observedGeneration=3, phase="NoSuchPhase"), False, "unreadable status"),
    ],
)
def test_at_rest(obj: dict[str, Any], expected: bool, why: str) -> None:
    assert at_rest(obj) is expected, why


def pod(image_id: str | None, running: bool = True) -> dict[str, Any]:
    state = {"running": {"startedAt": "2026-11-23T00:00:00Z"}} if running else {"waiting": {"reason": "x"}}
    return {"status": {"containerStatuses": [{"name": "server", "imageID": image_id, "state": state}]}}


@pytest.mark.parametrize(("pods", "expected"), [
    ([pod("docker.io/modelship/serving@sha256:aa")], "docker.io/modelship/serving@sha256:aa"),
    ([pod("sha256:bb", running=False), pod("sha256:cc")], "sha256:cc"),
    ([pod(None)], None),
    ([pod("")], None),
    ([{"status": {}}], None),
    ([], None),
])
def test_pod_image_id(pods: list[dict[str, Any]], expected: str | None) -> None:
    from modelship.logic.model import pod_image_id

    assert pod_image_id(pods) == expected


def test_images_are_recorded_once_per_revision() -> None:
    from modelship.api.model import ModelStatus
    from modelship.logic.model import revisions_without_image, with_images

    status = ModelStatus.model_validate({"history": [
        {"revision": "m-new", "outcome": "Progressing"},
        {"revision": "m-old", "outcome": "Promoted", "image": "sha256:old"},
        {"revision": "m-gone", "outcome": "Superseded"},
        {"outcome": "Training"},
    ]})
    assert revisions_without_image(status, {"m-new": 1, "m-old": 2}) == ["m-new"]
    after = with_images(status, {"m-new": "sha256:new", "m-old": "sha256:other"})
    assert [h.image for h in after.history] == ["sha256:new", "sha256:old", None, None]
    assert revisions_without_image(after, {"m-new": 1, "m-old": 2}) == []
    assert with_images(status, {}) is status
