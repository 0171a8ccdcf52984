"""Request ids: the client's (OIP ``id`` or an ``x-request-id`` header) or one made here.

An id joins a logged prediction with the label that arrives later, so it
must be unique across pods and restarts: a per-process random prefix (48
bits) and a counter, about 0.2 µs each, against about 2 µs for ``uuid4``.
"""

from __future__ import annotations

import itertools
import secrets

from .errors import BadRequest

MAX_ID_LENGTH = 256
HEADER = b"x-request-id"


class RequestIds:
    def __init__(self) -> None:
        self.prefix = secrets.token_hex(6)
        self._counter = itertools.count(1)

    def new(self) -> str:
        return f"{self.prefix}-{next(self._counter):x}"

    def pick(self, body_id: str | None, header: bytes | None) -> str:
        """The id a request goes by: the body's, else the header's, else a new one."""
        if body_id is not None:
            if not body_id or len(body_id) > MAX_ID_LENGTH:
                raise BadRequest(f"'id' must be 1 to {MAX_ID_LENGTH} characters")
            return body_id
        if header:
            if len(header) > MAX_ID_LENGTH:
                raise BadRequest(f"the x-request-id header must be at most {MAX_ID_LENGTH} characters")
            return header.decode("latin-1")
        return self.new()


def header_line(request_id: str) -> bytes:
    """The response header that returns the id (control characters are dropped)."""
    clean = request_id.encode("latin-1", "replace")
    if any(c < 32 or c == 127 for c in clean):
        clean = bytes(c for c in clean if c >= 32 and c != 127)
    return HEADER + b": " + clean + b"\r\n"
