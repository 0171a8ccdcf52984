"""The Alertmanager webhook: ``POST /alerts`` (payload version 4).

Alerts are mapped to a Model by their ``namespace`` and ``model`` labels and
kept in one book, deduplicated by fingerprint and start time (Alertmanager
repeats and retries). DriftMonitors with ``action.requireAlert`` retrain only
while their Model's alert fires, so silences and inhibitions apply; any alert
rule a user writes with those labels triggers retraining the same way.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from modelship.logic.retrain import AlertBook, AlertPayloadError, parse_alerts, record_alerts
from modelship.metrics import ALERTS

log = logging.getLogger(__name__)
BOOK = AlertBook()
_LOCK = threading.Lock()
MAX_BODY = 1 << 20


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def handler(token: str | None) -> Any:
    async def alerts(request: web.Request) -> web.Response:
        global BOOK
        if token:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                ALERTS.labels("unknown", "unauthorized").inc()
                return _error(401, "missing or wrong bearer token")
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _error(413, f"the body is larger than {MAX_BODY} bytes")
        try:
            payload = json.loads(await request.read())
            received = parse_alerts(payload)
        except (json.JSONDecodeError, UnicodeDecodeError):
            ALERTS.labels("unknown", "invalid").inc()
            return _error(400, "the body is not JSON")
        except AlertPayloadError as exc:
            ALERTS.labels("unknown", "invalid").inc()
            return _error(400, str(exc))
        with _LOCK:
            BOOK, news = record_alerts(BOOK, received, datetime.now(UTC))
        for alert in received:
            outcome = "new" if alert in news else "duplicate"
            if alert.target is None:
                outcome = "unmatched"
            ALERTS.labels(alert.status, outcome).inc()
        for alert in news:
            log.info("Received alert %s (%s) for %s", alert.labels.get("alertname", "?"), alert.status,
                     "/".join(alert.target) if alert.target else "no model")
        return web.json_response({"received": len(received), "new": len(news)})

    return alerts


async def start(port: int, token: str | None) -> web.AppRunner:
    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_post("/alerts", handler(token))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    log.info("Started the Alertmanager webhook on :%d/alerts", port)
    return runner
