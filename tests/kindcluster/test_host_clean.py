"""After `make e2e-kind`: the cluster is gone and Docker left nothing on the host.

Run by `modelship kind e2e` after its teardown, with MODELSHIP_KIND_HOST_BEFORE naming
the host state recorded before it started dockerd (the comparison needs it); on a run
that used a dockerd it did not start, only the cluster's own traces are checked."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from modelship.kindcluster import cluster, config, dockerhost
from modelship.localcluster import detect

BEFORE = os.environ.get("MODELSHIP_KIND_HOST_BEFORE")
NAME = os.environ.get("MODELSHIP_KIND_CLUSTER", "modelship-e2e")

pytestmark = pytest.mark.skipif(not os.environ.get("MODELSHIP_KIND_CLUSTER"),
                                reason="runs at the end of `make e2e-kind` (modelship kind e2e), after its teardown")


def _sh(*argv: str) -> str:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False).stdout


def test_the_cluster_and_its_routes_are_gone() -> None:
    assert not cluster.kubeconfig_path(NAME).exists()
    assert not cluster.routes_file(NAME).exists()
    # Ours go through a node's address (a local cluster's own pod route is `dev cni0`, not ours).
    ours = [r for r in _sh("ip", "route").splitlines()
            if re.match(rf"^({re.escape(config.POD_SUBNET.split('.0.0/')[0])}\.\d+\.\d+/\d+|"
                        rf"{re.escape(config.SERVICE_SUBNET)}) via ", r)]
    assert not ours, ours
    if detect.dockerd_pids():  # a dockerd we did not start: ask it
        assert not _sh("docker", "ps", "-aq", "--filter", f"label={cluster.CLUSTER_LABEL}={NAME}").split()


@pytest.mark.skipif(not BEFORE, reason="dockerd was not started by this run (nothing of Docker's to check)")
def test_docker_left_nothing_behind() -> None:
    before = dockerhost.HostState.load(Path(str(BEFORE)))
    assert dockerhost.leftovers(before) == []
    assert not detect.dockerd_pids()
    links = _sh("ip", "-o", "link")
    assert "docker0" not in links and " br-" not in links and "veth" not in links, links
    for table in ("filter", "nat"):
        rules = _sh("iptables", "-w", "-t", table, "-S")
        assert "DOCKER" not in rules, rules
    forward = next(r for r in _sh("iptables", "-w", "-S").splitlines() if r.startswith("-P FORWARD"))
    assert forward == next(r for r in before.rules["iptables filter"] if r.startswith("-P FORWARD"))
    assert sorted(dockerhost.HostState.now().nft_tables) == sorted(before.nft_tables)
    assert "/var/lib/docker/" not in Path("/proc/self/mountinfo").read_text()
