"""The protocol-independent core: model state, input checks, inference, metrics.

The v2 and v1 modules translate their wire formats into a feed of typed
arrays and call ``infer``; everything they share (what the model takes, what
is allowed, readiness, batching, drift counting, injected faults) lives here.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from modelship_runtime.artifacts.metadata import CategoricalReference, Metadata
from modelship_runtime.artifacts.store import ArtifactError, IntegrityError

from .batcher import Array, Batcher, Feed, Reply
from .drift import DriftCounters
from .errors import BadRequest, InjectedFault, NotFound, NotReady
from .fetch import fetch, sha256_file
from .metrics import Metrics
from .model import OnnxModel, TensorSpec, cpu_limit
from .predlog import PredictionLog, PredictionLogSettings
from .predlog import load as load_prediction_log
from .settings import ServeSettings

log = logging.getLogger("modelship.serve")
# What a later attempt may get past: the store down or unreachable, the artifact not (yet) there,
# a volume not mounted yet. IntegrityError is an ArtifactError too, but never retried.
RETRIABLE = (ArtifactError, OSError)
LOAD_RETRY_FIRST_SECONDS = 0.5
SERVER_NAME = "modelship-serve"
SERVER_VERSION = "0.1.0"


class State(StrEnum):
    LOADING = "Loading"
    READY = "Ready"
    FAILED = "Failed"
    STOPPING = "Stopping"


class DataPlane:
    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.state = State.LOADING
        self.reason = "the model is loading"
        self.name = settings.model_name or _default_name(settings.model_uri)
        self.version = "1"
        self.sha256 = ""
        self.metadata: Metadata | None = None
        self.model: OnnxModel | None = None
        self.batcher: Batcher | None = None
        self.drift: DriftCounters | None = None
        self.predlog: PredictionLog | None = None  # ground truth: the prediction log and feedback labels
        self.feedback_token = PredictionLogSettings().feedback_token
        self.metrics = Metrics(self.name)
        self.threads = settings.threads or max(1, cpu_limit() // settings.workers)
        self._rng = random.Random()
        # Inputs that may carry null/NaN: what the artifact's graph imputes (metadata.json), or all
        # with --allow-missing (for a bare model the operator knows nothing about).
        self.imputed: frozenset[str] = frozenset()
        self.missing_category = ""
        self.started = time.monotonic()
        self._stop = threading.Event()

    # -- lifecycle ---------------------------------------------------------

    def load(self) -> None:
        """Blocking: fetch, check, load and warm up; never raises (failure is a state).

        A store that cannot be read (down, unreachable, the artifact not there
        yet) is retried with backoff, readiness saying why; anything else (a
        sha256 mismatch, a graph that does not load) fails at once, for good.
        """
        t0 = time.perf_counter()
        delay, attempt = LOAD_RETRY_FIRST_SECONDS, 0
        while True:
            attempt += 1
            try:
                self._load()
                break
            except RETRIABLE as exc:
                if isinstance(exc, IntegrityError):
                    self._fail(f"the model could not be loaded: {exc}")
                    return
                wait = min(delay, self.settings.load_retry_max_seconds)
                self.reason = (f"the model could not be fetched yet (attempt {attempt}, "
                               f"{time.monotonic() - self.started:.0f} s): {exc}; retrying in {wait:.1f} s")
                log.warning("Could not fetch model %s (attempt %d): %s; retrying in %.1f s",
                            self.name, attempt, exc, wait)
                if self._stop.wait(wait):
                    return  # stopping
                delay *= 2
            except Exception as exc:
                self._fail(f"the model could not be loaded: {exc}")
                return
        if self.state is State.FAILED:
            return
        seconds = time.perf_counter() - t0
        self.metrics.load_seconds.labels(self.name).set(seconds)
        self.metrics.info.labels(self.name, self.version, self.sha256).set(1)
        if self.state is State.LOADING:
            self.state = State.READY
            self.reason = ""
            self.metrics.ready.labels(self.name).set(1)
        log.info(
            "Loaded model %s version %s (sha256 %s, %d onnxruntime threads, drift histograms %s) in %.2f s",
            self.name, self.version, self.sha256[:12], self.threads,
            "on" if self.drift is not None else "off", seconds,
        )

    def _load(self) -> None:
        s = self.settings
        local = fetch(s.model_uri, s.cache_dir)
        self.sha256 = sha256_file(local.model_path)
        if local.metadata_path is not None:
            self.metadata = Metadata.model_validate_json(local.metadata_path.read_bytes())
            if self.metadata.model_version:
                self.version = self.metadata.model_version
            if not s.model_name and self.metadata.model_name:
                self._rename(self.metadata.model_name)
        expected = (s.expected_sha256 or "").strip().lower()
        if expected and expected != self.sha256:
            self._fail(f"sha256 mismatch: model.onnx has {self.sha256}, expected {expected}; refusing to serve it")
            return
        if self.metadata is not None and self.metadata.model_sha256 and self.metadata.model_sha256 != self.sha256:
            self._fail(
                f"sha256 mismatch: model.onnx has {self.sha256}, metadata.json records "
                f"{self.metadata.model_sha256}; refusing to serve it"
            )
            return
        model = OnnxModel(local.model_path, self.threads)
        self._check_metadata(model)
        if self.metadata is not None:
            self.imputed = frozenset(self.metadata.imputed_inputs) & set(model.input_by_name)
            self.missing_category = self.metadata.missing_category
        if self.metadata is not None:
            drift = DriftCounters(self.name, self.metadata)
            if drift.enabled:
                self.drift = drift
                self.metrics.registry.register(drift)
        self.predlog = load_prediction_log(self.name, self.version, self.metadata)
        if self.predlog is not None:
            self.metrics.registry.register(self.predlog)
        self.model = model
        self.batcher = Batcher(
            model.run,
            max_batch_size=s.max_batch_size if model.batchable else 1,
            max_delay_seconds=s.max_batch_delay_ms / 1000.0,
            batchable=model.batchable,
            on_batch=self._on_batch,
        )
        self._warm_up(model)

    def _rename(self, name: str) -> None:
        self.name = name
        self.metrics = Metrics(name)

    def _check_metadata(self, model: OnnxModel) -> None:
        md = self.metadata
        if md is None:
            return
        names = {s.name for s in model.inputs}
        wanted = {md.tensor_input} if md.input_mode == "tensor" else {f.name for f in md.features}
        if wanted != names:
            raise ValueError(f"metadata.json names inputs {sorted(map(str, wanted))}, the graph has {sorted(names)}")

    def _warm_feed(self, model: OnnxModel, rows: int) -> Feed:
        feed = model.dummy_feed(rows)
        if self.metadata is not None:
            # Unknown strings can fail an encoder: warm up with known categories.
            for f in self.metadata.features:
                ref = self.metadata.reference.features.get(f.name)
                if f.name in feed and isinstance(ref, CategoricalReference) and ref.categories:
                    feed[f.name] = np.full(feed[f.name].shape, str(ref.categories[0]), dtype=object)
        return feed

    def _warm_up(self, model: OnnxModel) -> None:
        feed = self._warm_feed(model, 1)
        model.run(feed)  # the first call allocates; time the second
        model.run(feed, small=True)
        t0 = time.perf_counter()
        model.run(feed, small=True)
        assert self.batcher is not None
        self.batcher.prime(time.perf_counter() - t0)

    def _fail(self, reason: str) -> None:
        self.state = State.FAILED
        self.reason = reason
        self.metrics.ready.labels(self.name).set(0)
        log.error("Refused model %s: %s", self.name, reason)

    def begin_stopping(self) -> None:
        self._stop.set()
        if self.state is State.READY:
            self.metrics.ready.labels(self.name).set(0)
        if self.state is not State.FAILED:
            self.state = State.STOPPING
            self.reason = "the server is shutting down"

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
        if self.predlog is not None:
            self.predlog.close()  # writes what is still queued

    # -- queries -----------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.state is State.READY

    @property
    def live(self) -> bool:
        """False once the model has kept failing to load past ``load_deadline_seconds``: a restart
        (new pod network, new credentials, a store back in another place) may do what retries do not."""
        deadline = self.settings.load_deadline_seconds
        return not (deadline and self.state is State.LOADING and time.monotonic() - self.started > deadline)

    @property
    def idle(self) -> bool:
        return self.batcher is None or self.batcher.idle

    def check_model(self, name: str, version: str | None = None) -> None:
        if name != self.name:
            raise NotFound(f"model {name!r} not found; this server serves {self.name!r}")
        if version is not None and version != self.version:
            raise NotFound(f"model {name!r} has no version {version!r}; it serves version {self.version!r}")

    def serving_model(self) -> OnnxModel:
        if self.model is None or self.state not in (State.READY, State.STOPPING):
            raise NotReady(f"model {self.name!r} is not ready: {self.reason}")
        return self.model

    def server_metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": ["model_repository_readonly", "binary_tensor_data"]}

    def model_metadata(self) -> dict[str, Any]:
        model = self.serving_model()
        out: dict[str, Any] = {
            "name": self.name,
            "versions": [self.version],
            "platform": "onnxruntime_onnx",
            "inputs": [s.wire() for s in model.inputs],
            "outputs": [s.wire() for s in model.outputs],
        }
        params: dict[str, Any] = {"sha256": self.sha256, "max_batch_size": self.batcher.max_batch_size if self.batcher else 1}
        md = self.metadata
        if md is not None:
            params.update(
                task=md.task,
                input_mode=str(md.input_mode),
                features=[{"name": f.name, "type": str(f.type), "dtype": f.dtype} for f in md.features],
                classes=md.classes,
                output_roles={o.name: o.role for o in md.outputs},
                imputed_inputs=sorted(self.imputed),
                drift_histograms=self.drift is not None,
            )
        out["parameters"] = params
        return out

    # -- inference ---------------------------------------------------------

    def accepts_missing(self, name: str) -> bool:
        """Whether input ``name`` may carry null/NaN: its graph imputes it (or --allow-missing)."""
        return self.settings.allow_missing or name in self.imputed

    def columns_of(self, name: str) -> list[str] | None:
        """The feature of each column of input ``name`` in tensor mode (for messages), else None."""
        md = self.metadata
        if md is not None and md.input_mode == "tensor" and md.tensor_input == name:
            return [f.name for f in md.features]
        return None

    def input_spec(self, name: str) -> TensorSpec:
        model = self.serving_model()
        spec = model.input_by_name.get(name)
        if spec is None:
            raise BadRequest(f"unknown input {name!r}; the model takes {[s.name for s in model.inputs]}")
        return spec

    def infer(self, feed: Feed, outputs: list[str] | None, reply: Reply, request_id: str | None = None) -> None:
        """Checks a feed of typed arrays and queues it; ``reply`` gets the selected outputs.

        ``request_id``: what the prediction log files the request under (all outputs, before selection).
        """
        model = self.serving_model()
        rows = self._check_feed(model, feed)
        if outputs is not None:
            unknown = [o for o in outputs if o not in model.output_by_name]
            if unknown:
                raise BadRequest(f"unknown output(s) {unknown}; the model has {model.output_names}")
        s = self.settings
        if s.fault_error_ratio and self._rng.random() < s.fault_error_ratio:
            raise InjectedFault("injected fault (MODELSHIP_FAULT_ERROR_RATIO)")
        assert self.batcher is not None
        if outputs is None and not s.fault_latency_ms and not s.fault_flip_labels:
            self.batcher.submit(feed, rows, self._logged(request_id, feed, rows, reply))
            return
        delay = s.fault_latency_ms / 1000.0

        def deliver(result: Feed | BaseException) -> None:
            if outputs is not None and not isinstance(result, BaseException):
                result = {k: result[k] for k in outputs}
            if delay:
                asyncio.get_running_loop().call_later(delay, reply, result)
            else:
                reply(result)

        logged = self._logged(request_id, feed, rows, deliver)
        if not s.fault_flip_labels:
            self.batcher.submit(feed, rows, logged)
            return

        def flipped(result: Feed | BaseException) -> None:
            # The log keeps what the client was answered: the flipped classes.
            logged(result if isinstance(result, BaseException) else self._flipped(result))

        self.batcher.submit(feed, rows, flipped)

    def _logged(self, request_id: str | None, feed: Feed, rows: int, reply: Reply) -> Reply:
        """``reply``, first logging the whole result when the prediction log is on."""
        if self.predlog is None or request_id is None:
            return reply
        return self.predlog.tap(request_id, feed, rows, reply)

    def _flipped(self, result: Feed) -> Feed:
        """Test fault: the other class of a binary classifier, in every label output."""
        md = self.metadata
        if md is None or not md.classes or len(md.classes) != 2:
            return result
        labels = {o.name for o in md.outputs if o.role == "label"}
        out = dict(result)
        for name in labels & set(out):
            arr = out[name]
            out[name] = np.where(arr == arr.dtype.type(md.classes[0]), arr.dtype.type(md.classes[1]),
                                 arr.dtype.type(md.classes[0]))
        return out

    def _check_feed(self, model: OnnxModel, feed: Feed) -> int:
        rows = -1
        for spec in model.inputs:
            arr = feed.get(spec.name)
            if arr is None:
                missing = [s.name for s in model.inputs if s.name not in feed]
                raise BadRequest(f"missing input(s) {missing}; the model takes {[s.name for s in model.inputs]}")
            if not _fits(arr.shape, spec.shape):
                raise BadRequest(
                    f"input {spec.name!r} has shape {list(arr.shape)}; the model expects {list(spec.shape)} "
                    "(-1: any size)"
                )
            n = arr.shape[0] if arr.ndim else 1
            if rows == -1:
                rows = n
            elif n != rows:
                raise BadRequest(f"inputs disagree on the number of rows ({rows} and {n} for {spec.name!r})")
        if len(feed) > len(model.inputs):
            extra = sorted(set(feed) - set(model.input_by_name))
            raise BadRequest(f"unknown input(s) {extra}; the model takes {[s.name for s in model.inputs]}")
        if rows < 1:
            raise BadRequest("the request has no rows")
        if rows > self.settings.max_rows:
            raise BadRequest(f"the request has {rows} rows; the limit is {self.settings.max_rows} (MODELSHIP_MAX_ROWS)")
        return rows

    def _on_batch(self, feed: Feed, outputs: Feed, rows: int, requests: int, seconds: float) -> None:
        m = self.metrics
        m.batch_rows_m.observe(rows)
        m.batch_requests_m.observe(requests)
        m.inference_m.observe(seconds)
        if self.drift is not None:
            try:
                self.drift.count(feed, outputs)
            except Exception:  # counting must never fail a prediction
                log.exception("Failed to count drift histograms for a batch")

    def record(self, protocol: str, endpoint: str, code: int, seconds: float | None) -> None:
        self.metrics.observe(protocol, endpoint, code, seconds)


def _fits(shape: tuple[int, ...], want: tuple[int, ...]) -> bool:
    if len(shape) != len(want):
        return False
    if len(want) == 2 and want[0] == -1:  # the common [rows, features] case
        return want[1] == -1 or shape[1] == want[1]
    for got, w in zip(shape, want, strict=True):  # noqa: SIM110  (hot path: a loop beats a generator)
        if w != -1 and got != w:
            return False
    return True


def _default_name(uri: str) -> str:
    stem = Path(uri.rstrip("/").split("?")[0]).name
    stem = stem.removesuffix(".onnx")
    return stem or "model"


__all__ = ["Array", "DataPlane", "Feed", "State"]
