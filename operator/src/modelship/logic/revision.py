"""Deterministic names: revisions, TrainingJobs, spec hashes.

As Argo Rollouts names a ReplicaSet by a hash of its pod template, a serving
revision is named by a short hash of the pod template the builder makes
(``builders.serving.revision_name``): every field that reaches the pods
makes a new revision; replicas and autoscaling do not. Names are DNS-1123
labels (at most 63 characters), because they become both object names and
label values.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

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


def next_training_job(model: str, names: Iterable[str], created: int) -> str:
    """The name of the Model's next TrainingJob: one past both those that exist and the count
    its status keeps (a TrainingJob deleted by hand does not give its number back)."""
    numbers = [n for n in (training_job_number(model, name) for name in names) if n is not None]
    return training_job_name(model, max([*numbers, created]) + 1)


def spec_hash(template: Any) -> str:
    """Hash of a training template: a Model retrains when it changes."""
    return short_hash(template, length=16)


def child_name(owner: str, suffix: str) -> str:
    """A name for a child object, e.g. the ConfigMap ``<job>-spec`` or Service ``<model>-canary``."""
    return _with_suffix(owner, dns_label(suffix))
