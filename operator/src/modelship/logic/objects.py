"""Comparing manifests as the API server returns them with the ones we built.

The API server fills in defaults (a probe's ``successThreshold``, a
container's ``terminationMessagePath``), so an object we built is "as
wanted" when the stored one *covers* it: every key we wrote has the value we
wrote. ``changes`` names where it does not, for Events people read.
"""

from __future__ import annotations

from typing import Any


def covers(want: Any, have: Any) -> bool:
    """Whether ``have`` holds everything ``want`` says (maps recursively, lists item by item)."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(covers(v, have.get(k)) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(want) == len(have) and all(map(covers, want, have))
    return bool(want == have)


def _label(item: Any, index: int) -> str:
    return str(item["name"]) if isinstance(item, dict) and "name" in item else str(index)


def changes(want: Any, have: Any, path: str = "", limit: int = 5) -> list[str]:
    """Up to ``limit`` places where ``have`` does not cover ``want``, as ``path: old -> new``.

    List items with a ``name`` (containers, env) are matched and named by it.
    """
    out: list[str] = []
    if isinstance(want, dict) and isinstance(have, dict):
        for key, value in want.items():
            if len(out) < limit and not covers(value, have.get(key)):
                out += changes(value, have.get(key), f"{path}.{key}" if path else str(key), limit - len(out))
        return out
    if isinstance(want, list) and isinstance(have, list):
        named = all(isinstance(i, dict) and "name" in i for i in [*want, *have])
        if named:
            old = {i["name"]: i for i in have}
            for i, item in enumerate(want):
                if len(out) < limit and not covers(item, old.get(item["name"])):
                    where = f"{path}[{_label(item, i)}]"
                    out += changes(item, old[item["name"]], where, limit - len(out)) if item["name"] in old \
                        else [f"{where}: added"]
            gone = [n for n in old if n not in {i["name"] for i in want}]
            out += [f"{path}[{n}]: removed" for n in gone][: max(0, limit - len(out))]
            return out
    return [f"{path}: {_short(have)} -> {_short(want)}"]


def _short(value: Any, width: int = 60) -> str:
    text = "unset" if value is None else str(value)
    return text if len(text) <= width else text[: width - 3] + "..."
