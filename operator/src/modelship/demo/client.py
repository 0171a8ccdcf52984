"""The demo's HTTP client: JSON in, (status, JSON or text) out; never raises for HTTP errors."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from modelship.demo.stack import wait_until


def _decode(raw: bytes) -> Any:
    """JSON when the body is JSON, else its text (a proxy's error page, a metrics page)."""
    if raw[:1] in (b"{", b"["):
        try:
            return json.loads(raw)
        except ValueError:
            pass
    return raw.decode(errors="replace")


def http(method: str, url: str, body: Any = None, timeout: float = 10) -> tuple[int, Any]:
    """(status, JSON or text); status 0 with {"error": ...} when no answer came (refused, reset).

    urllib sends `Connection: close`: each call is a new connection, so calls
    through a Service are spread over its ready pods. The end-to-end tests'
    load generator uses this too (tests/e2e/helpers.py)."""
    payload = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=payload, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, _decode(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, _decode(exc.read() or b"{}")
    except (urllib.error.URLError, ConnectionError) as exc:
        return 0, {"error": str(exc)}


def service_url(service: dict[str, Any], model: str, timeout: float = 30) -> str:
    """The Model's v1 predict URL through its Service's ClusterIP, once the Service answers there.

    Phase ``Serving`` means the revision's pods are ready; kube-proxy programs the ClusterIP from
    the EndpointSlice a moment later, and until then connections are refused. So this waits until
    GET ``/v2/health/ready`` through the Service answers 200."""
    spec = service["spec"]
    base = f"http://{spec['clusterIP']}:{spec['ports'][0]['port']}"
    wait_until(lambda: http("GET", f"{base}/v2/health/ready", None, 3)[0] == 200, timeout,
               f"the Service {service['metadata']['name']} to answer at {base}", interval=0.2)
    return f"{base}/v1/models/{model}:predict"
