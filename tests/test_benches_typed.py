"""The benches run in ``make bench``, never in CI: type-checking them here is what catches a bench
broken by a change to what it calls. The prediction-log bench once called a shared helper with its
old arguments for a day, unseen until someone ran it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benches_type_check() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "benches"], cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
