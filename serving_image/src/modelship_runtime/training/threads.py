"""How many threads the trainer's native libraries may use.

OpenMP (HistGradientBoosting) and BLAS default to every core of the node; in
a pod with a CPU limit their threads outnumber the CPUs and wait on each
other. The trainer caps them at the CPUs it may use:
``MODELSHIP_TRAIN_THREADS``, else the cgroup quota, else the affinity mask.
(The CLI also makes OpenMP wait passively; see ``cli.main``.)
"""

from __future__ import annotations

import math
import os
from pathlib import Path

ENV = "MODELSHIP_TRAIN_THREADS"


def _cgroup_cpus() -> float | None:
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        q = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        p = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return q / p if q > 0 and p > 0 else None
    except (OSError, ValueError):
        return None


def available() -> int:
    """Threads to allow: at least one."""
    raw = os.environ.get(ENV, "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    quota = _cgroup_cpus()
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)
