"""`make e2e-kind` where Docker or kind is missing: it says so and fails, without side effects."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_e2e_kind_explains_what_is_missing(tmp_path: Path) -> None:
    # A PATH with only the basics: no docker, no kind.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "env", "dirname", "mktemp"):
        for base in ("/usr/bin", "/bin"):
            if (Path(base) / tool).exists():
                (bin_dir / tool).symlink_to(Path(base) / tool)
                break
    res = subprocess.run([str(ROOT / "scripts" / "e2e-kind.sh")], env={**os.environ, "PATH": str(bin_dir)},
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2
    assert "'docker' is not installed" in res.stderr and "kind" in res.stderr
