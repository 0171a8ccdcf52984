"""`make demo` (host stage): the quickstart trains, serves and shows drift, as a user sees it."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelship.demo import run


@pytest.mark.slow
def test_demo_trains_serves_and_shows_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["--host-only", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "✗" not in out
    assert "gate onnxParity: passed" in out
    assert "POST /v1/models/loans:predict → 200" in out
    drifted = {line.split()[0] for line in out.splitlines() if line.rstrip().endswith("DRIFT")}
    assert {"income", "debt_ratio", "region"} <= drifted
    assert not drifted & {"age", "loan_amount", "credit_lines"}
    assert (tmp_path / "artifacts" / "loans-1" / "metadata.json").exists()
