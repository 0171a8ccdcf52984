"""One status line per step, with its time (kind's habit: a person sees a
line per step, not a log). Lines go to stderr; a step that fails prints a
cross and the reason, and the caller decides what to undo."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress


class StepFailed(RuntimeError):
    """A step could not finish; the message says what to do."""


def _tty() -> bool:
    return sys.stderr.isatty()


def line(text: str) -> None:
    """A status line; a closed stderr (the reader went away) must never break a teardown."""
    with suppress(OSError):
        print(text, file=sys.stderr, flush=True)


@contextmanager
def step(title: str, note: str = "") -> Iterator[None]:
    """` ✓ title (time)`, with `note` after it (e.g. what is left) when the step succeeds."""
    start = time.monotonic()
    if _tty():
        with suppress(OSError):
            print(f" • {title} ...", end="\r", file=sys.stderr, flush=True)
    try:
        yield
    except BaseException as exc:
        line(f" ✗ {title} ({time.monotonic() - start:.1f}s): {exc}")
        raise
    line(f" ✓ {title} ({time.monotonic() - start:.1f}s)" + (f" · {note}" if note else ""))


class Ticker:
    """Progress for a long step: prints '… building X (N s so far; suffix)' at most every `every` s."""

    def __init__(self, title: str, every: float = 30.0, suffix: str = "") -> None:
        self.title, self.every, self.suffix = title, every, suffix
        self.start = self.last = time.monotonic()

    def tick(self) -> None:
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            extra = f"; {self.suffix}" if self.suffix else ""
            line(f"   … {self.title} ({now - self.start:.0f}s so far{extra})")
