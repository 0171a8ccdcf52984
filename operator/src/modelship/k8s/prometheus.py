"""One instant query to Prometheus' HTTP API (``POST /api/v1/query``).

Every failure (unreachable, timeout, an HTTP error, a body that is not JSON)
becomes a :class:`~modelship.logic.prometheus.PrometheusError` whose message
fits a condition; the answer's content is judged by ``modelship.logic.prometheus``.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from modelship.logic.prometheus import PrometheusError, query_url

log = logging.getLogger(__name__)
MAX_BODY = 16 << 20


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed: urllib would carry the bearer token to wherever the Location
    points, past the allow-list (``logic.prometheus_urls``). A 3xx becomes an HTTPError."""

    def redirect_request(self, *args: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _headers(token_file: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    if token_file:
        # Read each time: a projected service-account token is rotated on disk.
        try:
            token = Path(token_file).read_text().strip()
        except OSError as exc:
            raise PrometheusError(f"cannot read the Prometheus bearer token file {token_file}: {exc}") from exc
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _decode(body: bytes, url: str) -> Any:
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        # The answer's bytes go to the operator's log, not to the DriftMonitor's status: whoever may
        # edit a DriftMonitor names the URL, and the operator can reach addresses they cannot.
        log.info("%s answered %d bytes that are not JSON, beginning %r", url, len(body), body[:120])
        raise PrometheusError(f"{url} did not answer with JSON (is prometheusUrl the Prometheus base URL?); "
                              "the operator's log has the start of its answer") from None


def instant_query(base_url: str, query: str, timeout: float, token_file: str | None = None) -> Any:
    """The decoded JSON answer of ``query`` (evaluated now); raises PrometheusError."""
    url = query_url(base_url)
    data = urllib.parse.urlencode({"query": query}).encode()
    headers = _headers(token_file)
    try:
        request = urllib.request.Request(url, data=data, method="POST", headers=headers)
        with _OPENER.open(request, timeout=timeout) as response:
            return _decode(response.read(MAX_BODY), url)
    except urllib.error.HTTPError as exc:
        # Prometheus answers 400/422/503 with a JSON error body worth showing.
        body = exc.read(MAX_BODY)
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            payload = None
        if isinstance(payload, dict) and payload.get("status") == "error":
            return payload
        moved = f" to {exc.headers.get('Location')} (redirects are not followed: set prometheusUrl to the " \
            "address it points to)" if 300 <= exc.code < 400 else ""
        raise PrometheusError(f"{url} answered HTTP {exc.code} {exc.reason}{moved}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise PrometheusError(f"cannot reach Prometheus at {url}: {reason}") from None
    except ValueError as exc:  # a malformed URL
        raise PrometheusError(f"bad Prometheus URL {url}: {exc}") from None
