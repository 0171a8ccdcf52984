"""The operator's grants as data, read from ``charts/modelship/files/rbac.yaml``
(the file the chart's RBAC templates render), for the tests that hold the
chart to what the operator does: a grant is (verb, group, resource,
subresource), the shape of an API server audit event's objectRef."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import yaml

RBAC_FILE = Path(__file__).resolve().parents[4] / "charts" / "modelship" / "files" / "rbac.yaml"


class Grant(NamedTuple):
    verb: str
    group: str  # "" for the core group
    resource: str
    subresource: str  # "" for the resource itself


def load(path: Path = RBAC_FILE) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def _expand(rules: list[dict[str, Any]]) -> set[Grant]:
    out = set()
    for rule in rules:
        for group in rule["apiGroups"]:
            for res in rule["resources"]:
                resource, _, sub = res.partition("/")
                out |= {Grant(verb, group, resource, sub) for verb in rule["verbs"]}
    return out


def granted(scope: str | None = None, path: Path = RBAC_FILE) -> set[Grant]:
    """What the chart grants: ``watched`` (the watched namespaces), ``release`` (the Lease), or both."""
    data = load(path)
    scopes = [scope] if scope else ["watched", "release"]
    return set().union(*(_expand(data[s]) for s in scopes))


def unexercised(path: Path = RBAC_FILE) -> dict[Grant, str]:
    """Grants the tests cannot exercise, each with its reason."""
    out = {}
    for entry in load(path)["unexercised"]:
        resource, _, sub = entry["resource"].partition("/")
        for verb in entry["verbs"]:
            out[Grant(verb, entry["apiGroup"], resource, sub)] = " ".join(entry["reason"].split())
    return out
