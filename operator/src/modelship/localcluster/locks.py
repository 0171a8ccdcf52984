"""Machine-wide file locks (flock) that serialise what must not run twice at once.

Two locks, always taken in this order when both are held: the *session*
lock (one local cluster per machine: its ports and its data dir are the
machine's) and then the *build* lock (one ``local build`` at a time: two
builds write the same cache). A build never waits for the session lock, so
the order cannot invert; the demo builds first and releases the build lock
before its cluster session starts, so a cold build does not hold the cluster
away from other sessions for tens of minutes.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from modelship.localcluster import paths

POLL_SECONDS = 2.0  # how often a waiter tries again


def session_lock_path() -> Path:
    return paths.cache_root() / "local-cluster-session.lock"


def build_lock_path() -> Path:
    return paths.cache_root() / "build.lock"


def held(path: Path) -> bool:
    """Whether some open file (this process's or another's) holds the lock at ``path``."""
    if not path.exists():
        return False
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


@contextmanager
def flock(path: Path, timeout: float, what: str, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold an exclusive flock on ``path``; wait up to ``timeout`` s for another holder.

    ``on_wait`` is told once, with a sentence naming ``what`` waits, when the
    lock is busy (so a person sees why nothing happens)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        deadline = time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"another process held {path} for over {timeout:.0f}s ({what})") from None
                if on_wait and not told:
                    on_wait(f"   waiting for {what} ({path} is held by another process)")
                    told = True
                time.sleep(POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
