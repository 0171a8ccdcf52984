"""What the operator checks again when it parses a spec: the schema's cross-field rules that
objects stored before the rule existed may break, and what the schema cannot say (a request
above its limit). Each problem is one message naming the field (``plans.common.parse_spec``),
which the controllers turn into an InvalidSpec condition."""

from __future__ import annotations

import copy
import re
from decimal import Decimal
from typing import Any

import pytest
import yaml
from crd_validator import openapi_schema, validate

from modelship.api import crdgen
from modelship.api.common import QUANTITY_PATTERN, parse_quantity
from modelship.api.model import ModelSpec
from modelship.api.trainingjob import TrainingJobSpec
from modelship.plans.common import parse_spec

CRDS = {k.kind: yaml.safe_load(crdgen.render(k)) for k in crdgen.KINDS}
MODEL: dict[str, Any] = {
    "training": {"dataset": {"uri": "s3://b/d.csv", "target": "y"},
                 "candidates": [{"estimator": "LogisticRegression"}]},
}


def model_with(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(MODEL)
    spec.update(changes)
    return spec


def resources(requests: dict[str, Any] | None = None, limits: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"resources": {k: v for k, v in (("requests", requests), ("limits", limits)) if v is not None}}


# (id, Model spec, text the parse problem must contain; None: valid)
CASES: list[tuple[str, dict[str, Any], str | None]] = [
    ("fairness-with-group", model_with(
        training={**MODEL["training"], "dataset": {"uri": "s3://b/d.csv", "target": "y", "sensitiveFeature": "g"}},
        gates={"fairness": {"maxDemographicParityDifference": 0.1}}), None),
    ("fairness-without-group", model_with(gates={"fairness": {"maxDemographicParityDifference": 0.1}}),
     "spec: Value error, gates.fairness needs training.dataset.sensitiveFeature"),
    ("fairness-on-a-source-model", {"source": {"uri": "s3://b/m.onnx"},
                                    "gates": {"fairness": {"maxDemographicParityDifference": 0.1}}}, None),
    ("quantities", model_with(serving=resources({"cpu": "500m", "memory": "512Mi"}, {"cpu": 1, "memory": "1G"})),
     None),
    ("bytes-suffix", model_with(serving=resources({"memory": "512MB"})),
     "spec.serving.resources.requests.memory: Value error, '512MB' is not a Kubernetes quantity"),
    ("negative-count", model_with(serving=resources(limits={"cpu": -1})),
     "spec.serving.resources.limits.cpu: Value error, -1 is negative"),
    ("request-above-limit", model_with(serving=resources({"cpu": "2", "memory": "1Gi"}, {"cpu": "1500m"})),
     "spec.serving.resources: Value error, requests.cpu 2 exceeds limits.cpu 1500m"),
    ("request-equal-to-limit-in-other-units", model_with(serving=resources({"memory": "1Gi"}, {"memory": "1024Mi"})),
     None),
    ("trainer-request-above-limit", model_with(training={**MODEL["training"], **resources({"memory": "2G"},
                                                                                          {"memory": "1Gi"})}),
     "spec.training.resources: Value error, requests.memory 2G exceeds limits.memory 1Gi"),
]


@pytest.mark.parametrize(("case", "spec", "problem"), CASES, ids=[c[0] for c in CASES])
def test_a_model_spec_parses_or_names_its_problem(case: str, spec: dict[str, Any], problem: str | None) -> None:
    got = parse_spec(ModelSpec, spec)
    if problem is None:
        assert isinstance(got, ModelSpec), got
    else:
        assert isinstance(got, str) and problem in got, got


def test_a_training_job_with_fairness_and_no_group_is_refused_when_parsed() -> None:
    spec = {"dataset": {"uri": "s3://b/d.csv", "target": "y"}, "candidates": [{"estimator": "LogisticRegression"}],
            "gates": {"fairness": {"maxDemographicParityDifference": 0.1}}}
    got = parse_spec(TrainingJobSpec, spec)
    assert isinstance(got, str) and "gates.fairness needs dataset.sensitiveFeature" in got


def test_the_generated_model_crd_carries_the_fairness_rule() -> None:
    rules = openapi_schema(CRDS["Model"])["properties"]["spec"]["x-kubernetes-validations"]
    fairness = next(r for r in rules if r.get("fieldPath") == ".gates.fairness")
    assert "has(self.training.dataset.sensitiveFeature)" in fairness["rule"]


@pytest.mark.parametrize(("value", "expected"), [
    ("500m", Decimal("0.5")), ("0.5", Decimal("0.5")), (".5", Decimal("0.5")), ("2", Decimal(2)), (2, Decimal(2)),
    ("1Ki", Decimal(1024)), ("1Gi", Decimal(2**30)), ("512M", Decimal(512 * 10**6)), ("1e3", Decimal(1000)),
    ("1E-3", Decimal("0.001")), ("100n", Decimal("1e-7")), ("+1k", Decimal(1000)), ("1.", Decimal(1)),
])
def test_quantities_are_read_as_kubernetes_reads_them(value: str | int, expected: Decimal) -> None:
    assert parse_quantity(value) == expected


@pytest.mark.parametrize("value", ["512MB", "1 Gi", "-1", "1Gb", "Gi", "", "1e", "1.5.5", "1mi", "0x10", "1KiB"])
def test_the_schema_and_the_parse_refuse_the_same_quantities(value: str) -> None:
    assert not re.search(QUANTITY_PATTERN, value)
    doc = {"apiVersion": "modelship.io/v1alpha1", "kind": "Model", "metadata": {"name": "m"},
           "spec": model_with(serving=resources({"memory": value}))}
    errors = validate(CRDS["Model"], doc)
    assert any(e.startswith("spec.serving.resources.requests.memory: Invalid value") for e in errors), errors
    assert isinstance(parse_spec(ModelSpec, doc["spec"]), str)
