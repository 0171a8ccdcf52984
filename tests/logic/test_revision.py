"""Deterministic names and hashes."""

from __future__ import annotations

import re

import pytest

from modelship.api.model import Serving
from modelship.api.trainingjob import Candidate, Dataset, TrainingTemplate
from modelship.logic import revision as r

DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SHA = "a" * 64


def test_revision_is_deterministic_and_changes_with_inputs() -> None:
    t = r.serving_template("img:1", {"limits": {"cpu": "1"}}, 64, 2.0)
    name = r.revision_name("iris", SHA, t)
    assert name == r.revision_name("iris", SHA, dict(reversed(list(t.items()))))
    assert re.fullmatch(r"iris-[0-9a-f]{10}", name)
    assert name != r.revision_name("iris", "b" * 64, t)
    assert name != r.revision_name("iris", SHA, r.serving_template("img:2", {"limits": {"cpu": "1"}}, 64, 2.0))
    assert name != r.revision_name("iris", SHA, r.serving_template("img:1", {"limits": {"cpu": "2"}}, 64, 2.0))
    assert r.serving_template("i", None, extra={"a": 1})["extra"] == {"a": 1}


@pytest.mark.parametrize(
    "model", ["iris", "x" * 80, "a" * 52 + "-" + "b" * 20, "My_Model.v2", "-lead-", "ünïcode"]
)
def test_names_are_dns1123_labels(model: str) -> None:
    rev = r.revision_name(model, SHA, {"image": "i"})
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


@pytest.mark.parametrize(("spread", "same_as_unset"), [
    (None, True),  # unset: nothing added, so existing revision names stay
    ([], False),  # spreading turned off is a different pod template
    ([{"topologyKey": "topology.kubernetes.io/zone"}], False),
])
def test_topology_spread_is_part_of_the_revision(spread: list[dict[str, str]] | None, same_as_unset: bool) -> None:
    def name(serving: Serving) -> str:
        return r.revision_name("iris", SHA, r.serving_template("img:1", None, 64, 2.0, extra=r.placement(serving)))

    unset = r.revision_name("iris", SHA, r.serving_template("img:1", None, 64, 2.0))
    assert (name(Serving.model_validate({"topologySpreadConstraints": spread})) == unset) is same_as_unset
