"""Trainer Job and spec ConfigMap."""

from __future__ import annotations

from typing import Any

import yaml

from builders.conftest import Validate
from modelship.api.trainingjob import TrainingJobSpec
from modelship.builders.common import PodEnvironment
from modelship.builders.training import (
    SEARCH_GRACE_SECONDS,
    SPEC_PATH,
    build_search_job,
    build_spec_configmap,
    build_training_job,
    search_deadline_seconds,
    search_job_name,
    spec_configmap_name,
)

SPEC = TrainingJobSpec.model_validate({
    "modelRef": {"name": "iris"},
    "dataset": {"uri": "s3://data/iris.csv", "target": "species"},
    "candidates": [{"estimator": "LogisticRegression", "params": {"C": [0.1, 1]}}],
    "resources": {"requests": {"cpu": "1", "memory": "2Gi"}},
    "backoffLimit": 2,
    "activeDeadlineSeconds": 900,
    "trigger": "drift",
})


def test_configmap_carries_the_spec(validate: Validate, owner: dict[str, Any]) -> None:
    cm = build_spec_configmap("iris-3", "ml", SPEC, owner)
    validate(cm)
    assert cm["metadata"]["name"] == "iris-3-spec" == spec_configmap_name("iris-3")
    assert TrainingJobSpec.model_validate(yaml.safe_load(cm["data"]["spec.yaml"])) == SPEC
    assert cm["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]


def test_training_job(validate: Validate, owner: dict[str, Any]) -> None:
    env = PodEnvironment(s3_endpoint_url="http://s3:9000", s3_credentials_secret="s3-creds",
                         artifact_pvc="artifacts")
    job = build_training_job("iris-3", "ml", SPEC, image="reg/trainer:1", output_uri="s3://a/ml/iris-3",
                             owner=owner, environment=env)
    validate(job)
    spec = job["spec"]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"], spec["ttlSecondsAfterFinished"]) == (2, 900, 3600)
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    assert rules[1]["action"] == "Ignore" and rules[1]["onExitCodes"]["values"] == [143]  # deleted: SIGTERM
    assert rules[2]["action"] == "FailJob" and rules[2]["onExitCodes"]["values"] == [2, 3, 4, 137]
    pod = spec["template"]["spec"]
    c = pod["containers"][0]
    assert c["command"] == ["modelship-train", "--spec", SPEC_PATH, "--output", "s3://a/ml/iris-3"]
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert c["resources"] == {"requests": {"cpu": "1", "memory": "2Gi"}}
    assert c["securityContext"]["readOnlyRootFilesystem"] and pod["securityContext"]["runAsNonRoot"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    assert pod["shareProcessNamespace"] is True  # the trainer is not PID 1: an early SIGTERM is 143
    assert {"name": "AWS_ENDPOINT_URL", "value": "http://s3:9000"} in c["env"]
    assert c["envFrom"] == [{"secretRef": {"name": "s3-creds", "optional": False}}]
    assert {v["name"] for v in pod["volumes"]} == {"spec", "tmp", "artifacts"}
    assert job["metadata"]["labels"]["modelship.io/model"] == "iris"
    assert spec["template"]["metadata"]["labels"]["modelship.io/training-job"] == "iris-3"


def test_hand_made_training_job_has_no_model_label(validate: Validate) -> None:
    spec = SPEC.model_copy(update={"model_ref": None, "resources": None})
    job = build_training_job("adhoc", "ml", spec, image="t:1", output_uri="file:///artifacts/x", owner=None)
    validate(job)
    assert "modelship.io/model" not in job["metadata"]["labels"]
    assert "ownerReferences" not in job["metadata"]
    assert job["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "500m"


def test_pod_environment_from_settings() -> None:
    from modelship.settings import OperatorSettings

    settings = OperatorSettings(s3_endpoint_url="http://s3:9000", artifact_pvc="art", artifact_mount_path="/data")
    env = PodEnvironment.from_settings(settings)
    assert env == PodEnvironment("http://s3:9000", None, "art", "/data")
    assert PodEnvironment().env() == [] and PodEnvironment().env_from() == [] and PodEnvironment().volumes(True) == []


def test_search_job_is_one_indexed_job_with_per_index_retries(validate: Validate, owner: dict[str, Any]) -> None:
    spec = SPEC.model_copy(update={"search": SPEC.search.model_copy(update={"parallelism": 4, "max_seconds": 120})})
    job = build_search_job("iris-3", "ml", spec, image="reg/trainer:1", output_uri="s3://a/ml/iris-3/", owner=owner)
    validate(job)
    assert job["metadata"]["name"] == "iris-3-search" == search_job_name("iris-3")
    s = job["spec"]
    assert (s["completionMode"], s["completions"], s["parallelism"]) == ("Indexed", 4, 4)
    assert (s["backoffLimitPerIndex"], s["maxFailedIndexes"]) == (2, 0) and "backoffLimit" not in s
    # maxSeconds bounds the search: the trainer's clock, and the Job's deadline with a grace.
    assert s["activeDeadlineSeconds"] == 120 + SEARCH_GRACE_SECONDS
    rules = s["podFailurePolicy"]["rules"]
    assert rules[0]["action"] == "Ignore" and rules[0]["onPodConditions"][0]["type"] == "DisruptionTarget"
    assert rules[1]["action"] == "Ignore" and rules[1]["onExitCodes"]["values"] == [143]
    assert rules[2]["action"] == "FailJob" and rules[2]["onExitCodes"]["values"] == [2, 3, 137]
    assert s["template"]["spec"]["shareProcessNamespace"] is True
    c = s["template"]["spec"]["containers"][0]
    scores = f"s3://a/ml/iris-3/search/{owner['metadata']['uid']}/"
    assert c["command"] == ["modelship-train", "--spec", SPEC_PATH, "--output", "s3://a/ml/iris-3/",
                            "--phase", "search", "--shares", "4", "--scores", scores]
    # Every index gets the TrainingJob's resources.
    assert c["resources"] == {"requests": {"cpu": "1", "memory": "2Gi"}}
    assert s["template"]["metadata"]["labels"]["modelship.io/training-phase"] == "search"
    refit = build_training_job("iris-3", "ml", spec, image="reg/trainer:1", output_uri="s3://a/ml/iris-3/",
                               owner=owner)
    validate(refit)
    assert refit["metadata"]["name"] == "iris-3"
    assert refit["spec"]["template"]["spec"]["containers"][0]["command"][-6:] == [
        "--phase", "refit", "--shares", "4", "--scores", scores]
    assert refit["spec"]["activeDeadlineSeconds"] == 900


def test_search_deadline_never_exceeds_the_training_deadline() -> None:
    spec = SPEC.model_copy(update={"search": SPEC.search.model_copy(update={"parallelism": 2, "max_seconds": 3000})})
    assert search_deadline_seconds(spec) == 900
