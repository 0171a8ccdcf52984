"""The end-to-end tests' load generator (no cluster): a paced Load sends at the rate
asked, so a bound on failed requests "at 50 req/s" means what it says, and every
outcome is counted (a refused connection is a failed request)."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator

import pytest
from helpers import Load, post

from modelship.demo.stack import free_port


class Answer(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        fail = self.path.startswith("/fail")
        payload = json.dumps({"error": "injected"} if fail else {"predictions": [1]}).encode()
        self.send_response(500 if fail else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()


def test_a_paced_load_sends_at_the_rate_asked(server: str) -> None:
    with Load(f"{server}/ok", threads=4, rate=50) as load:
        time.sleep(2)
    assert load.failed == 0, load.failures
    assert 85 <= load.sent <= 110, load.sent  # 2 s at 50 req/s, the first of each thread at once
    assert 40 <= load.achieved_rate <= 55


def test_every_outcome_is_counted(server: str) -> None:
    with Load(f"{server}/fail", threads=2, rate=20) as load:
        time.sleep(1)
    assert load.ok == 0 and load.failed == load.sent > 10
    assert load.failures[0].startswith("500 {'error': 'injected'}")
    with Load(f"http://127.0.0.1:{free_port()}/nothing-listens", threads=1, rate=20) as refused:
        time.sleep(0.5)
    assert refused.ok == 0 and refused.failed > 3, refused.failures
    assert post(f"{server}/ok", {"instances": [[1]]}) == (200, {"predictions": [1]})
