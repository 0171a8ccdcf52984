"""An in-memory API server with ``Kube``'s methods, for testing controllers without a cluster.

It keeps what the controllers rely on: resourceVersion (a 409 for a stale
precondition), generation (bumped by spec changes), the status subresource,
label selectors, 409 on create and 404 on get/delete, and a log of every
write, so a test can assert that a second reconcile of an unchanged world
writes nothing. It does not default fields, run controllers or collect
garbage: a test sets a Deployment's status itself, as the kubelet would.
"""

from __future__ import annotations

import copy
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from modelship.k8s.client import resource

Obj = dict[str, Any]


class _Response:
    """Enough of a urllib3 response for ``ApiException(http_resp=...)``."""

    def __init__(self, status: int, reason: str, message: str = "") -> None:
        self.status = status
        self.reason = reason
        self.data = json.dumps({"kind": "Status", "code": status, "reason": reason,
                                **({"message": message} if message else {})}).encode()
        self.headers: dict[str, str] = {}  # read by newer kubernetes clients' ApiException

    def getheaders(self) -> dict[str, str]:
        return {}


def _error(status: int, reason: str, message: str = "") -> ApiException:
    return ApiException(http_resp=_Response(status, reason, message))


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge(out.get(key), value)
    return out


def matches(labels: dict[str, str], selector: str | None) -> bool:
    """Equality-based label selectors: ``a=b``, ``a!=b``, ``a`` (exists), comma-joined."""
    for term in filter(None, (selector or "").split(",")):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.split("=", 1)
            if labels.get(k.rstrip("=")) != v:
                return False
        elif term not in labels:
            return False
    return True


@dataclass
class FakeKube:
    """``Kube`` in memory. ``writes`` logs (verb, kind, name) of every successful write;
    ``invalid`` maps a kind to the message a create or patch of it is refused with (422),
    as the API server refuses an object its validation does not pass."""

    apis: set[str] = field(default_factory=lambda: {"modelship.io/v1alpha1"})
    objects: dict[tuple[str, str, str, str], Obj] = field(default_factory=dict)
    writes: list[tuple[str, str, str]] = field(default_factory=list)
    invalid: dict[str, str] = field(default_factory=dict)
    _versions: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _uids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def _key(self, api_version: str, kind: str, namespace: str | None, name: str) -> tuple[str, str, str, str]:
        resource(api_version, kind)  # refuses kinds the real client would not know
        return api_version, kind, namespace or "", name

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> Obj | None:
        obj = self.objects.get(self._key(api_version, kind, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(self, api_version: str, kind: str, namespace: str | None, selector: str | None = None) -> list[Obj]:
        return [copy.deepcopy(o) for (v, k, ns, _), o in sorted(self.objects.items())
                if v == api_version and k == kind and (not namespace or ns == namespace)
                and matches(o["metadata"].get("labels") or {}, selector)]

    def create(self, obj: Obj) -> Obj:
        meta = obj["metadata"]
        name = meta.get("name") or f"{meta.get('generateName', 'x-')}{next(self._uids)}"
        key = self._key(obj["apiVersion"], obj["kind"], meta.get("namespace"), name)
        if key in self.objects:
            raise _error(409, "AlreadyExists")
        self._validate(obj["kind"], name)
        new = copy.deepcopy(obj)
        new["metadata"] = {**new["metadata"], "name": name, "uid": f"uid-{next(self._uids)}",
                           "resourceVersion": str(next(self._versions)), "generation": 1,
                           "creationTimestamp": "2026-01-01T00:00:00Z"}
        self.objects[key] = new
        self.writes.append(("create", obj["kind"], name))
        return copy.deepcopy(new)

    def create_or_get(self, obj: Obj) -> tuple[Obj, bool]:
        try:
            return self.create(obj), True
        except ApiException as exc:
            if exc.status != 409:
                raise
        meta = obj["metadata"]
        existing = self.get(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
        assert existing is not None
        return existing, False

    def replace(self, obj: Obj) -> Obj:
        meta = obj["metadata"]
        key = self._key(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
        current = self.objects.get(key)
        if current is None:
            raise _error(404, "NotFound")
        if meta.get("resourceVersion") and meta["resourceVersion"] != current["metadata"]["resourceVersion"]:
            raise _error(409, "Conflict")
        new = copy.deepcopy(obj)
        new["metadata"] = {**current["metadata"], **new["metadata"],
                           "resourceVersion": str(next(self._versions))}
        self.objects[key] = new
        self.writes.append(("replace", obj["kind"], meta["name"]))
        return copy.deepcopy(new)

    def patch(self, api_version: str, kind: str, namespace: str | None, name: str, patch: Obj,
              subresource: str = "") -> Obj:
        key = self._key(api_version, kind, namespace, name)
        current = self.objects.get(key)
        if current is None:
            raise _error(404, "NotFound")
        precondition = (patch.get("metadata") or {}).get("resourceVersion")
        if precondition and precondition != current["metadata"]["resourceVersion"]:
            raise _error(409, "Conflict")
        if subresource == "status":
            patch = {"status": patch.get("status")} if "status" in patch else {}
        else:
            self._validate(kind, name)
            patch = {k: v for k, v in patch.items() if k != "status"}
        new = merge(current, patch)
        new["metadata"]["resourceVersion"] = str(next(self._versions))
        if new.get("spec") != current.get("spec"):
            new["metadata"]["generation"] = int(current["metadata"].get("generation", 1)) + 1
        self.objects[key] = new
        self.writes.append(("patch", f"{kind}/{subresource}" if subresource else kind, name))
        return copy.deepcopy(new)

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> bool:
        if self.objects.pop(self._key(api_version, kind, namespace, name), None) is None:
            return False
        self.writes.append(("delete", kind, name))
        return True

    def has_api(self, group_version: str) -> bool:
        return group_version in self.apis

    def _validate(self, kind: str, name: str) -> None:
        if kind in self.invalid:
            raise _error(422, "Invalid", f'{kind} "{name}" is invalid: {self.invalid[kind]}')

    # --- test helpers -------------------------------------------------------------------------

    def set_status(self, api_version: str, kind: str, namespace: str, name: str, status: Obj) -> None:
        """What a controller other than ours does (the Deployment controller, the kubelet): no write logged."""
        key = self._key(api_version, kind, namespace, name)
        self.objects[key] = {**self.objects[key], "status": copy.deepcopy(status)}
        self.objects[key]["metadata"]["resourceVersion"] = str(next(self._versions))

    def add(self, obj: Obj) -> Obj:
        """An object that exists before the test (made by someone else): no write logged."""
        created = self.create(obj)
        self.writes.pop()
        return created


@dataclass
class FakePods:
    """``k8s.scrape.PodHTTP`` with canned answers: pod name → /metrics text, (pod, path) → body."""

    texts: dict[str, str] = field(default_factory=dict)
    bodies: dict[tuple[str, str], str] = field(default_factory=dict)

    def metrics(self, pods: list[Obj]) -> dict[str, str]:
        names = {p["metadata"]["name"] for p in pods}
        return {name: text for name, text in self.texts.items() if name in names}

    def get(self, pod: Obj, path: str) -> str | None:
        return self.bodies.get((pod["metadata"]["name"], path))
