"""Kernel and host facts, detected rather than assumed."""

from __future__ import annotations

import os
import socket
from pathlib import Path

CAP_SYS_RESOURCE = 24


def cgroup_version() -> int:
    """2 for the unified hierarchy at /sys/fs/cgroup, else 1 (v1 or hybrid)."""
    return 2 if Path("/sys/fs/cgroup/cgroup.controllers").exists() else 1


def has_capability(cap: int) -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> cap & 1)
    return False


def primary_ip() -> str:
    """The address of the interface holding the default route (no packet is sent)."""
    for line in Path("/proc/net/route").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) > 2 and fields[1] == "00000000":
            iface = fields[0]
            ip = _iface_ipv4(iface)
            if ip:
                return ip
    # Fallback: UDP connect picks the source address without sending anything.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))
        return str(s.getsockname()[0])


def _iface_ipv4(iface: str) -> str | None:
    import fcntl
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", iface.encode()[:15]))  # SIOCGIFADDR
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])


def node_name() -> str:
    return socket.gethostname().lower().split(".")[0]


def is_root() -> bool:
    return os.geteuid() == 0


def port_in_use(port: int, host: str = "0.0.0.0") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def processes(proc: Path = Path("/proc")) -> list[tuple[int, str, str]]:
    """(pid, comm, exe) of every process we can see; exe is "" where it cannot be read."""
    out = []
    for entry in proc.iterdir() if proc.is_dir() else []:
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        try:
            exe = os.readlink(entry / "exe")
        except OSError:
            exe = ""
        out.append((int(entry.name), comm, exe))
    return sorted(out)


def _zombie(entry: Path) -> bool:
    """An exited process its parent has not reaped yet (state Z): it holds nothing."""
    try:
        return (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def dockerd_pids(proc: Path = Path("/proc")) -> list[int]:
    """Running Docker daemons, whoever started them (an exited, unreaped one is not running)."""
    return [pid for pid, comm, _ in processes(proc) if comm == "dockerd" and not _zombie(proc / str(pid))]


def pids_running_from(directory: Path, proc: Path = Path("/proc")) -> list[tuple[int, str]]:
    """(pid, name) of processes whose executable lies under ``directory``."""
    prefix = str(directory).rstrip("/") + "/"
    return [(pid, comm) for pid, comm, exe in processes(proc) if exe.startswith(prefix)]


def free_disk_gb(path: Path) -> float:
    path.mkdir(parents=True, exist_ok=True)
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize / 1e9
