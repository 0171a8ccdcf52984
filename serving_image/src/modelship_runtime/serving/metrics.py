"""The server's Prometheus metrics, on the project's own registry.

Names and labels are a contract: the operator's canary analysis reads
``modelship_requests_total`` and ``modelship_request_duration_seconds``; the
drift monitor reads the families in ``drift``.

The series touched on every request or batch (requests, errors, latency,
batch sizes, inference time) are plain counters kept by this module and
rendered at scrape time: prometheus_client's children take a lock and do
several calls per observation, which cost about as much as the rest of a
small request's Python. They are updated and rendered on the event loop's
thread only (the batcher reports a batch after its replies, on the loop), so
no lock is needed.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (
    0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536)


class Hist:
    """One histogram series: counts per bucket (``le`` semantics), the overflow, and the sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        out = []
        total = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            total += n
            out.append((_le(bound), float(total)))
        out.append(("+Inf", float(total + self.counts[-1])))
        return out


def _le(bound: float) -> str:
    return repr(float(bound))


class _HotSeries(Collector):
    """The per-request and per-batch families, rendered from ``Metrics``' plain counters."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.m
        labels = ["model", "protocol", "endpoint", "code"]
        requests = CounterMetricFamily(
            "modelship_requests", "HTTP requests to the model endpoints by protocol, endpoint and status code.",
            labels=labels)
        errors = CounterMetricFamily(
            "modelship_request_errors", "Requests answered with a status >= 400 by protocol, endpoint and code.",
            labels=labels)
        for (protocol, endpoint, code), n in sorted(m.counts.items()):
            values = [m.model, protocol, endpoint, str(code)]
            requests.add_metric(values, float(n))
            if code >= 400:
                errors.add_metric(values, float(n))
        latency = HistogramMetricFamily(
            "modelship_request_duration_seconds",
            "Time from a request's first byte to its response being written, inference endpoints only.",
            labels=["model", "protocol"])
        for protocol, h in sorted(m.latency.items()):
            latency.add_metric([m.model, protocol], h.buckets(), h.sum)
        yield requests
        yield errors
        yield latency
        for name, doc, h in (
            ("modelship_batch_size", "Rows per onnxruntime call (after micro-batching).", m.batch_rows_m),
            ("modelship_batch_requests", "Requests sharing one onnxruntime call.", m.batch_requests_m),
            ("modelship_inference_duration_seconds", "Duration of one onnxruntime call.", m.inference_m),
        ):
            family = HistogramMetricFamily(name, doc, labels=["model"])
            family.add_metric([m.model], h.buckets(), h.sum)
            yield family


class Metrics:
    def __init__(self, model: str) -> None:
        self.model = model
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # (protocol, endpoint, code) -> requests; protocol -> latency histogram.
        self.counts: dict[tuple[str, str, int], int] = {}
        self.latency: dict[str, Hist] = {}
        self.batch_rows_m = Hist(BATCH_BUCKETS)
        self.batch_requests_m = Hist(BATCH_BUCKETS[:9])
        self.inference_m = Hist(LATENCY_BUCKETS)
        r.register(_HotSeries(self))
        self.load_seconds = Gauge(
            "modelship_model_load_seconds", "Time to fetch, check and load the model, warm-up included.",
            ["model"], registry=r,
        )
        self.info = Gauge(
            "modelship_model_info", "The loaded model (value 1).", ["model", "version", "sha256"], registry=r
        )
        self.ready = Gauge("modelship_model_ready", "1 when the model serves, else 0.", ["model"], registry=r)
        self.ready.labels(model).set(0)

    def observe(self, protocol: str, endpoint: str, code: int, seconds: float | None) -> None:
        key = (protocol, endpoint, code)
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1
        if seconds is not None:
            hist = self.latency.get(protocol)
            if hist is None:
                hist = self.latency[protocol] = Hist(LATENCY_BUCKETS)
            hist.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
