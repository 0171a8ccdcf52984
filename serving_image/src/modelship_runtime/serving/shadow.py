"""Shadow traffic: the stable's server mirrors a sample of inference requests to a candidate.

The operator sets ``MODELSHIP_SHADOW_URL`` on every serving pod of a Model
whose rollout has a shadow phase: a fixed per-Model Service name that only has
ready endpoints while a shadow runs. The server then copies a share
(``MODELSHIP_SHADOW_PERCENT``) of the KServe v1 ``:predict`` and OIP v2
``/infer`` requests it answered with 200 to the same path on that Service
(header ``Modelship-Shadow: 1``; a server never mirrors a request carrying
it), and compares each answer with its own answer for the same rows.

Fire and forget: the user's response is written before the copy is queued,
nothing on the request path awaits the shadow or writes to it, and a copy
that finds ``MODELSHIP_SHADOW_QUEUE`` copies waiting is dropped (counted).
Copies wait a few milliseconds for company and leave together, pipelined in
one write on one of a few keep-alive connections (``MODELSHIP_SHADOW_CONNECTIONS``)
driven by callbacks on the server's own event loop: no thread and no task per
copy. Reading pauses after a send and resumes at the next flush, so the
answers are read in bulk rather than with one wake-up each: on a small pod
socket writes and wake-ups are most of a copy's cost. A copy not answered within ``MODELSHIP_SHADOW_TIMEOUT_SECONDS`` of
leaving is a ``timeout`` (so are the copies queued behind it on that
connection, which is closed). When the shadow's name does not resolve or its
connection is refused, copies count as ``unavailable`` for
``MODELSHIP_SHADOW_RETRY_SECONDS``, then the next copy tries again: mirroring
starts and stops with the shadow Service, without restarting the stable.

Metrics (the operator's shadow analysis reads them; names and labels are a
contract), on the server's own registry:

- ``modelship_shadow_requests_total{model,outcome}``: each sampled request
  ends as exactly one of ``dropped`` (queue full), ``unavailable`` (no shadow
  to send it to) or ``sent``; a sent copy also counts once as ``ok`` (200 and
  an answer that could be compared), ``error`` (any other status, a broken
  connection or a malformed answer) or ``timeout``. So at rest
  sent = ok + error + timeout.
- classifiers (artifact ``task`` binary or multiclass):
  ``modelship_shadow_rows_total{model,result="agree"|"disagree"}``, rows whose
  predicted label is the same or not.
- regressors (``task`` regression): ``modelship_shadow_rows_total{model,result="compared"}``,
  and gauges ``modelship_shadow_abs_diff_sum`` (sum of |stable - shadow|),
  ``modelship_shadow_stable_prediction_sum`` and ``..._sq_sum`` over the same
  rows: mean |diff| / the stable's standard deviation over any window comes
  from the differences of these four. They are gauges because the prediction
  sum can go down; all of them restart from 0 with the process.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httptools
import orjson
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from .batcher import Array, Feed
from .dataplane import DataPlane
from .shadow_url import parse_url

log = logging.getLogger("modelship.serve")

HEADER = b"modelship-shadow"
OUTCOMES = ("sent", "ok", "error", "timeout", "dropped", "unavailable")
CLASSIFIER_TASKS = frozenset({"binary", "multiclass"})
# Bodies waiting in the queue, all together: a few huge requests must not hold
# the pod's memory for a copy nobody waits for (above it, copies are dropped).
QUEUE_BYTES = 64 * 1024 * 1024
# Copies wait this long for company, then leave together (pipelined, one write):
# a socket write and the shadow's wake-up cost more than the rest of a copy.
BATCH_SECONDS = 0.005
# Most copies in flight on one connection (the server answers pipelined requests in order).
PIPELINE = 32
_VERSIONED = re.compile(rb"/versions/[^/?]+/infer")


class MalformedAnswer(ValueError):
    """The shadow answered something that cannot be compared with the stable's answer."""


def shadow_path(url: bytes) -> bytes:
    """The path a copy goes to: the user's, minus a pinned version (the candidate is another version)."""
    if b"/versions/" in url:
        return _VERSIONED.sub(b"/infer", url, count=1)
    return url


# -- comparison (pure) --------------------------------------------------------


@dataclass
class Tally:
    """What the comparison of one answer adds to the counters."""

    agree: int = 0
    disagree: int = 0
    compared: int = 0
    abs_diff: float = 0.0
    stable_sum: float = 0.0
    stable_sq_sum: float = 0.0


def answer_values(body: bytes, v1: bool, output: str | None) -> list[Any] | None:
    """The shadow's prediction values, flattened in row order; None when there is nothing to compare.

    v1: ``{"predictions": [...]}``; v2: the output named ``output`` in
    ``{"outputs": [{"name", "shape", "data"}, ...]}``. Raises
    :class:`MalformedAnswer` when the body is not such a document.
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedAnswer(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise MalformedAnswer("not a JSON object")
    if v1:
        preds = doc.get("predictions")
        if not isinstance(preds, list):
            raise MalformedAnswer("no 'predictions' list")
        return _flatten(preds) if output is not None else None
    outputs = doc.get("outputs")
    if not isinstance(outputs, list):
        raise MalformedAnswer("no 'outputs' list")
    if output is None:
        return None
    for o in outputs:
        if isinstance(o, dict) and o.get("name") == output:
            data = o.get("data")
            if not isinstance(data, list):
                raise MalformedAnswer(f"output {output!r} has no 'data' list")
            return _flatten(data)
    raise MalformedAnswer(f"no output named {output!r}")


def _flatten(values: list[Any]) -> list[Any]:
    if values and isinstance(values[0], list):
        flat: list[Any] = []
        for v in values:
            if isinstance(v, list):
                flat.extend(v)
            else:
                flat.append(v)
        return flat
    return values


def compare(stable: Array, shadow: list[Any], classifier: bool) -> Tally:
    """Compares the stable's predictions (its own array) with the shadow's for the same rows.

    Classifiers: one agree/disagree per row (same label or not). Regressors:
    rows, the sum of |stable - shadow| and the stable's sum and sum of squares.
    Raises :class:`MalformedAnswer` when the shadow's answer does not fit.
    Plain Python: at the usual few rows per request it beats numpy's fixed costs.
    """
    mine = stable.ravel().tolist()
    if len(shadow) != len(mine):
        raise MalformedAnswer(f"{len(shadow)} predictions for {len(mine)} values")
    rows = stable.shape[0] if stable.ndim else 1
    per_row = len(mine) // rows if rows else 1
    if classifier:
        if per_row == 1:
            agree = 0
            for a, b in zip(mine, shadow):  # noqa: B905  (lengths checked above)
                # The usual case first: the same label of the same type needs no checks.
                if (a == b and type(a) is type(b)) or _same_label(a, b):
                    agree += 1
            return Tally(agree=agree, disagree=rows - agree)
        same = [_same_label(a, b) for a, b in zip(mine, shadow, strict=True)]
        agree = sum(all(same[i * per_row : (i + 1) * per_row]) for i in range(rows))
        return Tally(agree=agree, disagree=rows - agree)
    abs_diff = total = squares = 0.0
    for a, b in zip(mine, shadow, strict=True):
        if type(b) is not float and type(b) is not int:
            raise MalformedAnswer("predictions that are not numbers")
        if not math.isfinite(b):
            raise MalformedAnswer("predictions that are not finite numbers")
        a = float(a)
        abs_diff += abs(a - b)
        total += a
        squares += a * a
    return Tally(compared=rows, abs_diff=abs_diff, stable_sum=total, stable_sq_sum=squares)


def _same_label(mine: Any, theirs: Any) -> bool:
    if isinstance(mine, bytes):
        mine = mine.decode("utf-8", "replace")
    if isinstance(mine, str):
        return mine == (theirs if isinstance(theirs, str) else str(theirs))
    if isinstance(theirs, str):  # a numeric label spelled as a string
        try:
            theirs = float(theirs)
        except ValueError:
            raise MalformedAnswer("labels that are not numbers") from None
    elif not isinstance(theirs, int | float):
        raise MalformedAnswer("labels that are not numbers")
    if not math.isfinite(theirs):
        raise MalformedAnswer("labels that are not finite numbers")
    return bool(mine == theirs)


# -- counters -----------------------------------------------------------------


class ShadowCounters(Collector):
    """The shadow's counters as plain numbers (updated on the loop), rendered at scrape time."""

    def __init__(self) -> None:
        self.model = ""
        self.classifier: bool | None = None  # None: no task known, rows are not compared
        self.outcomes = dict.fromkeys(OUTCOMES, 0)
        self.total = Tally()

    def add(self, t: Tally) -> None:
        s = self.total
        s.agree += t.agree
        s.disagree += t.disagree
        s.compared += t.compared
        s.abs_diff += t.abs_diff
        s.stable_sum += t.stable_sum
        s.stable_sq_sum += t.stable_sq_sum

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "modelship_shadow_requests",
            "Sampled inference requests mirrored to the shadow, by outcome (sent = ok + error + timeout; "
            "dropped: queue full; unavailable: no shadow reachable).",
            labels=["model", "outcome"],
        )
        for outcome in OUTCOMES:
            requests.add_metric([self.model, outcome], float(self.outcomes[outcome]))
        yield requests
        if self.classifier is None:
            return
        rows = CounterMetricFamily(
            "modelship_shadow_rows",
            "Rows of shadow answers compared with the stable's (classifiers: agree/disagree on the label; "
            "regressors: compared).",
            labels=["model", "result"],
        )
        s = self.total
        if self.classifier:
            rows.add_metric([self.model, "agree"], float(s.agree))
            rows.add_metric([self.model, "disagree"], float(s.disagree))
            yield rows
            return
        rows.add_metric([self.model, "compared"], float(s.compared))
        yield rows
        for name, doc, value in (
            ("modelship_shadow_abs_diff_sum", "Sum over compared rows of |stable - shadow| prediction.",
             s.abs_diff),
            ("modelship_shadow_stable_prediction_sum", "Sum of the stable's predictions over compared rows.",
             s.stable_sum),
            ("modelship_shadow_stable_prediction_sq_sum",
             "Sum of the squares of the stable's predictions over compared rows.", s.stable_sq_sum),
        ):
            g = GaugeMetricFamily(name, doc, labels=["model"])
            g.add_metric([self.model], value)
            yield g


# -- the client ---------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection to the shadow; copies go out pipelined, in one write.

    Callbacks, not tasks: answers are judged in ``data_received`` and the
    next waiting copies leave from there, so a copy costs the loop no task
    switch and no timer (timeouts come from the shadow's ticker).
    """

    def __init__(self, shadow: Shadow) -> None:
        self.shadow = shadow
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.inflight: deque[_Copy] = deque()  # sent, answers pending, in order
        self.deadline = 0.0  # the oldest copy in flight times out then
        self.used = False  # an earlier exchange succeeded: the shadow may have closed it while idle
        self.got_bytes = False
        self.paused = False
        self.body: list[bytes] = []

    # -- asyncio ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        lost = list(self.inflight)
        self.inflight.clear()
        self.shadow._closed(self, lost, retry=self.used and not self.got_bytes)

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.shadow._finish("error", len(self.inflight))
            self.inflight.clear()
            self.close()

    # -- httptools ---------------------------------------------------------------

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self.body = []
        if not self.inflight:
            return  # an answer nobody waits for
        copy = self.inflight.popleft()
        self.used = True
        keep = self.parser.should_keep_alive()
        self.shadow._judge(self.parser.get_status_code(), body, copy)
        if not keep:
            self.close()  # what else was in flight counts as lost (connection_lost)
        elif not self.inflight:
            self.shadow._idle(self)
        else:
            self.deadline = self.inflight[0].sent + self.shadow.timeout

    # -- the shadow's side ---------------------------------------------------------

    @property
    def open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def send(self, copies: list[_Copy], now: float) -> None:
        assert self.transport is not None
        t = self.shadow.target
        for c in copies:
            c.sent = now
        self.inflight.extend(copies)
        self.deadline = now + self.shadow.timeout
        self.got_bytes = False
        # The answers are read in bulk at the next flush or tick, not one wake-up each.
        self.transport.pause_reading()
        self.paused = True
        self.transport.write(b"".join(
            b"POST %s%s HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"modelship-shadow: 1\r\n\r\n%s" % (t.prefix, c.path, t.host_header, len(c.body), c.body)
            for c in copies
        ))

    def collect(self) -> None:
        """Reads the answers that arrived meanwhile (on the loop's next turn)."""
        if self.paused and self.open:
            self.paused = False
            self.transport.resume_reading()  # type: ignore[union-attr]  # open: not None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@dataclass
class _Copy:
    path: bytes
    body: bytes
    v1: bool
    stable: Array | None
    sent: float = 0.0
    retried: bool = False


class Shadow:
    """Mirrors sampled requests to the shadow through a bounded queue; counts and compares answers."""

    def __init__(self, url: str, *, percent: float, queue: int, timeout: float, connections: int,
                 retry_seconds: float) -> None:
        self.target = parse_url(url)
        self.url = url
        self.percent = percent
        self.timeout = timeout
        self.retry_seconds = retry_seconds
        self.capacity = queue
        self.connections = connections
        self.counters = ShadowCounters()
        self.output: str | None = None  # the stable's prediction output (label or value)
        self.started = False
        self._credit = 0.0
        self._queue: deque[_Copy] = deque()
        self._queued_bytes = 0
        self._ready: list[_Connection] = []  # open, nothing in flight
        self._open: set[_Connection] = set()
        self._connecting: set[asyncio.Task[None]] = set()
        self._flush: asyncio.TimerHandle | None = None
        self._down_until = 0.0
        self._reachable: bool | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self._registry: CollectorRegistry | None = None

    # -- set-up --------------------------------------------------------------

    def attach(self, registry: CollectorRegistry, model: str, task: str | None, output: str | None) -> None:
        """Once the model is loaded: its name, task and prediction output; mirroring starts.

        Runs on the event loop. ``task`` None (a bare ONNX model): copies are
        sent and counted, rows are not compared.
        """
        self.counters.model = model
        self.counters.classifier = None if task is None or output is None else task in CLASSIFIER_TASKS
        self.output = output if self.counters.classifier is not None else None
        if self._registry is not registry:
            registry.register(self.counters)
            self._registry = registry
        if not self.started:
            self.started = True
            self._tick()
            log.info("Started mirroring %g%% of inference requests to the shadow at %s (queue %d, %d connections)",
                     self.percent, self.url, self.capacity, self.connections)

    def attach_to(self, dp: DataPlane) -> None:
        """``attach`` with what the data plane loaded (or failed to load)."""
        names = dp.model.output_names if dp.model is not None else []
        task, output = prediction_output(dp.metadata, names)
        self.attach(dp.metrics.registry, dp.name, task, output)

    async def close(self) -> None:
        """Stops mirroring: what waits is abandoned (a copy nobody waits for), connections close."""
        self.started = False
        for handle in (self._ticker, self._flush):
            if handle is not None:
                handle.cancel()
        for task in list(self._connecting):
            task.cancel()
        await asyncio.gather(*self._connecting, return_exceptions=True)
        self._queue.clear()
        for c in list(self._open):
            c.close()

    # -- the request path ------------------------------------------------------

    def tap(self, url: bytes, body: bytes, v1: bool,
            done: Callable[[Feed | BaseException], None]) -> Callable[[Feed | BaseException], None]:
        """Wraps an inference reply: the response goes out first, then a sampled copy follows."""
        self._credit += self.percent
        if self._credit < 100.0 or not self.started:
            return done
        self._credit -= 100.0

        def reply_then_mirror(result: Feed | BaseException) -> None:
            done(result)
            if not isinstance(result, BaseException):
                self.offer(url, body, v1, result)

        return reply_then_mirror

    def offer(self, url: bytes, body: bytes, v1: bool, result: Feed) -> None:
        """Queues a copy, or counts why not; never raises, never waits, never writes."""
        if not self.started:
            return
        outcomes = self.counters.outcomes
        if self._down_until:
            if time.monotonic() < self._down_until:
                outcomes["unavailable"] += 1
                return
            self._down_until = 0.0
        if len(self._queue) >= self.capacity or self._queued_bytes + len(body) > QUEUE_BYTES:
            outcomes["dropped"] += 1
            return
        stable = result.get(self.output) if self.output is not None else None
        self._queued_bytes += len(body)
        self._queue.append(_Copy(shadow_path(url), body, v1, stable))
        if self._flush is None:
            # Copies leave together a moment later: one write (and one wake-up of the
            # shadow) for all the requests of a few milliseconds.
            self._flush = asyncio.get_running_loop().call_later(BATCH_SECONDS, self._pump)

    # -- the client --------------------------------------------------------------

    def _pump(self) -> None:
        """Hands waiting copies to idle connections; opens connections up to the pool size."""
        self._flush = None
        for conn in self._open:
            conn.collect()
        queue = self._queue
        ready = self._ready
        now = time.monotonic()
        while queue and ready:
            conn = ready.pop()
            if not conn.open:
                continue
            batch = [queue.popleft() for _ in range(min(PIPELINE, len(queue)))]
            self._queued_bytes -= sum(len(c.body) for c in batch)
            conn.send(batch, now)
        if queue and not self._connecting and len(self._open) < self.connections:
            task = asyncio.get_running_loop().create_task(self._connect())
            self._connecting.add(task)
            task.add_done_callback(self._connecting.discard)

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        t = self.target
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(self), t.host, t.port), self.timeout
            )
        except (OSError, TimeoutError) as exc:
            self._went_down(exc)
            return
        if not self.started:
            conn.close()
            return
        self._open.add(conn)
        if self._reachable is not True:
            log.info("Connected to the shadow at %s%s", self.url,
                     "; mirroring resumed" if self._reachable is False else "")
            self._reachable = True
        self._idle(conn)

    def _idle(self, conn: _Connection) -> None:
        """A connection has nothing in flight: it takes what waits (it waited long enough), or waits."""
        self._ready.append(conn)
        if self._queue:
            self._pump()

    def _closed(self, conn: _Connection, lost: list[_Copy], retry: bool) -> None:
        self._open.discard(conn)
        if conn in self._ready:
            self._ready.remove(conn)
        if retry and self.started and not any(c.retried for c in lost):
            # The shadow had closed an idle keep-alive connection as the copies left: once more.
            for c in reversed(lost):
                c.retried = True
                self._queue.appendleft(c)
                self._queued_bytes += len(c.body)
            if self._queue:
                self._pump()
            return
        self._finish("error", len(lost))

    def _went_down(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + self.retry_seconds
        if self._reachable is not False:
            self._reachable = False
            reason = str(exc) or type(exc).__name__
            log.info("Found no shadow at %s (%s); counting copies as unavailable, retrying every %.1f s",
                     self.url, reason, self.retry_seconds)
        # What waits would only meet the same refusal.
        self.counters.outcomes["unavailable"] += len(self._queue)
        self._queue.clear()
        self._queued_bytes = 0

    def _tick(self) -> None:
        """Times out connections whose oldest copy waits too long (checked a few times per timeout)."""
        now = time.monotonic()
        for conn in list(self._open):
            conn.collect()
            if conn.inflight and now >= conn.deadline:
                # The copies behind the late one wait on it: all of them time out.
                self._finish("timeout", len(conn.inflight))
                conn.inflight.clear()
                conn.close()  # an answer may still come: this connection is out of step
        self._ticker = asyncio.get_running_loop().call_later(min(0.1, self.timeout / 4), self._tick)

    def _finish(self, outcome: str, copies: int = 1) -> None:
        outcomes = self.counters.outcomes
        outcomes["sent"] += copies
        outcomes[outcome] += copies

    def _judge(self, status: int, body: bytes, copy: _Copy) -> None:
        if status != 200:
            self._finish("error")
            return
        try:
            values = answer_values(body, copy.v1, self.output if copy.stable is not None else None)
            tally = None
            if values is not None and copy.stable is not None and self.counters.classifier is not None:
                tally = compare(copy.stable, values, self.counters.classifier)
        except MalformedAnswer:
            self._finish("error")
            return
        except Exception:  # a bug here must not stop mirroring, let alone the server
            log.exception("Failed to compare the shadow's answer at %s", self.url)
            self._finish("error")
            return
        if tally is not None:
            self.counters.add(tally)
        self._finish("ok")


def from_settings(settings: Any) -> Shadow | None:
    """The settings' shadow, or None when mirroring is off (no URL, or 0 %)."""
    url = (settings.shadow_url or "").strip()
    if not url or settings.shadow_percent <= 0:
        return None
    return Shadow(url, percent=settings.shadow_percent, queue=settings.shadow_queue,
                  timeout=settings.shadow_timeout_seconds, connections=settings.shadow_connections,
                  retry_seconds=settings.shadow_retry_seconds)


def prediction_output(metadata: Any, output_names: list[str]) -> tuple[str | None, str | None]:
    """(task, the output holding the prediction) from the artifact's metadata; (None, None) without it."""
    if metadata is None:
        return None, None
    roles = {o.role: o.name for o in metadata.outputs}
    role = "label" if metadata.task in CLASSIFIER_TASKS else "value"
    name = roles.get(role)
    if name is None or name not in output_names:
        return metadata.task, None
    return metadata.task, name


__all__ = ["HEADER", "OUTCOMES", "MalformedAnswer", "Shadow", "ShadowCounters", "Tally", "answer_values",
           "compare", "from_settings", "parse_url", "prediction_output", "shadow_path"]
