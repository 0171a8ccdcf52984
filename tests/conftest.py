"""Shared fixtures. Keep each section clearly marked; add yours in its own."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

import pytest

# --- The local cluster (issue 11) -------------------------------------------
# Tests marked `cluster` run against the cluster KUBECONFIG names when set,
# else one started by `modelship local up --detach` for the session and
# stopped at its end (or the local cluster already running from the default
# data dir, left running). Which of them run:
#   MODELSHIP_CLUSTER_TESTS=1 (or all; what `make test` sets), or KUBECONFIG set: every cluster test;
#   MODELSHIP_CLUSTER_TESTS=local: tests/localcluster only;
#   unset, empty or 0: none (skipped with a note).
# Any other value is a usage error: a typo must not skip every cluster test while pytest exits 0.

CLUSTER_TESTS_VALUES = {"": "", "0": "", "1": "all", "all": "all", "local": "local"}


def cluster_scope(environ: Mapping[str, str]) -> str:
    """Which cluster tests run: "all", "local" or "" (none); ValueError on an unknown value."""
    value = environ.get("MODELSHIP_CLUSTER_TESTS", "")
    if value not in CLUSTER_TESTS_VALUES:
        known = ", ".join(repr(v) for v in CLUSTER_TESTS_VALUES)
        raise ValueError(f"MODELSHIP_CLUSTER_TESTS={value!r} is not one of {known} "
                         "(1 or all: every cluster test; local: tests/localcluster; empty or 0: none)")
    if value != "0" and environ.get("KUBECONFIG"):
        return "all"
    return CLUSTER_TESTS_VALUES[value]


def pytest_configure(config: pytest.Config) -> None:
    try:
        cluster_scope(os.environ)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The clean-shutdown test stops the session's cluster: it runs last.
    last = [i for i in items if i.name == "test_clean_shutdown_leaves_nothing"]
    items[:] = [i for i in items if i not in last] + last
    scope = cluster_scope(os.environ)
    if scope == "all":
        return
    reason = ("cluster test: MODELSHIP_CLUSTER_TESTS=local runs tests/localcluster only; =1 runs all"
              if scope else "cluster test: set MODELSHIP_CLUSTER_TESTS=1 (or KUBECONFIG) to run")
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "cluster" in item.keywords and not (scope == "local" and "tests/localcluster/" in item.nodeid):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[object]:
    """A `modelship.localcluster.testing.LocalCluster`: .kubeconfig, .node_ip, .kubectl(...), .env."""
    from modelship.localcluster import testing

    with testing.session() as cluster:
        yield cluster

# --- end of the local cluster section ----------------------------------------


# --- A local S3 server (moto) on loopback, for the data plane's tests ---------


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """The endpoint of moto's S3 server on 127.0.0.1 for the session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
