"""End-to-end fixtures: the cluster (tests/conftest.py), the images, an S3 store,
the operator, and a fresh namespace per test.

The suite targets whatever cluster ``local_cluster`` gives: the one KUBECONFIG
names, or the local one. The S3 server and the operator come from
``modelship.demo.stack``, the same code the demo runs: the operator is a pod
of the Helm chart, from the image ``make images`` builds, with the chart's
ServiceAccount and nothing more.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modelship.demo import stack
from modelship.demo.stack import S3, ChartOperator

ROOT = Path(__file__).resolve().parents[2]
Operator = ChartOperator
# The operator's Alertmanager webhook requires this bearer token (as a deployment should).
WEBHOOK_TOKEN = "e2e-webhook-token"


def wait_until(check: Any, timeout: float, what: str, interval: float = 1.0) -> Any:
    try:
        return stack.wait_until(check, timeout, what, interval)
    except TimeoutError as exc:
        raise AssertionError(str(exc)) from None


@pytest.fixture(scope="session")
def s3(local_cluster: Any) -> Iterator[S3]:
    with stack.s3_server(local_cluster.node_ip) as store:
        yield store


@pytest.fixture(scope="session")
def images(local_cluster: Any) -> dict[str, str]:
    from modelship import images

    if os.environ.get("MODELSHIP_PREBUILT_IMAGES") == "1":  # make e2e-kind built and loaded them
        return images.references()
    return images.build()


@pytest.fixture(scope="session")
def operator(local_cluster: Any, images: dict[str, str], s3: S3,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartOperator]:
    """The operator as a pod, installed from the chart with its own ServiceAccount and RBAC."""
    values = stack.chart_values(images, s3, allowTestFaults=True, reconcileSeconds=2.0,
                                webhook={"tokenSecret": {"name": "modelship-webhook", "key": "token"}})
    workdir = tmp_path_factory.mktemp("operator")
    secrets = {"modelship-webhook": {"token": WEBHOOK_TOKEN}}
    with stack.chart_operator(local_cluster.kubectl, local_cluster.kubeconfig, values, workdir,
                              secrets=secrets) as handle:
        yield handle
    print(f"operator log: {workdir / 'operator.log'}")


@dataclass
class Namespace:
    name: str
    cluster: Any

    def apply(self, manifest: dict[str, Any]) -> None:
        # JSON, not YAML: a value such as "y" would become a boolean in YAML 1.1.
        self.cluster.kubectl("apply", "-n", self.name, "-f", "-", stdin=json.dumps(manifest))

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        res = self.cluster.kubectl("get", "-n", self.name, kind, name, "-o", "json", check=False)
        return json.loads(res.stdout) if res.returncode == 0 else None

    def list(self, kind: str, selector: str | None = None) -> list[dict[str, Any]]:
        args = ["get", "-n", self.name, kind, "-o", "json"]
        if selector:
            args += ["-l", selector]
        return list(json.loads(self.cluster.kubectl(*args).stdout)["items"])

    def kubectl(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.cluster.kubectl("-n", self.name, *args, **kw)


@pytest.fixture
def namespace(local_cluster: Any, operator: ChartOperator) -> Iterator[Namespace]:
    name = f"e2e-{uuid.uuid4().hex[:6]}"
    local_cluster.kubectl("create", "namespace", name)
    local_cluster.kubectl("create", "secret", "generic", stack.SECRET, "-n", name,
                          *[f"--from-literal={k}={v}" for k, v in stack.KEYS.items()])
    ns = Namespace(name, local_cluster)
    try:
        yield ns
    finally:
        if os.environ.get("MODELSHIP_KEEP_NAMESPACES") != "1":
            local_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


# Modules that must run after the rest, in this order: the HA module replaces the
# operator's pods; the RBAC check reads the audit log the whole session wrote;
# the uninstall test removes the release.
RUN_LAST = ("test_operator_ha", "test_rbac_audit", "test_uninstall")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move the RUN_LAST modules to the end of this directory's tests (not of the session)."""
    here = Path(__file__).parent

    def module_name(item: pytest.Item) -> str:
        return Path(str(item.fspath)).stem

    positions = [i for i, item in enumerate(items) if Path(str(item.fspath)).parent == here]
    if not positions:
        return
    block = [items[i] for i in positions]
    block.sort(key=lambda it: RUN_LAST.index(module_name(it)) + 1 if module_name(it) in RUN_LAST else 0)
    for i, item in zip(positions, block, strict=True):
        items[i] = item
