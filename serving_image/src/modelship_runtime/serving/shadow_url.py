"""Where a stable's shadow copies go: ``http://name[:port][/prefix]`` parsed and checked.

Its own module: the settings check the URL at start, and the shadow (which
needs the data plane, which needs the settings) uses the parsed target.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    prefix: bytes  # a path prefix of the base URL, without the trailing slash
    host_header: bytes


def parse_url(url: str) -> Target:
    """``http://name[:port][/prefix]`` → where copies go. Raises ValueError with the reason."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme != "http":
        raise ValueError(f"the shadow URL must start with http:// (got {url!r})")
    if not parts.hostname:
        raise ValueError(f"the shadow URL has no host name (got {url!r})")
    if parts.query or parts.fragment:
        raise ValueError(f"the shadow URL takes no query or fragment (got {url!r})")
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise ValueError(f"the shadow URL has a bad port: {exc}") from None
    return Target(parts.hostname, port, parts.path.rstrip("/").encode(), parts.netloc.encode("idna"))
