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


def parse_spec(model: type[S], raw: object) -> S | str:
    """The spec, or a message naming every invalid field."""
    try:
        return model.model_validate(raw or {})
    except ValidationError as exc:
        return spec_problems(exc)
