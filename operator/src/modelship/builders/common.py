"""Shared pieces of every built manifest: labels, owner references, hardened pods.

Builders are pure: a spec goes in, a plain dict comes out, ready for the I/O
layer (``modelship.k8s``) to create or patch. Nothing here reads the cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelship.api.common import ResourceRequirements

if TYPE_CHECKING:
    from modelship.settings import OperatorSettings

Obj = dict[str, Any]

MODEL_LABEL = "modelship.io/model"
REVISION_LABEL = "modelship.io/revision"
TRAINING_JOB_LABEL = "modelship.io/training-job"
MONITOR_LABEL = "modelship.io/drift-monitor"
SHADOW_LABEL = "modelship.io/shadow"  # on a shadow's pods, instead of MODEL_LABEL: no user traffic
ROLE_LABEL = "modelship.io/role"
MANAGED_BY = {"app.kubernetes.io/managed-by": "modelship", "app.kubernetes.io/part-of": "modelship"}

# The serving and trainer images run as this user (distroless "nonroot").
NONROOT_UID = 65532


@dataclass(frozen=True)
class Child:
    """One object a controller wants to exist, and which of its fields it keeps in step.

    ``sync`` lists dotted paths (``"spec.replicas"``) kept equal to ``obj`` after
    creation; ``None`` keeps everything the builder wrote (spec, data, labels,
    annotations); ``()`` only creates it. A serving Deployment syncs its
    replicas alone: its pod template is fixed by its name (a hash of it).
    ``absent`` lists dotted paths the builder leaves out on purpose and that
    are removed where they exist (a merge patch keeps what it does not name:
    a PodDisruptionBudget switched from maxUnavailable to minAvailable must
    lose the first).
    """

    obj: Obj
    sync: tuple[str, ...] | None = None
    absent: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str, str]:
        return key_of(self.obj)


def key_of(obj: Obj) -> tuple[str, str, str]:
    """(apiVersion, kind, name): how desired and observed objects are matched."""
    return str(obj.get("apiVersion")), str(obj.get("kind")), str(obj["metadata"]["name"])


def owner_reference(owner: Mapping[str, Any]) -> Obj:
    """A controller owner reference to ``owner`` (a body with apiVersion, kind, metadata.name/uid)."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    owner: Mapping[str, Any] | None,
    annotations: Mapping[str, str] | None = None,
) -> Obj:
    meta: Obj = {"name": name, "namespace": namespace, "labels": {**MANAGED_BY, **labels}}
    if annotations:
        meta["annotations"] = dict(annotations)
    if owner is not None:
        meta["ownerReferences"] = [owner_reference(owner)]
    return meta


def pod_security_context() -> Obj:
    return {
        "runAsNonRoot": True,
        "runAsUser": NONROOT_UID,
        "runAsGroup": NONROOT_UID,
        "fsGroup": NONROOT_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> Obj:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def resources(spec: ResourceRequirements | None, default: Mapping[str, Mapping[str, str]]) -> Obj:
    """Container resources from the spec, or ``default`` when the spec sets none."""
    if spec is None or (not spec.requests and not spec.limits):
        return {k: dict(v) for k, v in default.items()}
    out: Obj = {}
    if spec.requests:
        out["requests"] = {k: str(v) for k, v in spec.requests.items()}
    if spec.limits:
        out["limits"] = {k: str(v) for k, v in spec.limits.items()}
    return out


@dataclass(frozen=True)
class PodEnvironment:
    """How pods reach the artifact store; from the operator's settings."""

    s3_endpoint_url: str | None = None
    s3_credentials_secret: str | None = None
    artifact_pvc: str | None = None
    artifact_mount_path: str = "/artifacts"

    @classmethod
    def from_settings(cls, settings: OperatorSettings) -> PodEnvironment:
        """From the operator's settings (``MODELSHIP_*``)."""
        return cls(
            settings.s3_endpoint_url, settings.s3_credentials_secret,
            settings.artifact_pvc, settings.artifact_mount_path,
        )

    def env(self) -> list[Obj]:
        out: list[Obj] = []
        if self.s3_endpoint_url:
            out.append({"name": "AWS_ENDPOINT_URL", "value": self.s3_endpoint_url})
        return out

    def env_from(self) -> list[Obj]:
        if not self.s3_credentials_secret:
            return []
        return [{"secretRef": {"name": self.s3_credentials_secret, "optional": False}}]

    def volumes(self, read_only: bool) -> list[Obj]:
        if not self.artifact_pvc:
            return []
        return [{"name": "artifacts", "persistentVolumeClaim": {"claimName": self.artifact_pvc, "readOnly": read_only}}]

    def mounts(self, read_only: bool) -> list[Obj]:
        if not self.artifact_pvc:
            return []
        return [{"name": "artifacts", "mountPath": self.artifact_mount_path, "readOnly": read_only}]


def tmp_volume(size_limit: str = "1Gi") -> Obj:
    return {"name": "tmp", "emptyDir": {"sizeLimit": size_limit}}


TMP_MOUNT: Obj = {"name": "tmp", "mountPath": "/tmp"}
