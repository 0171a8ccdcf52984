"""kopf wiring: configuration, the metrics endpoint, and one reconcile per kind.

Each kind has one level-based reconcile function (``reconcile(ctx, body)``)
that is called on every watch event and on a timer. Watch events make it
react at once; the timer makes time pass (canary pauses, cooldowns, drift
intervals) for objects in flight; objects at rest are left to events (their
own and their children's) and a slow resync, so a fleet at rest costs
neither API writes nor reads. Nothing writes kopf's own bookkeeping
annotations. A per-object lock keeps an event and
a timer from reconciling the same object at once.

A reconcile may return when it wants to look again (a canary's next
analysis, the end of a pause, a shadow's end): that reconcile is scheduled
for that moment, so ``analysis.interval`` and pauses are kept to within a
fraction of a second rather than to the timer's tick.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from modelship.controllers.context import Context
from modelship.k8s.client import Kube
from modelship.k8s.scrape import PodHTTP
from modelship.metrics import RECONCILE_SECONDS, RECONCILES
from modelship.settings import OperatorSettings

log = logging.getLogger("modelship")

Body = dict[str, Any]
Reconcile = Callable[["Context", Body], "float | None"]
Fetch = Callable[[str, str], Body | None]


_CONTEXT: Context | None = None
_LOCKS: dict[tuple[str, str, str], threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()
_PENDING: set[tuple[str, str, str]] = set()  # triggers that arrived while a reconcile ran
_LAST_FULL: dict[tuple[str, str, str], float] = {}  # monotonic time of each object's last reconcile


def context() -> Context:
    if _CONTEXT is None:
        raise RuntimeError("the operator runtime is not started")
    return _CONTEXT


def _lock(kind: str, namespace: str, name: str) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault((kind, namespace, name), threading.Lock())


def forget(kind: str, namespace: str, name: str) -> None:
    with _LOCKS_GUARD:
        _LOCKS.pop((kind, namespace, name), None)
        _PENDING.discard((kind, namespace, name))
        _LAST_FULL.pop((kind, namespace, name), None)
        pending = _TIMERS.pop((kind, namespace, name), None)
    if pending is not None:
        pending[1].cancel()


MAX_RERUNS = 3
CONFLICT_RETRY_SECONDS = 0.5
ACTING = threading.Event()  # set while this process runs its handlers (leads); timers fire only then
_TIMERS: dict[tuple[str, str, str], tuple[float, threading.Timer]] = {}


def schedule(kind: str, reconcile: Reconcile, key: tuple[str, str, str], delay: float, fetch: Fetch,
             refresh: bool) -> None:
    """Reconcile ``key`` again in ``delay`` seconds (an earlier wish wins; one timer per object)."""
    deadline = time.monotonic() + delay

    def fire() -> None:
        with _LOCKS_GUARD:
            if _TIMERS.get(key, (None, None))[1] is timer:
                _TIMERS.pop(key, None)
        if not ACTING.is_set():
            return
        body = fetch(key[1], key[2])
        if body is not None:
            guarded(kind, reconcile, body, fetch, refresh)

    with _LOCKS_GUARD:
        existing = _TIMERS.get(key)
        if existing is not None and existing[0] <= deadline:
            return
        if existing is not None:
            existing[1].cancel()
        timer = threading.Timer(max(delay, 0.0), fire)
        timer.daemon = True
        _TIMERS[key] = (deadline, timer)
    timer.start()


def _run_once(kind: str, reconcile: Reconcile, body: Body) -> float | None:
    """One reconcile with metrics, and errors turned into kopf retries."""
    meta = body.get("metadata", {})
    started = time.monotonic()
    try:
        again = reconcile(context(), body)
        RECONCILES.labels(kind, "ok").inc()
        return again
    except ApiException as exc:
        RECONCILES.labels(kind, "api_error").inc()
        if exc.status == 409:
            log.info("Conflict on %s %s/%s; the next reconcile retries", kind, meta.get("namespace"),
                     meta.get("name"))
            return CONFLICT_RETRY_SECONDS
        raise kopf.TemporaryError(f"API error {exc.status}: {exc.reason}", delay=5) from exc
    except kopf.TemporaryError:
        RECONCILES.labels(kind, "retry").inc()
        raise
    except Exception:
        RECONCILES.labels(kind, "error").inc()
        log.exception("Reconcile of %s %s/%s failed", kind, meta.get("namespace"), meta.get("name"))
        raise kopf.TemporaryError("reconcile failed; see the operator log", delay=10) from None
    finally:
        RECONCILE_SECONDS.labels(kind).observe(time.monotonic() - started)


def guarded(kind: str, reconcile: Reconcile, body: Body, fetch: Fetch | None = None,
            refresh: bool = False) -> None:
    """Run one reconcile under the object's lock.

    A trigger that arrives while a reconcile of the same object runs is not
    dropped: it is remembered, and the running one reconciles again from a
    fresh read (``fetch``) when it finishes, so what changed meanwhile is seen.
    """
    meta = body.get("metadata", {})
    if meta.get("deletionTimestamp"):
        return  # owner references let the garbage collector remove the children
    key = (kind, meta.get("namespace", ""), meta.get("name", ""))
    lock = _lock(*key)
    again: float | None = None
    if not lock.acquire(blocking=False):
        with _LOCKS_GUARD:
            _PENDING.add(key)
        return
    try:
        for attempt in range(1 + MAX_RERUNS):
            with _LOCKS_GUARD:
                _PENDING.discard(key)
            if attempt == 0 and refresh and fetch is not None:
                # kopf hands over the object as its watch last saw it, which may predate our
                # own last write: decide from a fresh read instead of undoing a step.
                fresh = fetch(key[1], key[2])
                if fresh is None or fresh.get("metadata", {}).get("deletionTimestamp"):
                    return
                body = fresh
            _LAST_FULL[key] = time.monotonic()
            again = _run_once(kind, reconcile, body)
            with _LOCKS_GUARD:
                rerun = key in _PENDING
            if not rerun or fetch is None:
                return
            fresh = fetch(key[1], key[2])
            if fresh is None or fresh.get("metadata", {}).get("deletionTimestamp"):
                return
            body = fresh
    finally:
        lock.release()
        if again is not None and fetch is not None:
            schedule(kind, reconcile, key, again, fetch, refresh)


def due(kind: str, namespace: str, name: str, resync_seconds: float, now: float | None = None) -> bool:
    """Whether a steady object's periodic full resync is due."""
    last = _LAST_FULL.get((kind, namespace, name))
    return last is None or (time.monotonic() if now is None else now) - last >= resync_seconds


def _fetcher(kind: str) -> Fetch:
    def fetch(namespace: str, name: str) -> Body | None:
        return context().kube.get("modelship.io/v1alpha1", kind, namespace, name)
    return fetch


def register(kind: str, plural: str, reconcile: Reconcile, interval: float,
             on_delete: Callable[[str, str], None] | None = None,
             steady: Callable[[Body], bool] | None = None, resync_seconds: float = 300.0,
             refresh: bool = False) -> None:
    """Register the event handler and the timer that both call ``reconcile``.

    The timer exists to let time pass (canary pauses, cooldowns). An object
    ``steady`` says needs no time is only reconciled by events (its own and
    its children's, see ``watch_children``) and by a full resync every
    ``resync_seconds``, so a fleet at rest costs no API reads either. With
    ``refresh`` each reconcile starts from a fresh read of the object (one GET)
    rather than kopf's copy, which can predate the operator's own last write.
    """
    fetch = _fetcher(kind)

    @kopf.on.event("modelship.io", "v1alpha1", plural, id=f"{kind}-event")  # type: ignore[arg-type]
    def _on_event(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
        meta = body.get("metadata", {})
        if event.get("type") == "DELETED":
            forget(kind, meta.get("namespace", ""), meta.get("name", ""))
            if on_delete is not None:
                on_delete(meta.get("namespace", ""), meta.get("name", ""))
            return
        guarded(kind, reconcile, dict(body), fetch, refresh)

    @kopf.timer("modelship.io", "v1alpha1", plural, interval=interval, id=f"{kind}-timer")
    def _on_timer(body: kopf.Body, **_: Any) -> None:
        obj = dict(body)
        meta = obj.get("metadata", {})
        if steady is not None and steady(obj) and not due(kind, meta.get("namespace", ""), meta.get("name", ""),
                                                           resync_seconds):
            return
        guarded(kind, reconcile, obj, fetch, refresh)


def watch_children(group: str, version: str, plural: str, label: str, owner_kind: str,
                   owner_reconcile: Reconcile) -> None:
    """Reconcile the owner (named by ``label``) whenever one of its children changes.

    The initial listing is skipped: the owners' own initial events cover it.
    """
    fetch = _fetcher(owner_kind)

    @kopf.on.event(group, version, plural, labels={label: kopf.PRESENT},  # type: ignore[arg-type]
                   id=f"{owner_kind}-child-{plural}")
    def _on_child(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
        if event.get("type") is None:
            return
        meta = body.get("metadata", {})
        owner_name = (meta.get("labels") or {}).get(label)
        namespace = meta.get("namespace", "")
        if not owner_name:
            return
        owner = fetch(namespace, owner_name)
        if owner is not None:
            guarded(owner_kind, owner_reconcile, owner, fetch)


@kopf.on.startup()
def _configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    settings.persistence.finalizer = "modelship.io/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="modelship.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="modelship.io", key="last-handled-configuration"
    )
    settings.execution.max_workers = 8
    # No watch on CustomResourceDefinitions or Namespaces: our kinds exist before we start and the
    # namespaces are given, so the chart grants neither (least privilege; see charts/modelship/files/rbac.yaml).
    settings.scanning.disabled = True


def start(settings: OperatorSettings) -> Context:
    """Make the context every reconcile gets (the API client from the environment)."""
    global _CONTEXT
    _CONTEXT = Context(settings=settings, kube=Kube.from_environment(),
                       pods=PodHTTP(settings.scrape_timeout_seconds))
    return _CONTEXT
