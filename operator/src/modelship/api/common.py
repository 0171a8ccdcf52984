"""Types shared by the three kinds: base model, conditions, durations, refs.

Everything here is pure pydantic: the CRD schemas are generated from these
classes (``modelship.api.crdgen``), and the trainer parses a TrainingJob spec
with them, so they must not import kopf or the Kubernetes client.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, cast

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

GROUP = "modelship.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Go-style durations as Kubernetes users write them: "30s", "5m", "1h30m".
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

Duration = Annotated[
    str,
    Field(
        pattern=DURATION_PATTERN,
        max_length=32,
        json_schema_extra={"example": "5m"},
    ),
]


def parse_duration(value: str) -> timedelta:
    """Turn a Go-style duration ("1h30m", "250ms") into a timedelta."""
    if not re.fullmatch(DURATION_PATTERN, value):
        raise ValueError(f"{value!r} is not a duration such as 30s, 5m or 1h30m")
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(value))
    return timedelta(seconds=seconds)


CelRule = dict[str, str]


def cel(rules: list[CelRule]) -> JsonDict:
    """Schema extra carrying CEL rules (``x-kubernetes-validations``) for the CRD."""
    return {"x-kubernetes-validations": cast(list[JsonValue], rules)}


def cel_config(rules: list[CelRule]) -> ConfigDict:
    """model_config for a spec object whose CRD schema carries CEL rules."""
    return ConfigDict(json_schema_extra=cel(rules))


class Spec(BaseModel):
    """Base of every spec/status object: camelCase on the wire, strict keys."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=True,
        validate_default=True,
    )

    def wire(self) -> dict[str, Any]:
        """The object as the API server stores it (camelCase, no unset Nones)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class Status(Spec):
    """Statuses tolerate keys written by newer operators."""

    model_config = ConfigDict(extra="ignore")


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(Status):
    """A Knative-style condition; lastTransitionTime moves only on a flip."""

    type: str = Field(description="PascalCase condition type, e.g. Ready, Trained, Drifted.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="PascalCase machine-readable reason.")
    message: str = Field(default="", description="What happened and what to do, for a person.")
    last_transition_time: str | None = Field(
        default=None, description="RFC 3339 time the status last changed."
    )
    observed_generation: int | None = Field(
        default=None, description="The spec generation this condition was computed from."
    )


class LocalObjectReference(Spec):
    """A reference to an object in the same namespace."""

    name: str = Field(min_length=1, max_length=253, description="Name of the object.")


class ResourceRequirements(Spec):
    """CPU and memory as in a container's resources (quantities like 500m, 1Gi)."""

    requests: dict[str, Annotated[str | int, Field(json_schema_extra={"x-kubernetes-int-or-string": True})]] | None = Field(
        default=None, description="Minimum resources, e.g. {cpu: 500m, memory: 512Mi}."
    )
    limits: dict[str, Annotated[str | int, Field(json_schema_extra={"x-kubernetes-int-or-string": True})]] | None = Field(
        default=None, description="Maximum resources, e.g. {cpu: '1', memory: 1Gi}."
    )


def spec_problems(exc: ValidationError) -> str:
    """A spec's validation errors as one line a person can act on: ``spec.a.b: message; ...``."""
    return "; ".join(f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
