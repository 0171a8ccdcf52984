"""HTTP/2 (RFC 9113) server connections, cleartext (h2c, prior knowledge), as gRPC uses them.

Why not grpcio's server: on this machine grpcio's asyncio server answered a
canned ModelInfer response at about a fifth of the rate of the HTTP/1.1
stack's floor (its C core hands every call to Python through a completion
queue and a thread). A request here goes from the frame parser to the handler
in the same loop iteration, the way ``server`` does it for HTTP/1.1.

What is implemented is what a unary gRPC server needs: the preface and
SETTINGS, HEADERS/CONTINUATION with HPACK (``hpack``), DATA with padding, flow
control both ways (large receive windows advertised up front and topped up
in bulk; responses wait for the peer's window), PING, RST_STREAM, GOAWAY,
concurrency limits. A request is handed over whole (headers and body) once
its stream ends. No server push, no priorities (ignored, as RFC 9113 allows),
no TLS (inside a cluster, like KServe's gRPC port). Protocol violations end
the connection with GOAWAY and the error code RFC 9113 names; nothing a peer
sends can raise out of ``data_received``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from typing import Any, Protocol

from .hpack import Decoder, HpackError

log = logging.getLogger("modelship.serve")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0, 1, 2, 3
STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR = 5, 6, 7, 8, 9
ENHANCE_YOUR_CALM = 11
S_HEADER_TABLE_SIZE, S_ENABLE_PUSH, S_MAX_CONCURRENT_STREAMS = 1, 2, 3
S_INITIAL_WINDOW_SIZE, S_MAX_FRAME_SIZE, S_MAX_HEADER_LIST_SIZE = 4, 5, 6

MAX_WINDOW = 2**31 - 1
DEFAULT_WINDOW = 65535
# What this server accepts: frames up to 1 MiB (fewer frames for big tensors),
# 100 open streams per connection, header blocks up to 64 KiB.
MAX_FRAME = 1 << 20
MAX_STREAMS = 100
MAX_HEADER_BLOCK = 1 << 16
# Receive windows: a stream may send 4 MiB before it needs a WINDOW_UPDATE (a
# batch of 1024 rows x 30 float32 features is 120 KiB), the connection 16 MiB.
STREAM_WINDOW = 1 << 22
CONNECTION_WINDOW = 1 << 24

_HEAD = struct.Struct(">I")
_FRAME = struct.Struct(">IBI")  # length (24 bits) and type in one word, flags, stream


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return _FRAME.pack(len(payload) << 8 | kind, flags, stream) + payload


def _settings(pairs: dict[int, int]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs.items()))


SERVER_PREFACE = _settings({
    S_MAX_CONCURRENT_STREAMS: MAX_STREAMS,
    S_INITIAL_WINDOW_SIZE: STREAM_WINDOW,
    S_MAX_FRAME_SIZE: MAX_FRAME,
    S_MAX_HEADER_LIST_SIZE: MAX_HEADER_BLOCK,
    S_ENABLE_PUSH: 0,
}) + frame(WINDOW_UPDATE, 0, 0, _HEAD.pack(CONNECTION_WINDOW - DEFAULT_WINDOW))
SETTINGS_ACK = frame(SETTINGS, ACK, 0)


class ConnectionError_(Exception):
    """A connection error (RFC 9113 §5.4.1): GOAWAY with ``code``, then close."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Stream:
    """One request stream: what arrived, and the response that waits for flow-control window."""

    __slots__ = ("body", "dispatched", "ended", "headers", "id", "out", "recv_unacked", "recv_window",
                 "send_window", "size", "start", "too_large")

    def __init__(self, stream_id: int, headers: list[tuple[bytes, bytes]], send_window: int, start: float) -> None:
        self.id = stream_id
        self.headers = headers
        self.body: list[bytes] = []
        self.size = 0
        self.start = start
        self.ended = False
        self.dispatched = False
        self.too_large = False
        self.send_window = send_window
        self.recv_window = STREAM_WINDOW
        self.recv_unacked = 0
        # Response bytes not yet sent for want of window: (data, trailer frame).
        self.out: tuple[memoryview, bytes] | None = None


class Handler(Protocol):
    """What a connection hands complete requests to (the gRPC layer)."""

    def request(self, conn: H2Connection, stream: Stream) -> None: ...

    def too_large(self, conn: H2Connection, stream: Stream) -> None: ...


class H2Connection(asyncio.Protocol):
    def __init__(self, handler: Handler, max_body: int, connections: set[Any]) -> None:
        self.handler = handler
        self.max_body = max_body
        self.registry = connections
        self.transport: asyncio.Transport | None = None
        self.decoder = Decoder()
        self.streams: dict[int, Stream] = {}
        self.blocked: dict[int, Stream] = {}  # streams whose response waits for window
        self.in_flight = 0  # dispatched requests not answered yet
        self.last_stream = 0
        self.preface = False
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.need = len(PREFACE)
        self.header_stream = 0  # a header block continues on this stream (CONTINUATION)
        self.header_flags = 0
        self.header_block: list[bytes] = []
        self.header_size = 0
        self.send_window = DEFAULT_WINDOW
        self.peer_window = DEFAULT_WINDOW  # the peer's SETTINGS_INITIAL_WINDOW_SIZE
        self.peer_frame = 16384
        self.recv_window = CONNECTION_WINDOW
        self.recv_unacked = 0
        self.going_away = False  # GOAWAY sent: no new streams
        self.peer_going_away = False
        self.closed = False
        self.last_seen = time.monotonic()

    # -- asyncio -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.registry.add(self)
        self._write(SERVER_PREFACE)

    def connection_lost(self, exc: Exception | None) -> None:
        self.registry.discard(self)
        self.transport = None
        self.closed = True
        self.streams.clear()
        self.blocked.clear()

    def data_received(self, data: bytes) -> None:
        self.last_seen = time.monotonic()
        if self.buffered + len(data) < self.need:
            self.chunks.append(data)
            self.buffered += len(data)
            return
        if self.chunks:
            self.chunks.append(data)
            data = b"".join(self.chunks)
            self.chunks = []
        try:
            rest = self._parse(data)
        except ConnectionError_ as exc:
            self.fail(exc.code, str(exc))
            return
        except Exception:  # a bug must not leave a connection in an unknown state
            log.exception("Failed to handle an HTTP/2 frame")
            self.fail(INTERNAL_ERROR, "internal error")
            return
        if rest:
            self.chunks = [rest]
        self.buffered = len(rest)

    # -- framing -----------------------------------------------------------

    def _parse(self, data: bytes) -> bytes:
        pos = 0
        if not self.preface:
            if data[: len(PREFACE)] != PREFACE:
                raise ConnectionError_(PROTOCOL_ERROR, "not an HTTP/2 connection preface (this port speaks gRPC)")
            self.preface = True
            pos = len(PREFACE)
        end = len(data)
        while not self.closed:
            if end - pos < 9:
                self.need = 9
                break
            word, flags, stream = _FRAME.unpack_from(data, pos)
            length = word >> 8
            if length > MAX_FRAME:
                raise ConnectionError_(FRAME_SIZE_ERROR, f"a frame of {length} bytes exceeds {MAX_FRAME}")
            if end - pos - 9 < length:
                self.need = 9 + length
                break
            payload = data[pos + 9 : pos + 9 + length]
            pos += 9 + length
            self._frame(word & 0xFF, flags, stream & 0x7FFFFFFF, payload)
        return data[pos:]

    def _frame(self, kind: int, flags: int, sid: int, payload: bytes) -> None:
        if self.header_stream and (kind != CONTINUATION or sid != self.header_stream):
            raise ConnectionError_(PROTOCOL_ERROR, "a header block was interrupted")
        if kind == DATA:
            self._data(flags, sid, payload)
        elif kind == HEADERS:
            self._headers(flags, sid, payload)
        elif kind == CONTINUATION:
            if not self.header_stream:
                raise ConnectionError_(PROTOCOL_ERROR, "CONTINUATION without HEADERS")
            self._fragment(payload, flags)
        elif kind == SETTINGS:
            self._settings(flags, sid, payload)
        elif kind == WINDOW_UPDATE:
            self._window_update(sid, payload)
        elif kind == PING:
            if sid:
                raise ConnectionError_(PROTOCOL_ERROR, "PING on a stream")
            if len(payload) != 8:
                raise ConnectionError_(FRAME_SIZE_ERROR, "PING payload is not 8 bytes")
            if not flags & ACK:
                self._write(frame(PING, ACK, 0, payload))
        elif kind == RST_STREAM:
            if not sid:
                raise ConnectionError_(PROTOCOL_ERROR, "RST_STREAM on stream 0")
            if len(payload) != 4:
                raise ConnectionError_(FRAME_SIZE_ERROR, "RST_STREAM payload is not 4 bytes")
            if sid > self.last_stream:
                raise ConnectionError_(PROTOCOL_ERROR, "RST_STREAM on an idle stream")
            stream = self.streams.pop(sid, None)
            self.blocked.pop(sid, None)
            if stream is not None and stream.dispatched:
                self.in_flight -= 1
        elif kind == GOAWAY:
            if sid:
                raise ConnectionError_(PROTOCOL_ERROR, "GOAWAY on a stream")
            self.peer_going_away = True
            self._maybe_finish()
        elif kind == PRIORITY:
            if not sid:
                raise ConnectionError_(PROTOCOL_ERROR, "PRIORITY on stream 0")
            if len(payload) != 5:
                self._reset(sid, FRAME_SIZE_ERROR)
        elif kind == PUSH_PROMISE:
            raise ConnectionError_(PROTOCOL_ERROR, "clients must not send PUSH_PROMISE")
        # Unknown frame types are ignored (RFC 9113 §4.1).

    def _data(self, flags: int, sid: int, payload: bytes) -> None:
        if not sid:
            raise ConnectionError_(PROTOCOL_ERROR, "DATA on stream 0")
        length = len(payload)
        self.recv_window -= length
        if self.recv_window < 0:
            raise ConnectionError_(FLOW_CONTROL_ERROR, "the peer overran the connection window")
        self.recv_unacked += length
        if self.recv_unacked >= CONNECTION_WINDOW // 2:
            self._write(frame(WINDOW_UPDATE, 0, 0, _HEAD.pack(self.recv_unacked)))
            self.recv_window += self.recv_unacked
            self.recv_unacked = 0
        stream = self.streams.get(sid)
        if stream is None or stream.ended:
            if sid > self.last_stream:
                raise ConnectionError_(PROTOCOL_ERROR, "DATA on an idle stream")
            return  # a stream we reset or answered early; its data is dropped
        if flags & PADDED:
            payload = self._unpad(payload)
        stream.recv_window -= length
        if stream.recv_window < 0:
            self._reset(sid, FLOW_CONTROL_ERROR)
            return
        if not stream.too_large:
            stream.size += len(payload)
            if stream.size > self.max_body:
                stream.too_large = True
                stream.body = []
                self.handler.too_large(self, stream)
            elif payload:
                stream.body.append(payload)
        if flags & END_STREAM:
            self._end(stream)
        else:
            stream.recv_unacked += length
            if stream.recv_unacked >= STREAM_WINDOW // 2:
                self._write(frame(WINDOW_UPDATE, 0, sid, _HEAD.pack(stream.recv_unacked)))
                stream.recv_window += stream.recv_unacked
                stream.recv_unacked = 0

    def _headers(self, flags: int, sid: int, payload: bytes) -> None:
        if not sid or not sid & 1:
            raise ConnectionError_(PROTOCOL_ERROR, f"HEADERS on stream {sid} (clients use odd streams)")
        if flags & PADDED:
            payload = self._unpad(payload)
        if flags & PRIORITY_FLAG:
            if len(payload) < 5:
                raise ConnectionError_(FRAME_SIZE_ERROR, "HEADERS too short for its priority fields")
            payload = payload[5:]
        self.header_stream = sid
        self.header_flags = flags
        self.header_block = []
        self.header_size = 0
        self._fragment(payload, flags)

    def _fragment(self, payload: bytes, flags: int) -> None:
        self.header_size += len(payload)
        if self.header_size > MAX_HEADER_BLOCK:
            raise ConnectionError_(ENHANCE_YOUR_CALM, f"a header block exceeds {MAX_HEADER_BLOCK} bytes")
        self.header_block.append(payload)
        if not flags & END_HEADERS:
            return
        sid = self.header_stream
        block = self.header_block[0] if len(self.header_block) == 1 else b"".join(self.header_block)
        self.header_stream = 0
        self.header_block = []
        try:
            headers = self.decoder.decode(block)
        except HpackError as exc:
            raise ConnectionError_(COMPRESSION_ERROR, str(exc)) from None
        end = bool(self.header_flags & END_STREAM)
        stream = self.streams.get(sid)
        if stream is not None:
            # Trailers: gRPC requests have none, but a peer may send them (must end the stream).
            if not end:
                raise ConnectionError_(PROTOCOL_ERROR, "a second HEADERS that does not end its stream")
            if not stream.ended:
                self._end(stream)
            return
        if sid <= self.last_stream:
            raise ConnectionError_(STREAM_CLOSED, f"HEADERS on closed stream {sid}")
        self.last_stream = sid
        if self.going_away or len(self.streams) >= MAX_STREAMS:
            self._reset(sid, REFUSED_STREAM)
            return
        stream = Stream(sid, headers, self.peer_window, time.perf_counter())
        self.streams[sid] = stream
        if end:
            self._end(stream)

    def _end(self, stream: Stream) -> None:
        stream.ended = True
        if stream.too_large:
            return
        stream.dispatched = True
        self.in_flight += 1
        self.handler.request(self, stream)

    def _settings(self, flags: int, sid: int, payload: bytes) -> None:
        if sid:
            raise ConnectionError_(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            if payload:
                raise ConnectionError_(FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            return
        if len(payload) % 6:
            raise ConnectionError_(FRAME_SIZE_ERROR, "SETTINGS payload is not a multiple of 6")
        for k in range(0, len(payload), 6):
            key, value = struct.unpack_from(">HI", payload, k)
            if key == S_INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise ConnectionError_(FLOW_CONTROL_ERROR, "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1")
                delta = value - self.peer_window
                self.peer_window = value
                for s in self.streams.values():
                    s.send_window += delta
            elif key == S_MAX_FRAME_SIZE:
                if not 16384 <= value <= 16777215:
                    raise ConnectionError_(PROTOCOL_ERROR, f"SETTINGS_MAX_FRAME_SIZE {value} out of range")
                self.peer_frame = value
            elif key == S_ENABLE_PUSH and value > 1:
                raise ConnectionError_(PROTOCOL_ERROR, "SETTINGS_ENABLE_PUSH must be 0 or 1")
        self._write(SETTINGS_ACK)
        self._flush_blocked()

    def _window_update(self, sid: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise ConnectionError_(FRAME_SIZE_ERROR, "WINDOW_UPDATE payload is not 4 bytes")
        increment = _HEAD.unpack(payload)[0] & 0x7FFFFFFF
        if not sid:
            if not increment:
                raise ConnectionError_(PROTOCOL_ERROR, "WINDOW_UPDATE of 0 on the connection")
            self.send_window += increment
            if self.send_window > MAX_WINDOW:
                raise ConnectionError_(FLOW_CONTROL_ERROR, "the connection window exceeds 2^31-1")
            self._flush_blocked()
            return
        stream = self.streams.get(sid)
        if stream is None:
            return
        if not increment:
            self._reset(sid, PROTOCOL_ERROR)
            return
        stream.send_window += increment
        if stream.send_window > MAX_WINDOW:
            self._reset(sid, FLOW_CONTROL_ERROR)
            return
        if sid in self.blocked:
            self._flush_blocked()

    @staticmethod
    def _unpad(payload: bytes) -> bytes:
        if not payload:
            raise ConnectionError_(PROTOCOL_ERROR, "a padded frame without its pad length")
        pad = payload[0]
        if pad >= len(payload):
            raise ConnectionError_(PROTOCOL_ERROR, "padding exceeds the frame")
        return payload[1 : len(payload) - pad]

    # -- responses ---------------------------------------------------------

    def respond(self, stream: Stream, headers: bytes, data: bytes = b"", trailers: bytes = b"") -> None:
        """Sends a whole response: a header block, optional data and an optional trailer block.

        Without data and trailers the headers end the stream (gRPC's "trailers-only").
        A stream the peer reset meanwhile is dropped silently.
        """
        if self.streams.get(stream.id) is not stream:
            return
        if stream.dispatched:
            stream.dispatched = False
            self.in_flight -= 1
        sid = stream.id
        if not data and not trailers:
            self._write(frame(HEADERS, END_HEADERS | END_STREAM, sid, headers))
            self._close_stream(stream)
            return
        out = [frame(HEADERS, END_HEADERS, sid, headers)]
        tail = frame(HEADERS, END_HEADERS | END_STREAM, sid, trailers) if trailers else b""
        n = len(data)
        if n <= self.send_window and n <= stream.send_window and n <= self.peer_frame:
            self.send_window -= n
            stream.send_window -= n
            out.append(frame(DATA, 0 if tail else END_STREAM, sid, data))
            if tail:
                out.append(tail)
            self._write(b"".join(out))
            self._close_stream(stream)
            return
        self._write(out[0])
        stream.out = (memoryview(data), tail)
        self.blocked[sid] = stream
        self._flush_blocked()

    def _flush_blocked(self) -> None:
        for sid, stream in list(self.blocked.items()):
            if self.send_window <= 0:
                return
            assert stream.out is not None
            data, tail = stream.out
            parts = []
            while data and self.send_window > 0 and stream.send_window > 0:
                n = min(len(data), self.send_window, stream.send_window, self.peer_frame)
                chunk = data[:n]
                data = data[n:]
                self.send_window -= n
                stream.send_window -= n
                parts.append(frame(DATA, 0 if data or tail else END_STREAM, sid, bytes(chunk)))
            if not data:
                if tail:
                    parts.append(tail)
                self._write(b"".join(parts))
                del self.blocked[sid]
                self._close_stream(stream)
            else:
                stream.out = (data, tail)
                self._write(b"".join(parts))

    def _close_stream(self, stream: Stream) -> None:
        self.streams.pop(stream.id, None)
        if not stream.ended:
            # Answered before the request ended (too large): the rest is not wanted.
            self._write(frame(RST_STREAM, 0, stream.id, _HEAD.pack(NO_ERROR)))
        self._maybe_finish()

    def _reset(self, sid: int, code: int) -> None:
        stream = self.streams.pop(sid, None)
        self.blocked.pop(sid, None)
        if stream is not None and stream.dispatched:
            self.in_flight -= 1
        self._write(frame(RST_STREAM, 0, sid, _HEAD.pack(code)))

    def _write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    # -- shutdown ----------------------------------------------------------

    @property
    def busy(self) -> bool:
        return bool(self.streams)

    def stale(self, limit: float) -> bool:
        return self.last_seen < limit and not self.streams

    def finish(self) -> None:
        """Tells the peer to open no new streams here (answered ones finish); closes when idle."""
        if not self.going_away and self.transport is not None:
            self.going_away = True
            self._write(frame(GOAWAY, 0, 0, _HEAD.pack(self.last_stream) + _HEAD.pack(NO_ERROR)))
        self._maybe_finish()

    def close(self) -> None:
        if self.transport is not None:
            if not self.going_away:
                self.going_away = True
                self._write(frame(GOAWAY, 0, 0, _HEAD.pack(self.last_stream) + _HEAD.pack(NO_ERROR)))
            self.transport.close()

    def fail(self, code: int, message: str) -> None:
        if self.transport is not None:
            debug = message.encode("utf-8", "replace")[:200]
            self._write(frame(GOAWAY, 0, 0, _HEAD.pack(self.last_stream) + _HEAD.pack(code) + debug))
            self.going_away = True
            self.transport.close()
        self.closed = True

    def _maybe_finish(self) -> None:
        if (self.going_away or self.peer_going_away) and not self.streams and self.transport is not None:
            self.transport.close()

