"""Types shared by the three kinds: base model, conditions, durations, refs.

Everything here is pure pydantic: the CRD schemas are generated from these
classes (``modelship.api.crdgen``), and the trainer parses a TrainingJob spec
with them, so they must not import kopf or the Kubernetes client.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, cast

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    model_validator,
)
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


# A Kubernetes quantity as a container's resources take it (the core API's format without the sign:
# the API server refuses negative requests and limits): 500m, 0.5, 1Gi, 512M, 1e3.
QUANTITY_PATTERN = r"^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE])?$"
_QUANTITY = re.compile(QUANTITY_PATTERN)
_DECIMAL_SUFFIX = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SUFFIX = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}


def parse_quantity(value: str | int) -> Decimal:
    """A quantity's value ("500m" -> 0.5, "1Ki" -> 1024), to compare a request with its limit."""
    if isinstance(value, int):
        return Decimal(value)
    match = _QUANTITY.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a quantity")
    number, suffix = match.group(1), match.group(3) or ""
    if suffix[:1] in ("e", "E"):
        return Decimal(f"{number}e{suffix[1:]}")
    if suffix in _BINARY_SUFFIX:
        return Decimal(number) * (1 << (10 * _BINARY_SUFFIX[suffix]))
    return Decimal(f"{number}e{_DECIMAL_SUFFIX[suffix]}")


def _check_quantity(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a quantity such as 500m, 1Gi or 2, not a boolean")
    if isinstance(value, int) and value < 0:
        raise ValueError(f"{value} is negative; a request or limit must be 0 or more")
    if isinstance(value, str) and not _QUANTITY.match(value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity: use a number with an optional suffix, "
                         "m (milli), k, M, G, T, P, E (powers of 1000) or Ki, Mi, Gi, Ti, Pi, Ei (powers of 1024), "
                         "e.g. 500m, 512Mi, 1G")
    return value


Quantity = Annotated[
    str | int,
    BeforeValidator(_check_quantity),
    Field(json_schema_extra={"x-kubernetes-int-or-string": True, "pattern": QUANTITY_PATTERN}),
]


class ResourceRequirements(Spec):
    """CPU and memory as in a container's resources (quantities like 500m, 1Gi).

    The schema checks each quantity's form; that a request does not exceed its limit is
    checked here, when the spec is parsed (an InvalidSpec condition, not a refused pod).
    """

    requests: dict[str, Quantity] | None = Field(
        default=None, description="Minimum resources, e.g. {cpu: 500m, memory: 512Mi}."
    )
    limits: dict[str, Quantity] | None = Field(
        default=None, description="Maximum resources, e.g. {cpu: '1', memory: 1Gi}; each at least its request."
    )

    @model_validator(mode="after")
    def _requests_within_limits(self) -> ResourceRequirements:
        limits = self.limits or {}
        over = [f"requests.{k} {v} exceeds limits.{k} {limits[k]}" for k, v in sorted((self.requests or {}).items())
                if k in limits and parse_quantity(v) > parse_quantity(limits[k])]
        if over:
            raise ValueError("; ".join(over) + " (a request must not exceed its limit)")
        return self


def spec_problems(exc: ValidationError) -> str:
    """A spec's validation errors as one line a person can act on: ``spec.a.b: message; ...``."""
    return "; ".join(f"{'.'.join(['spec', *(str(p) for p in e['loc'])])}: {e['msg']}" for e in exc.errors())
