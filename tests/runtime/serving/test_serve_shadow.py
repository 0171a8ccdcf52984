"""Shadow mirroring end to end: real modelship-serve processes on 127.0.0.1 (a stable with
MODELSHIP_SHADOW_URL at a candidate), and a tiny asyncio server standing in for shadows that
sleep, fail or answer garbage."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import requests
import serve_models
from prometheus_client.parser import text_string_to_metric_families

from conftest import Server, free_port

FEATURES = serve_models.N_FEATURES


def v2_body(rows: int, seed: int) -> dict[str, Any]:
    x = np.random.default_rng(seed).normal(size=(rows, FEATURES)).astype(np.float32)
    return {"inputs": [{"name": "input", "shape": [rows, FEATURES], "datatype": "FP32", "data": x.ravel().tolist()}]}


def v1_body(rows: int, seed: int) -> dict[str, Any]:
    x = np.random.default_rng(seed).normal(size=(rows, FEATURES)).astype(np.float32)
    return {"instances": x.tolist()}


def regression_body(rows: int, seed: int) -> dict[str, Any]:
    x = np.random.default_rng(seed).normal(size=(rows, 5))
    return {"inputs": [{"name": "input", "shape": [rows, 5], "datatype": "FP64", "data": x.ravel().tolist()}]}


def scrape(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = requests.get(server.url + "/metrics", timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def outcomes(server: Server, model: str = "logistic") -> dict[str, float]:
    m = scrape(server)
    return {o: m.get(("modelship_shadow_requests_total", (("model", model), ("outcome", o))), -1.0)
            for o in ("sent", "ok", "error", "timeout", "dropped", "unavailable")}


def rows(server: Server, result: str, model: str = "logistic") -> float:
    return scrape(server).get(("modelship_shadow_rows_total", (("model", model), ("result", result))), -1.0)


def served(server: Server, endpoint: str = "infer", model: str = "logistic", protocol: str = "v2") -> float:
    key = ("modelship_requests_total",
           (("code", "200"), ("endpoint", endpoint), ("model", model), ("protocol", protocol)))
    return scrape(server).get(key, 0.0)


def eventually(check: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class FakeShadow:
    """A tiny HTTP/1.1 server on its own asyncio loop in a thread, standing in for a shadow.

    ``mode``: ``ok`` (a well-formed answer, label 1 for every row), ``status`` (``status``
    with a JSON error), ``garbage`` (200 with a body that is not JSON), ``rows`` (200, one
    label too many), ``close`` (closes without answering), ``http`` (bytes that are not HTTP).
    ``delay``: seconds before each answer. Records each request (path, headers, body).
    """

    def __init__(self, mode: str = "ok", delay: float = 0.0, status: int = 500) -> None:
        self.mode = mode
        self.delay = delay
        self.status = status
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self.loop).result(10)
        self.port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append((path, headers, body))
                if self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(self._answer(path, body))
                await writer.drain()
                if self.mode in ("close", "http"):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.CancelledError:  # stop(): ending quietly, or Python 3.11's start_server logs an ERROR
            pass
        finally:
            writer.close()

    def _answer(self, path: str, body: bytes) -> bytes:
        if self.mode == "close":
            return b""
        if self.mode == "http":
            return b"\x00\x01 this is not HTTP \r\n\r\n"
        doc = orjson.loads(body)
        n = len(doc["instances"]) if ":predict" in path else doc["inputs"][0]["shape"][0]
        status = 200
        if self.mode == "ok":
            payload = orjson.dumps({"predictions": [1] * n} if ":predict" in path
                                   else {"outputs": [{"name": "label", "shape": [n], "data": [1] * n}]})
        elif self.mode == "rows":
            payload = orjson.dumps({"outputs": [{"name": "label", "shape": [n + 1], "data": [1] * (n + 1)}]})
        elif self.mode == "garbage":
            payload = b"<html>upstream hiccup</html>"
        else:
            status, payload = self.status, b'{"error":"injected"}'
        return b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
            status, len(payload), payload)

    def stop(self) -> None:
        async def shutdown() -> None:
            self.server.close()
            handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in handlers:
                t.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Starts modelship-serve processes for one test and stops them after it."""
    started: list[Server] = []

    def start(artifact: Path, env: dict[str, str] | None = None, port: int | None = None,
              ready: bool = True) -> Server:
        server = Server(artifact.as_uri(), env=env, log=tmp_path / f"server-{len(started)}.log", port=port)
        started.append(server)
        if ready:
            server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def fakes() -> Iterator[Callable[..., FakeShadow]]:
    made: list[FakeShadow] = []

    def make(mode: str = "ok", delay: float = 0.0, status: int = 500) -> FakeShadow:
        made.append(FakeShadow(mode, delay, status))
        return made[-1]

    yield make
    for f in made:
        f.stop()


@pytest.fixture(scope="module")
def inverted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return serve_models.build_logistic(tmp_path_factory.mktemp("inverted") / "logistic", invert=True)


@pytest.fixture(scope="module")
def shifted_regression(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return serve_models.build_regression(tmp_path_factory.mktemp("shifted") / "regression", offset=5.0)


def send(server: Server, count: int, v1_every: int = 0, rows_of: Callable[[int], int] = lambda i: 1 + i % 4) -> int:
    """``count`` inference requests (every ``v1_every``-th one KServe v1), all answered 200; returns the rows."""
    total = 0
    for i in range(count):
        n = rows_of(i)
        if v1_every and i % v1_every == 0:
            r = server.post("/v1/models/logistic:predict", json=v1_body(n, i))
        else:
            r = server.post("/v2/models/logistic/infer", json=v2_body(n, i))
        assert r.status_code == 200, r.text
        total += n
    return total


def shadow_env(url: str, **extra: str) -> dict[str, str]:
    return {"MODELSHIP_SHADOW_URL": url, **{f"MODELSHIP_SHADOW_{k.upper()}": v for k, v in extra.items()}}


# -- agreement -------------------------------------------------------------------


def test_identical_model_agrees_on_every_row(artifacts: dict[str, Path], spawn: Any) -> None:
    candidate = spawn(artifacts["logistic"])
    stable = spawn(artifacts["logistic"], env=shadow_env(candidate.url))
    total = send(stable, 40, v1_every=4)
    eventually(lambda: outcomes(stable)["sent"] == 40, what="40 copies answered")
    got = outcomes(stable)
    assert got == {"sent": 40, "ok": 40, "error": 0, "timeout": 0, "dropped": 0, "unavailable": 0}
    assert rows(stable, "agree") == total
    assert rows(stable, "disagree") == 0
    # The candidate's own counters saw the copies (the operator reads its 5xx and p99 there).
    assert served(candidate) == 30 and served(candidate, "predict", protocol="v1") == 10
    assert "modelship_shadow_requests_total" not in requests.get(candidate.url + "/metrics", timeout=5).text
    assert stable.stop() == 0  # SIGTERM with mirroring on: a clean exit
    assert "Traceback" not in stable.log_text()


def test_connections_the_shadow_closed_while_idle_are_replaced(artifacts: dict[str, Path], spawn: Any) -> None:
    # The candidate closes keep-alive connections idle for 0.4 s; the stable must not count that as errors.
    candidate = spawn(artifacts["logistic"], env={"MODELSHIP_IDLE_TIMEOUT_SECONDS": "0.4"})
    stable = spawn(artifacts["logistic"], env=shadow_env(candidate.url))
    for i in range(4):
        send(stable, 2)
        eventually(lambda i=i: outcomes(stable)["sent"] == 2 * (i + 1), what="the copies answered")
        time.sleep(1.0)
    got = outcomes(stable)
    assert got["ok"] == 8 and got["error"] == got["unavailable"] == 0, got


def test_inverted_model_disagrees(artifacts: dict[str, Path], inverted: Path, spawn: Any) -> None:
    candidate = spawn(inverted)
    stable = spawn(artifacts["logistic"], env=shadow_env(candidate.url))
    total = send(stable, 30, v1_every=3)
    eventually(lambda: outcomes(stable)["sent"] == 30, what="30 copies answered")
    assert outcomes(stable)["ok"] == 30
    agree, disagree = rows(stable, "agree"), rows(stable, "disagree")
    assert agree + disagree == total
    assert disagree / total >= 0.95, (agree, disagree)


def test_regressor_differences_and_the_stables_spread(artifacts: dict[str, Path], shifted_regression: Path,
                                                     spawn: Any) -> None:
    candidate = spawn(shifted_regression)
    stable = spawn(artifacts["regression"], env=shadow_env(candidate.url))
    values: list[float] = []
    for i in range(20):
        r = stable.post("/v2/models/regression/infer", json=regression_body(1 + i % 3, i))
        assert r.status_code == 200
        values += r.json()["outputs"][0]["data"]
    r = stable.post("/v1/models/regression:predict", json={"instances": [[0.1, 0.2, 0.3, 0.4, 0.5]]})
    values += r.json()["predictions"]
    eventually(lambda: outcomes(stable, "regression")["sent"] == 21, what="21 copies answered")
    assert outcomes(stable, "regression")["ok"] == 21
    m = scrape(stable)
    label = (("model", "regression"),)
    assert m[("modelship_shadow_rows_total", (("model", "regression"), ("result", "compared")))] == len(values)
    assert m[("modelship_shadow_abs_diff_sum", label)] == pytest.approx(5.0 * len(values), rel=1e-3)
    assert m[("modelship_shadow_stable_prediction_sum", label)] == pytest.approx(sum(values), rel=1e-9)
    assert m[("modelship_shadow_stable_prediction_sq_sum", label)] == pytest.approx(
        sum(v * v for v in values), rel=1e-9)
    assert ("modelship_shadow_rows_total", (("model", "regression"), ("result", "agree"))) not in m


def test_percent_mirrors_that_share(artifacts: dict[str, Path], spawn: Any) -> None:
    candidate = spawn(artifacts["logistic"])
    stable = spawn(artifacts["logistic"], env=shadow_env(candidate.url, percent="25"))
    send(stable, 40)
    eventually(lambda: outcomes(stable)["sent"] == 10, what="10 copies answered")
    time.sleep(0.3)
    assert outcomes(stable)["sent"] == 10
    assert served(candidate) == 10


# -- the copies themselves -------------------------------------------------------


def test_copies_carry_the_header_the_body_and_the_path(artifacts: dict[str, Path], spawn: Any, fakes: Any) -> None:
    fake = fakes("ok")
    stable = spawn(artifacts["logistic"], env=shadow_env(fake.url + "/prefix/"))
    body = orjson.dumps(v2_body(2, 7))
    assert stable.post("/v2/models/logistic/infer", data=body).status_code == 200
    assert stable.post("/v2/models/logistic/versions/3/infer", data=body).status_code == 200
    v1 = orjson.dumps(v1_body(1, 8))
    assert stable.post("/v1/models/logistic:predict", data=v1).status_code == 200
    # A request the stable refused is not mirrored (the shadow would refuse it too).
    assert stable.post("/v2/models/logistic/infer", data=b"{").status_code == 400
    eventually(lambda: len(fake.requests) == 3, what="3 copies")
    paths = [p for p, _, _ in fake.requests]
    assert paths == ["/prefix/v2/models/logistic/infer", "/prefix/v2/models/logistic/infer",
                     "/prefix/v1/models/logistic:predict"]
    assert [b for _, _, b in fake.requests] == [body, body, v1]
    for _, headers, _ in fake.requests:
        assert headers["modelship-shadow"] == "1"
        assert headers["host"] == f"127.0.0.1:{fake.port}"
    eventually(lambda: outcomes(stable)["ok"] == 3, what="3 answers")
    assert rows(stable, "agree") + rows(stable, "disagree") == 5


def test_no_mirroring_loop_when_the_shadow_is_the_stable(artifacts: dict[str, Path], spawn: Any) -> None:
    port = free_port()
    stable = spawn(artifacts["logistic"], env=shadow_env(f"http://127.0.0.1:{port}"), port=port)
    total = send(stable, 20)
    eventually(lambda: outcomes(stable)["sent"] == 20, what="20 copies answered")
    time.sleep(0.5)
    assert outcomes(stable)["sent"] == 20  # the copies were not copied again
    assert served(stable) == 40  # 20 users' requests + 20 copies
    assert rows(stable, "agree") == total


# -- a shadow that is slow, failing or absent ----------------------------------------


def test_full_queue_drops_copies_and_the_user_never_waits(artifacts: dict[str, Path], spawn: Any,
                                                         fakes: Any) -> None:
    # The shadow sleeps 2.5 s per copy: the 40 requests leave well within that even on a busy
    # machine (about 0.2 s here).
    fake = fakes("ok", delay=2.5)
    stable = spawn(artifacts["logistic"], env=shadow_env(fake.url, queue="4", connections="2",
                                                         timeout_seconds="30"))
    slowest = 0.0
    for i in range(40):
        t0 = time.perf_counter()
        r = stable.post("/v2/models/logistic/infer", json=v2_body(1, i))
        slowest = max(slowest, time.perf_counter() - t0)
        assert r.status_code == 200
    got = outcomes(stable)
    # 4 queued and what the 2 connections took in flushes before the first answer (pipelined, up to
    # shadow.PIPELINE each); all 40 left within 2.5 s, so most found the queue full.
    assert got["dropped"] >= 20, got
    assert slowest < 1.0, f"a user's request took {slowest:.3f} s while the shadow slept 2.5 s per copy"
    eventually(lambda: outcomes(stable)["sent"] + outcomes(stable)["dropped"] == 40, timeout=90,
               what="every copy accounted for")
    got = outcomes(stable)
    assert got["ok"] == got["sent"] == 40 - got["dropped"]
    assert got["error"] == got["timeout"] == got["unavailable"] == 0


def test_slow_answers_time_out(artifacts: dict[str, Path], spawn: Any, fakes: Any) -> None:
    fake = fakes("ok", delay=1.5)
    stable = spawn(artifacts["logistic"], env=shadow_env(fake.url, timeout_seconds="0.3"))
    send(stable, 3, rows_of=lambda i: 1)
    eventually(lambda: outcomes(stable)["sent"] == 3, what="3 copies timed out")
    got = outcomes(stable)
    assert got["timeout"] == 3 and got["ok"] == got["error"] == 0


@pytest.mark.parametrize(("mode", "status"), [("status", 500), ("status", 503), ("status", 404), ("status", 400),
                                              ("garbage", 200), ("rows", 200), ("close", 0), ("http", 0)])
def test_failing_answers_are_errors(artifacts: dict[str, Path], spawn: Any, fakes: Any, mode: str,
                                    status: int) -> None:
    fake = fakes(mode, status=status)
    stable = spawn(artifacts["logistic"], env=shadow_env(fake.url))
    send(stable, 6, v1_every=2)
    eventually(lambda: outcomes(stable)["sent"] == 6, what="6 copies answered")
    got = outcomes(stable)
    assert got["error"] == 6 and got["ok"] == 0, got
    assert rows(stable, "agree") == rows(stable, "disagree") == 0
    assert "Traceback" not in stable.log_text()


def test_responses_are_the_same_with_a_failing_shadow(artifacts: dict[str, Path], spawn: Any, fakes: Any) -> None:
    failing = fakes("status", status=500)
    closing = fakes("close")
    plain = spawn(artifacts["logistic"])
    shadowed = [spawn(artifacts["logistic"], env=shadow_env(failing.url)),
                spawn(artifacts["logistic"], env=shadow_env(closing.url)),
                spawn(artifacts["logistic"], env=shadow_env(f"http://127.0.0.1:{free_port()}"))]
    calls: list[tuple[str, str, bytes | None]] = [
        ("POST", "/v2/models/logistic/infer", orjson.dumps(v2_body(3, 1))),
        ("POST", "/v2/models/logistic/infer", orjson.dumps({**v2_body(1, 2), "id": "req-1"})),
        ("POST", "/v2/models/logistic/infer", orjson.dumps({**v2_body(2, 3), "outputs": [{"name": "probabilities"}]})),
        ("POST", "/v2/models/logistic/versions/3/infer", orjson.dumps(v2_body(1, 4))),
        ("POST", "/v1/models/logistic:predict", orjson.dumps(v1_body(2, 5))),
        ("POST", "/v1/models/logistic:predict", orjson.dumps({**v1_body(2, 6), "parameters": {"probabilities": True}})),
        ("POST", "/v2/models/logistic/infer", b"{"),
        ("POST", "/v2/models/logistic/infer", orjson.dumps({"inputs": [{"name": "input", "shape": [1, 3],
                                                                        "datatype": "FP32", "data": [1, 2, 3]}]})),
        ("POST", "/v2/models/other/infer", orjson.dumps(v2_body(1, 7))),
        ("POST", "/v1/models/logistic:predict", b'{"instances": []}'),
        ("GET", "/v2/models/logistic/infer", None),
        ("GET", "/v2/models/logistic", None),
    ]
    for i, (method, path, body) in enumerate(calls * 3):
        # Every server is told the request's id: otherwise each would make its own (ground truth's ids).
        headers = {"x-request-id": f"call-{i}"}
        want = plain.http.request(method, plain.url + path, data=body, timeout=10, headers=headers)
        for server in shadowed:
            got = server.http.request(method, server.url + path, data=body, timeout=10, headers=headers)
            assert (got.status_code, got.headers["content-type"], got.content) == \
                (want.status_code, want.headers["content-type"], want.content), (server.url, path)
    mirrored = 6 * 3
    eventually(lambda: outcomes(shadowed[0])["error"] == mirrored, what="the 500s counted")
    eventually(lambda: outcomes(shadowed[1])["error"] == mirrored, what="the closed connections counted")
    assert outcomes(shadowed[2])["unavailable"] == mirrored
    for server in (plain, *shadowed):
        assert "Traceback" not in server.log_text()


def test_absent_shadow_is_unavailable_until_it_starts_and_after_it_goes(artifacts: dict[str, Path], spawn: Any,
                                                                        tmp_path: Path) -> None:
    port = free_port()
    stable = spawn(artifacts["logistic"], env=shadow_env(f"http://127.0.0.1:{port}", retry_seconds="0.5"))
    send(stable, 5)
    eventually(lambda: outcomes(stable)["unavailable"] == 5, what="5 copies unavailable")
    assert outcomes(stable)["sent"] == 0
    candidate = Server(artifacts["logistic"].as_uri(), port=port, log=tmp_path / "candidate.log",
                       env={"MODELSHIP_DRAIN_SECONDS": "0"})
    try:
        candidate.wait_ready()

        def mirrored() -> bool:
            send(stable, 1)
            return outcomes(stable)["ok"] >= 3

        eventually(mirrored, what="mirroring to start with the shadow")
        assert outcomes(stable)["error"] == 0
    finally:
        candidate.stop()
    before = outcomes(stable)

    def stopped() -> bool:
        send(stable, 1)
        return outcomes(stable)["unavailable"] >= before["unavailable"] + 3

    eventually(stopped, what="copies to count as unavailable once the shadow went")
    after = outcomes(stable)
    assert after["sent"] == after["ok"] + after["error"] + after["timeout"]
    log = stable.log_text()
    assert "Found no shadow at" in log and "mirroring resumed" in log


def test_a_name_that_does_not_resolve_is_unavailable(artifacts: dict[str, Path], spawn: Any) -> None:
    stable = spawn(artifacts["logistic"], env=shadow_env("http://modelship-shadow-absent.invalid"))
    send(stable, 4)
    eventually(lambda: outcomes(stable)["unavailable"] == 4, what="4 copies unavailable")
    assert outcomes(stable)["sent"] == 0
    assert "Found no shadow at http://modelship-shadow-absent.invalid" in stable.log_text()


def test_refuses_a_bad_shadow_url_at_start(artifacts: dict[str, Path], spawn: Any) -> None:
    server = spawn(artifacts["logistic"], env=shadow_env("https://m-shadow"), ready=False)
    assert server.proc.wait(timeout=30) == 2
    assert "must start with http://" in server.log_text()

