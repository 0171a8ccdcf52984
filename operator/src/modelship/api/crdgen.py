"""Generate the CustomResourceDefinitions from the pydantic API models.

The models are the source of truth; ``crds/`` holds this module's output and a
test fails when the two differ. Pydantic's JSON Schema is turned into a
Kubernetes *structural* schema: ``$ref``s inlined, ``anyOf`` with null
dropped, draft-2020 exclusive bounds rewritten for OpenAPI v3.0, free-form maps
marked ``x-kubernetes-preserve-unknown-fields``, int-or-string fields marked
``x-kubernetes-int-or-string``.

Usage: ``python -m modelship.api.crdgen OUT_DIR`` (``make crds``).
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from modelship.api.common import GROUP, VERSION
from modelship.api.driftmonitor import DriftMonitorSpec, DriftMonitorStatus
from modelship.api.model import ModelSpec, ModelStatus
from modelship.api.trainingjob import TrainingJobSpec, TrainingJobStatus

Schema = dict[str, Any]

# Keys OpenAPI v3.0 / structural schemas do not take.
_DROP = {"title", "$defs", "discriminator", "examples", "example", "const"}


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    short: str
    spec: type[BaseModel]
    status: type[BaseModel]
    description: str
    columns: list[dict[str, Any]] = field(default_factory=list)


AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}

KINDS = [
    Kind(
        kind="Model",
        plural="models",
        short="mdl",
        spec=ModelSpec,
        status=ModelStatus,
        description="A model a team declares: Modelship trains it (or takes an ONNX artifact), "
        "checks it, serves it behind a self-analysing canary and retrains it on drift.",
        columns=[
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Stable", "type": "string", "jsonPath": ".status.stableRevision"},
            {"name": "Canary", "type": "integer", "jsonPath": ".status.canaryWeight",
             "description": "Canary traffic percent"},
            {"name": "Drift", "type": "string", "jsonPath": ".status.driftState"},
            {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
             "priority": 1},
            {"name": "URL", "type": "string", "jsonPath": ".status.url", "priority": 1},
            AGE,
        ],
    ),
    Kind(
        kind="TrainingJob",
        plural="trainingjobs",
        short="tj",
        spec=TrainingJobSpec,
        status=TrainingJobStatus,
        description="One training run: data, preprocessing, model search, ONNX conversion, "
        "gates and a versioned artifact.",
        columns=[
            {"name": "Model", "type": "string", "jsonPath": ".spec.modelRef.name"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Reason", "type": "string", "jsonPath": ".status.reason",
             "description": "Why it failed, or why its pod cannot start"},
            {"name": "Metric", "type": "string", "jsonPath": ".status.metric"},
            {"name": "Score", "type": "number", "jsonPath": ".status.score"},
            {"name": "Cells", "type": "string", "jsonPath": ".status.search.progress",
             "description": "Search cells (setting x fold) scored / total"},
            {"name": "Best CV", "type": "number", "jsonPath": ".status.search.bestScore",
             "description": "Best mean cross-validated score so far"},
            {"name": "Duration", "type": "number", "jsonPath": ".status.durationSeconds",
             "description": "Wall time in seconds"},
            {"name": "Trigger", "type": "string", "jsonPath": ".spec.trigger", "priority": 1},
            {"name": "Estimator", "type": "string", "jsonPath": ".status.bestEstimator", "priority": 1},
            AGE,
        ],
    ),
    Kind(
        kind="DriftMonitor",
        plural="driftmonitors",
        short="dm",
        spec=DriftMonitorSpec,
        status=DriftMonitorStatus,
        description="Watches a Model's live inputs against its training reference, and its live "
        "quality against late labels, and retrains it when drift or a quality drop is confirmed.",
        columns=[
            {"name": "Model", "type": "string", "jsonPath": ".spec.modelRef.name"},
            {"name": "State", "type": "string", "jsonPath": ".status.state"},
            {"name": "Max Score", "type": "number", "jsonPath": ".status.maxScore"},
            {"name": "Quality", "type": "string", "jsonPath": ".status.performance.state"},
            {"name": "Last Evaluated", "type": "date", "jsonPath": ".status.lastEvaluated"},
            {"name": "Samples", "type": "integer", "jsonPath": ".status.samples", "priority": 1},
            AGE,
        ],
    ),
]


def _merge(base: Schema, extra: Schema) -> Schema:
    """Siblings of a $ref override the target, except validations, which add up."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if key == "x-kubernetes-validations" and key in out:
            out[key] = [*out[key], *value]
        else:
            out[key] = copy.deepcopy(value)
    return out


def structural(node: Any, defs: dict[str, Schema]) -> Any:
    """Rewrite one pydantic JSON Schema node (recursively) as a structural schema."""
    if isinstance(node, list):
        return [structural(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = _merge(target, node)
    if "allOf" in node and len(node["allOf"]) == 1:
        node = _merge(node.pop("allOf")[0], node)
        return structural(node, defs)
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        if node.get("x-kubernetes-int-or-string"):
            node.pop("anyOf")
        elif len(branches) == 1:
            node.pop("anyOf")
            node = _merge(structural(branches[0], defs), node)
        else:
            raise ValueError(f"union types cannot be expressed in a CRD schema: {node['anyOf']}")
    out: Schema = {}
    for key, value in node.items():
        if key in _DROP or (key == "default" and value is None):
            continue
        if key == "properties":
            out[key] = {name: structural(sub, defs) for name, sub in value.items()}
        elif key in {"items", "additionalProperties"} and isinstance(value, dict):
            out[key] = structural(value, defs)
        elif key in {"exclusiveMinimum", "exclusiveMaximum"} and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        else:
            out[key] = value
    if out.get("additionalProperties") is False:
        del out["additionalProperties"]  # unknown fields are pruned by the API server
    if out.get("additionalProperties") == {} or out.get("additionalProperties") is True:
        del out["additionalProperties"]
        out["x-kubernetes-preserve-unknown-fields"] = True
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if not out.get("x-kubernetes-int-or-string") and "type" not in out and not out.get(
        "x-kubernetes-preserve-unknown-fields"
    ):
        out["x-kubernetes-preserve-unknown-fields"] = True
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
    return out


class _WithFactoryDefaults(GenerateJsonSchema):
    """Show default_factory values as schema defaults, so the API server fills them.

    A nested object defaults to ``{}`` and the API server then applies the
    defaults of its own fields; a list of objects defaults to its items'
    wire form. ``kubectl get -o yaml`` thus shows the effective spec.
    """

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            value = factory()  # type: ignore[call-arg]
            if isinstance(value, BaseModel):
                value = {}
            elif isinstance(value, list):
                value = [v.model_dump(by_alias=True, exclude_none=True, mode="json")
                         if isinstance(v, BaseModel) else v for v in value]
            schema = {**schema, "default": value}
            schema.pop("default_factory")
        return super().default_schema(schema)


def object_schema(model: type[BaseModel]) -> Schema:
    raw = model.model_json_schema(
        by_alias=True,
        mode="validation",
        ref_template="#/$defs/{model}",
        schema_generator=_WithFactoryDefaults,
    )
    defs = raw.get("$defs", {})
    return structural(raw, defs)  # type: ignore[no-any-return]


def build_crd(kind: Kind) -> Schema:
    spec_schema = object_schema(kind.spec)
    status_schema = object_schema(kind.status)
    root: Schema = {
        "type": "object",
        "description": kind.description,
        "properties": {
            "apiVersion": {"type": "string", "description": "modelship.io/v1alpha1"},
            "kind": {"type": "string", "description": kind.kind},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
        "required": ["spec"],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{kind.plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "modelship"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.kind.lower(),
                "shortNames": [kind.short],
                "categories": ["modelship"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": kind.columns,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def render(kind: Kind) -> str:
    header = "# Generated by `make crds` from modelship.api; do not edit.\n"
    return header + yaml.safe_dump(build_crd(kind), sort_keys=False, width=100)


def file_name(kind: Kind) -> str:
    return f"{GROUP}_{kind.plural}.yaml"


def write_all(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in KINDS:
        path = out_dir / file_name(kind)
        text = render(kind)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out_dir = Path(args[0] if args else "crds")
    for path in write_all(out_dir):
        print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
