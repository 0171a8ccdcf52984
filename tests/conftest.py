"""Shared fixtures. Keep each section clearly marked; add yours in its own."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# --- The local cluster (issue 11) -------------------------------------------
# Tests marked `cluster` run against the cluster KUBECONFIG names when set,
# else one started by `modelship local up --detach` for the session and
# stopped at its end (or the local cluster already running from the default
# data dir, left running). They run when MODELSHIP_CLUSTER_TESTS=1 or
# KUBECONFIG is set; otherwise they are skipped with a note.


def _cluster_tests_enabled() -> bool:
    return os.environ.get("MODELSHIP_CLUSTER_TESTS") == "1" or bool(os.environ.get("KUBECONFIG"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The clean-shutdown test stops the session's cluster: it runs last.
    last = [i for i in items if i.name == "test_clean_shutdown_leaves_nothing"]
    items[:] = [i for i in items if i not in last] + last
    if _cluster_tests_enabled():
        return
    skip = pytest.mark.skip(reason="cluster test: set MODELSHIP_CLUSTER_TESTS=1 (or KUBECONFIG) to run")
    for item in items:
        if "cluster" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[object]:
    """A `modelship.localcluster.testing.LocalCluster`: .kubeconfig, .node_ip, .kubectl(...), .env."""
    from modelship.localcluster import testing

    with testing.session() as cluster:
        yield cluster

# --- end of the local cluster section ----------------------------------------
