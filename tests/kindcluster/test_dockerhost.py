"""Docker on the host: which capabilities need the wrapper, the daemon's config, and which
iptables rules and chains are Docker's to remove (and only those)."""

from __future__ import annotations

import pytest

from modelship.kindcluster import dockerhost as d


@pytest.mark.parametrize(("capbnd", "last_cap", "missing"), [
    ("000001fffeffffff", 40, ("CAP_SYS_RESOURCE",)),  # this machine
    ("000001ffffffffff", 40, ()),  # everything
    ("000001fffefffffe", 40, ("CAP_CHOWN", "CAP_SYS_RESOURCE")),
    ("0000003fffffffff", 40, ("CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE")),
    ("0000003fffffffff", 37, ()),  # an older kernel: Docker asks for none it does not know
])
def test_missing_capabilities(capbnd: str, last_cap: int, missing: tuple[str, ...]) -> None:
    status = f"Name:\tpython\nCapEff:\t000001ffffffffff\nCapBnd:\t{capbnd}\nCapAmb:\t0\n"
    assert d.missing_capabilities(status, last_cap) == missing


def test_daemon_config() -> None:
    plain = d.daemon_config(None)
    assert plain["bridge"] == "none"  # no docker0: kind makes its own network
    assert "default-runtime" not in plain and "runtimes" not in plain
    wrapped = d.daemon_config("/x/modelship-runc")
    assert wrapped["default-runtime"] == d.RUNTIME
    assert wrapped["runtimes"] == {d.RUNTIME: {"path": "/x/modelship-runc"}}


BEFORE = ["-P INPUT ACCEPT", "-P FORWARD ACCEPT", "-P OUTPUT ACCEPT", "-N MINE", "-A FORWARD -j MINE",
          "-A MINE -s 10.0.0.0/8 -j ACCEPT"]
AFTER = [
    "-P INPUT ACCEPT", "-P FORWARD DROP", "-P OUTPUT ACCEPT",
    "-N DOCKER", "-N DOCKER-ISOLATION-STAGE-1", "-N DOCKER-ISOLATION-STAGE-2", "-N DOCKER-USER", "-N MINE",
    "-A FORWARD -j DOCKER-USER",
    "-A FORWARD -j DOCKER-ISOLATION-STAGE-1",
    "-A FORWARD -o br-0123456789ab -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    "-A FORWARD -o br-0123456789ab -j DOCKER",
    "-A FORWARD -i br-0123456789ab ! -o br-0123456789ab -j ACCEPT",
    "-A FORWARD -j MINE",
    "-A DOCKER-ISOLATION-STAGE-1 -i br-0123456789ab ! -o br-0123456789ab -j DOCKER-ISOLATION-STAGE-2",
    "-A DOCKER-USER -j RETURN",
    "-A MINE -s 10.0.0.0/8 -j ACCEPT",
    "-A MINE -o br-notdocker -j ACCEPT",  # not a Docker bridge name: left alone
]


def test_docker_rules_are_docker_only() -> None:
    added, chains = d.docker_rules(AFTER, BEFORE)
    assert chains == ["DOCKER", "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2", "DOCKER-USER"]
    assert added == [
        "-A FORWARD -j DOCKER-USER",
        "-A FORWARD -j DOCKER-ISOLATION-STAGE-1",
        "-A FORWARD -o br-0123456789ab -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A FORWARD -o br-0123456789ab -j DOCKER",
        "-A FORWARD -i br-0123456789ab ! -o br-0123456789ab -j ACCEPT",
    ]  # rules inside Docker's chains go with the chains; the user's rules stay
    assert d.docker_rules(BEFORE, BEFORE) == ([], [])


def test_nat_masquerade_of_a_docker_network_is_docker_s() -> None:
    before = ["-P POSTROUTING ACCEPT"]
    after = ["-P POSTROUTING ACCEPT", "-N DOCKER",
             "-A POSTROUTING -s 172.18.0.0/16 ! -o br-0123456789ab -j MASQUERADE",
             "-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER"]
    added, chains = d.docker_rules(after, before)
    assert chains == ["DOCKER"]
    assert added == after[2:]


def test_policies() -> None:
    assert d.policies(AFTER) == {"INPUT": "ACCEPT", "FORWARD": "DROP", "OUTPUT": "ACCEPT"}
    assert d.policies(BEFORE)["FORWARD"] == "ACCEPT"
