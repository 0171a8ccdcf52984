"""Leader election around kopf: with several replicas, exactly one acts.

``lead(settings, act)`` blocks until this process holds the leader Lease
(serving /healthz meanwhile, so a waiting follower is not restarted), then
runs ``act`` (kopf) while a thread renews the Lease every retry period. A
leader that has not renewed for the renew deadline exits at once with a
non-zero code, as controller-runtime does: its pod restarts and campaigns
again, and the Lease (valid for longer than the deadline) cannot pass to
another replica before this one has stopped. On SIGTERM kopf stops first,
then the Lease is released so the successor takes over without waiting for
it to expire. The decisions are pure (``modelship.logic.leader``); the API
calls are in ``modelship.k8s.lease``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, Protocol

import kopf

from modelship.k8s.client import Kube
from modelship.k8s.lease import Conflict, LeaseClient, Observed
from modelship.logic.leader import Action, LeaseRecord, decide, follower_sleep, must_stop, released
from modelship.metrics import LEADER
from modelship.settings import OperatorSettings

log = logging.getLogger("modelship.leader")

LOST_EXIT_CODE = 3  # distinct from a crash's 1, so a restart after a lost Lease is recognisable


class LeaseStore(Protocol):
    def get(self) -> Observed | None: ...
    def create(self, record: LeaseRecord) -> Observed: ...
    def update(self, resource_version: str, record: LeaseRecord) -> Observed: ...


def exit_now(reason: str) -> None:
    """Stop acting this instant: no handler may run another line (the default ``on_lost``)."""
    LEADER.set(0)
    log.critical("Lost the leader Lease: %s. Exiting so that only one operator acts.", reason)
    logging.shutdown()
    os._exit(LOST_EXIT_CODE)


class Elector:
    """Campaigns for, renews and releases one Lease. Clocks and ``on_lost`` are
    parameters so the tests can drive it without a cluster or a real exit."""

    def __init__(self, store: LeaseStore, identity: str, duration_seconds: int, renew_deadline: float,
                 retry_period: float, on_lost: Callable[[str], None] = exit_now,
                 wall: Callable[[], datetime] = lambda: datetime.now(UTC),
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store, self.identity = store, identity
        self.duration, self.renew_deadline, self.retry = duration_seconds, renew_deadline, retry_period
        self.on_lost, self.wall, self.monotonic = on_lost, wall, monotonic
        self.leading = False
        self._observed: Observed | None = None
        self._last_renewed = 0.0
        self._holder_seen: str | None = None
        self._lost = threading.Event()
        self._stop_renewing = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- Following ---------------------------------------------------------------

    def try_acquire(self) -> float:
        """One look at the Lease as a follower; returns how long to wait before the next."""
        started, now = self.monotonic(), self.wall()
        observed = self.store.get()
        decision = decide(observed.record if observed else None, self.identity, now, self.duration, leading=False)
        if decision.action is Action.ACQUIRE and decision.write is not None:
            try:
                if observed is None:
                    self._observed = self.store.create(decision.write)
                else:
                    self._observed = self.store.update(observed.resource_version, decision.write)
            except Conflict:
                return 0.0  # another replica was quicker: read who
            self._last_renewed, self.leading = started, True
            return 0.0
        if observed is not None and observed.record.holder != self._holder_seen:
            self._holder_seen = observed.record.holder
            log.info("Waiting as a follower: %s holds the leader Lease", self._holder_seen)
        return follower_sleep(decision, self.retry)

    def campaign(self, stop: threading.Event) -> bool:
        """Block until this process leads (True) or ``stop`` is set (False)."""
        while not stop.is_set():
            try:
                pause = self.try_acquire()
            except Exception as exc:  # the API server is away: keep trying, we act on nothing meanwhile
                log.warning("Could not read the leader Lease: %s", exc)
                pause = self.retry
            if self.leading:
                record = self._observed.record if self._observed else None
                log.info("Became the leader as %s (transitions: %s)", self.identity,
                         record.transitions if record else "?")
                return True
            stop.wait(pause)
        return False

    # --- Leading -----------------------------------------------------------------

    def renew_once(self) -> bool:
        """One renewal; False when the Lease is someone else's now (``on_lost`` was called)."""
        started, now = self.monotonic(), self.wall()
        for _ in range(2):  # a conflict (someone touched the Lease) earns one re-read
            observed = self._observed
            decision = decide(observed.record if observed else None, self.identity, now, self.duration,
                              leading=True)
            if decision.action is Action.LOST or observed is None or decision.write is None:
                holder = observed.record.holder if observed else "nobody (it was deleted)"
                self._lose(f"it is held by {holder}")
                return False
            try:
                self._observed = self.store.update(observed.resource_version, decision.write)
            except Conflict:
                self._observed = self.store.get()
                continue
            self._last_renewed = started
            return True
        return True  # not renewed this round; the deadline decides

    def _lose(self, reason: str) -> None:
        if not self._lost.is_set():
            self._lost.set()
            self.leading = False
            self.on_lost(reason)

    def _renew_loop(self) -> None:
        while not self._stop_renewing.wait(self.retry) and not self._lost.is_set():
            try:
                if not self.renew_once():
                    return
            except Exception as exc:  # the watchdog ends it if this goes on past the deadline
                log.warning("Could not renew the leader Lease: %s", exc)

    def _watchdog(self) -> None:
        while not self._stop_renewing.wait(0.1) and not self._lost.is_set():
            now = self.monotonic()
            if must_stop(self._last_renewed, now, self.renew_deadline):
                self._lose(f"not renewed for {now - self._last_renewed:.1f} s")
                return

    def start_renewing(self) -> None:
        self._stop_renewing.clear()
        self._threads = [threading.Thread(target=self._renew_loop, name="lease-renewer", daemon=True),
                         threading.Thread(target=self._watchdog, name="lease-watchdog", daemon=True)]
        for thread in self._threads:
            thread.start()

    def stop_renewing(self) -> None:
        self._stop_renewing.set()
        for thread in self._threads:
            thread.join(timeout=self.renew_deadline)
        self._threads = []

    def release(self) -> None:
        """Give the Lease up (after acting has stopped) so a follower takes it at once."""
        if not self.leading or self._lost.is_set():
            return
        self.leading = False
        observed = self._observed
        for _ in range(2):
            if observed is None or observed.record.holder != self.identity:
                return
            try:
                self.store.update(observed.resource_version, released(observed.record, self.wall()))
                log.info("Released the leader Lease")
                return
            except Conflict:
                observed = self.store.get()
            except Exception as exc:  # a follower takes over when the Lease expires instead
                log.warning("Could not release the leader Lease: %s", exc)
                return


# --- The process around kopf -------------------------------------------------------


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ok = self.path.split("?")[0] == "/healthz"
        body = json.dumps({"leader": False} if ok else {"error": "not found"}).encode()
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def health_while_waiting(port: int) -> Iterator[None]:
    """/healthz for a follower; kopf serves it (on the same port) once this process leads."""
    server = ThreadingHTTPServer(("0.0.0.0", port), _Health)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="follower-health", daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class Stop:
    """SIGTERM/SIGINT before kopf takes the signals over: ends a campaign, and
    stops kopf at once if it comes while kopf is starting (``kopf_flag``)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.kopf_flag = asyncio.Event()  # bound to kopf's loop when kopf first waits on it

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("Received %s; stopping", signal.Signals(signum).name)
        self.event.set()
        try:
            loop = asyncio.get_running_loop()  # kopf's, when it is starting in this (main) thread
        except RuntimeError:
            self.kopf_flag.set()
        else:
            loop.call_soon_threadsafe(self.kopf_flag.set)


_STOP: Stop | None = None


@kopf.on.cleanup(id="leader-stop-flag")
async def _finish_stop_flag(**_: Any) -> None:
    """Raise kopf's stop flag as kopf stops for any reason: otherwise kopf's
    task waiting on it would count as hung and delay the exit by 5 s."""
    if _STOP is not None:
        _STOP.kopf_flag.set()


LEADER_LABEL = "modelship.io/leader"


def mark_pod(kube: Kube, settings: OperatorSettings, leading: bool) -> None:
    """Label this replica's pod ``modelship.io/leader: "true"|"false"`` (when
    ``MODELSHIP_LEADER_POD_LABEL``), so a Service selecting the label (the chart's
    webhook Service) sends Alertmanager's posts to the leader only, the replica
    that keeps the alert book. Best effort: a failure only delays alerts."""
    if not settings.leader_pod_label:
        return
    try:
        kube.patch("v1", "Pod", settings.lease_namespace, settings.pod_name,
                   {"metadata": {"labels": {LEADER_LABEL: "true" if leading else "false"}}})
    except Exception as exc:
        log.warning("Could not label pod %s/%s %s=%s: %s", settings.lease_namespace, settings.pod_name,
                    LEADER_LABEL, leading, exc)


def lead(settings: OperatorSettings, act: Callable[[asyncio.Event | None], object]) -> int:
    """Run ``act`` (given kopf's stop flag) while this process leads; the exit code."""
    if not settings.leader_election:
        LEADER.set(1)
        act(None)
        return 0
    LEADER.set(0)
    kube = Kube.from_environment()
    kube.timeout = min(5.0, settings.lease_renew_deadline_seconds / 2)
    elector = Elector(LeaseClient(kube, settings.lease_namespace, settings.lease_name), settings.pod_name,
                      settings.lease_duration_seconds, settings.lease_renew_deadline_seconds,
                      settings.lease_retry_period_seconds)
    global _STOP
    stop = _STOP = Stop()
    stop.install()
    log.info("Campaigning for the leader Lease %s/%s as %s", settings.lease_namespace, settings.lease_name,
             settings.pod_name)
    with health_while_waiting(settings.health_port):
        mark_pod(kube, settings, False)  # a restarted leader's pod may still say it leads
        if not elector.campaign(stop.event):
            log.info("Stopped before becoming the leader")
            return 0
    LEADER.set(1)
    elector.start_renewing()
    mark_pod(kube, settings, True)
    try:
        act(stop.kopf_flag)
    finally:
        stop.install()  # kopf restored the default handlers: a second SIGTERM must not cut the release short
        elector.stop_renewing()
        LEADER.set(0)
        mark_pod(kube, settings, False)
        elector.release()
    return 0

