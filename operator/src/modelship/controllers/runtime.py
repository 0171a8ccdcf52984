"""kopf wiring: configuration, the metrics endpoint, and one reconcile per kind.

Each kind has one level-based reconcile function (``reconcile(ctx, body)``)
that is called on every watch event and on a timer. Watch events make it
react at once; the timer makes time pass (canary pauses, cooldowns, drift
intervals). Neither writes kopf's own bookkeeping annotations, so a Model in
steady state costs no API writes at all. A per-object lock keeps an event and
a timer from reconciling the same object at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException
from prometheus_client import start_http_server

from modelship.controllers.leader import lead
from modelship.controllers.metrics import RECONCILE_SECONDS, RECONCILES, REGISTRY
from modelship.k8s.client import Kube
from modelship.settings import OperatorSettings

log = logging.getLogger("modelship")

Body = dict[str, Any]
Reconcile = Callable[["Context", Body], None]


@dataclass
class Context:
    """What a reconcile needs besides the object: settings and the API client."""

    settings: OperatorSettings
    kube: Kube


_CONTEXT: Context | None = None
_LOCKS: dict[tuple[str, str, str], threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


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


def guarded(kind: str, reconcile: Reconcile, body: Body) -> None:
    """Run one reconcile with the object's lock, metrics, and errors turned into retries."""
    meta = body.get("metadata", {})
    if meta.get("deletionTimestamp"):
        return  # owner references let the garbage collector remove the children
    lock = _lock(kind, meta.get("namespace", ""), meta.get("name", ""))
    if not lock.acquire(blocking=False):
        return  # another reconcile of this object is running; it sees the same state
    started = time.monotonic()
    try:
        reconcile(context(), body)
        RECONCILES.labels(kind, "ok").inc()
    except ApiException as exc:
        RECONCILES.labels(kind, "api_error").inc()
        if exc.status == 409:
            log.info("Conflict on %s %s/%s; the next reconcile retries", kind, meta.get("namespace"),
                     meta.get("name"))
            return
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
        lock.release()


def register(kind: str, plural: str, reconcile: Reconcile, interval: float,
             on_delete: Callable[[str, str], None] | None = None) -> None:
    """Register the event handler and the timer that both call ``reconcile``."""

    @kopf.on.event("modelship.io", "v1alpha1", plural, id=f"{kind}-event")  # type: ignore[arg-type]
    def _on_event(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
        if event.get("type") == "DELETED":
            meta = body.get("metadata", {})
            forget(kind, meta.get("namespace", ""), meta.get("name", ""))
            if on_delete is not None:
                on_delete(meta.get("namespace", ""), meta.get("name", ""))
            return
        guarded(kind, reconcile, dict(body))

    @kopf.timer("modelship.io", "v1alpha1", plural, interval=interval, id=f"{kind}-timer")
    def _on_timer(body: kopf.Body, **_: Any) -> None:
        guarded(kind, reconcile, dict(body))


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


def run(settings: OperatorSettings) -> int:
    """Start the metrics endpoint and kopf; return when kopf stops."""
    global _CONTEXT
    _CONTEXT = Context(settings=settings, kube=Kube.from_environment())
    start_http_server(settings.metrics_port, registry=REGISTRY)
    from modelship.controllers import handlers

    handlers.register_all(settings)
    log.info("Started the Modelship operator (namespaces: %s; metrics on :%d; health on :%d)",
             ", ".join(settings.namespaces) or "all", settings.metrics_port, settings.health_port)
    return lead(settings, lambda stop_flag: kopf.run(
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        standalone=True,
        liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz",
        stop_flag=stop_flag,
    ))
