"""The quality Job (``modelship-quality`` in the trainer image) and the TrainingJob a quality drop creates."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from modelship.api.common import ResourceRequirements
from modelship.api.groundtruth import ProductionData
from modelship.api.model import ModelSpec
from modelship.api.trainingjob import Trigger
from modelship.builders.common import (
    MODEL_LABEL,
    MONITOR_LABEL,
    ROLE_LABEL,
    TMP_MOUNT,
    Obj,
    PodEnvironment,
    container_security_context,
    metadata,
    pod_security_context,
    resources,
    tmp_volume,
)
from modelship.builders.model_training import build_training_job_resource

QUALITY_DEFAULT_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
QUALITY_ROLE = "quality"
REQUEST_ENV = "MODELSHIP_QUALITY_REQUEST"
# One thread and the system allocator: measured lower peak memory for the join (benches/groundtruth).
JOB_ENV = {"OMP_NUM_THREADS": "1", "ARROW_DEFAULT_MEMORY_POOL": "system"}


def build_quality_job(
    name: str,
    namespace: str,
    model: str,
    monitor: str,
    request: Mapping[str, Any],
    *,
    image: str,
    owner: Mapping[str, Any] | None,
    environment: PodEnvironment | None = None,
    resource_spec: ResourceRequirements | None = None,
    deadline_seconds: int = 900,
) -> Obj:
    """batch/v1 Job ``name`` measuring live quality once; its answer is the termination message.

    No retries (the next interval measures again), no API rights, no service
    account token; the store is reached exactly as the trainer reaches it.
    """
    env = environment or PodEnvironment()
    # The pods carry no modelship.io/model label: the Model's Service selects on it.
    pod_labels = {MONITOR_LABEL: monitor, ROLE_LABEL: QUALITY_ROLE}
    labels = {MODEL_LABEL: model, **pod_labels}
    container: Obj = {
        "name": "quality",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["modelship-quality"],
        "env": [
            {"name": REQUEST_ENV, "value": json.dumps(dict(request), sort_keys=True, separators=(",", ":"))},
            {"name": "HOME", "value": "/tmp"},
            {"name": "TMPDIR", "value": "/tmp"},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
            *[{"name": k, "value": v} for k, v in JOB_ENV.items()],
            *env.env(),
        ],
        "resources": resources(resource_spec, QUALITY_DEFAULT_RESOURCES),
        "securityContext": container_security_context(),
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [TMP_MOUNT, *env.mounts(read_only=True)],
    }
    if env.env_from():
        container["envFrom"] = env.env_from()
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(name, namespace, labels, owner),
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": deadline_seconds,
            "ttlSecondsAfterFinished": 600,
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security_context(),
                    "containers": [container],
                    "volumes": [tmp_volume("1Gi"), *env.volumes(read_only=True)],
                },
            },
        },
    }


def build_performance_retrain(
    model: Mapping[str, Any],
    spec: ModelSpec,
    name: str,
    *,
    default_store: str,
    production: ProductionData | None,
    champion_uri: str | None,
) -> Obj:
    """TrainingJob ``name`` (trigger performance): the Model's template, on the labelled production rows.

    The serving model is always passed as the champion, so the trainer scores
    it on the same holdout as the new one (a gate when ``mustBeatChampion``,
    a reported comparison otherwise).
    """
    tj = build_training_job_resource(model, spec, name, Trigger.PERFORMANCE, default_store=default_store,
                                     champion_uri=champion_uri)
    if production is not None:
        tj["spec"]["dataset"]["production"] = production.wire()
    if champion_uri:
        tj["spec"]["championUri"] = champion_uri
    return tj
