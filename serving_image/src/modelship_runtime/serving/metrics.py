"""The server's Prometheus metrics, on the project's own registry.

Names and labels are a contract: the operator's canary analysis reads
``modelship_requests_total`` and ``modelship_request_duration_seconds``; the
drift monitor reads the families in ``drift``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (
    0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536)


class Metrics:
    def __init__(self, model: str) -> None:
        self.model = model
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "modelship_requests", "HTTP requests to the model endpoints by protocol, endpoint and status code.",
            ["model", "protocol", "endpoint", "code"], registry=r,
        )
        self.errors = Counter(
            "modelship_request_errors", "Requests answered with a status >= 400 by protocol, endpoint and code.",
            ["model", "protocol", "endpoint", "code"], registry=r,
        )
        self.latency = Histogram(
            "modelship_request_duration_seconds",
            "Time from a request's first byte to its response being written, inference endpoints only.",
            ["model", "protocol"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.batch_rows = Histogram(
            "modelship_batch_size", "Rows per onnxruntime call (after micro-batching).",
            ["model"], buckets=BATCH_BUCKETS, registry=r,
        )
        self.batch_requests = Histogram(
            "modelship_batch_requests", "Requests sharing one onnxruntime call.",
            ["model"], buckets=BATCH_BUCKETS[:9], registry=r,
        )
        self.inference = Histogram(
            "modelship_inference_duration_seconds", "Duration of one onnxruntime call.",
            ["model"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.load_seconds = Gauge(
            "modelship_model_load_seconds", "Time to fetch, check and load the model, warm-up included.",
            ["model"], registry=r,
        )
        self.info = Gauge(
            "modelship_model_info", "The loaded model (value 1).", ["model", "version", "sha256"], registry=r
        )
        self.ready = Gauge("modelship_model_ready", "1 when the model serves, else 0.", ["model"], registry=r)
        self.ready.labels(model).set(0)
        self._children: dict[tuple[str, str, int], tuple[Counter, Counter | None]] = {}
        self._latency: dict[str, Histogram] = {}
        self.batch_rows_m = self.batch_rows.labels(model)
        self.batch_requests_m = self.batch_requests.labels(model)
        self.inference_m = self.inference.labels(model)

    def observe(self, protocol: str, endpoint: str, code: int, seconds: float | None) -> None:
        key = (protocol, endpoint, code)
        children = self._children.get(key)
        if children is None:
            labels = (self.model, protocol, endpoint, str(code))
            children = (self.requests.labels(*labels), self.errors.labels(*labels) if code >= 400 else None)
            self._children[key] = children
        children[0].inc()
        if children[1] is not None:
            children[1].inc()
        if seconds is not None:
            hist = self._latency.get(protocol)
            if hist is None:
                hist = self._latency[protocol] = self.latency.labels(self.model, protocol)
            hist.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
