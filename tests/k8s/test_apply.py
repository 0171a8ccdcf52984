"""``k8s.apply``'s patches: what differs is patched, API-server defaults are not differences, and
a path a child says must be absent is cleared only where it exists."""

from __future__ import annotations

from typing import Any

import pytest

from modelship.builders.common import Child
from modelship.k8s.apply import patch_for

PDB: dict[str, Any] = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                       "metadata": {"name": "m", "labels": {"a": "b"}},
                       "spec": {"selector": {"matchLabels": {"r": "2"}}, "minAvailable": "50%"}}


@pytest.mark.parametrize(("existing_spec", "absent", "patch"), [
    # as wanted, plus a default the API server added: nothing to send
    ({"selector": {"matchLabels": {"r": "2"}}, "minAvailable": "50%", "unhealthyPodEvictionPolicy": "IfHealthy"},
     ("spec.maxUnavailable",), {}),
    # the other bound held: cleared with a null (a merge patch keeps what it does not name)
    ({"selector": {"matchLabels": {"r": "1"}}, "maxUnavailable": 1}, ("spec.maxUnavailable",),
     {"spec": {"selector": {"matchLabels": {"r": "2"}}, "minAvailable": "50%", "maxUnavailable": None}}),
    # without ``absent`` the old bound would stay beside the new one
    ({"selector": {"matchLabels": {"r": "2"}}, "maxUnavailable": 1}, (), {"spec": {"minAvailable": "50%"}}),
])
def test_patch_for(existing_spec: dict[str, Any], absent: tuple[str, ...], patch: dict[str, Any]) -> None:
    existing = {**PDB, "metadata": {**PDB["metadata"], "uid": "u"}, "spec": existing_spec}
    assert patch_for(Child(PDB, absent=absent), existing) == patch


def test_a_child_the_api_server_refuses_stops_the_apply_before_any_delete() -> None:
    """400/422 on a create or patch: ``Refused`` names the child and carries the server's message;
    nothing is deleted for it (what serves now stays), and nothing after it is written."""
    from modelship.k8s.apply import Refused, ensure
    from modelship.k8s.fake import FakeKube

    kube = FakeKube()
    old = kube.add({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "m-old", "namespace": "ns"},
                    "spec": {"replicas": 1}})
    service = Child({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "m", "namespace": "ns"}, "spec": {}})
    new = Child({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "m-new", "namespace": "ns"},
                 "spec": {"replicas": 1}})
    hpa = Child({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                 "metadata": {"name": "m", "namespace": "ns"}, "spec": {}})
    kube.invalid["Deployment"] = 'spec.template.spec.containers[0].image: Required value'
    with pytest.raises(Refused) as refused:
        ensure(kube, [service, new, hpa], [old])
    assert (refused.value.verb, refused.value.kind, refused.value.name, refused.value.status) == (
        "create", "Deployment", "m-new", 422)
    assert str(refused.value) == ('the API server refused to create Deployment m-new (422): Deployment "m-new" is '
                                  'invalid: spec.template.spec.containers[0].image: Required value')
    assert kube.writes == [("create", "Service", "m")]  # the old Deployment stays; the HPA waits
    assert kube.get("apps/v1", "Deployment", "ns", "m-old") is not None


@pytest.mark.parametrize(("body", "reason", "message"), [
    (b'{"kind": "Status", "code": 422, "message": "x is invalid: y"}', "Invalid", "x is invalid: y"),
    ('{"kind": "Status", "code": 400}', "BadRequest", "BadRequest"),
    ("not json", "BadRequest", "BadRequest"),
    (None, None, "no reason given"),
])
def test_the_servers_message_is_read_from_its_status_body(body: Any, reason: str | None, message: str) -> None:
    from kubernetes.client.exceptions import ApiException

    from modelship.k8s.apply import server_message

    assert server_message(ApiException(status=422, reason=reason, body=body)) == message
