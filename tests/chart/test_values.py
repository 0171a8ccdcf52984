"""The chart's values: one model (modelship.chart.values) behind the schema,
values.yaml and the docs table, and helm refusing what the schema refuses."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

import modelship
from modelship.chart import helm
from modelship.chart import values as chart_values
from modelship.settings import OperatorSettings

CHART = helm.CHART
VALUES_YAML = CHART / "values.yaml"
SCHEMA = CHART / "values.schema.json"
DOCS = helm.ROOT / "docs" / "helm.md"


def values_yaml() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(VALUES_YAML.read_text())
    return data


def key_paths(node: Any, prefix: str = "", model: type[chart_values.BaseModel] | None = chart_values.Values,
              ) -> set[str]:
    """Dotted keys of ``node`` down to the model's leaves (free-form objects are leaves)."""
    out = set()
    for key, value in node.items():
        path = prefix + key
        out.add(path)
        sub = _submodel(model, key) if model is not None else None
        if sub is not None and isinstance(value, dict):
            out |= key_paths(value, path + ".", sub)
    return out


def _submodel(model: type[chart_values.BaseModel] | None, key: str) -> type[chart_values.BaseModel] | None:
    if model is None:
        return None
    for name, info in model.model_fields.items():
        if (info.alias or name) == key:
            ann = info.annotation
            return ann if isinstance(ann, type) and issubclass(ann, chart_values.BaseModel) else None
    return None


def test_committed_schema_is_generated_from_the_model() -> None:
    assert SCHEMA.read_text() == chart_values.render_schema(), "values.schema.json is stale: run `make chart-schema`"


def test_docs_values_table_is_generated_from_the_model() -> None:
    text = DOCS.read_text()
    assert chart_values.update_docs(text) == text, "docs/helm.md's values table is stale: run `make chart-schema`"


def test_chart_schema_command_is_idempotent(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    for _ in range(2):
        subprocess.run([sys.executable, "-m", "modelship.chart.values", str(out)], check=True, capture_output=True)
    assert out.read_text() == SCHEMA.read_text()


def test_values_yaml_is_the_models_defaults() -> None:
    """Same keys, same defaults: values.yaml is the commented rendering of the model."""
    assert values_yaml() == chart_values.Values().model_dump(by_alias=True, mode="json")


def test_values_yaml_validates_against_the_schema() -> None:
    jsonschema.Draft7Validator.check_schema(json.loads(SCHEMA.read_text()))
    jsonschema.validate(values_yaml(), json.loads(SCHEMA.read_text()))


@pytest.mark.parametrize("path", helm.ci_values(), ids=lambda p: p.name)
def test_ci_values_validate_against_schema_and_model(path: Path) -> None:
    data = yaml.safe_load(path.read_text()) or {}
    jsonschema.validate(data, json.loads(SCHEMA.read_text()))
    chart_values.Values.model_validate(data)


def test_every_key_of_values_yaml_has_a_comment() -> None:
    """Each key the model declares sits under a comment line (its own or its section's)."""
    model_keys = key_paths(values_yaml())
    stack: list[tuple[int, str]] = []
    previous = ""
    missing = []
    for line in VALUES_YAML.read_text().splitlines():
        match = re.match(r"^( *)([A-Za-z_][\w]*):", line)
        if match and not line.lstrip().startswith("-"):
            indent, key = len(match.group(1)), match.group(2)
            while stack and stack[-1][0] >= indent:
                stack.pop()
            path = ".".join([k for _, k in stack] + [key])
            stack.append((indent, key))
            if path in model_keys and not previous.lstrip().startswith("#"):
                missing.append(path)
        if line.strip():
            previous = line
    assert not missing, f"keys without a comment above them: {missing}"


def test_chart_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == modelship.__version__


def test_every_operator_setting_has_a_value() -> None:
    assert chart_values.unmapped_settings() == set(), "a MODELSHIP_* setting the chart cannot set"
    assert set(chart_values.SETTINGS_VALUES) <= set(OperatorSettings.model_fields)


BAD_VALUES = [
    pytest.param(["replicas=two"], "replicas", id="replicas-not-integer"),
    pytest.param(["replicsa=2"], "replicsa", id="unknown-top-level-key"),
    pytest.param(["image.pullPolicy=Sometimes"], "pullPolicy", id="bad-enum"),
    pytest.param(["watchNamespaces={Team_A}"], "watchNamespaces", id="namespace-not-dns-label"),
    pytest.param(["metrics.serviceMonitor.enable=true"], "enable", id="typo-in-nested-key"),
    pytest.param(["artifacts.store=gs://bucket"], "store", id="unsupported-store-scheme"),
    pytest.param(["replicas=2", "leaderElection.enabled=false"], "leaderElection", id="two-leaders"),
    pytest.param(["artifacts.pvc.create=true"], "file://", id="pvc-with-s3-store"),
    pytest.param(["podAnnotations.a=1"], "podAnnotations", id="non-string-annotation"),
    pytest.param(["prometheus.bearerTokenSecret.name=reader"], "allowedUrls", id="prometheus-token-to-any-url"),
    pytest.param(["prometheus.allowedUrls={http://prom@evil.example}"], "allowedUrls", id="prometheus-url-user-info"),
    pytest.param(["prometheus.allowedUrls={http://prom:9090?x=1}"], "allowedUrls", id="prometheus-url-query"),
]


@pytest.mark.parametrize(("sets", "mentioned"), BAD_VALUES)
def test_helm_refuses_bad_values(helm_bin: Path, sets: list[str], mentioned: str) -> None:
    for command in (helm.lint, helm.template):
        with pytest.raises(helm.HelmError) as exc:
            command(sets=sets) if command is helm.template else command(sets=sets, check=True)
        assert mentioned in str(exc.value), str(exc.value)
