"""The only code that talks to the Kubernetes API server.

Objects go in and come out as plain dicts (the builders' output), so the rest
of the operator never touches the client's model classes. A create that meets
409 returns the existing object and a delete that meets 404 is done: both are
normal outcomes in a level-based operator.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)
Obj = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the REST API."""

    group: str  # "" for the core group
    version: str
    plural: str
    namespaced: bool = True

    def base(self, namespace: str | None) -> str:
        root = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace:
            return f"{root}/namespaces/{namespace}/{self.plural}"
        return f"{root}/{self.plural}"


RESOURCES: dict[tuple[str, str], Resource] = {
    ("v1", "ConfigMap"): Resource("", "v1", "configmaps"),
    ("v1", "Service"): Resource("", "v1", "services"),
    ("v1", "Pod"): Resource("", "v1", "pods"),
    ("v1", "Event"): Resource("", "v1", "events"),
    ("v1", "Secret"): Resource("", "v1", "secrets"),
    ("v1", "Namespace"): Resource("", "v1", "namespaces", namespaced=False),
    ("apps/v1", "Deployment"): Resource("apps", "v1", "deployments"),
    ("batch/v1", "Job"): Resource("batch", "v1", "jobs"),
    ("coordination.k8s.io/v1", "Lease"): Resource("coordination.k8s.io", "v1", "leases"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): Resource("autoscaling", "v2", "horizontalpodautoscalers"),
    ("policy/v1", "PodDisruptionBudget"): Resource("policy", "v1", "poddisruptionbudgets"),
    ("modelship.io/v1alpha1", "Model"): Resource("modelship.io", "v1alpha1", "models"),
    ("modelship.io/v1alpha1", "TrainingJob"): Resource("modelship.io", "v1alpha1", "trainingjobs"),
    ("modelship.io/v1alpha1", "DriftMonitor"): Resource("modelship.io", "v1alpha1", "driftmonitors"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): Resource("gateway.networking.k8s.io", "v1", "httproutes"),
    ("monitoring.coreos.com/v1", "PrometheusRule"): Resource("monitoring.coreos.com", "v1", "prometheusrules"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): Resource(
        "apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False
    ),
}


def resource(api_version: str, kind: str) -> Resource:
    try:
        return RESOURCES[(api_version, kind)]
    except KeyError:
        raise ValueError(f"the operator does not handle {kind} ({api_version})") from None


class Api(Protocol):
    """What controllers use of the API server: ``Kube``, or ``k8s.fake.FakeKube`` in tests."""

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> Obj | None: ...

    def list(self, api_version: str, kind: str, namespace: str | None, selector: str | None = None,
             ) -> list[Obj]: ...

    def create(self, obj: Obj) -> Obj: ...

    def create_or_get(self, obj: Obj) -> tuple[Obj, bool]: ...

    def replace(self, obj: Obj) -> Obj: ...

    def patch(self, api_version: str, kind: str, namespace: str | None, name: str, patch: Obj,
              subresource: str = "") -> Obj: ...

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> bool: ...

    def has_api(self, group_version: str) -> bool: ...


class Kube:
    """A thin REST client over the official client's ApiClient."""

    def __init__(self, api: client.ApiClient | None = None, timeout: float = 30) -> None:
        self.api = api or client.ApiClient()
        self.timeout = timeout

    @classmethod
    def from_environment(cls) -> Kube:
        """In a pod: the ServiceAccount; elsewhere: KUBECONFIG or ~/.kube/config."""
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        return cls()

    def _call(self, method: str, path: str, body: Any = None, query: list[tuple[str, Any]] | None = None,
              content_type: str = "application/json") -> Obj:
        method, url, headers, payload, post = self.api.param_serialize(
            method, path,
            query_params=query or [],
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(method, url, header_params=headers, body=payload, post_params=post,
                                     _request_timeout=self.timeout)
        response.read()
        if not 200 <= response.status <= 299:
            raise ApiException(http_resp=response)
        data = response.data
        return json.loads(data) if data else {}

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> Obj | None:
        try:
            return self._call("GET", f"{resource(api_version, kind).base(namespace)}/{name}")
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, api_version: str, kind: str, namespace: str | None, selector: str | None = None) -> list[Obj]:
        query = [("labelSelector", selector)] if selector else []
        try:
            items = self._call("GET", resource(api_version, kind).base(namespace), query=query).get("items", [])
        except ApiException as exc:
            if exc.status == 404:  # the CRD (e.g. HTTPRoute) is not installed
                return []
            raise
        # List items carry no apiVersion/kind of their own: add them, so that every object
        # the operator handles says what it is (``k8s.apply`` matches on them).
        return [{"apiVersion": api_version, "kind": kind, **item} for item in items]

    def create(self, obj: Obj) -> Obj:
        meta = obj["metadata"]
        return self._call("POST", resource(obj["apiVersion"], obj["kind"]).base(meta.get("namespace")), body=obj)

    def replace(self, obj: Obj) -> Obj:
        """PUT the whole object; with ``metadata.resourceVersion`` set, a 409 means it changed since read."""
        meta = obj["metadata"]
        path = f"{resource(obj['apiVersion'], obj['kind']).base(meta.get('namespace'))}/{meta['name']}"
        return self._call("PUT", path, body=obj)

    def create_or_get(self, obj: Obj) -> tuple[Obj, bool]:
        """Create ``obj``; if it exists already, return the existing one. The bool says created."""
        try:
            return self.create(obj), True
        except ApiException as exc:
            if exc.status != 409:
                raise
        meta = obj["metadata"]
        existing = self.get(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
        if existing is None:  # deleted between the two calls: the next reconcile creates it
            raise
        return existing, False

    def ensure(self, want: Obj) -> str | None:
        """Create ``want``, or bring the existing object's spec to it with one merge patch when it
        differs. Returns the write made ("create", "patch") or None: no write when it matches."""
        meta = want["metadata"]
        existing = self.get(want["apiVersion"], want["kind"], meta.get("namespace"), meta["name"])
        if existing is None:
            _, created = self.create_or_get(want)
            return "create" if created else None
        if {k: (existing.get("spec") or {}).get(k) for k in want["spec"]} != want["spec"]:
            self.patch(want["apiVersion"], want["kind"], meta.get("namespace"), meta["name"], {"spec": want["spec"]})
            return "patch"
        return None

    def patch(self, api_version: str, kind: str, namespace: str | None, name: str, patch: Obj,
              subresource: str = "") -> Obj:
        path = f"{resource(api_version, kind).base(namespace)}/{name}"
        if subresource:
            path += f"/{subresource}"
        return self._call("PATCH", path, body=patch, content_type="application/merge-patch+json")

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> bool:
        """Delete in the background (dependents by GC). False when it was already gone."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        try:
            self._call("DELETE", f"{resource(api_version, kind).base(namespace)}/{name}", body=body)
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise

    def has_api(self, group_version: str) -> bool:
        """Whether the cluster serves an API group version (e.g. a CRD's)."""
        try:
            self._call("GET", f"/apis/{group_version}")
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
