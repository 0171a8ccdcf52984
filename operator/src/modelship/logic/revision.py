"""Deterministic names: revisions, TrainingJobs, spec hashes.

As Argo Rollouts names a ReplicaSet by a hash of its pod template, a serving
revision is named by a short hash of what decides its pods' behaviour: the
artifact's digest and the serving template (image, resources, batching).
Replicas and autoscaling are not part of it: scaling never makes a revision.
Names are DNS-1123 labels (at most 63 characters), because they become both
object names and label values.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from modelship.api.model import Serving

MAX_LABEL = 63
HASH_LENGTH = 10
# What Kubernetes appends to a Job's name for its pods ("-" + 5 characters).
JOB_POD_SUFFIX = 6

_INVALID = re.compile(r"[^a-z0-9-]+")


def canonical(value: Any) -> str:
    """Stable JSON text of a value (pydantic models in their wire form, keys sorted)."""
    if isinstance(value, BaseModel):
        value = value.model_dump(by_alias=True, exclude_none=True, mode="json")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def short_hash(*parts: Any, length: int = HASH_LENGTH) -> str:
    """First ``length`` hex digits of the sha256 of the parts' canonical JSON."""
    digest = hashlib.sha256(canonical(list(parts)).encode()).hexdigest()
    return digest[:length]


def dns_label(text: str, max_length: int = MAX_LABEL) -> str:
    """Lower-case, invalid runs to ``-``, trimmed to ``max_length``, no ``-`` at either end."""
    label = _INVALID.sub("-", text.lower())[:max_length].strip("-")
    return label or "x"


def _with_suffix(prefix: str, suffix: str, max_length: int = MAX_LABEL) -> str:
    room = max_length - len(suffix) - 1
    return f"{dns_label(prefix, room)}-{suffix}"


def serving_template(
    image: str,
    resources: Mapping[str, Any] | None = None,
    max_batch_size: int | None = None,
    max_batch_delay_ms: float | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The part of the serving spec that makes a new revision when it changes."""
    template: dict[str, Any] = {"image": image, "resources": dict(resources or {})}
    if max_batch_size is not None:
        template["maxBatchSize"] = max_batch_size
    if max_batch_delay_ms is not None:
        template["maxBatchDelayMs"] = max_batch_delay_ms
    if extra:
        template["extra"] = dict(extra)
    return template


def placement(serving: Serving) -> dict[str, Any] | None:
    """Pod placement that is part of the template: the Model's own topology spread, when set (unset
    adds nothing, so a Model that never set it keeps its revision names)."""
    if serving.topology_spread_constraints is None:
        return None
    return {"topologySpreadConstraints": [c.wire() for c in serving.topology_spread_constraints]}


def revision_hash(artifact_sha256: str, template: Mapping[str, Any]) -> str:
    return short_hash(artifact_sha256, dict(template))


def revision_name(model: str, artifact_sha256: str, template: Mapping[str, Any]) -> str:
    """``<model>-<hash>``: the Deployment name and the ``modelship.io/revision`` label value."""
    return _with_suffix(model, revision_hash(artifact_sha256, template))


def training_job_name(model: str, n: int) -> str:
    """``<model>-<n>``: the n-th TrainingJob of a Model (n counts from 1).

    Short enough that the batch Job of the same name gives its pods a valid
    ``job-name`` label.
    """
    if n < 1:
        raise ValueError("TrainingJob numbers start at 1")
    return _with_suffix(model, str(n), MAX_LABEL - JOB_POD_SUFFIX)


def training_job_number(model: str, name: str) -> int | None:
    """The n of a name made by ``training_job_name`` for this model, else ``None``."""
    prefix, _, tail = name.rpartition("-")
    if not tail.isdigit() or not prefix:
        return None
    n = int(tail)
    return n if n >= 1 and training_job_name(model, n) == name else None


def spec_hash(template: Any) -> str:
    """Hash of a training template: a Model retrains when it changes."""
    return short_hash(template, length=16)


def child_name(owner: str, suffix: str) -> str:
    """A name for a child object, e.g. the ConfigMap ``<job>-spec`` or Service ``<model>-canary``."""
    return _with_suffix(owner, dns_label(suffix))
