"""Host processes of the cluster: start detached with a log and a pid file,
stop by pid file (checking the pid still runs our binary), wait with bounds."""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from modelship.localcluster.paths import ClusterPaths
from modelship.localcluster.status import StepFailed


def start(paths: ClusterPaths, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> int:
    paths.logs.mkdir(parents=True, exist_ok=True)
    paths.run.mkdir(parents=True, exist_ok=True)
    log = open(paths.logs / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(env or {})},
        cwd=paths.data,
    )
    log.close()
    (paths.run / f"{name}.pid").write_text(f"{proc.pid}\n{argv[0]}\n")
    return proc.pid


def running_pid(paths: ClusterPaths, name: str) -> int | None:
    """The pid from the pid file if that process still runs the recorded binary."""
    pidfile = paths.run / f"{name}.pid"
    try:
        pid_s, exe = pidfile.read_text().split("\n")[:2]
        pid = int(pid_s)
    except (OSError, ValueError):
        return None
    if _zombie(pid):
        return None
    try:
        if os.readlink(f"/proc/{pid}/exe") == exe:
            return pid
    except OSError:
        pass
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return None
    return pid if cmd == exe else None


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def stop(paths: ClusterPaths, name: str, timeout: float = 20.0) -> bool:
    """SIGTERM, then SIGKILL after `timeout`; True if something was stopped."""
    pid = running_pid(paths, name)
    if pid is not None:
        _signal_wait(pid, timeout)
    (paths.run / f"{name}.pid").unlink(missing_ok=True)
    return pid is not None


def _signal_wait(pid: int, timeout: float) -> None:
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if not Path(f"/proc/{pid}").exists() or _zombie(pid):
                return
            time.sleep(0.1)


def kill_pids(pids: Sequence[int], timeout: float = 5.0) -> None:
    for pid in pids:
        _signal_wait(pid, timeout)


def wait_until(what: str, check: Callable[[], bool], timeout: float, paths: ClusterPaths | None = None,
               name: str | None = None, interval: float = 0.25) -> None:
    """Poll `check` until true; fail with the log's tail when the process died or time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        if paths is not None and name is not None and _gone(paths, name):
            raise StepFailed(f"{name} exited; see {paths.logs / (name + '.log')}:\n{tail(paths, name)}")
        time.sleep(interval)
    where = f"; see {paths.logs / (name + '.log')}" if paths is not None and name else ""
    raise StepFailed(f"timed out after {timeout:.0f}s waiting for {what}{where}")


def _gone(paths: ClusterPaths, name: str) -> bool:
    """Not running, checked twice half a second apart (a process seen mid-exec is not gone)."""
    if running_pid(paths, name) is not None:
        return False
    time.sleep(0.5)
    return running_pid(paths, name) is None


def tail(paths: ClusterPaths, name: str, lines: int = 15) -> str:
    try:
        return "\n".join((paths.logs / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def tls_context(paths: ClusterPaths, client: str | None = "admin") -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(paths.pki / "ca.crt"))
    if client:
        ctx.load_cert_chain(str(paths.pki / f"{client}.crt"), str(paths.pki / f"{client}.key"))
    return ctx


def https_ok(url: str, ctx: ssl.SSLContext, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
