"""The Alertmanager webhook: ``POST /alerts`` (payload version 4).

Alerts are mapped to a Model by their ``namespace`` and ``model`` labels and
kept in one book, deduplicated by fingerprint and start time (Alertmanager
repeats and retries). DriftMonitors with ``action.requireAlert`` retrain only
while their Model's alert fires, so silences and inhibitions apply; any alert
rule a user writes with those labels triggers retraining the same way.

Every post must carry ``Authorization: Bearer <MODELSHIP_WEBHOOK_TOKEN>``
(the chart generates the token, or takes it from a Secret): without it the
answer is 401, and an operator started without a token refuses every post,
so no pod in the cluster can trigger retraining by default. The book is
bounded (``logic.retrain``): a flood of alerts cannot grow the operator's
memory.
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
MAX_LOGGED = 20  # alerts logged one by one per post; the rest as a count


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def handler(token: str | None) -> Any:
    async def alerts(request: web.Request) -> web.Response:
        global BOOK
        if not token:
            ALERTS.labels("unknown", "unauthorized").inc()
            return _error(401, "the webhook has no token configured (MODELSHIP_WEBHOOK_TOKEN), so it accepts no "
                               "post; install the chart (it generates one) or set webhook.tokenSecret")
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            ALERTS.labels("unknown", "unauthorized").inc()
            return _error(401, "missing or wrong bearer token (Authorization: Bearer <token>)")
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
            dropped_before = BOOK.dropped
            BOOK, news = record_alerts(BOOK, received, datetime.now(UTC))
            dropped = BOOK.dropped - dropped_before
        if dropped:
            log.warning("Forgot the %d oldest alert(s): the alert book is full (%d alerts, %d bytes at most)",
                        dropped, BOOK.max_entries, BOOK.max_bytes)
        fresh = {id(a) for a in news}  # not `in news`: quadratic in the alerts of one post
        for alert in received:
            outcome = "new" if id(alert) in fresh else "duplicate"
            if alert.target is None:
                outcome = "unmatched"
            ALERTS.labels(alert.status, outcome).inc()
        for alert in news[:MAX_LOGGED]:
            log.info("Received alert %s (%s) for %s", alert.labels.get("alertname", "?")[:200], alert.status,
                     "/".join(alert.target) if alert.target else "no model")
        if len(news) > MAX_LOGGED:
            log.info("Received %d more new alerts in the same post", len(news) - MAX_LOGGED)
        return web.json_response({"received": len(received), "new": len(news)})

    return alerts


async def start(port: int, token: str | None) -> web.AppRunner:
    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_post("/alerts", handler(token))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    if token:
        log.info("Started the Alertmanager webhook on :%d/alerts (bearer token required)", port)
    else:
        log.warning("Started the Alertmanager webhook on :%d/alerts without a token: it refuses every post "
                    "(set MODELSHIP_WEBHOOK_TOKEN)", port)
    return runner
