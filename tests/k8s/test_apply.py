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
