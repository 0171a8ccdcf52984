"""Which waiting trainer pods are reported as unable to start, and in what words: a table."""

from __future__ import annotations

from typing import Any

import pytest

from modelship.logic.podstart import STUCK_REASONS, Stuck, cannot_start, message


def pod(name: str = "t-x", reason: str | None = None, detail: str = "", phase: str = "Pending",
        init: bool = False, deleting: bool = False) -> dict[str, Any]:
    state: dict[str, Any] = {"waiting": {"reason": reason, "message": detail}} if reason else {"running": {}}
    statuses = [{"name": "trainer", "state": state}]
    status: dict[str, Any] = {"phase": phase, ("initContainerStatuses" if init else "containerStatuses"): statuses}
    meta: dict[str, Any] = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-23T12:00:00Z"
    return {"metadata": meta, "status": status}


SECRET = 'secret "modelship-s3" not found'
NO_NODE = ("0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: "
           "1 No preemption victims found for incoming pod.")


def unscheduled(detail: str, reason: str | None = "Unschedulable", status: str = "False",
                deleting: bool = False) -> dict[str, Any]:
    """A pending pod with no container statuses, as the scheduler leaves it."""
    p = pod(deleting=deleting)
    p["status"] = {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": status, **({"reason": reason} if reason else {}), "message": detail}]}
    return p
CASES = [
    ("running", [pod()], None),
    ("no-status-yet", [{"metadata": {"name": "t-x"}}], None),
    ("creating-passes-by-itself", [pod(reason="ContainerCreating")], None),
    ("initializing-passes-by-itself", [pod(reason="PodInitializing")], None),
    ("missing-secret", [pod(reason="CreateContainerConfigError", detail=SECRET)],
     f"Pod t-x cannot start: container trainer: CreateContainerConfigError: {SECRET}"),
    ("create-error", [pod(reason="CreateContainerError", detail="no command")],
     "Pod t-x cannot start: container trainer: CreateContainerError: no command"),
    ("pull-error", [pod(reason="ErrImagePull", detail="not found")],
     "Pod t-x cannot start: container trainer: ErrImagePull: not found"),
    ("pull-backoff", [pod(reason="ImagePullBackOff", detail='Back-off pulling image "nope:1"')],
     'Pod t-x cannot start: container trainer: ImagePullBackOff: Back-off pulling image "nope:1"'),
    ("invalid-image", [pod(reason="InvalidImageName", detail="")],
     "Pod t-x cannot start: container trainer: InvalidImageName"),
    ("init-container", [pod(reason="CreateContainerConfigError", detail=SECRET, init=True)],
     f"Pod t-x cannot start: container trainer: CreateContainerConfigError: {SECRET}"),
    ("a-failed-pod-is-history", [pod(reason="CreateContainerConfigError", detail=SECRET, phase="Failed")], None),
    ("a-deleted-pod-is-history", [pod(reason="ErrImagePull", deleting=True)], None),
    ("first-by-name", [pod("t-b", reason="ErrImagePull", detail="b"), pod("t-a", reason="ErrImagePull", detail="a")],
     "Pod t-a cannot start: container trainer: ErrImagePull: a"),
    ("a-running-pod-beside-a-stuck-one", [pod("t-a"), pod("t-b", reason="InvalidImageName")],
     "Pod t-b cannot start: container trainer: InvalidImageName"),
    ("no-node-fits", [unscheduled(NO_NODE)], f"Pod t-x cannot start: Unschedulable: {NO_NODE}"),
    ("not-yet-looked-at-by-the-scheduler", [unscheduled("", reason=None)], None),
    ("scheduling-gated-is-someone-elses-wait", [unscheduled("waiting", reason="SchedulingGated")], None),
    ("scheduled-after-all", [unscheduled(NO_NODE, status="True")], None),
    ("a-deleted-unscheduled-pod-is-history", [unscheduled(NO_NODE, deleting=True)], None),
]


TWO = [pod("r-a", reason="ErrImagePull", detail="a"), pod("r-b", reason="ImagePullBackOff", detail="b")]
CHOICE_CASES = [
    ("nothing-said-yet: first by name", TWO, None, "r-a"),
    ("the pod named before, while it waits for the same cause", TWO,
     "Pod r-b cannot start: container trainer: ErrImagePull: b", "r-b"),
    ("the pod named before has started: the next one", [pod("r-a", reason="ErrImagePull"), pod("r-b")],
     "Pod r-b cannot start: container trainer: ErrImagePull: b", "r-a"),
    ("the pod named before waits for something else now: first by name",
     [pod("r-a", reason="ErrImagePull"), pod("r-b", reason="CreateContainerConfigError", detail=SECRET)],
     "Pod r-b cannot start: container trainer: ErrImagePull: b", "r-a"),
    ("the pod named before is gone", [pod("r-c", reason="ErrImagePull")],
     "Pod r-b cannot start: container trainer: ErrImagePull: b", "r-c"),
    ("the pod named before, still unschedulable", [unscheduled(NO_NODE), unscheduled(NO_NODE)],
     f"Pod t-x cannot start: Unschedulable: {NO_NODE}", "t-x"),
]


@pytest.mark.parametrize(("case", "pods", "previous", "named"), CHOICE_CASES, ids=[c[0] for c in CHOICE_CASES])
def test_the_replicas_of_one_revision_are_one_report(case: str, pods: list[dict[str, Any]], previous: str | None,
                                                     named: str) -> None:
    """The replicas of a revision start waiting in any order: the pod already named stays named
    (one message, one Event), not the first by name of the moment (a CI run got two Events)."""
    stuck = cannot_start(pods, previous)
    assert stuck is not None and stuck.pod == named


@pytest.mark.parametrize(("case", "pods", "expected"), CASES, ids=[c[0] for c in CASES])
def test_cannot_start(case: str, pods: list[dict[str, Any]], expected: str | None) -> None:
    stuck = cannot_start(pods)
    assert (stuck.message() if stuck else None) == expected


def test_the_reasons_are_those_that_need_a_person() -> None:
    assert set(STUCK_REASONS) == {"CreateContainerConfigError", "CreateContainerError", "ImagePullBackOff",
                                  "ErrImagePull", "InvalidImageName"}


def test_a_long_kubelet_message_is_cut() -> None:
    stuck = cannot_start([pod(reason="ErrImagePull", detail="x" * 5000)])
    assert stuck is not None and len(stuck.message()) < 700 and stuck.message().endswith("...")


PULL = "Pod t-x cannot start: container trainer: ErrImagePull: manifest unknown"
MESSAGE_CASES = [
    ("first-seen", Stuck("t-x", "trainer", "ErrImagePull", "manifest unknown"), None, PULL),
    ("backoff-keeps-the-pull-error", Stuck("t-x", "trainer", "ImagePullBackOff", "Back-off"), PULL, PULL),
    ("another-pod-is-news", Stuck("t-y", "trainer", "ImagePullBackOff", "Back-off"), PULL,
     "Pod t-y cannot start: container trainer: ImagePullBackOff: Back-off"),
    ("another-cause-is-news", Stuck("t-x", "trainer", "CreateContainerConfigError", SECRET), PULL,
     f"Pod t-x cannot start: container trainer: CreateContainerConfigError: {SECRET}"),
    ("a-different-secret-is-news",
     Stuck("t-x", "trainer", "CreateContainerConfigError", 'secret "b" not found'),
     f"Pod t-x cannot start: container trainer: CreateContainerConfigError: {SECRET}",
     'Pod t-x cannot start: container trainer: CreateContainerConfigError: secret "b" not found'),
    ("the-scheduler-rewords-its-retry", Stuck("t-x", None, "Unschedulable", "0/2 nodes are available"),
     f"Pod t-x cannot start: Unschedulable: {NO_NODE}", f"Pod t-x cannot start: Unschedulable: {NO_NODE}"),
    ("scheduled-then-a-container-waits-is-news", Stuck("t-x", "trainer", "ErrImagePull", "manifest unknown"),
     f"Pod t-x cannot start: Unschedulable: {NO_NODE}", PULL),
]


@pytest.mark.parametrize(("case", "stuck", "previous", "expected"), MESSAGE_CASES, ids=[c[0] for c in MESSAGE_CASES])
def test_message_is_kept_while_an_image_pull_retries(case: str, stuck: Stuck, previous: str | None,
                                                     expected: str) -> None:
    assert message(stuck, previous) == expected
