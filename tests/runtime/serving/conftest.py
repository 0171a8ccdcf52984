"""Fixtures: test artifacts built once per session, and modelship-serve processes on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import serve_models

REPO = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One modelship-serve process; stopped (SIGTERM, then SIGKILL) by the fixture."""

    def __init__(self, uri: str, *args: str, env: dict[str, str] | None = None, log: Path | None = None,
                 port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.grpc_port = free_port()
        self.grpc_target = f"127.0.0.1:{self.grpc_port}"
        self.log = log
        full_env = {**os.environ, "MODELSHIP_DRAIN_SECONDS": "0.2", **(env or {})}
        cmd = [sys.executable, "-m", "modelship_runtime.serving.cli", "--model-uri", uri,
               "--host", "127.0.0.1", "--port", str(self.port), "--grpc-port", str(self.grpc_port), *args]
        self._log_file = log.open("wb") if log else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, env=full_env, stdout=self._log_file, stderr=self._log_file)
        self.http = requests.Session()

    def wait_live(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log_text()}")
            try:
                if requests.get(self.url + "/v2/health/live", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise TimeoutError("server did not come up")

    def wait_ready(self, timeout: float = 30.0) -> None:
        self.wait_live(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if requests.get(self.url + "/v2/health/ready", timeout=1).status_code == 200:
                return
            time.sleep(0.05)
        raise TimeoutError(f"server did not become ready: {self.log_text()}")

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.http.get(self.url + path, timeout=10, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.http.post(self.url + path, timeout=10, **kw)

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log and self.log.exists() else ""

    def stop(self) -> int:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if hasattr(self._log_file, "close"):
            self._log_file.close()
        return int(self.proc.returncode)


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("artifacts")
    return {
        "logistic": serve_models.build_logistic(root / "logistic"),
        "forest": serve_models.build_forest(root / "forest", trees=20),
        "regression": serve_models.build_regression(root / "regression"),
        "mixed": serve_models.build_mixed(root / "mixed"),
        "bare": serve_models.build_bare(root / "bare" / "churn.onnx"),
        "types": serve_models.build_types(root / "types" / "types.onnx"),
    }


@pytest.fixture(scope="session")
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    started: list[Server] = []
    logs = tmp_path_factory.mktemp("logs")

    def start(uri: str, *args: str, ready: bool = True, env: dict[str, str] | None = None) -> Server:
        server = Server(uri, *args, env=env, log=logs / f"server-{len(started)}.log")
        started.append(server)
        if ready:
            server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()


def _uri(path: Path) -> str:
    return path.as_uri()


@pytest.fixture(scope="session")
def logistic(artifacts: dict[str, Path], start_server: Any) -> Server:
    return start_server(_uri(artifacts["logistic"]))  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def regression(artifacts: dict[str, Path], start_server: Any) -> Server:
    return start_server(_uri(artifacts["regression"]))  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def mixed(artifacts: dict[str, Path], start_server: Any) -> Server:
    return start_server(_uri(artifacts["mixed"]))  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def forest(artifacts: dict[str, Path], start_server: Any) -> Server:
    return start_server(_uri(artifacts["forest"]))  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def bare(artifacts: dict[str, Path], start_server: Any) -> Server:
    # A plain path, not a URI: bring-your-own models come in every form.
    return start_server(str(artifacts["bare"]))  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def types_server(artifacts: dict[str, Path], start_server: Any) -> Server:
    return start_server(_uri(artifacts["types"]))  # type: ignore[no-any-return]
