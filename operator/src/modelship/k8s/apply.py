"""Apply a plan's children: the one way the operator changes what it owns.

``ensure(kube, desired, owned)`` makes the owned objects be exactly the
desired ones: a desired object that is missing is created (409: it appeared
meanwhile, the next reconcile compares it); one that exists is compared on
what the builder wrote (API-server defaults are not differences) and merge
patched only where it differs (and where it holds a field the child
says must be absent); an owned object that is no longer desired is
deleted (404: already gone), after every create and patch, so traffic moves
before what served it goes. Running it again on the world it made writes
nothing.

A create or patch the API server refuses as invalid (400, 422) raises
``Refused`` at once, before any delete: the spec asks for an object the
server will never take, so retrying cannot help, and what serves now must
not go for it. The controller turns it into its owner's InvalidSpec status.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from modelship.builders.common import Child, Obj, key_of
from modelship.k8s.client import Api
from modelship.logic.objects import covers
from modelship.metrics import API_WRITES

log = logging.getLogger(__name__)
_META_SYNCED = ("labels", "annotations")
INVALID = (400, 422)  # BadRequest, Invalid: the object as sent is wrong; the same request fails again


class Refused(Exception):
    """The API server refused a desired child as invalid; ``str()`` is a message for its owner's status."""

    def __init__(self, verb: str, kind: str, name: str, status: int, message: str) -> None:
        super().__init__(f"the API server refused to {verb} {kind} {name} ({status}): {message}")
        self.verb, self.kind, self.name, self.status, self.message = verb, kind, name, status, message


def server_message(exc: ApiException) -> str:
    """The ``message`` of the API server's Status body (it names the child's invalid fields)."""
    body = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else exc.body
    try:
        message = json.loads(body or "").get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or exc.reason or "no reason given")


@dataclass(frozen=True)
class Write:
    verb: str  # create, patch, delete
    kind: str
    name: str


def _get(obj: Obj, path: str) -> Any:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _put(patch: Obj, path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = patch
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def _diff(want: Any, have: Any) -> Any:
    """The merge patch that brings ``have`` to cover ``want`` (lists are replaced whole)."""
    if isinstance(want, dict) and isinstance(have, dict):
        out = {}
        for k, v in want.items():
            if not covers(v, have.get(k)):
                out[k] = _diff(v, have.get(k))
        return out
    return want


def synced_paths(child: Child) -> list[str]:
    if child.sync is not None:
        return list(child.sync)
    top = [k for k in child.obj if k not in ("apiVersion", "kind", "metadata", "status")]
    meta = [f"metadata.{k}" for k in _META_SYNCED if k in child.obj.get("metadata", {})]
    return meta + top


def patch_for(child: Child, existing: Obj) -> Obj:
    """The merge patch ``ensure`` sends for ``child`` over ``existing`` ({} when it is covered)."""
    patch: Obj = {}
    for path in synced_paths(child):
        want, have = _get(child.obj, path), _get(existing, path)
        if want is not None and not covers(want, have):
            _put(patch, path, _diff(want, have))
    for path in child.absent:
        if _get(existing, path) is not None:
            _put(patch, path, None)
    return patch


def plan_writes(desired: Sequence[Child], owned: Sequence[Obj]) -> list[tuple[str, Child | Obj, Obj]]:
    """What ``ensure`` will do, in order: (verb, object, patch); pure, for tests and dry runs."""
    have = {key_of(o): o for o in owned}
    wanted = {c.key for c in desired}
    steps: list[tuple[str, Child | Obj, Obj]] = []
    for child in desired:
        existing = have.get(child.key)
        if existing is None:
            steps.append(("create", child, {}))
        else:
            patch = patch_for(child, existing)
            if patch:
                steps.append(("patch", child, patch))
    for key, obj in have.items():
        if key not in wanted:
            steps.append(("delete", obj, {}))
    return steps


def owned_by(obj: Obj, uid: str) -> bool:
    """Whether ``uid`` is among the object's owners: only then may ``ensure`` prune it."""
    return any(ref.get("uid") == uid for ref in (obj.get("metadata") or {}).get("ownerReferences") or [])


def ensure(kube: Api, desired: Sequence[Child], owned: Sequence[Obj]) -> list[Write]:
    """Create, patch and delete so that ``owned`` becomes ``desired``; returns the writes made."""
    writes = []
    for verb, target, patch in plan_writes(desired, owned):
        obj = target.obj if isinstance(target, Child) else target
        api_version, kind, name = key_of(obj)
        namespace = obj["metadata"].get("namespace")
        try:
            if verb == "create":
                kube.create(obj)
            elif verb == "patch":
                kube.patch(api_version, kind, namespace, name, patch)
            elif not kube.delete(api_version, kind, namespace, name):
                continue
        except ApiException as exc:
            if verb == "create" and exc.status == 409:
                log.info("%s %s/%s exists but was not ours when observed; left as it is", kind, namespace, name)
                continue
            if verb != "delete" and exc.status in INVALID:
                raise Refused(verb, kind, name, exc.status, server_message(exc)) from exc
            raise
        API_WRITES.labels(verb, kind).inc()
        writes.append(Write(verb, kind, name))
    return writes
