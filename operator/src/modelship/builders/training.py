"""The trainer's batch/v1 Jobs and the ConfigMap carrying its spec.

``search.parallelism`` 1: one Job, the whole training in one pod. N > 1: an
Indexed Job of N pods scoring the search's cells (``build_search_job``),
then the refit Job (``build_training_job``), which the operator creates once
every index has succeeded. The trainer side is ``modelship_runtime.training.fanout``.
"""

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
# A share writes no artifact, so it never fails a gate (4).
SEARCH_FAIL_JOB_EXIT_CODES = (2, 3)
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


# Kubernetes marks an evicted, preempted or node-lost pod with this condition.
DISRUPTION_CONDITION = "DisruptionTarget"
# A container killed by SIGKILL: the kernel's OOM killer (its reason says OOMKilled).
KILLED_EXIT_CODE = 137
# The trainer's exit on SIGTERM: its pod was deleted or its node drained.
TERMINATED_EXIT_CODE = 143
# The search Job's hard deadline: search.maxSeconds (each share's own clock) plus
# this much for pod start, data loading and the setting in flight at the bound.
SEARCH_GRACE_SECONDS = 300
INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
PHASE_LABEL = "modelship.io/training-phase"


def search_job_name(training_job: str) -> str:
    """The Indexed Job scoring a fanned-out search: ``<training job>-search``."""
    return child_name(training_job, "search")


def scores_uri(output_uri: str, owner: Mapping[str, Any] | None) -> str:
    """Where the shares write their scores: ``<output>/search/<TrainingJob uid>/``.

    The uid keeps a TrainingJob recreated under the same name from reading
    the scores of the one before it.
    """
    uid = ((owner or {}).get("metadata") or {}).get("uid")
    return f"{output_uri.rstrip('/')}/search/" + (f"{uid}/" if uid else "")


def pod_failure_policy(fail_job_codes: tuple[int, ...]) -> Obj:
    """Disruptions are not the trainer's fault (Ignore: replaced, no retry counted), whether Kubernetes
    marks them (eviction, preemption, node lost) or the pod was deleted (the trainer exits 143 on
    SIGTERM); permanent failures fail the whole Job at once (FailJob): a bad spec or bad data fails
    the same way everywhere, and a pod killed for memory would be killed again with the same limit."""
    return {"rules": [
        {"action": "Ignore", "onPodConditions": [{"type": DISRUPTION_CONDITION, "status": "True"}]},
        {"action": "Ignore",
         "onExitCodes": {"containerName": "trainer", "operator": "In", "values": [TERMINATED_EXIT_CODE]}},
        {"action": "FailJob",
         "onExitCodes": {"containerName": "trainer", "operator": "In", "values": list(fail_job_codes)}},
    ]}


def _pod_template(
    training_job: str, spec: TrainingJobSpec, image: str, command: list[str], env: PodEnvironment, phase: str,
) -> Obj:
    labels = {**_labels(training_job, spec), PHASE_LABEL: phase}
    container: Obj = {
        "name": "trainer",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
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
        "metadata": {"labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            # The trainer is then not PID 1, which the kernel shields from a signal it has no handler
            # for: a pod deleted while Python still imports scikit-learn (before the trainer's own
            # SIGTERM handler) dies of SIGTERM (143, ignored) and not of SIGKILL after its grace
            # period (137, which the podFailurePolicy reads as the OOM killer and fails the Job on).
            "shareProcessNamespace": True,
            "securityContext": pod_security_context(),
            "containers": [container],
            "volumes": [
                {"name": "spec", "configMap": {"name": spec_configmap_name(training_job)}},
                tmp_volume("4Gi"),
                *env.volumes(read_only=False),
            ],
        },
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

    With ``search.parallelism`` 1 it is the whole training; above 1 it is the
    refit that follows the search Job (``build_search_job``): it gathers the
    shares' scores, refits the best setting and writes the artifact. The
    trainer needs no API rights (no service account token); it reports its
    summary through the termination message, with the log tail as a
    fallback when it dies before writing one.
    """
    env = environment or PodEnvironment()
    shares = spec.search.parallelism
    command = ["modelship-train", "--spec", SPEC_PATH, "--output", output_uri]
    if shares > 1:
        command += ["--phase", "refit", "--shares", str(shares), "--scores", scores_uri(output_uri, owner)]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(training_job, namespace, _labels(training_job, spec), owner),
        "spec": {
            "backoffLimit": spec.backoff_limit,
            "activeDeadlineSeconds": spec.active_deadline_seconds,
            "ttlSecondsAfterFinished": spec.ttl_seconds_after_finished,
            # Bad spec (2), bad data (3), failed gates (4) and the OOM killer (137)
            # end the same way on a retry.
            "podFailurePolicy": pod_failure_policy((*PERMANENT_EXIT_CODES, KILLED_EXIT_CODE)),
            "template": _pod_template(training_job, spec, image, command, env, "refit" if shares > 1 else "all"),
        },
    }


def search_deadline_seconds(spec: TrainingJobSpec) -> int:
    return min(spec.active_deadline_seconds, spec.search.max_seconds + SEARCH_GRACE_SECONDS)


def build_search_job(
    training_job: str,
    namespace: str,
    spec: TrainingJobSpec,
    *,
    image: str,
    output_uri: str,
    owner: Mapping[str, Any] | None,
    environment: PodEnvironment | None = None,
) -> Obj:
    """The Indexed Job ``<training_job>-search``: N pods, pod i scoring share i of the cells.

    One API object for the whole search. Each index retries alone
    (``backoffLimitPerIndex``); one index failing for good fails the Job
    (``maxFailedIndexes: 0``: a missing share would silently change the
    leaderboard); a bad spec, bad data or the OOM killer fail it at once.
    Each pod gets the TrainingJob's resources.
    """
    env = environment or PodEnvironment()
    shares = spec.search.parallelism
    command = ["modelship-train", "--spec", SPEC_PATH, "--output", output_uri, "--phase", "search",
               "--shares", str(shares), "--scores", scores_uri(output_uri, owner)]
    name = search_job_name(training_job)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(name, namespace, _labels(training_job, spec), owner),
        "spec": {
            "completionMode": "Indexed",
            "completions": shares,
            "parallelism": shares,
            "backoffLimitPerIndex": spec.backoff_limit,
            "maxFailedIndexes": 0,
            "activeDeadlineSeconds": search_deadline_seconds(spec),
            "ttlSecondsAfterFinished": spec.ttl_seconds_after_finished,
            "podFailurePolicy": pod_failure_policy((*SEARCH_FAIL_JOB_EXIT_CODES, KILLED_EXIT_CODE)),
            "template": _pod_template(training_job, spec, image, command, env, "search"),
        },
    }
