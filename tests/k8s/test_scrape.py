"""The operator's reads of serving pods stop at a cap: an answer over it is
refused with a logged reason, and memory never holds more than the cap."""

from __future__ import annotations

import logging
import threading
import tracemalloc
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from modelship.k8s import scrape

CAP = 256 * 1024
CHUNK = b"x" * 65536
FLOOD_CHUNKS = 1024  # 64 MiB at most: a bounded flood, far over the cap


class Pod(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        try:
            if self.path == "/metrics":
                body = b"modelship_requests_total 1\n"
                self._head({"Content-Length": str(len(body))})
                self.wfile.write(body)
            elif self.path == "/declared":  # says it is big, up front
                self._head({"Content-Length": str(64 * 1024 * 1024)})
                for _ in range(FLOOD_CHUNKS):
                    self.wfile.write(CHUNK)
            elif self.path == "/flood":  # no length: a chunked stream that goes on
                self._head({"Transfer-Encoding": "chunked"})
                for _ in range(FLOOD_CHUNKS):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the reader stopped at its cap

    def _head(self, headers: dict[str, str]) -> None:
        self.send_response(200)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()


@pytest.fixture(scope="module")
def pod() -> Iterator[tuple[dict[str, object], int]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Pod)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"metadata": {"name": "loans-abc-1"}, "status": {"podIP": "127.0.0.1", "phase": "Running"}}, \
            server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_an_answer_under_the_cap_is_read(pod: tuple[dict[str, object], int]) -> None:
    body, port = pod
    assert scrape.fetch(body, 5, port, max_bytes=CAP) == "modelship_requests_total 1\n"
    assert scrape.scrape([body], 5, port, max_bytes=CAP) == {"loans-abc-1": "modelship_requests_total 1\n"}


@pytest.mark.parametrize("path", ["/declared", "/flood"])
def test_an_answer_over_the_cap_is_refused_without_holding_it(
        pod: tuple[dict[str, object], int], path: str, caplog: pytest.LogCaptureFixture) -> None:
    body, port = pod
    caplog.set_level(logging.WARNING, logger=scrape.__name__)
    tracemalloc.start()
    try:
        assert scrape.fetch(body, 10, port, path=path, max_bytes=CAP) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * CAP, f"reading {path} peaked at {peak} bytes for a cap of {CAP}"
    assert any(f"Refused {path} of pod loans-abc-1" in r.getMessage() and "MODELSHIP_SCRAPE_MAX_BYTES" in r.getMessage()
               for r in caplog.records), caplog.text


def test_the_default_cap_is_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelship.settings import OperatorSettings

    assert OperatorSettings().scrape_max_bytes == 4 * 1024 * 1024
    monkeypatch.setenv("MODELSHIP_SCRAPE_MAX_BYTES", "65536")
    scrape.default_max_bytes.cache_clear()
    try:
        assert scrape.default_max_bytes() == 65536
    finally:
        scrape.default_max_bytes.cache_clear()
