"""constraints.txt pins one tested set of every package pyproject.toml asks for, within its ranges,
and every installer uses it (make venv, both Dockerfiles), so nothing floats between here and CI."""

from __future__ import annotations

import functools
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


@functools.cache  # read once, not once per parametrized case
def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not name==version"
            pins[canonicalize_name(name)] = version
    return pins


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        reqs += [Requirement(r) for r in extra if not r.startswith("modelship[")]
    return reqs


@pytest.mark.parametrize("req", _requirements(), ids=str)
def test_every_direct_dependency_is_pinned_within_its_range(req: Requirement) -> None:
    pins = _pins()
    name = canonicalize_name(req.name)
    assert name in pins, f"{req.name} is not pinned in constraints.txt (make constraints)"
    assert req.specifier.contains(pins[name], prereleases=True), (
        f"constraints.txt pins {req.name}=={pins[name]}, outside pyproject.toml's {req.specifier}")


def test_the_project_itself_and_pip_are_not_pinned() -> None:
    assert not {"modelship", "pip", "setuptools"} & set(_pins())


@pytest.mark.parametrize("dockerfile", ["operator/Dockerfile", "serving_image/Dockerfile"])
def test_every_image_installs_with_the_constraints(dockerfile: str) -> None:
    text = (ROOT / dockerfile).read_text()
    installs = re.findall(r"pip install [^\n]*", text)
    assert installs
    assert all("-c /src/constraints.txt" in line for line in installs), installs
    assert re.search(r"COPY pyproject.toml constraints.txt /src/", text)


def test_make_venv_installs_with_the_constraints() -> None:
    assert "-c constraints.txt" in (ROOT / "Makefile").read_text()
