"""The runtime dockerd uses on this host: it drops capabilities the bounding set lacks from the
spec, then runs runc with exactly the arguments it was given."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from modelship.kindcluster import runc_wrapper as w
from modelship.kindcluster.dockerhost import wrapper_source

ALL = ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_SYS_RESOURCE", "CAP_NET_ADMIN"]


@pytest.mark.parametrize(("args", "expected"), [
    (["--root", "/run/r", "--log", "/l.json", "--log-format", "json", "create", "--bundle", "/b", "id"], ("create", 6)),
    (["--systemd-cgroup", "run", "-b", "/b", "id"], ("run", 1)),
    (["exec", "--process", "/p.json", "id"], ("exec", 0)),
    (["--debug", "state", "id"], ("state", 1)),
    (["--version"], (None, 1)),
    ([], (None, 0)),
])
def test_subcommand(args: list[str], expected: tuple[str | None, int]) -> None:
    assert w.subcommand(args) == expected


@pytest.mark.parametrize(("args", "expected"), [
    (["--root", "/r", "create", "--bundle", "/b", "--pid-file", "/p", "id"], "/b/config.json"),
    (["create", "--bundle=/b2", "id"], "/b2/config.json"),
    (["run", "-b", "/b3", "id"], "/b3/config.json"),
    (["create", "id"], "/cwd/config.json"),  # no --bundle: the working directory is the bundle
    (["exec", "--detach", "--process", "/tmp/p.json", "id"], "/tmp/p.json"),
    (["exec", "-p", "/tmp/q.json", "id"], "/tmp/q.json"),
    (["exec", "id", "sh"], None),  # the command line, not a spec file
    (["start", "id"], None),
    (["delete", "--force", "id"], None),
    (["--root", "/create", "state", "id"], None),  # a global option's value is not the subcommand
])
def test_spec_file(args: list[str], expected: str | None) -> None:
    assert w.spec_file(args, "/cwd") == expected


@pytest.mark.parametrize(("process", "changed", "after"), [
    ({"capabilities": {k: list(ALL) for k in ("bounding", "effective", "permitted")}}, True,
     {"capabilities": {k: ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_NET_ADMIN"] for k in ("bounding", "effective", "permitted")}}),
    ({"capabilities": {"bounding": ["CAP_CHOWN"]}}, False, {"capabilities": {"bounding": ["CAP_CHOWN"]}}),
    ({"args": ["sh"]}, False, {"args": ["sh"]}),
])
def test_drop_capabilities(process: dict[str, Any], changed: bool, after: dict[str, Any]) -> None:
    assert w.drop_capabilities(process, ("CAP_SYS_RESOURCE",)) is changed
    assert process == after


def test_installed_wrapper_rewrites_the_bundle_then_execs_runc_with_the_same_args(tmp_path: Path) -> None:
    # A stand-in runc that records what it was called with and what the spec said then.
    record = tmp_path / "record.json"
    fake_runc = tmp_path / "runc"
    fake_runc.write_text(f"""#!{sys.executable}
import json, sys
bundle = sys.argv[sys.argv.index("--bundle") + 1]
spec = json.load(open(bundle + "/config.json"))
json.dump({{"argv": sys.argv[1:], "caps": spec["process"]["capabilities"]}}, open({str(record)!r}, "w"))
""")
    fake_runc.chmod(0o755)
    wrapper = tmp_path / "modelship-runc"
    wrapper.write_text(wrapper_source(str(fake_runc), ("CAP_SYS_RESOURCE",), python=sys.executable))
    wrapper.chmod(0o755)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps(
        {"ociVersion": "1.0.2", "process": {"capabilities": {"bounding": ALL, "effective": ALL}}}))
    args = ["--root", "/run/x", "--log", str(tmp_path / "log.json"), "--log-format", "json", "create",
            "--bundle", str(bundle), "--pid-file", str(tmp_path / "pid"), "ctr-1"]
    res = subprocess.run([str(wrapper), *args], capture_output=True, text=True, timeout=30,
                         env={**os.environ, "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    seen = json.loads(record.read_text())
    assert seen["argv"] == args
    assert seen["caps"] == {"bounding": ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_NET_ADMIN"],
                            "effective": ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_NET_ADMIN"]}
    assert json.loads((bundle / "config.json").read_text())["ociVersion"] == "1.0.2"  # the rest untouched
    assert not list(bundle.glob("*.modelship-tmp"))
