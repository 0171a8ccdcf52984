"""Clean shutdown leaves nothing behind. Runs last in the session (see
tests/conftest.py) and only on a cluster this session started."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from modelship.localcluster import teardown
from modelship.localcluster.paths import ClusterPaths

pytestmark = pytest.mark.cluster


def _sh(*argv: str) -> str:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False).stdout


def test_clean_shutdown_leaves_nothing(local_cluster: Any) -> None:
    if not local_cluster.started_here:
        pytest.skip("the cluster was not started by this session; not stopping it")
    p = ClusterPaths.make(local_cluster.data_dir)
    res = subprocess.run([sys.executable, "-m", "modelship.cli", "local", "down", "--data-dir", str(p.data)],
                         capture_output=True, text=True, check=False, timeout=300)
    assert res.returncode == 0, res.stderr
    assert teardown.leftovers(p) == []
    assert not [ln for ln in _sh("pgrep", "-a", "-f", str(p.data)).splitlines() if "pytest" not in ln]
    assert "kube" not in _sh("nft", "list", "tables")
    assert not [ln for ln in _sh("iptables", "-t", "nat", "-S").splitlines() if "CNI" in ln or "KUBE" in ln]
    assert "cni-" not in _sh("ip", "netns")
    assert "cni0" not in _sh("ip", "link") and "veth" not in _sh("ip", "link")
    assert str(p.data) not in _sh("cat", "/proc/self/mountinfo")
    # Safe to run twice.
    again = subprocess.run([sys.executable, "-m", "modelship.cli", "local", "down", "--data-dir", str(p.data)],
                           capture_output=True, text=True, check=False, timeout=300)
    assert again.returncode == 0, again.stderr
