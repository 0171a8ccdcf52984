"""Which Prometheus URLs a DriftMonitor may make the operator query (and send its bearer token to).

A DriftMonitor's ``source.prometheusUrl`` is written by whoever may edit
DriftMonitors in its namespace; the bearer token
(``MODELSHIP_PROMETHEUS_BEARER_TOKEN_FILE``) is the platform's. So the
operator queries only URLs under a prefix the platform allowed
(``MODELSHIP_PROMETHEUS_ALLOWED_URLS``, the chart's ``prometheus.allowedUrls``),
as Flagger ties a MetricTemplate's address to its credentials. URLs are
compared on their parsed parts, never as strings: the scheme, the host, the
port (the scheme's default when absent) and whole path segments. So
``http://prom`` covers ``http://prom:80/x`` but not ``http://prom.evil``,
``http://prom@evil``, ``http://prom:8080`` or ``https://prom``, and
``http://h/prom`` does not cover ``http://h/prometheus``.

With no prefix allowed: when there is no token, any http(s) URL is queried
(without credentials: nothing to leak); when there is one, no URL is, since
sending it anywhere a namespace editor names would hand it out. A URL with
user info, a query, a fragment or a ``..`` segment is refused either way.

Pure: the query itself is ``modelship.k8s.prometheus``.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

SETTING = "MODELSHIP_PROMETHEUS_ALLOWED_URLS"
CHART_VALUE = "prometheus.allowedUrls"
DEFAULT_PORTS = {"http": 80, "https": 443}
_FORBIDDEN_CHARACTERS = set(" \t\r\n\\") | {chr(c) for c in range(0x20)} | {"\x7f"}


class BadUrl(ValueError):
    """A URL the operator will not use for Prometheus; the message says why."""


@dataclass(frozen=True)
class Endpoint:
    """A parsed http(s) URL: what comparisons look at."""

    scheme: str
    host: str
    port: int
    segments: tuple[str, ...]

    def covers(self, other: Endpoint) -> bool:
        """``other`` is this URL or below it (whole path segments)."""
        return ((self.scheme, self.host, self.port) == (other.scheme, other.host, other.port)
                and other.segments[:len(self.segments)] == self.segments)


def parse(url: str) -> Endpoint:
    """``url`` as an :class:`Endpoint`; raises :class:`BadUrl` for anything but a plain http(s) base URL."""
    if any(c in _FORBIDDEN_CHARACTERS for c in url):
        raise BadUrl("it contains whitespace, a control character or a backslash")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BadUrl(f"it does not parse: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise BadUrl("its scheme is not http or https")
    if "@" in parts.netloc:
        raise BadUrl("it carries user info (user@host)")
    if not parts.hostname:
        raise BadUrl("it names no host")
    if "?" in url or "#" in url:
        raise BadUrl("it has a query or a fragment (a base URL has neither)")
    segments = tuple(urllib.parse.unquote(s) for s in parts.path.split("/") if s)
    if any(s in {".", ".."} or "/" in s or "\\" in s for s in segments):
        raise BadUrl("its path has a '.' or '..' segment or an encoded slash")
    return Endpoint(scheme, parts.hostname, DEFAULT_PORTS[scheme] if port is None else port, segments)


def allow_list(urls: Sequence[str]) -> list[Endpoint]:
    """The allowed prefixes, parsed; raises :class:`BadUrl` naming the first bad one (checked at start-up)."""
    out = []
    for url in urls:
        try:
            out.append(parse(url))
        except BadUrl as exc:
            raise BadUrl(f"{SETTING} entry {url!r} is refused: {exc}") from None
    return out


def refusal(url: str, allowed: Sequence[str], token: bool) -> str | None:
    """Why the operator must not query ``url`` (a condition message), or ``None`` when it may.

    ``allowed``: the allowed prefixes (one that does not parse covers nothing);
    ``token``: whether a bearer token is configured (and so would be sent).
    """
    try:
        target = parse(url)
    except BadUrl as exc:
        return f"source.prometheusUrl {url} is refused: {exc}; give a base URL, http(s)://host[:port][/path]"
    prefixes = []
    for prefix in allowed:
        try:
            prefixes.append(parse(prefix))
        except BadUrl:
            continue
    if not allowed:
        if not token:
            return None
        return (f"the operator sends a bearer token to Prometheus and no Prometheus URL is allowed to receive it, "
                f"so it queries none: the platform admin lists the Prometheus base URLs in the chart value "
                f"{CHART_VALUE} ({SETTING})")
    if any(p.covers(target) for p in prefixes):
        return None
    return (f"source.prometheusUrl {url} is not under an allowed Prometheus URL ({', '.join(allowed)}): use one of "
            f"them, or have the platform admin add it to the chart value {CHART_VALUE} ({SETTING})")
