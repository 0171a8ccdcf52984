"""Shadow mirroring, pure parts: URLs, answer parsing, comparison, sampling, the metrics' exposition."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from modelship_runtime.artifacts.metadata import Metadata
from modelship_runtime.serving import shadow
from modelship_runtime.serving.settings import ServeSettings
from modelship_runtime.serving.shadow import MalformedAnswer, Shadow, Tally, compare


@pytest.mark.parametrize(
    ("url", "host", "port", "prefix", "host_header"),
    [
        ("http://m-shadow.ns.svc.cluster.local", "m-shadow.ns.svc.cluster.local", 80, b"",
         b"m-shadow.ns.svc.cluster.local"),
        ("http://m-shadow.ns.svc.cluster.local.", "m-shadow.ns.svc.cluster.local.", 80, b"",
         b"m-shadow.ns.svc.cluster.local."),
        ("http://m-shadow:8080/", "m-shadow", 8080, b"", b"m-shadow:8080"),
        ("http://127.0.0.1:9/base/", "127.0.0.1", 9, b"/base", b"127.0.0.1:9"),
        (" http://[::1]:81 ", "::1", 81, b"", b"[::1]:81"),
    ],
)
def test_parse_url(url: str, host: str, port: int, prefix: bytes, host_header: bytes) -> None:
    t = shadow.parse_url(url)
    assert (t.host, t.port, t.prefix, t.host_header) == (host, port, prefix, host_header)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://m-shadow", "http://"),
        ("m-shadow:80", "http://"),
        ("http://", "no host"),
        ("http://m-shadow:99999", "bad port"),
        ("http://m-shadow/?a=1", "no query"),
    ],
)
def test_parse_url_refuses(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        shadow.parse_url(url)


def test_settings_validate_the_url_and_empty_means_off() -> None:
    assert ServeSettings(model_uri="x", shadow_url="").shadow_url is None
    assert ServeSettings(model_uri="x", shadow_url="  ").shadow_url is None
    assert ServeSettings(model_uri="x", shadow_url=" http://a:81 ").shadow_url == "http://a:81"
    with pytest.raises(ValidationError, match="http://"):
        ServeSettings(model_uri="x", shadow_url="https://a")
    with pytest.raises(ValidationError):
        ServeSettings(model_uri="x", shadow_percent=101)
    s = ServeSettings(model_uri="x")
    assert (s.shadow_url, s.shadow_percent, s.shadow_queue, s.shadow_timeout_seconds) == (None, 100.0, 256, 2.0)
    assert shadow.from_settings(s) is None
    assert shadow.from_settings(ServeSettings(model_uri="x", shadow_url="http://a", shadow_percent=0)) is None


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in {"MODELSHIP_SHADOW_URL": "http://m-shadow.ns.svc.cluster.local", "MODELSHIP_SHADOW_PERCENT": "12.5",
                 "MODELSHIP_SHADOW_QUEUE": "8", "MODELSHIP_SHADOW_TIMEOUT_SECONDS": "0.5"}.items():
        monkeypatch.setenv(k, v)
    s = ServeSettings(model_uri="x")
    got = shadow.from_settings(s)
    assert got is not None
    assert (got.percent, got.capacity, got.timeout, got.target.port) == (12.5, 8, 0.5, 80)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        (b"/v2/models/m/infer", b"/v2/models/m/infer"),
        (b"/v2/models/m/versions/3/infer", b"/v2/models/m/infer"),
        (b"/v2/models/m/versions/3/infer?x=1", b"/v2/models/m/infer?x=1"),
        (b"/v1/models/m:predict", b"/v1/models/m:predict"),
    ],
)
def test_shadow_path_drops_a_pinned_version(url: bytes, path: bytes) -> None:
    assert shadow.shadow_path(url) == path


V2 = b'{"outputs":[{"name":"probabilities","shape":[2,2],"data":[0.1,0.9,0.8,0.2]},' \
     b'{"name":"label","shape":[2],"data":[1,0]}]}'


@pytest.mark.parametrize(
    ("body", "v1", "output", "expected"),
    [
        (V2, False, "label", [1, 0]),
        (V2, False, None, None),
        (b'{"outputs":[{"name":"value","shape":[2,1],"data":[1.5,2.5]}]}', False, "value", [1.5, 2.5]),
        (b'{"predictions":[1,0,1]}', True, "label", [1, 0, 1]),
        (b'{"predictions":[[1.5],[2.5]]}', True, "value", [1.5, 2.5]),
        (b'{"predictions":["a","b"]}', True, "label", ["a", "b"]),
        (b'{"predictions":[1]}', True, None, None),
    ],
)
def test_answer_values(body: bytes, v1: bool, output: str | None, expected: Any) -> None:
    assert shadow.answer_values(body, v1, output) == expected


@pytest.mark.parametrize(
    ("body", "v1", "reason"),
    [
        (b"", False, "not JSON"),
        (b"<html>oops</html>", False, "not JSON"),
        (b"[1,2]", False, "not a JSON object"),
        (b'{"error":"boom"}', False, "no 'outputs'"),
        (b'{"outputs":[{"name":"probabilities","data":[1]}]}', False, "no output named"),
        (b'{"outputs":[{"name":"label","data":"1"}]}', False, "no 'data' list"),
        (b'{"outputs":{"label":[1]}}', False, "no 'outputs'"),
        (b'{"predictions":1}', True, "no 'predictions'"),
        (b'{"error":"x"}', True, "no 'predictions'"),
    ],
)
def test_answer_values_refuses_malformed(body: bytes, v1: bool, reason: str) -> None:
    with pytest.raises(MalformedAnswer, match=reason):
        shadow.answer_values(body, v1, "label")


@pytest.mark.parametrize(
    ("stable", "answer", "classifier", "expected"),
    [
        (np.array([1, 0, 1], np.int64), [1, 0, 1], True, Tally(agree=3)),
        (np.array([1, 0, 1], np.int64), [0, 1, 1], True, Tally(agree=1, disagree=2)),
        (np.array([[1], [0]], np.int64), [1.0, 1.0], True, Tally(agree=1, disagree=1)),
        (np.array(["yes", "no"], dtype=object), ["yes", "yes"], True, Tally(agree=1, disagree=1)),
        (np.array([b"yes"], dtype=object), ["yes"], True, Tally(agree=1)),
        (np.array([1, 2], np.int64), ["1", "2"], True, Tally(agree=2)),
        (np.array([[1.0], [3.0]]), [1.5, 1.0], False,
         Tally(compared=2, abs_diff=2.5, stable_sum=4.0, stable_sq_sum=10.0)),
        (np.array([-2.0], np.float32), [-2.0], False, Tally(compared=1, abs_diff=0.0, stable_sum=-2.0,
                                                             stable_sq_sum=4.0)),
    ],
)
def test_compare(stable: np.ndarray, answer: list[Any], classifier: bool, expected: Tally) -> None:
    assert compare(stable, answer, classifier) == expected


@pytest.mark.parametrize(
    ("stable", "answer", "classifier", "reason"),
    [
        (np.array([1, 0], np.int64), [1], True, "1 predictions for 2"),
        (np.array([1, 0], np.int64), [1, 0, 1], True, "3 predictions for 2"),
        (np.array([1, 0], np.int64), ["a", "b"], True, "not numbers"),
        (np.array([1, 0], np.int64), [None, 1], True, "not numbers"),
        (np.array([1, 0], np.int64), [float("nan"), 1], True, "not finite"),
        (np.array([1, 0], np.int64), [[1], 1], True, "not numbers"),
        (np.array([1.0, 2.0]), ["x", 1.0], False, "not numbers"),
        (np.array([1.0, 2.0]), [None, 1.0], False, "not numbers"),
        (np.array([1.0, 2.0]), [float("inf"), 1.0], False, "not finite"),
        (np.array([1.0, 2.0]), ["1.0", 1.0], False, "not numbers"),
        (np.array([1.0, 2.0]), [{"a": 1}, 1.0], False, "not numbers"),
    ],
)
def test_compare_refuses_answers_that_do_not_fit(stable: np.ndarray, answer: list[Any], classifier: bool,
                                                 reason: str) -> None:
    with pytest.raises(MalformedAnswer, match=reason):
        compare(stable, answer, classifier)


def _metadata(task: str, outputs: list[tuple[str, str]]) -> Metadata:
    return Metadata.model_validate({
        "task": task, "features": [{"name": "a", "type": "numeric"}], "inputMode": "tensor",
        "tensorInput": "input", "outputs": [{"name": n, "role": r} for n, r in outputs], "modelSha256": "",
    })


def test_prediction_output_follows_the_task() -> None:
    cls = _metadata("binary", [("label", "label"), ("probabilities", "probabilities")])
    assert shadow.prediction_output(cls, ["label", "probabilities"]) == ("binary", "label")
    assert shadow.prediction_output(_metadata("multiclass", [("y", "label")]), ["y"]) == ("multiclass", "y")
    assert shadow.prediction_output(_metadata("regression", [("value", "value")]), ["value"]) == \
        ("regression", "value")
    assert shadow.prediction_output(_metadata("regression", [("value", "value")]), ["other"]) == \
        ("regression", None)
    assert shadow.prediction_output(None, ["label"]) == (None, None)


def _families(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_metrics_parse_with_the_operators_parser() -> None:
    """The exact names and labels the operator's analysis reads, through prometheus_client's parser."""
    reg = CollectorRegistry()
    c = shadow.ShadowCounters()
    reg.register(c)
    c.model = "m"
    c.outcomes.update(sent=5, ok=3, error=1, timeout=1, dropped=2, unavailable=7)
    got = _families(reg)
    assert got[("modelship_shadow_requests_total", (("model", "m"), ("outcome", "unavailable")))] == 7
    assert not any(name.startswith("modelship_shadow_rows") for name, _ in got)  # no task: no rows
    c.classifier = True
    c.add(Tally(agree=4, disagree=1))
    got = _families(reg)
    assert got[("modelship_shadow_rows_total", (("model", "m"), ("result", "agree")))] == 4
    assert got[("modelship_shadow_rows_total", (("model", "m"), ("result", "disagree")))] == 1
    assert not any(name.startswith("modelship_shadow_abs") for name, _ in got)
    c.classifier = False
    c.add(Tally(compared=2, abs_diff=1.5, stable_sum=-3.0, stable_sq_sum=5.0))
    got = _families(reg)
    assert got[("modelship_shadow_rows_total", (("model", "m"), ("result", "compared")))] == 2
    assert got[("modelship_shadow_abs_diff_sum", (("model", "m"),))] == 1.5
    assert got[("modelship_shadow_stable_prediction_sum", (("model", "m"),))] == -3.0
    assert got[("modelship_shadow_stable_prediction_sq_sum", (("model", "m"),))] == 5.0


@pytest.mark.parametrize(("percent", "offered", "mirrored"), [(100, 40, 40), (25, 40, 10), (10, 95, 9),
                                                              (33.3, 30, 9), (0.5, 199, 0), (0.5, 200, 1)])
def test_sampling_is_an_exact_share(percent: float, offered: int, mirrored: int) -> None:
    async def run() -> int:
        s = Shadow("http://127.0.0.1:9", percent=percent, queue=1000, timeout=1, connections=1, retry_seconds=1)
        s.attach(CollectorRegistry(), "m", "binary", "label")
        s._down_until = float("inf")  # nothing listens: count, do not connect

        def done(_: Any) -> None:
            return None

        for _ in range(offered):
            s.tap(b"/v2/models/m/infer", b"{}", False, done)({"label": np.array([1])})
        await s.close()
        return s.counters.outcomes["unavailable"]

    assert asyncio.run(run()) == mirrored


def test_tap_replies_before_it_queues_and_never_for_failures() -> None:
    async def run() -> list[str]:
        s = Shadow("http://127.0.0.1:9", percent=100, queue=1, timeout=1, connections=1, retry_seconds=1)
        s.attach(CollectorRegistry(), "m", "binary", "label")
        events: list[str] = []

        def done(result: Any) -> None:
            events.append(f"reply queued={len(s._queue)}")

        s.tap(b"/v2/models/m/infer", b"{}", False, done)({"label": np.array([1])})
        s.tap(b"/v2/models/m/infer", b"{}", False, done)(ValueError("bad input"))
        s.tap(b"/v2/models/m/infer", b"{}", False, done)({"label": np.array([1])})  # finds the queue full
        events.append(f"dropped={s.counters.outcomes['dropped']} queued={len(s._queue)}")
        await s.close()
        return events

    assert asyncio.run(run()) == ["reply queued=0", "reply queued=1", "reply queued=1", "dropped=1 queued=1"]


def test_queued_bytes_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shadow, "QUEUE_BYTES", 10)

    async def run() -> tuple[int, int]:
        s = Shadow("http://127.0.0.1:9", percent=100, queue=100, timeout=1, connections=1, retry_seconds=1)
        s.attach(CollectorRegistry(), "m", "binary", "label")
        for _ in range(3):
            s.offer(b"/v2/models/m/infer", b"123456", False, {"label": np.array([1])})
        queued, dropped = len(s._queue), s.counters.outcomes["dropped"]
        await s.close()
        return queued, dropped

    assert asyncio.run(run()) == (1, 2)
