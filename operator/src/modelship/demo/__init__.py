"""`make demo`: the whole loop, shown as a person would want to see it."""

from __future__ import annotations

from modelship.demo.run import main

__all__ = ["main"]
