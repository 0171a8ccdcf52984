#!/usr/bin/python3
"""An OCI runtime for dockerd on hosts whose capability bounding set lacks
some capabilities (here CAP_SYS_RESOURCE): it removes them from the
container's spec, then hands over to runc with the same arguments.

Why: ``docker run --privileged`` (kind starts its nodes that way) asks runc
for every capability Docker knows; runc cannot grant one the host's bounding
set lacks and fails with "unable to apply caps: operation not permitted".
A container can never hold such a capability anyway, so dropping it from
the request changes nothing else.

This file runs standalone (the Python standard library only): `make e2e-kind`
copies it beside its daemon.json with RUNC and DROP filled in, and registers
it as dockerd's default runtime. Tests import the pure functions.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

RUNC = "/usr/sbin/runc"  # replaced when installed
DROP: tuple[str, ...] = ("CAP_SYS_RESOURCE",)  # replaced when installed

# runc's global options that take a value (the subcommand follows them).
_GLOBAL_WITH_VALUE = {"--root", "--log", "--log-format", "--criu", "--rootless"}


def subcommand(args: list[str]) -> tuple[str | None, int]:
    """The runc subcommand and its index, skipping global options and their values."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in _GLOBAL_WITH_VALUE:
            i += 2
            continue
        if arg.startswith("-"):
            i += 1
            continue
        return arg, i
    return None, len(args)


def option(args: list[str], long: str, short: str) -> str | None:
    """The value of ``--long v``, ``--long=v`` or ``-s v`` in args, or None."""
    for i, arg in enumerate(args):
        if arg in (long, short) and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(long + "="):
            return arg.split("=", 1)[1]
    return None


def spec_file(args: list[str], cwd: str) -> str | None:
    """The JSON file holding the process's capabilities for this call, if it has one:
    the bundle's config.json for create/run, the --process file for exec."""
    name, at = subcommand(args)
    rest = args[at + 1:]
    if name in ("create", "run"):
        return os.path.join(option(rest, "--bundle", "-b") or cwd, "config.json")
    if name == "exec":
        return option(rest, "--process", "-p")
    return None


def drop_capabilities(process: dict[str, Any], drop: tuple[str, ...]) -> bool:
    """Remove ``drop`` from every capability set of an OCI process; True if anything changed."""
    caps = process.get("capabilities")
    if not isinstance(caps, dict):
        return False
    changed = False
    for key, values in caps.items():
        if isinstance(values, list):
            kept = [v for v in values if v not in drop]
            if len(kept) != len(values):
                caps[key] = kept
                changed = True
    return changed


def rewrite(path: str, drop: tuple[str, ...]) -> None:
    with open(path) as fh:
        doc = json.load(fh)
    process = doc.get("process", doc) if isinstance(doc, dict) else {}  # config.json, or an exec process.json
    if drop_capabilities(process, drop):
        tmp = f"{path}.modelship-tmp"
        with open(tmp, "w") as fh:
            json.dump(doc, fh)
        os.replace(tmp, path)


def main() -> None:
    args = sys.argv[1:]
    target = spec_file(args, os.getcwd())
    if target and os.path.exists(target):
        rewrite(target, DROP)
    os.execv(RUNC, [RUNC, *args])


if __name__ == "__main__":
    main()
