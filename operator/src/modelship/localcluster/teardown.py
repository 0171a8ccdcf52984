"""Removing what the node leaves behind, and only that.

Pods are stopped through the CRI so the CNI plugin's DEL runs; afterwards
we remove what is left from a run that was killed: shims and container
processes, mounts under the data dir, `cni-*` netns, `cni0` and its veths,
kube-proxy's nftables tables, the CNI plugin's `CNI-*` and the kubelet's
`KUBE-*` iptables chains, the kubelet's `kubepods` cgroups, and nftables
tables that did not exist before the first `up` (iptables-nft makes them).
Every function is safe to run twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

from modelship.localcluster import paths as cache_paths
from modelship.localcluster import procs
from modelship.localcluster.paths import ClusterPaths

CHAIN = re.compile(r"^(CNI-|KUBE-)")
# Host directories the runtime and kubelet create when missing; removed at
# the end only if they did not exist before and are empty again.
HOST_DIRS = ("/var/lib/cni/results", "/var/lib/cni", "/var/log/containers", "/var/log/pods", "/var/run/netns",
             "/run/containerd/s", "/run/containerd")


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=60)


def nft_tables() -> list[str]:
    if not shutil.which("nft"):
        return []
    out = _run("nft", "list", "tables").stdout
    return [ln.removeprefix("table ").strip() for ln in out.splitlines() if ln.startswith("table ")]


def record_host_before(p: ClusterPaths) -> None:
    """What the host had before our first `up`, so teardown removes only what we made."""
    f = p.run / "host-before.json"
    if not f.exists():
        f.write_text(json.dumps({"nft_tables": nft_tables(),
                                 "dirs": [d for d in HOST_DIRS if Path(d).exists()]}))


def stop_pods(p: ClusterPaths) -> None:
    """Stop and remove every pod sandbox through the CRI (runs CNI DEL)."""
    if procs.running_pid(p, "containerd") is None or not cache_paths.cri_stop_bin().exists():
        return
    res = _run(str(cache_paths.cri_stop_bin()), f"unix://{p.containerd_sock}")
    (p.logs / "cri-stop-all.log").write_text(res.stdout + res.stderr)


def _pids_of_shims(p: ClusterPaths) -> list[int]:
    out = []
    needle = str(p.containerd_sock).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"containerd-shim" in cmd.split(b"\0")[0] and needle in cmd:
            out.append(int(proc.name))
    return out


def _cgroup_roots() -> list[Path]:
    base = Path("/sys/fs/cgroup")
    if (base / "cgroup.controllers").exists():
        return [base / "kubepods.slice", base / "kubepods"]
    return [d / "kubepods" for d in base.iterdir() if d.is_dir()] + \
        [d / "kubepods.slice" for d in base.iterdir() if d.is_dir()]


def _kill_cgroup_procs() -> None:
    pids: set[int] = set()
    for root in _cgroup_roots():
        if root.exists():
            for procs_file in root.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    pids.update(int(x) for x in procs_file.read_text().split())
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if pids:
        time.sleep(0.5)


def _remove_cgroups() -> None:
    for root in _cgroup_roots():
        if not root.exists():
            continue
        for d in sorted((x for x in root.rglob("*") if x.is_dir()), key=lambda x: -len(x.parts)):
            with contextlib.suppress(OSError):
                d.rmdir()
        with contextlib.suppress(OSError):
            root.rmdir()


def _unmount_under(prefixes: list[str]) -> None:
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = line.split()[4].replace("\\040", " ")
        if any(mp == pre or mp.startswith(pre.rstrip("/") + "/") for pre in prefixes):
            mounts.append(mp)
    for mp in sorted(set(mounts), key=lambda m: -len(m)):
        _run("umount", "-l", mp)


def _cni_netns() -> list[str]:
    d = Path("/var/run/netns")
    return sorted(x.name for x in d.iterdir() if x.name.startswith("cni-")) if d.exists() else []


def after_containerd(p: ClusterPaths) -> None:
    procs.kill_pids(_pids_of_shims(p))
    _kill_cgroup_procs()
    _unmount_under([str(p.data), "/run/containerd/io.containerd", str(p.containerd_state)])
    for ns in _cni_netns():
        _run("umount", "-l", f"/var/run/netns/{ns}")
        _run("ip", "netns", "delete", ns)
    if Path("/sys/class/net/cni0").exists():
        for veth in Path("/sys/class/net/cni0/brif").iterdir() if Path("/sys/class/net/cni0/brif").exists() else []:
            _run("ip", "link", "delete", veth.name)
        _run("ip", "link", "delete", "cni0")
    _remove_cgroups()
    # libcni's cache of our networks ("modelship", containerd's loopback); a killed run never ran DEL.
    results = Path("/var/lib/cni/results")
    if results.is_dir():
        for f in [*results.glob("modelship-*"), *results.glob("cni-loopback-*")]:
            f.unlink(missing_ok=True)
    shutil.rmtree(p.containerd_state, ignore_errors=True)
    p.containerd_sock.unlink(missing_ok=True)
    Path(f"{p.containerd_sock}.ttrpc").unlink(missing_ok=True)
    shutil.rmtree(p.cni_ipam, ignore_errors=True)


def _remove_log_links(p: ClusterPaths) -> None:
    """The kubelet links /var/log/containers/* to our pod logs; drop links into our data dir."""
    d = Path("/var/log/containers")
    if d.is_dir():
        for link in d.iterdir():
            if link.is_symlink() and os.readlink(link).startswith(str(p.data)):
                link.unlink()


def after_kube_proxy(p: ClusterPaths) -> None:
    for family in ("ip", "ip6"):
        if f"{family} kube-proxy" in nft_tables():
            _run("nft", "delete", "table", family, "kube-proxy")


def remove_chains() -> None:
    """Delete rules jumping to CNI-*/KUBE-* chains, then those chains (iptables and ip6tables)."""
    for tool in ("iptables", "ip6tables"):
        if not shutil.which(tool):
            continue
        for table in ("nat", "filter", "mangle"):
            rules = _run(tool, "-w", "-t", table, "-S").stdout.splitlines()
            ours = {r.split()[1] for r in rules if r.startswith("-N ") and CHAIN.match(r.split()[1])}
            if not ours:
                continue
            for r in rules:
                parts = shlex.split(r)  # comments are quoted: "CNI firewall plugin rules"
                if parts[0] == "-A" and parts[1] not in ours and ("-j" in parts and
                                                                 parts[parts.index("-j") + 1] in ours):
                    _run(tool, "-w", "-t", table, "-D", *parts[1:])
            for chain in ours:
                _run(tool, "-w", "-t", table, "-F", chain)
            for chain in ours:
                _run(tool, "-w", "-t", table, "-X", chain)


def final_cleanup(p: ClusterPaths) -> None:
    """After every step stopped: chains, tables we made, leftovers of a killed run."""
    after_containerd(p)
    after_kube_proxy(p)
    remove_chains()
    before_file = p.run / "host-before.json"
    _remove_log_links(p)
    before = json.loads(before_file.read_text()) if before_file.exists() else None
    if before is not None:
        for table in nft_tables():
            if table not in before["nft_tables"]:
                family, name = table.split(None, 1)
                _run("nft", "delete", "table", family, name)
        for d in HOST_DIRS:
            if d not in before.get("dirs", HOST_DIRS):
                with contextlib.suppress(OSError):
                    Path(d).rmdir()
        before_file.unlink()


def leftovers(p: ClusterPaths) -> list[str]:
    """What a clean shutdown must not leave; empty when the host is clean."""
    found = []
    for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "containerd",
                 "kubelet", "kube-proxy"):
        if procs.running_pid(p, name) is not None:
            found.append(f"process {name}")
    if _pids_of_shims(p):
        found.append("containerd shims")
    found += [f"nft table {t}" for t in nft_tables() if "kube" in t]
    found += [f"netns {n}" for n in _cni_netns()]
    if Path("/sys/class/net/cni0").exists():
        found.append("link cni0")
    found += [f"link {n.name}" for n in Path("/sys/class/net").iterdir() if n.name.startswith("veth")]
    for tool in ("iptables", "ip6tables"):
        for table in ("nat", "filter", "mangle"):
            if shutil.which(tool):
                found += [f"{tool} -t {table} {ln}" for ln in _run(tool, "-w", "-t", table, "-S").stdout.splitlines()
                          if ln.startswith("-N ") and CHAIN.match(ln.split()[1])]
    data = str(p.data)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = line.split()[4]
        if mp.startswith(data) or "/run/netns/cni-" in mp:
            found.append(f"mount {mp}")
    found += [f"cgroup {r}" for r in _cgroup_roots() if r.exists()]
    results = Path("/var/lib/cni/results")
    found += [f"CNI cache {f}" for f in [*results.glob("modelship-*"), *results.glob("cni-loopback-*")]] \
        if results.is_dir() else []
    return found
