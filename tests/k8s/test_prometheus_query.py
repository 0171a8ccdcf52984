"""The Prometheus query's I/O: every failure is a PrometheusError with a message for a condition."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from modelship.demo.stack import free_port
from modelship.k8s.prometheus import instant_query
from modelship.logic.prometheus import PrometheusError

SEEN: list[dict[str, Any]] = []
OK = {"status": "success", "data": {"resultType": "vector", "result": []}}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        SEEN.append({"path": self.path, "form": urllib.parse.parse_qs(body),
                     "auth": self.headers.get("Authorization")})
        routes: dict[str, tuple[int, bytes]] = {
            "/api/v1/query": (200, json.dumps(OK).encode()),
            "/prefix/api/v1/query": (200, json.dumps(OK).encode()),
            "/bad/api/v1/query": (400, json.dumps({"status": "error", "errorType": "bad_data",
                                                   "error": "invalid parameter"}).encode()),
            "/html/api/v1/query": (200, b"<html>Grafana</html>"),
        }
        code, out = routes.get(self.path, (404, b"404 page not found"))
        if self.path == "/moved/api/v1/query":
            code, out = 302, b""
        self.send_response(code)
        if code == 302:
            self.send_header("Location", f"http://127.0.0.1:{self.server.server_port}/elsewhere")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def do_GET(self) -> None:  # where a followed redirect would land
        SEEN.append({"path": self.path, "form": {}, "auth": self.headers.get("Authorization")})
        self.send_response(200)
        self.send_header("Content-Length", str(len(json.dumps(OK))))
        self.end_headers()
        self.wfile.write(json.dumps(OK).encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = free_port()
    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_query_is_posted_as_a_form_and_the_answer_decoded(server: str, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    SEEN.clear()
    assert instant_query(server + "/prefix/", 'up{job="x"}', 2, str(token)) == OK
    assert SEEN == [{"path": "/prefix/api/v1/query", "form": {"query": ['up{job="x"}']}, "auth": "Bearer s3cret"}]
    assert instant_query(server, "up", 2) == OK and SEEN[-1]["auth"] is None


def test_an_error_answer_is_returned_for_the_logic_to_explain(server: str) -> None:
    assert instant_query(server + "/bad", "up(", 2)["errorType"] == "bad_data"


@pytest.mark.parametrize(("path", "match"), [
    ("/html", "did not answer with JSON"),
    ("/nothing", "answered HTTP 404"),
])
def test_a_wrong_url_says_so(server: str, path: str, match: str) -> None:
    with pytest.raises(PrometheusError, match=match) as err:
        instant_query(server + path, "up", 2)
    # What answered is not echoed into a status a DriftMonitor's editor reads: the operator may
    # reach services they cannot.
    assert "Grafana" not in str(err.value) and "page not found" not in str(err.value)


def test_a_redirect_is_not_followed_so_the_token_stays_where_it_was_sent(server: str, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    SEEN.clear()
    with pytest.raises(PrometheusError, match=r"answered HTTP 302 .* to http://127\.0\.0\.1:\d+/elsewhere \(redirects are "
                       "not followed"):
        instant_query(server + "/moved", "up", 2, str(token))
    assert [s["path"] for s in SEEN] == ["/moved/api/v1/query"]


def test_prometheus_down_and_unreadable_token(tmp_path: Path) -> None:
    with pytest.raises(PrometheusError, match=r"cannot reach Prometheus at http://127\.0\.0\.1:.*refused"):
        instant_query(f"http://127.0.0.1:{free_port()}", "up", 2)
    with pytest.raises(PrometheusError, match="cannot read the Prometheus bearer token file"):
        instant_query("http://127.0.0.1:1", "up", 2, str(tmp_path / "missing"))
    with pytest.raises(PrometheusError, match=r"bad Prometheus URL|cannot reach"):
        instant_query("http://[::1", "up", 2)
