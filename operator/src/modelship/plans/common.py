"""Pieces every plan shares: Events, and parsing a spec into a problem message."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from modelship.api.common import spec_problems

S = TypeVar("S", bound=BaseModel)


@dataclass(frozen=True)
class Event:
    """An Event to post about the planned object (past tense, names the object)."""

    reason: str
    message: str
    warning: bool = False


def built_problem(exc: ValidationError) -> str:
    """What is wrong with an object a plan built from a valid spec (e.g. the TrainingJobSpec of a
    Model's next version), for an InvalidSpec condition: which object, which of its fields."""
    problems = "; ".join(": ".join(filter(None, ('.'.join(str(p) for p in e["loc"]), e["msg"])))
                         for e in exc.errors())
    return (f"the {exc.title} this spec makes is invalid ({problems}); change the spec fields it is built from, "
            "or report it if none is at fault")


def parse_spec(model: type[S], raw: object) -> S | str:
    """The spec, or a message naming every invalid field."""
    try:
        return model.model_validate(raw or {})
    except ValidationError as exc:
        return spec_problems(exc)
