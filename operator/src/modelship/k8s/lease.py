"""Reading and writing the leader Lease (``coordination.k8s.io/v1``).

Every write carries the resourceVersion that was read (a create has none to
carry), so the API server orders concurrent writers: the first wins, the
others get 409 (:class:`Conflict`) and read again. The decisions are in
``modelship.logic.leader``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from modelship.k8s.client import Kube
from modelship.logic.leader import LeaseRecord, from_spec, to_spec

API_VERSION = "coordination.k8s.io/v1"
KIND = "Lease"


class Conflict(Exception):
    """Someone else wrote the Lease first (or deleted it): read it again."""


@dataclass(frozen=True)
class Observed:
    record: LeaseRecord
    resource_version: str


class LeaseClient:
    """One named Lease; a short request timeout, so a hung API call cannot
    outlast the renew deadline by much."""

    def __init__(self, kube: Kube, namespace: str, name: str) -> None:
        self.kube, self.namespace, self.name = kube, namespace, name

    def _observed(self, obj: dict[str, Any]) -> Observed:
        return Observed(from_spec(obj.get("spec")), str(obj["metadata"]["resourceVersion"]))

    def _manifest(self, record: LeaseRecord, resource_version: str | None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace,
                                "labels": {"app.kubernetes.io/name": "modelship",
                                           "app.kubernetes.io/component": "operator"}}
        if resource_version is not None:
            meta["resourceVersion"] = resource_version
        return {"apiVersion": API_VERSION, "kind": KIND, "metadata": meta, "spec": to_spec(record)}

    def get(self) -> Observed | None:
        obj = self.kube.get(API_VERSION, KIND, self.namespace, self.name)
        return None if obj is None else self._observed(obj)

    def create(self, record: LeaseRecord) -> Observed:
        try:
            return self._observed(self.kube.create(self._manifest(record, None)))
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(f"Lease {self.namespace}/{self.name} exists already") from None
            raise

    def update(self, resource_version: str, record: LeaseRecord) -> Observed:
        try:
            return self._observed(self.kube.replace(self._manifest(record, resource_version)))
        except ApiException as exc:
            if exc.status in (404, 409):
                raise Conflict(f"Lease {self.namespace}/{self.name} changed since read ({exc.status})") from None
            raise
