"""Which Models the timer may leave alone: ``plans.model.at_rest``."""

from __future__ import annotations

from typing import Any

import pytest

from modelship.plans.model import at_rest


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
