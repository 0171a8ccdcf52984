"""Deterministic names and hashes."""

from __future__ import annotations

import re

import pytest

from modelship.api.trainingjob import Candidate, Dataset, TrainingTemplate
from modelship.logic import revision as r

DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@pytest.mark.parametrize(
    "model", ["iris", "x" * 80, "a" * 52 + "-" + "b" * 20, "My_Model.v2", "-lead-", "ünïcode"]
)
def test_names_are_dns1123_labels(model: str) -> None:
    rev = r.child_name(model, r.short_hash({"image": "i"}))
    assert len(rev) <= 63 and DNS1123.match(rev), rev
    for n in (1, 12, 12345):
        job = r.training_job_name(model, n)
        assert len(job) <= 63 - 6 and DNS1123.match(job), job
        assert job.endswith(f"-{n}")
        assert r.training_job_number(model, job) == n
    child = r.child_name(model, "Spec Map")
    assert len(child) <= 63 and DNS1123.match(child) and child.endswith("-spec-map")


def test_training_job_names() -> None:
    assert r.training_job_name("iris", 3) == "iris-3"
    assert r.training_job_number("iris", "iris-3") == 3
    assert r.training_job_number("iris", "iris-x") is None
    assert r.training_job_number("iris", "other-3") is None
    assert r.training_job_number("iris", "iris-0") is None
    assert r.training_job_number("iris", "3") is None
    with pytest.raises(ValueError):
        r.training_job_name("iris", 0)


def test_spec_hash_follows_the_template_not_its_spelling() -> None:
    a = TrainingTemplate(dataset=Dataset(uri="s3://b/d.csv", target="y"), candidates=[Candidate(estimator="RandomForest")])
    b = TrainingTemplate.model_validate(
        {"candidates": [{"estimator": "RandomForest"}], "dataset": {"target": "y", "uri": "s3://b/d.csv"}}
    )
    assert r.spec_hash(a) == r.spec_hash(b)
    assert len(r.spec_hash(a)) == 16
    c = a.model_copy(update={"backoff_limit": 3})
    assert r.spec_hash(c) != r.spec_hash(a)
    assert r.dns_label("---") == "x"


def test_next_training_job_counts_past_what_exists_and_what_was_made() -> None:
    assert r.next_training_job("iris", [], 0) == "iris-1"
    assert r.next_training_job("iris", ["iris-1", "iris-4", "other-9", "iris-x"], 2) == "iris-5"
    assert r.next_training_job("iris", ["iris-1"], 7) == "iris-8"  # a deleted job keeps its number
