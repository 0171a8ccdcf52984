"""Where a TrainingJob may write: <store>/<namespace>/ or an allow-listed
<prefix>/<namespace>/, nothing that climbs out; a table of requests."""

from __future__ import annotations

import pytest

from modelship.logic.outputs import artifact_dir, confine_output, confine_store, namespace_prefixes

STORE = "s3://modelship/artifacts"
ALLOWED = ["s3://team-bucket/models/", "file:///artifacts/shared"]
UID = "0b6f1c2e-9d1a-4c3b-8e7f-112233445566"


@pytest.mark.parametrize(("requested", "uri"), [
    (None, "s3://modelship/artifacts/team-a/loans-1-0b6f1c2e/"),
    ("", "s3://modelship/artifacts/team-a/loans-1-0b6f1c2e/"),
    ("s3://modelship/artifacts/team-a/loans-1/", "s3://modelship/artifacts/team-a/loans-1/"),
    ("s3://modelship/artifacts/team-a/experiments/run-7", "s3://modelship/artifacts/team-a/experiments/run-7/"),
    ("s3://team-bucket/models/team-a/x/", "s3://team-bucket/models/team-a/x/"),
    ("file:///artifacts/shared/team-a/x", "file:///artifacts/shared/team-a/x/"),
    ("s3://modelship/artifacts/team-a/v1.2/", "s3://modelship/artifacts/team-a/v1.2/"),
])
def test_allowed(requested: str | None, uri: str) -> None:
    decision = confine_output(requested, store=STORE, allowed_prefixes=ALLOWED, namespace="team-a", name="loans-1",
                              uid=UID)
    assert (decision.uri, decision.problem) == (uri, None)


@pytest.mark.parametrize(("requested", "words"), [
    ("s3://modelship/artifacts/team-b/loans-1/", "outside this namespace's artifact locations"),  # another namespace
    ("s3://modelship/artifacts/team-a", "outside"),                      # the namespace directory itself
    ("s3://modelship/artifacts/team-a/", "outside"),
    ("s3://modelship/artifacts/team-ab/x/", "outside"),                  # a namespace that starts alike
    ("s3://modelship/artifacts/x/", "outside"),
    ("s3://modelship/other/team-a/x/", "outside"),
    ("s3://elsewhere/team-a/x/", "outside"),
    ("s3://team-bucket/models/x/", "outside"),                           # an allowed prefix is confined too
    ("file:///artifacts/models/team-a/x", "outside"),
    ("s3://modelship/artifacts/team-a/../team-b/x/", "'..'"),            # climbing out
    ("s3://modelship/artifacts/team-a/%2e%2e/team-b/x/", "'..'"),
    ("file:///artifacts/shared/team-a/./x", "'..'"),
    ("s3://modelship/artifacts/team-a//x", "empty path segments"),
    ("s3://modelship/artifacts/team-a/x?versionId=1", "a query"),
])
def test_refused_with_what_to_do(requested: str, words: str) -> None:
    decision = confine_output(requested, store=STORE, allowed_prefixes=ALLOWED, namespace="team-a", name="loans-1",
                              uid=UID)
    assert decision.uri is None and decision.problem is not None
    assert words in decision.problem and requested in decision.problem


def test_the_message_names_the_ways_out() -> None:
    problem = confine_output("s3://modelship/artifacts/team-b/x/", store=STORE, allowed_prefixes=[],
                             namespace="team-a", name="loans-1", uid=UID).problem
    assert problem is not None
    assert "s3://modelship/artifacts/team-a/" in problem
    assert "Leave outputUri unset for the default s3://modelship/artifacts/team-a/loans-1-0b6f1c2e/" in problem
    assert "artifacts.allowedOutputPrefixes" in problem


def test_prefixes_and_default_directory() -> None:
    assert namespace_prefixes("s3://b/a/", ["s3://b/a", "s3://c"], "ns") == ["s3://b/a/ns/", "s3://c/ns/"]
    assert artifact_dir("s3://b/a/", "ns", "m-1") == "s3://b/a/ns/m-1/"
    assert artifact_dir("s3://b/a", "ns", "m-1", UID) == "s3://b/a/ns/m-1-0b6f1c2e/"


def test_a_models_training_jobs_land_inside_and_apart_per_incarnation() -> None:
    from modelship.api.model import ModelSpec
    from modelship.builders.model_training import build_training_job_resource

    spec = ModelSpec.model_validate({"training": {
        "dataset": {"uri": "s3://d/loans.csv", "target": "y"},
        "candidates": [{"estimator": "LogisticRegression"}]}})
    uris = []
    for uid in ("11111111-aaaa", "22222222-bbbb"):  # the same Model, deleted and made again
        model = {"apiVersion": "modelship.io/v1alpha1", "kind": "Model",
                 "metadata": {"name": "loans", "namespace": "team-a", "uid": uid}}
        tj = build_training_job_resource(model, spec, "loans-1", "initial", default_store=STORE)
        uri = tj["spec"]["outputUri"]
        assert confine_output(uri, store=STORE, allowed_prefixes=[], namespace="team-a", name="loans-1").uri == uri
        uris.append(uri)
    assert uris == ["s3://modelship/artifacts/team-a/loans-1-11111111/", "s3://modelship/artifacts/team-a/loans-1-22222222/"]


@pytest.mark.parametrize(("requested", "allowed"), [
    (None, True),
    ("", True),
    ("s3://modelship/artifacts", True),                        # the operator's store
    ("s3://modelship/artifacts/", True),
    ("s3://team-bucket/models", True),                         # an allowed prefix
    ("file:///artifacts/shared/", True),
    ("s3://modelship/artifacts/team-a/experiments", True),     # inside the namespace's own location
    ("s3://modelship/artifacts/team-a", True),
    ("s3://elsewhere/logs", False),
    ("s3://modelship/artifacts/team-b", False),                # another namespace's location
    ("s3://modelship/artifacts/team-b/x", False),
    ("s3://modelship", False),                                 # above the store
    ("s3://modelship/artifacts-other", False),
    ("file:///artifacts/shared/team-b", False),
    ("s3://modelship/artifacts/team-a/../team-b", False),      # climbing out
    ("s3://modelship/artifacts/team-a/%2e%2e/team-b", False),
])
def test_a_models_artifact_store(requested: str | None, allowed: bool) -> None:
    problem = confine_store(requested, store=STORE, allowed_prefixes=ALLOWED, namespace="team-a")
    if allowed:
        assert problem is None
    else:
        assert problem is not None and f"spec.artifactStore {requested} " in problem
        assert f"({STORE}, {', '.join(ALLOWED)})" in problem and "allowedOutputPrefixes" in problem
