"""The trainer's batch/v1 Job and the ConfigMap carrying its spec."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from modelship.api.trainingjob import TrainingJobSpec
from modelship.builders.common import (
    MODEL_LABEL,
    TMP_MOUNT,
    TRAINING_JOB_LABEL,
    Obj,
    PodEnvironment,
    container_security_context,
    metadata,
    pod_security_context,
    resources,
    tmp_volume,
)
from modelship.logic.revision import child_name

SPEC_DIR = "/etc/modelship"
SPEC_FILE = "spec.yaml"
SPEC_PATH = f"{SPEC_DIR}/{SPEC_FILE}"
PERMANENT_EXIT_CODES = (2, 3, 4)
TRAINER_DEFAULT_RESOURCES = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "4Gi"}}


def spec_configmap_name(training_job: str) -> str:
    return child_name(training_job, "spec")


def _labels(training_job: str, spec: TrainingJobSpec) -> dict[str, str]:
    labels = {TRAINING_JOB_LABEL: training_job, "app.kubernetes.io/name": "modelship-trainer"}
    if spec.model_ref is not None:
        labels[MODEL_LABEL] = spec.model_ref.name
    return labels


def build_spec_configmap(
    training_job: str, namespace: str, spec: TrainingJobSpec, owner: Mapping[str, Any] | None
) -> Obj:
    """ConfigMap ``<job>-spec`` holding the TrainingJob spec as ``spec.yaml`` (what the trainer reads)."""
    text = yaml.safe_dump(spec.wire(), sort_keys=True)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(spec_configmap_name(training_job), namespace, _labels(training_job, spec), owner),
        "data": {SPEC_FILE: text},
        "immutable": True,
    }


def build_training_job(
    training_job: str,
    namespace: str,
    spec: TrainingJobSpec,
    *,
    image: str,
    output_uri: str,
    owner: Mapping[str, Any] | None,
    environment: PodEnvironment | None = None,
) -> Obj:
    """batch/v1 Job ``<training_job>`` running ``modelship-train --spec /etc/modelship/spec.yaml``.

    The trainer needs no API rights (no service account token); it reports
    its summary through the termination message, with the log tail as a
    fallback when it dies before writing one.
    """
    env = environment or PodEnvironment()
    labels = _labels(training_job, spec)
    container: Obj = {
        "name": "trainer",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["modelship-train", "--spec", SPEC_PATH, "--output", output_uri],
        "env": [
            {"name": "HOME", "value": "/tmp"},
            {"name": "TMPDIR", "value": "/tmp"},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
            *env.env(),
        ],
        "resources": resources(spec.resources, TRAINER_DEFAULT_RESOURCES),
        "securityContext": container_security_context(),
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": "spec", "mountPath": SPEC_DIR, "readOnly": True},
            TMP_MOUNT,
            *env.mounts(read_only=False),
        ],
    }
    if env.env_from():
        container["envFrom"] = env.env_from()
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(training_job, namespace, labels, owner),
        "spec": {
            "backoffLimit": spec.backoff_limit,
            "activeDeadlineSeconds": spec.active_deadline_seconds,
            "ttlSecondsAfterFinished": spec.ttl_seconds_after_finished,
            # Bad spec (2), bad data (3) and failed gates (4) fail the same way on a retry. A pod lost
            # with its node (drained, evicted, its node gone) is run again without using up backoffLimit.
            "podFailurePolicy": {"rules": [
                {"action": "FailJob",
                 "onExitCodes": {"containerName": "trainer", "operator": "In", "values": list(PERMANENT_EXIT_CODES)}},
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            ]},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security_context(),
                    "containers": [container],
                    "volumes": [
                        {"name": "spec", "configMap": {"name": spec_configmap_name(training_job)}},
                        tmp_volume("4Gi"),
                        *env.volumes(read_only=False),
                    ],
                },
            },
        },
    }
