"""The quality Job, the performance retrain TrainingJob, and the serving pods' prediction-log variables."""

from __future__ import annotations

import json
from typing import Any

from builders.conftest import Validate
from modelship.api.groundtruth import ProductionData
from modelship.api.model import ModelSpec, Serving
from modelship.api.trainingjob import TrainingJobSpec
from modelship.builders.common import PodEnvironment
from modelship.builders.model_training import artifact_uri
from modelship.builders.quality import build_performance_retrain, build_quality_job
from modelship.builders.serving import build_pod_template, build_serving_deployment, revision_name

REQUEST = {"groundtruthUri": "s3://b/a/ml/_groundtruth/iris/", "start": "2026-12-03T11:00:00Z",
           "end": "2026-12-03T12:00:00Z", "revisions": {"iris-abc": "s3://b/a/ml/iris-1/"}}


def test_quality_job(validate: Validate, owner: dict[str, Any]) -> None:
    job = build_quality_job("iris-quality-1", "ml", "iris", "iris-dm", REQUEST, image="reg/trainer:1", owner=owner,
                            environment=PodEnvironment(s3_endpoint_url="http://s3", s3_credentials_secret="keys"))
    validate(job)
    assert job["spec"]["backoffLimit"] == 0 and job["spec"]["activeDeadlineSeconds"] == 900
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["restartPolicy"] == "Never"
    (c,) = pod["containers"]
    assert c["name"] == "quality" and c["command"] == ["modelship-quality"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert json.loads(env["MODELSHIP_QUALITY_REQUEST"]) == REQUEST and env["AWS_ENDPOINT_URL"] == "http://s3"
    assert c["envFrom"] == [{"secretRef": {"name": "keys", "optional": False}}]
    assert c["securityContext"]["readOnlyRootFilesystem"] and c["terminationMessagePath"] == "/dev/termination-log"
    assert job["metadata"]["labels"]["modelship.io/drift-monitor"] == "iris-dm"
    # Its pods are no serving pods: the Model's Service (modelship.io/model) must not select them.
    assert "modelship.io/model" not in job["spec"]["template"]["metadata"]["labels"]
    assert job["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]


def test_performance_retrain_trains_on_production_rows_against_the_champion(owner: dict[str, Any]) -> None:
    spec = ModelSpec.model_validate({
        "training": {"dataset": {"uri": "s3://b/data.csv", "target": "y"}, "candidates": [{"estimator": "Ridge"}],
                     "task": "regression", "metric": "r2"}})
    production = ProductionData(uri="s3://b/a/ml/_groundtruth/iris/", start="2026-12-03T11:00:00Z",
                                end="2026-12-03T12:00:00Z", min_rows=100)
    tj = build_performance_retrain(owner, spec, "iris-4", default_store="s3://b/a", production=production,
                                   champion_uri="s3://b/a/ml/iris-1/")
    parsed = TrainingJobSpec.model_validate(tj["spec"])
    assert parsed.trigger == "performance" and tj["metadata"]["labels"]["modelship.io/trigger"] == "performance"
    assert parsed.dataset.production == production and parsed.dataset.uri == "s3://b/data.csv"
    assert parsed.champion_uri == "s3://b/a/ml/iris-1/"  # compared on the same holdout, even without the gate
    assert parsed.output_uri == artifact_uri("s3://b/a", "ml", "iris-4", owner["metadata"]["uid"])
    plain = build_performance_retrain(owner, spec, "iris-4", default_store="s3://b/a", production=None,
                                      champion_uri=None)
    assert "production" not in plain["spec"]["dataset"] and "championUri" not in plain["spec"]


def _deployment(serving: Serving, env: PodEnvironment | None = None) -> dict[str, Any]:
    template = build_pod_template("iris", model_uri="s3://b/a/ml/iris-1/", sha256=None, serving=serving,
                                  image="reg/serving:1", environment=env,
                                  prediction_log_uri="s3://b/a/ml/_groundtruth/iris/")
    return build_serving_deployment("iris", "ml", revision_name("iris", template), template, replicas=1, owner=None)


def test_serving_pods_log_only_when_asked(validate: Validate) -> None:
    off = _deployment(Serving())
    on = _deployment(Serving.model_validate({"predictionLog": {
        "sampleRatio": 0.25, "flushInterval": "5s", "feedbackTokenSecret": {"name": "fb", "key": "token"}}}))
    validate(on)
    names = {e["name"] for e in off["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert not {n for n in names if "PREDICTION_LOG" in n or n in ("MODELSHIP_REVISION", "MODELSHIP_FEEDBACK_TOKEN")}
    env = {e["name"]: e for e in on["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MODELSHIP_PREDICTION_LOG_URI"]["value"] == "s3://b/a/ml/_groundtruth/iris/"
    # The revision is the template's hash, so the pod reads it from its own label.
    assert env["MODELSHIP_REVISION"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.labels['modelship.io/revision']"}}
    assert "modelship.io/revision" in on["spec"]["template"]["metadata"]["labels"]
    assert env["MODELSHIP_PREDICTION_LOG_SAMPLE_RATIO"]["value"] == "0.25"
    assert env["MODELSHIP_PREDICTION_LOG_FLUSH_SECONDS"]["value"] == "5"
    assert env["MODELSHIP_FEEDBACK_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "fb", "key": "token"}}
    disabled = _deployment(Serving.model_validate({"predictionLog": {"enabled": False}}))
    assert disabled == off  # the same template, so the same revision: turning the log off restarts nothing


def test_a_file_store_volume_is_writable_only_for_logging_pods() -> None:
    pvc = PodEnvironment(artifact_pvc="artifacts")
    off = _deployment(Serving(), pvc)["spec"]["template"]["spec"]
    on = _deployment(Serving.model_validate({"predictionLog": {}}), pvc)["spec"]["template"]["spec"]
    assert off["containers"][0]["volumeMounts"][1]["readOnly"] is True
    assert on["containers"][0]["volumeMounts"][1]["readOnly"] is False
    assert on["volumes"][1]["persistentVolumeClaim"]["readOnly"] is False
