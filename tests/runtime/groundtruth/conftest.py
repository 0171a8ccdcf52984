"""Fixtures: a loan model trained by the real trainer once per session, a window, an HTTP file server."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import functools
import http.server
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import onnxruntime as ort
import pytest
from groundtruth_helpers import Loans, loan_spec

from modelship.demo import data
from modelship_runtime.artifacts.store import read_metadata


@pytest.fixture(scope="session")
def loans(tmp_path_factory: pytest.TempPathFactory) -> Loans:
    from modelship_runtime.training import train

    root = tmp_path_factory.mktemp("loans")
    (root / "train.csv").write_bytes(data.to_csv(4000, seed=7))
    out = f"file://{root}/artifact/"
    result = train.run(loan_spec(f"file://{root}/train.csv"), out, log=lambda _: None)
    assert result.passed
    md = read_metadata(out)
    return Loans(out, md, ort.InferenceSession(str(root / "artifact" / "model.onnx")))


@pytest.fixture
def window() -> Iterator[tuple[datetime, datetime]]:
    start = datetime.now(UTC).replace(microsecond=0)
    yield start, datetime.fromtimestamp(time.time() + 3600, UTC)


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served over HTTP on 127.0.0.1; yields it and its base URL."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
