"""Docker on this host, for kind: installed from Debian (docker.io), started by
us as root, stopped at the end with what it left on the host removed, and
only that.

dockerd is started with its own config (``daemon_config``): no default
bridge (kind makes its own network), and, where the host's capability
bounding set lacks capabilities Docker grants privileged containers (here
CAP_SYS_RESOURCE), ``runc_wrapper`` as the default runtime. What the host had
before is recorded when we start dockerd (``HostState``); ``cleanup`` removes
what Docker added since (its iptables chains and rules, the policy it set on
FORWARD, bridges, nftables tables that did not exist, sysctls, directories it
created) and ``leftovers`` lists anything still there. A dockerd we did not
start (a CI runner's) is used as it is and left running.
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from modelship.localcluster import detect, paths, versions
from modelship.localcluster.status import StepFailed, line

RUNTIME = "modelship-runc"
SOCKET = Path("/var/run/docker.sock")
DOCKER_DIRS = ("/var/run/docker", "/run/docker", "/var/lib/docker/overlay2", "/var/lib/docker/containers")
SYSCTLS = ("net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding", "net/bridge/bridge-nf-call-iptables",
           "net/bridge/bridge-nf-call-ip6tables")
# Host paths Docker (or a kind node's bind mounts) creates when missing; removed at the end when we made them.
HOST_DIRS = ("/lib/modules",)
TABLES = ("filter", "nat", "mangle", "raw")
DOCKER_CHAIN = re.compile(r"^DOCKER")
DOCKER_LINK = re.compile(r"^(docker0|br-[0-9a-f]{12}|veth[0-9a-f]+)$")
DOCKER_IFACE_IN_RULE = re.compile(r"\s-[io] (docker0|br-[0-9a-f]{12})\b")

# Linux capability numbers → names (capability.h), for the ones Docker grants privileged containers.
CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)


def state_dir() -> Path:
    return paths.cache_root() / "kind"


def _run(*argv: str, timeout: float = 60, check: bool = False, stdin: str | None = None
         ) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=timeout, input=stdin)
    if check and res.returncode != 0:
        raise StepFailed(f"{' '.join(argv[:3])} failed ({res.returncode}): {(res.stderr or res.stdout).strip()[-800:]}")
    return res


# --- installing -----------------------------------------------------------------------------


def installed() -> bool:
    return shutil.which("dockerd") is not None


def ensure_installed() -> bool:
    """docker.io from Debian when no dockerd is installed; True if it installed it. Package
    scripts are kept from starting the daemon (a policy-rc.d, as `make apt-tools` does)."""
    if installed():
        return False
    policy = Path("/usr/sbin/policy-rc.d")
    had_policy = policy.exists()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        if not had_policy:
            policy.write_text("#!/bin/sh\nexit 101\n")
            policy.chmod(0o755)
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
        res = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                              *versions.KIND_APT_PACKAGES], env=env, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise StepFailed(f"apt-get install {' '.join(versions.KIND_APT_PACKAGES)} failed: {res.stderr[-800:]}")
    finally:
        if not had_policy:
            policy.unlink(missing_ok=True)
    return True


# --- the runtime and the daemon's config ----------------------------------------------------------


def missing_capabilities(status: str | None = None, last_cap: int | None = None) -> tuple[str, ...]:
    """Capabilities Docker grants privileged containers (those the kernel knows, up to
    cap_last_cap) that this process's bounding set lacks."""
    text = status if status is not None else Path("/proc/self/status").read_text()
    if last_cap is None:
        last_cap = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    bounding = next(int(ln.split()[1], 16) for ln in text.splitlines() if ln.startswith("CapBnd:"))
    return tuple(name for bit, name in enumerate(CAPABILITIES[:last_cap + 1]) if not bounding >> bit & 1)


def wrapper_source(runc: str, drop: tuple[str, ...], python: str = "/usr/bin/python3") -> str:
    """runc_wrapper.py with its interpreter, runc and the capabilities to drop filled in."""
    src = (Path(__file__).with_name("runc_wrapper.py")).read_text()
    src = src.replace("#!/usr/bin/python3", f"#!{python} -I", 1)
    src = re.sub(r'^RUNC = .*$', f"RUNC = {runc!r}", src, count=1, flags=re.M)
    return re.sub(r'^DROP: .*$', f"DROP: tuple[str, ...] = {drop!r}", src, count=1, flags=re.M)


def daemon_config(runtime_path: str | None) -> dict[str, Any]:
    """dockerd's settings: no default bridge (no docker0: kind makes its own network), overlay2,
    and our runtime as the default one where the host needs it."""
    config: dict[str, Any] = {
        "bridge": "none",
        "storage-driver": "overlay2",
        "iptables": True,
        "ip6tables": False,
        "log-driver": "json-file",
        "log-opts": {"max-size": "10m", "max-file": "2"},
    }
    if runtime_path:
        config["runtimes"] = {RUNTIME: {"path": runtime_path}}
        config["default-runtime"] = RUNTIME
    return config


def write_config() -> Path:
    state_dir().mkdir(parents=True, exist_ok=True)
    drop = missing_capabilities()
    runtime_path = None
    if drop:
        runc = shutil.which("runc") or "/usr/sbin/runc"
        python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else os.path.realpath(shutil.which("python3")
                                                                                              or "/usr/bin/python3")
        wrapper = state_dir() / "bin" / RUNTIME
        wrapper.parent.mkdir(parents=True, exist_ok=True)
        wrapper.write_text(wrapper_source(runc, drop, python))
        wrapper.chmod(0o755)
        runtime_path = str(wrapper)
    config = state_dir() / "daemon.json"
    config.write_text(json.dumps(daemon_config(runtime_path), indent=1) + "\n")
    return config


# --- running ------------------------------------------------------------------------------------


def pidfile() -> Path:
    return state_dir() / "dockerd.pid"


def our_pid() -> int | None:
    """The dockerd we started, if it still runs."""
    try:
        pid = int(pidfile().read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid in detect.dockerd_pids() else None


def answers() -> bool:
    return _run("docker", "version", "--format", "{{.Server.Version}}", timeout=20).returncode == 0


def start() -> bool:
    """Start dockerd unless one runs; True if we started it (then we stop it in `stop`)."""
    if our_pid() is not None:
        return True
    if detect.dockerd_pids():
        if not answers():
            raise StepFailed("a dockerd runs but `docker version` gets no answer from it")
        line("   using the dockerd that was already running (left running at the end)")
        return False
    record_host_before()
    config = write_config()
    log = state_dir() / "logs" / "dockerd.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen([shutil.which("dockerd") or "dockerd", "--config-file", str(config),
                                 "--pidfile", str(pidfile())], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StepFailed(f"dockerd exited ({proc.returncode}); see {log}:\n{_tail(log)}")
        if answers():
            return True
        time.sleep(0.5)
    raise StepFailed(f"dockerd did not answer within 60 s; see {log}:\n{_tail(log)}")


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def remove_all_containers_and_networks() -> None:
    """Everything a dockerd we started holds (we started it, so all of it is ours)."""
    ids = _run("docker", "ps", "-aq").stdout.split()
    if ids:
        _run("docker", "rm", "-f", "-v", *ids, timeout=180)
    nets = _run("docker", "network", "ls", "--filter", "type=custom", "-q").stdout.split()
    if nets:
        _run("docker", "network", "rm", *nets, timeout=60)


def stop() -> None:
    """Stop the dockerd we started (containers and networks first), then clean the host."""
    pid = our_pid()
    if pid is not None:
        if answers():
            remove_all_containers_and_networks()
        for sig, wait in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and pid in detect.dockerd_pids():  # an exited one is a zombie: not in it
                time.sleep(0.2)
            _reap(pid)
            if pid not in detect.dockerd_pids():
                break
    pidfile().unlink(missing_ok=True)
    if not detect.dockerd_pids():
        _kill_docker_children()
        cleanup()


def _reap(pid: int) -> None:
    """Collect the exit of the dockerd this process started (otherwise it stays a zombie)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _docker_child_pids() -> list[int]:
    """docker's own containerd and the shims of its containers (namespace moby)."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        joined = b" ".join(argv)
        if argv and (b"/var/run/docker/containerd" in joined or b"/run/docker/containerd" in joined
                     or (b"containerd-shim" in argv[0] and b"moby" in joined)):
            out.append(int(proc.name))
    return out


def _kill_docker_children() -> None:
    for pid in _docker_child_pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# --- the host before and after ---------------------------------------------------------------------


@dataclass
class HostState:
    """What Docker may change on the host, as found."""

    links: list[str] = field(default_factory=list)
    rules: dict[str, list[str]] = field(default_factory=dict)  # "iptables filter" -> `iptables -S` lines
    nft_tables: list[str] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    dirs: list[str] = field(default_factory=list)

    @classmethod
    def now(cls) -> HostState:
        rules = {}
        for tool in ("iptables", "ip6tables"):
            if shutil.which(tool):
                for table in TABLES:
                    res = _run(tool, "-w", "-t", table, "-S")
                    if res.returncode == 0:
                        rules[f"{tool} {table}"] = res.stdout.splitlines()
        sysctls = {}
        for name in SYSCTLS:
            with contextlib.suppress(OSError):
                sysctls[name] = (Path("/proc/sys") / name).read_text().strip()
        return cls(links=sorted(p.name for p in Path("/sys/class/net").iterdir()), rules=rules,
                   nft_tables=_nft_tables(), sysctls=sysctls, dirs=[d for d in HOST_DIRS if Path(d).exists()])

    @classmethod
    def load(cls, path: Path) -> HostState:
        return cls(**json.loads(path.read_text()))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1))


def _nft_tables() -> list[str]:
    if not shutil.which("nft"):
        return []
    out = _run("nft", "list", "tables").stdout
    return sorted(ln.removeprefix("table ").strip() for ln in out.splitlines() if ln.startswith("table "))


def before_file() -> Path:
    return state_dir() / "host-before.json"


def record_host_before() -> None:
    """Kept from the first start until a cleanup succeeds, so a killed run is cleaned up against it."""
    if not before_file().exists():
        HostState.now().save(before_file())


def docker_rules(now: list[str], before: list[str]) -> tuple[list[str], list[str]]:
    """(rules to delete, chains to remove) of one table: rules Docker added since ``before``
    (jumps to its chains, rules on its bridges) and its DOCKER* chains."""
    chains = [r.split()[1] for r in now if r.startswith("-N ") and DOCKER_CHAIN.match(r.split()[1])
              and r not in before]
    added = []
    for rule in now:
        if not rule.startswith("-A ") or rule in before:
            continue
        parts = shlex.split(rule)
        target = parts[parts.index("-j") + 1] if "-j" in parts else ""
        if parts[1] in chains:
            continue  # goes with its chain
        if DOCKER_CHAIN.match(target) or DOCKER_IFACE_IN_RULE.search(rule):
            added.append(rule)
    return added, chains


def policies(rules: list[str]) -> dict[str, str]:
    return {r.split()[1]: r.split()[2] for r in rules if r.startswith("-P ")}


def cleanup() -> None:
    """Remove what Docker added to the host since ``record_host_before`` (safe to run twice)."""
    if not before_file().exists():
        return
    before = HostState.load(before_file())
    for link in sorted(Path("/sys/class/net").iterdir()):
        if DOCKER_LINK.match(link.name) and link.name not in before.links:
            _run("ip", "link", "delete", link.name)
    for key, old in before.rules.items():
        tool, table = key.split()
        now = _run(tool, "-w", "-t", table, "-S").stdout.splitlines()
        added, chains = docker_rules(now, old)
        for rule in added:
            _run(tool, "-w", "-t", table, "-D", *shlex.split(rule)[1:])
        for chain in chains:
            _run(tool, "-w", "-t", table, "-F", chain)
        for chain in chains:
            _run(tool, "-w", "-t", table, "-X", chain)
        for chain, policy in policies(old).items():
            if policies(now).get(chain) not in (None, policy):
                _run(tool, "-w", "-t", table, "-P", chain, policy)
    for table in _nft_tables():
        if table not in before.nft_tables:
            family, name = table.split(None, 1)
            _run("nft", "delete", "table", family, name)
    for name, value in before.sysctls.items():
        with contextlib.suppress(OSError):
            (Path("/proc/sys") / name).write_text(value + "\n")
    for d in HOST_DIRS:
        if d not in before.dirs:
            with contextlib.suppress(OSError):
                Path(d).rmdir()
    for mount in _docker_mounts():
        _run("umount", "-l", mount)
    if not leftovers(before):
        before_file().unlink(missing_ok=True)


def _docker_mounts() -> list[str]:
    found = []
    for ln in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = ln.split()[4]
        if any(mp == d or mp.startswith(d + "/") for d in DOCKER_DIRS):
            found.append(mp)
    return sorted(set(found), key=len, reverse=True)


def leftovers(before: HostState) -> list[str]:
    """What a stopped Docker must not leave behind; empty when the host is as it was."""
    now = HostState.now()
    found = [f"process dockerd {pid}" for pid in detect.dockerd_pids()]
    found += [f"process {pid} of docker's containerd" for pid in _docker_child_pids()]
    found += [f"link {link}" for link in now.links if DOCKER_LINK.match(link) and link not in before.links]
    for key, rules in now.rules.items():
        old = before.rules.get(key, [])
        added, chains = docker_rules(rules, old)
        found += [f"{key}: chain {c}" for c in chains] + [f"{key}: {r}" for r in added]
        for chain, policy in policies(old).items():
            if policies(rules).get(chain) not in (None, policy):
                found.append(f"{key}: policy {chain} {policies(rules)[chain]} (was {policy})")
    found += [f"nft table {t}" for t in now.nft_tables if t not in before.nft_tables]
    found += [f"sysctl {k}={v} (was {before.sysctls[k]})" for k, v in now.sysctls.items()
              if k in before.sysctls and before.sysctls[k] != v]
    found += [f"directory {d}" for d in now.dirs if d not in before.dirs]
    found += [f"mount {m}" for m in _docker_mounts()]
    return found
