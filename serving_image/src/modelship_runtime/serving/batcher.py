"""Micro-batching: concurrent requests share one onnxruntime call.

Requests queue up; a batch takes the queued requests in order up to
``max_batch_size`` rows (a larger single request runs alone, unsplit). With no
delay configured a batch runs as soon as the event loop is free, so requests
that arrive while a call runs share the next one: batching grows with load
and costs nothing when idle. A delay > 0 lets a batch that is not full wait
that long for company.

Calls that take long (hundreds of microseconds and up) run on one dedicated
thread, since onnxruntime releases the GIL and the loop can keep parsing
meanwhile; tiny calls run inline, where a thread hop would cost more than the
call. The choice follows the median of the last few call times measured for
batches of about the same size (a power-of-two bucket of rows): a median, not
an average, because on a busy machine one call the kernel preempted takes
milliseconds, and an average would send every later call through the thread,
where the hand-over itself then keeps the measured times high.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger("modelship.serve")
Array = npt.NDArray[Any]
Feed = dict[str, Array]
# Calls shorter than this (moving average) run inline on the event loop: on a
# small pod a thread hop and GIL hand-over cost more than such a call.
INLINE_SECONDS = 500e-6


Reply = Callable[[Feed | BaseException], None]


class _Job:
    __slots__ = ("_signature", "enqueued", "feed", "reply", "rows")

    def __init__(self, feed: Feed, rows: int, reply: Reply, enqueued: float) -> None:
        self.feed = feed
        self.rows = rows
        self.reply = reply
        self.enqueued = enqueued
        self._signature: tuple[Any, ...] | None = None

    @property
    def signature(self) -> tuple[Any, ...]:
        """What must agree for jobs to share a call (computed only when they might)."""
        if self._signature is None:
            self._signature = tuple([(k, v.dtype.str, v.shape[1:]) for k, v in self.feed.items()])
        return self._signature


# What on_batch gets for one onnxruntime call: inputs, outputs, rows, requests, seconds.
_Stats = tuple[Feed, Feed, int, int, float]
# Recent call times kept per bucket of rows; their median decides inline or thread.
_SAMPLES = 7


class Batcher:
    def __init__(
        self,
        run: Callable[[Feed, bool], Feed],
        *,
        max_batch_size: int,
        max_delay_seconds: float,
        batchable: bool,
        on_batch: Callable[[Feed, Feed, int, int, float], None],
    ) -> None:
        self._run = run
        self._on_batch = on_batch
        self.max_batch_size = max_batch_size
        self.max_delay = max_delay_seconds
        self.batchable = batchable
        self._queue: deque[_Job] = deque()
        self._queued_rows = 0
        self._scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._running = False
        # bucket (rows.bit_length()) -> recent call times, newest last
        self._times: dict[int, deque[float]] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelship-infer")
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def idle(self) -> bool:
        return not self._queue and not self._running

    def submit(self, feed: Feed, rows: int, reply: Reply) -> None:
        """Queues a feed; ``reply`` gets its outputs (or the exception) on the loop thread.

        Callbacks rather than futures: a response can be written in the same
        loop iteration the batch finishes in.
        """
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        job = _Job(feed, rows, reply, time.perf_counter() if self.max_delay > 0 else 0.0)
        self._queue.append(job)
        self._queued_rows += rows
        if self._queued_rows >= self.max_batch_size and self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._scheduled = False
        self._kick()

    def prime(self, seconds: float, rows: int = 1) -> None:
        """Seeds the estimate with a measured call (the warm-up)."""
        self._times[rows.bit_length()] = deque([seconds], maxlen=_SAMPLES)

    def expected_seconds(self, rows: int) -> float:
        """The median of recent calls of about ``rows`` rows; else the nearest smaller
        bucket's, scaled up; 0 when nothing is known yet."""
        bucket = rows.bit_length()
        times = self._times.get(bucket)
        if times:
            return sorted(times)[len(times) // 2]
        for smaller in range(bucket - 1, 0, -1):
            times = self._times.get(smaller)
            if times:
                return sorted(times)[len(times) // 2] * (1 << (bucket - smaller))
        return 0.0

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)

    def _kick(self) -> None:
        if not self._scheduled and not self._running and self._queue:
            self._scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        self._timer = None
        if self._running or not self._queue:
            return
        assert self._loop is not None
        if self.max_delay > 0 and self._queued_rows < self.max_batch_size:
            waited = time.perf_counter() - self._queue[0].enqueued
            if waited < self.max_delay:
                self._scheduled = True
                self._timer = self._loop.call_later(self.max_delay - waited, self._flush)
                return
        batch = self._take()
        if self.expected_seconds(sum(j.rows for j in batch)) < INLINE_SECONDS:
            stats: list[_Stats] = []
            self._finish(batch, self._execute(batch, True, stats))
            self._kick()
            self._report(stats)
            return
        self._running = True
        stats = []
        done = self._loop.run_in_executor(self._pool, self._execute, batch, False, stats)
        done.add_done_callback(lambda f: self._after_thread(batch, f, stats))

    def _after_thread(self, batch: list[_Job], done: asyncio.Future[list[Feed | BaseException]],
                      stats: list[_Stats]) -> None:
        self._running = False
        self._finish(batch, done.result())
        # The next call starts before this one's statistics are counted, so the
        # inference thread is not idle while the loop counts drift.
        if not self._scheduled and self._queue:
            self._flush()
        else:
            self._kick()
        self._report(stats)

    def _report(self, stats: list[_Stats]) -> None:
        for s in stats:
            try:
                self._on_batch(*s)
            except Exception:  # statistics must never fail a prediction
                log.exception("Failed to record a batch's statistics")

    def _take(self) -> list[_Job]:
        q = self._queue
        first = q.popleft()
        batch = [first]
        rows = first.rows
        if self.batchable and q:
            signature = first.signature
            while q and rows + q[0].rows <= self.max_batch_size and q[0].signature == signature:
                job = q.popleft()
                batch.append(job)
                rows += job.rows
        self._queued_rows -= rows
        return batch

    def _execute(self, batch: list[_Job], inline: bool, stats: list[_Stats]) -> list[Feed | BaseException]:
        """Runs the batch (inline on the loop, or on the inference thread); one result per job.

        What ``on_batch`` is to see goes to ``stats``: it runs on the loop after the replies.
        """
        if len(batch) == 1:
            return [self._call(batch[0].feed, batch[0].rows, 1, inline, stats)]
        feed = {k: np.concatenate([j.feed[k] for j in batch]) for k in batch[0].feed}
        total = sum(j.rows for j in batch)
        result = self._call(feed, total, len(batch), inline, stats)
        if isinstance(result, BaseException) or any(
            v.ndim == 0 or v.shape[0] != total for v in result.values()
        ):
            # One bad request must not fail its neighbours, and outputs that
            # are not per-row cannot be split: run each on its own.
            return [self._call(j.feed, j.rows, 1, inline, stats) for j in batch]
        out: list[Feed | BaseException] = []
        start = 0
        for j in batch:
            end = start + j.rows
            out.append({k: v[start:end] for k, v in result.items()})
            start = end
        return out

    def _call(self, feed: Feed, rows: int, requests: int, inline: bool, stats: list[_Stats]) -> Feed | BaseException:
        t0 = time.perf_counter()
        try:
            result = self._run(feed, inline)
        except Exception as exc:
            return exc
        seconds = time.perf_counter() - t0
        bucket = rows.bit_length()
        times = self._times.get(bucket)
        if times is None:
            times = self._times[bucket] = deque(maxlen=_SAMPLES)
        times.append(seconds)
        stats.append((feed, result, rows, requests, seconds))
        return result

    @staticmethod
    def _finish(batch: list[_Job], results: list[Feed | BaseException]) -> None:
        for job, result in zip(batch, results, strict=True):
            try:
                job.reply(result)
            except Exception:  # one broken reply must not starve the others
                log.exception("Failed to deliver a batch result")
