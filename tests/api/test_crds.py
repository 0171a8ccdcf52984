"""The generated CRDs: up to date, valid Kubernetes objects, useful to kubectl,
accepting every example and refusing invalid specs with a message that names
the field."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from crd_validator import apply_defaults, openapi_schema, validate

from modelship.api import crdgen
from modelship.api.driftmonitor import DriftMonitorSpec
from modelship.api.model import ModelSpec
from modelship.api.trainingjob import TrainingJobSpec

ROOT = Path(__file__).resolve().parents[2]
CRDS = {k.kind: yaml.safe_load(crdgen.render(k)) for k in crdgen.KINDS}
SPECS = {"Model": ModelSpec, "TrainingJob": TrainingJobSpec, "DriftMonitor": DriftMonitorSpec}


def examples() -> list[Path]:
    return sorted((ROOT / "examples").rglob("*.yaml"))


def documents() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in examples():
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc and doc.get("apiVersion", "").startswith("modelship.io/"):
                out.append((f"{path.relative_to(ROOT)}#{i}", doc))
    return out


@pytest.mark.parametrize("kind", crdgen.KINDS, ids=lambda k: k.kind)
def test_checked_in_crds_are_up_to_date(kind: crdgen.Kind) -> None:
    path = ROOT / "crds" / crdgen.file_name(kind)
    assert path.exists(), "crds/ is missing a file: run `make crds`"
    assert path.read_text() == crdgen.render(kind), f"{path} is stale: run `make crds`"


def test_make_crds_is_idempotent(tmp_path: Path) -> None:
    for _ in range(2):
        subprocess.run([sys.executable, "-m", "modelship.api.crdgen", str(tmp_path)], check=True,
                       capture_output=True)
    for kind in crdgen.KINDS:
        assert (tmp_path / crdgen.file_name(kind)).read_text() == (ROOT / "crds" / crdgen.file_name(kind)).read_text()


def test_crds_pass_kubernetes_validate_strict() -> None:
    files = [str(ROOT / "crds" / crdgen.file_name(k)) for k in crdgen.KINDS]
    result = subprocess.run(
        [str(Path(sys.executable).parent / "kubernetes-validate"), "--strict", "--quiet", *files],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _walk(schema: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    out = [(path, schema)]
    for name, sub in schema.get("properties", {}).items():
        out += _walk(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        out += _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        out += _walk(schema["additionalProperties"], f"{path}{{}}")
    return out


@pytest.mark.parametrize("kind", list(CRDS))
def test_structural_and_described(kind: str) -> None:
    """Every node has a type (or a Kubernetes extension) and every field a description,
    so the API server accepts the schema and `kubectl explain` is useful."""
    spec = openapi_schema(CRDS[kind])["properties"]["spec"]
    for path, node in _walk(spec, "spec"):
        assert "$ref" not in node and "anyOf" not in node and "allOf" not in node, path
        assert ("type" in node or node.get("x-kubernetes-int-or-string")
                or node.get("x-kubernetes-preserve-unknown-fields")), f"{path} has no type"
        if path != "spec" and not path.endswith(("[]", "{}")):
            assert node.get("description"), f"{path} has no description"


def test_names_columns_and_subresources() -> None:
    for kind in crdgen.KINDS:
        crd = CRDS[kind.kind]
        names = crd["spec"]["names"]
        assert names["shortNames"] == [kind.short]
        assert names["categories"] == ["modelship"]
        version = crd["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        columns = [c["name"] for c in version["additionalPrinterColumns"]]
        assert columns[-1] == "Age"
    model_cols = [c["name"] for c in CRDS["Model"]["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert {"Phase", "Stable", "Canary", "Drift"} <= set(model_cols)


@pytest.mark.parametrize(("where", "doc"), documents(), ids=[w for w, _ in documents()])
def test_examples_are_valid(where: str, doc: dict[str, Any]) -> None:
    assert validate(CRDS[doc["kind"]], doc) == []
    SPECS[doc["kind"]].model_validate(doc["spec"])


def test_every_kind_has_an_example() -> None:
    assert {d["kind"] for _, d in documents()} == set(SPECS)


@pytest.mark.parametrize(("where", "doc"), documents(), ids=[w for w, _ in documents()])
def test_schema_defaults_agree_with_pydantic(where: str, doc: dict[str, Any]) -> None:
    """What the API server stores after defaulting is what the operator parses."""
    schema = openapi_schema(CRDS[doc["kind"]])["properties"]["spec"]
    defaulted = apply_defaults(schema, copy.deepcopy(doc["spec"]))
    parsed = SPECS[doc["kind"]].model_validate(doc["spec"]).wire()
    assert defaulted == parsed


MODEL = {
    "apiVersion": "modelship.io/v1alpha1", "kind": "Model", "metadata": {"name": "m"},
    "spec": {
        "training": {
            "dataset": {"uri": "s3://b/d.csv", "target": "y"},
            "candidates": [{"estimator": "LogisticRegression", "params": {"C": [1.0]}}],
        },
    },
}
TRAINING_JOB = {
    "apiVersion": "modelship.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": "t"},
    "spec": {
        "dataset": {"uri": "file:///data/d.csv", "target": "y"},
        "candidates": [{"estimator": "RandomForest"}],
    },
}
DRIFT_MONITOR = {
    "apiVersion": "modelship.io/v1alpha1", "kind": "DriftMonitor", "metadata": {"name": "d"},
    "spec": {"modelRef": {"name": "m"}},
}
BASE = {"Model": MODEL, "TrainingJob": TRAINING_JOB, "DriftMonitor": DRIFT_MONITOR}


def _set(doc: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    node = out
    keys = dotted.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return out


_DELETE = object()

# (id, kind, field to set, value, text the error must contain)
INVALID = [
    ("both-training-and-source", "Model", "spec.source", {"uri": "s3://b/m.onnx"}, "exactly one of training"),
    ("neither-training-nor-source", "Model", "spec.training", _DELETE, "exactly one of training"),
    ("replicas-negative", "Model", "spec.serving.replicas", -1, "spec.serving.replicas"),
    ("replicas-wrong-type", "Model", "spec.serving.replicas", "two", "spec.serving.replicas"),
    ("unknown-strategy", "Model", "spec.rollout.strategy", "BlueGreen", "spec.rollout.strategy: Unsupported value"),
    ("weights-decreasing", "Model", "spec.rollout.steps", [{"weight": 50}, {"weight": 10}],
     "spec.rollout.steps: Invalid value: canary step weights must be strictly increasing"),
    ("weights-repeated", "Model", "spec.rollout.steps", [{"weight": 20}, {"weight": 20}], "strictly increasing"),
    ("weight-over-100", "Model", "spec.rollout.steps", [{"weight": 150}], "spec.rollout.steps[0].weight"),
    ("weight-zero", "Model", "spec.rollout.steps", [{"weight": 0}], "spec.rollout.steps[0].weight"),
    ("bad-pause-duration", "Model", "spec.rollout.steps", [{"weight": 10, "pause": "soon"}],
     "spec.rollout.steps[0].pause"),
    ("error-ratio-over-1", "Model", "spec.rollout.analysis", {"maxErrorRatio": 1.5},
     "spec.rollout.analysis.maxErrorRatio"),
    ("unknown-on-no-data", "Model", "spec.rollout.onNoData", "ignore", "spec.rollout.onNoData"),
    ("gateway-without-ref", "Model", "spec.rollout.trafficRouting", "gatewayAPI", "rollout.gateway"),
    ("recreate-with-steps", "Model", "spec.rollout", {"strategy": "Recreate", "steps": [{"weight": 10}]},
     "steps apply to the Canary strategy only"),
    ("hpa-min-over-max", "Model", "spec.serving.autoscaling", {"minReplicas": 5, "maxReplicas": 2},
     "spec.serving.autoscaling: Invalid value: minReplicas must not exceed maxReplicas"),
    ("unknown-field", "Model", "spec.servng", {"replicas": 1}, 'unknown field "servng"'),
    ("pdb-both-bounds", "Model", "spec.serving.podDisruptionBudget", {"minAvailable": 1, "maxUnavailable": 1},
     "spec.serving.podDisruptionBudget: Invalid value: set at most one of minAvailable and maxUnavailable"),
    ("pdb-bad-percent", "Model", "spec.serving.podDisruptionBudget", {"maxUnavailable": "half"},
     "spec.serving.podDisruptionBudget.maxUnavailable: Invalid value: maxUnavailable must be a count"),
    ("spread-without-key", "Model", "spec.serving.topologySpreadConstraints", [{"maxSkew": 1}],
     "spec.serving.topologySpreadConstraints[0].topologyKey: Required value"),
    ("spread-bad-policy", "Model", "spec.serving.topologySpreadConstraints",
     [{"topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "Maybe"}],
     "spec.serving.topologySpreadConstraints[0].whenUnsatisfiable: Unsupported value"),
    ("threshold-without-bounds", "Model", "spec.gates.thresholds", [{"metric": "accuracy"}],
     "spec.gates.thresholds[0]: Invalid value: a threshold needs min or max"),
    ("onnx-delta-zero", "Model", "spec.gates.maxOnnxDelta", 0, "spec.gates.maxOnnxDelta"),
    ("bad-source-sha", "Model", "spec.source", {"uri": "s3://b/m.onnx", "sha256": "xyz"}, "spec.source.sha256"),
    ("fairness-without-sensitive-model", "Model", "spec.gates", {"fairness": {"maxDemographicParityDifference": 0.1}},
     "spec.gates.fairness: Invalid value: gates.fairness needs training.dataset.sensitiveFeature"),
    ("quantity-bytes-suffix", "Model", "spec.serving.resources", {"requests": {"memory": "512MB"}},
     "spec.serving.resources.requests.memory: Invalid value: '512MB'"),
    ("quantity-negative", "Model", "spec.serving.resources", {"limits": {"cpu": "-1"}},
     "spec.serving.resources.limits.cpu: Invalid value"),
    ("quantity-with-space", "TrainingJob", "spec.resources", {"limits": {"memory": "1 Gi"}},
     "spec.resources.limits.memory: Invalid value"),
    ("unknown-estimator", "TrainingJob", "spec.candidates", [{"estimator": "sklearn.svm.SVC"}],
     "spec.candidates[0].estimator: Unsupported value"),
    ("no-candidates", "TrainingJob", "spec.candidates", [], "spec.candidates"),
    ("missing-target", "TrainingJob", "spec.dataset", {"uri": "file:///d.csv"}, "spec.dataset.target: Required value"),
    ("bad-dataset-scheme", "TrainingJob", "spec.dataset.uri", "ftp://host/d.csv", "spec.dataset.uri"),
    ("unknown-format", "TrainingJob", "spec.dataset.format", "xlsx", "spec.dataset.format"),
    ("cv-folds-1", "TrainingJob", "spec.search", {"cvFolds": 1}, "spec.search.cvFolds"),
    ("regression-with-accuracy", "TrainingJob", "spec.task", "regression", "needs a regression metric"),
    ("fairness-without-sensitive", "TrainingJob", "spec.gates",
     {"fairness": {"maxDemographicParityDifference": 0.1}}, "gates.fairness needs dataset.sensitiveFeature"),
    ("missing-model-ref", "DriftMonitor", "spec.modelRef", _DELETE, "spec.modelRef: Required value"),
    ("unknown-method", "DriftMonitor", "spec.method", "ks", "spec.method: Unsupported value"),
    ("warning-above-threshold", "DriftMonitor", "spec.warningThreshold", 0.5, "warningThreshold must be below"),
    ("cooldown-below-interval", "DriftMonitor", "spec.action", {"cooldown": "30s"},
     "spec.action.cooldown: Invalid value: action.cooldown must be at least interval"),
    ("window-below-interval", "DriftMonitor", "spec.window", {"duration": "10s"}, "window.duration must be"),
    ("prometheus-without-url", "DriftMonitor", "spec.source", {"type": "prometheus"}, "needs prometheusUrl"),
    ("min-samples-zero", "DriftMonitor", "spec.window", {"minSamples": 0}, "spec.window.minSamples"),
]


@pytest.mark.parametrize(("case", "kind", "field", "value", "expect"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_specs_are_refused_naming_the_field(case: str, kind: str, field: str, value: Any,
                                                     expect: str) -> None:
    doc = _set(BASE[kind], field, value)
    if case == "regression-with-accuracy":
        doc["spec"]["metric"] = "accuracy"
    errors = validate(CRDS[kind], doc)
    assert errors, f"{case}: accepted but should be refused"
    assert any(expect in e for e in errors), errors


def test_at_least_twenty_invalid_cases() -> None:
    assert len(INVALID) >= 20
    assert {k for _, k, *_ in INVALID} == set(SPECS)


@pytest.mark.parametrize("kind", list(BASE))
def test_minimal_specs_are_valid(kind: str) -> None:
    assert validate(CRDS[kind], BASE[kind]) == []


def test_api_reference_is_up_to_date() -> None:
    from modelship.api import reference

    path = ROOT / "docs" / "api.md"
    assert path.exists() and path.read_text() == reference.render(), "docs/api.md is stale: run `make crds`"


def _defaulted_nodes(schema: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    return [(p, n) for p, n in _walk(schema, path) if "default" in n]


@pytest.mark.parametrize("kind", list(CRDS))
def test_defaults_satisfy_their_own_rules_as_written(kind: str) -> None:
    """The API server checks each default value against its node's schema and CEL rules
    as written, before nested defaults apply: a rule must hold on `{}`."""
    from crd_validator import _check

    spec = openapi_schema(CRDS[kind])["properties"]["spec"]
    for path, node in _defaulted_nodes(spec, "spec"):
        errors: list[str] = []
        _check(node, copy.deepcopy(node["default"]), path, errors)
        assert errors == [], f"{path}: default {node['default']!r} is refused: {errors}"
