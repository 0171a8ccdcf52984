"""status.history: the Model's versions, newest first (pure list helpers)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from modelship.api.model import HistoryEntry

History = tuple[HistoryEntry, ...]


def find(history: Iterable[HistoryEntry], **match: Any) -> HistoryEntry | None:
    """The newest entry whose fields equal ``match``."""
    return next((h for h in history if all(getattr(h, k) == v for k, v in match.items())), None)


def update(history: Sequence[HistoryEntry], old: HistoryEntry | None, **changes: Any) -> History:
    """``history`` with ``old`` changed (as it was when there is no such entry)."""
    if old is None:
        return tuple(history)
    new = old.model_copy(update=changes)
    return tuple(new if h is old else h for h in history)


def push(history: Sequence[HistoryEntry], entry: HistoryEntry) -> History:
    return (entry, *history)


def trim(history: Sequence[HistoryEntry], keep: set[str | None], limit: int) -> list[HistoryEntry]:
    """At most ``limit`` entries, but never those of the revisions in use."""
    return [h for i, h in enumerate(history) if i < limit or (h.revision is not None and h.revision in keep)]
