"""RBAC from evidence: every request the operator's ServiceAccount made during
this end-to-end session, read from the API server's audit log (written on
every local-cluster and kind run, at Metadata level), is granted by the chart, and
every grant was used or is listed in the chart with why the tests cannot use
it. No extra run: this module runs last (see conftest) over the same log.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import Operator
from modelship.chart import rbac
from modelship.chart.rbac import Grant

pytestmark = [pytest.mark.cluster]

SERVICE_ACCOUNT = "system:serviceaccount:{namespace}:modelship"


def audit_files(log: Path) -> list[Path]:
    """The log and its rotated backups (audit-<time>.log beside it)."""
    return sorted(log.parent.glob(log.stem + "*" + log.suffix))


def when(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["requestReceivedTimestamp"].replace("Z", "+00:00")).timestamp()


def used_grants(files: list[Path], user: str, since: float,
                rolls: list[tuple[float, float]]) -> tuple[Counter[Grant], dict[Grant, set[str]]]:
    """(verb, group, resource, subresource) the user asked for since ``since``, and the requests
    the API server refused outside the ``rolls`` (an old pod outliving an RBAC change)."""
    used: Counter[Grant] = Counter()
    refused: dict[Grant, set[str]] = {}
    for path in files:
        with path.open() as lines:
            for line in lines:
                if user not in line:
                    continue
                event: dict[str, Any] = json.loads(line)
                if event.get("user", {}).get("username") != user or "objectRef" not in event:
                    continue
                at = when(event)
                if at < since:
                    continue  # an earlier session on the same cluster
                ref = event["objectRef"]
                grant = Grant(event["verb"], ref.get("apiGroup", ""), ref["resource"], ref.get("subresource", ""))
                used[grant] += 1
                # Refused by authorization (RBAC), not e.g. by admission: creating in a
                # namespace being deleted is a 403 too, and says nothing about the grants.
                denied = (event.get("annotations") or {}).get("authorization.k8s.io/decision") == "forbid"
                if denied and not any(start <= at <= end for start, end in rolls):
                    refused.setdefault(grant, set()).add(ref.get("namespace", "<cluster>"))
    return used, refused


def test_the_chart_grants_exactly_what_the_operator_used(local_cluster: Any, operator: Operator) -> None:
    if local_cluster.audit_log is None:
        pytest.skip("this cluster's audit log is not readable here (a KUBECONFIG of your own: the local "
                    "cluster and `modelship kind` clusters give theirs)")
    user = SERVICE_ACCOUNT.format(namespace=operator.namespace)
    assert operator.installed_at is not None
    used, refused = used_grants(audit_files(local_cluster.audit_log), user, operator.installed_at - 5,
                                operator.rolls)
    assert used, f"no request by {user} in the audit log"
    granted = rbac.granted()
    unexercised = rbac.unexercised()
    print(f"{sum(used.values())} requests by the operator's ServiceAccount, {len(used)} distinct grants:")
    for grant, count in sorted(used.items()):
        print(f"  {count:6d}  {grant.verb:7s} {grant.group or 'core'}/{grant.resource}"
              + (f"/{grant.subresource}" if grant.subresource else ""))
    assert not refused, f"the API server refused the operator: {refused}"
    missing = set(used) - granted
    assert not missing, f"used but not granted by charts/modelship/files/rbac.yaml: {sorted(missing)}"
    unused = granted - set(used) - set(unexercised)
    assert not unused, ("granted but never used, and not listed under `unexercised` with a reason: "
                        f"{sorted(unused)}")
    sometimes = sorted(set(unexercised) & set(used))
    print(f"listed as not always exercised, used in this run: {sometimes}")
