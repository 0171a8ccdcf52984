"""Renders of the chart for the tests: one per ci values file, made once per session.

Tests that run helm take the ``helm_bin`` or ``renders`` fixture; they are
skipped, with the reason, where the local cluster's helm is not built.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from modelship.chart import helm
from modelship.localcluster import paths

CI_FILES = helm.ci_values_by_name()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if paths.helm_bin().exists():
        return
    skip = pytest.mark.skip(reason=f"helm is not built at {paths.helm_bin()}: run `make cluster-build`")
    for item in items:
        if {"helm_bin", "renders"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    return helm.helm_bin()


@pytest.fixture(scope="session")
def renders(helm_bin: Path) -> dict[str, helm.Render]:
    return {name: helm.template([path]) for name, path in CI_FILES.items()}
