"""``inference.GRPCInferenceService`` on its own port: gRPC's rules on top of ``h2``.

Unary methods only: ServerLive, ServerReady, ModelReady, ServerMetadata,
ModelMetadata, ModelInfer. A call goes through the same data plane as REST,
so checks, micro-batching, drift histograms, injected faults, readiness and
the drain on SIGTERM are the same. Metrics count gRPC calls in the same
series with ``protocol="grpc"`` and the HTTP status the call would have had
over REST in ``code`` (INVALID_ARGUMENT is 400, UNAVAILABLE 503, INTERNAL
500...), so the canary analysis, which sums codes over protocols and counts
5xx as errors, reads both transports alike.

Wire format (gRPC over HTTP/2): a request is HEADERS (``:path`` names the
method, ``content-type: application/grpc``) and a body of one
length-prefixed message; an answer is HEADERS, one length-prefixed message and
trailers with ``grpc-status`` (or trailers only, on error). Compressed
messages are refused with UNIMPLEMENTED (``grpc-accept-encoding: identity``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from . import grpc_codec
from .batcher import Feed
from .dataplane import DataPlane
from .errors import BadRequest, ServeError
from .h2 import H2Connection, Stream
from .hpack import encode_indexed, encode_literal
from .oip import grpc_predict_v2_pb2 as pb
from .settings import ServeSettings

log = logging.getLogger("modelship.serve")

SERVICE = "/inference.GRPCInferenceService/"
# gRPC status codes.
OK, CANCELLED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND = 0, 1, 2, 3, 4, 5
RESOURCE_EXHAUSTED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE = 8, 12, 13, 14
# The HTTP status a ServeError carries → the gRPC status of the same meaning.
GRPC_STATUS = {400: INVALID_ARGUMENT, 404: NOT_FOUND, 405: UNIMPLEMENTED, 413: RESOURCE_EXHAUSTED,
               422: INVALID_ARGUMENT, 500: INTERNAL, 503: UNAVAILABLE}
# Method name → the endpoint label REST uses for the same thing.
ENDPOINTS = {"ServerLive": "live", "ServerReady": "ready", "ModelReady": "model_ready",
             "ServerMetadata": "server", "ModelMetadata": "model_metadata", "ModelInfer": "infer"}

RESPONSE_HEADERS = encode_indexed(8) + encode_literal(b"content-type", b"application/grpc")
TRAILERS_OK = encode_literal(b"grpc-status", b"0")
_ACCEPT = encode_literal(b"grpc-accept-encoding", b"identity")


def _status_block(code: int, message: str) -> bytes:
    """A trailers-only answer: response headers and the status in one block."""
    text = urllib.parse.quote(message[:1000], safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~")
    return (RESPONSE_HEADERS + encode_literal(b"grpc-status", str(code).encode())
            + encode_literal(b"grpc-message", text.encode()))


def _frame_message(message: bytes) -> bytes:
    return b"\x00" + len(message).to_bytes(4, "big") + message


Reply = Callable[[bytes], None]


class GrpcApp:
    """The gRPC service: one per process, shared by every HTTP/2 connection."""

    def __init__(self, dp: DataPlane) -> None:
        self.dp = dp

    # -- from the connection ----------------------------------------------

    def request(self, conn: H2Connection, stream: Stream) -> None:
        path = self._path(stream)
        content_type = b""
        encoding = b""
        method = b""
        for name, value in stream.headers:
            if name == b"content-type":
                content_type = value
            elif name == b":method":
                method = value
            elif name == b"grpc-encoding":
                encoding = value
        if method != b"POST" or not content_type.startswith(b"application/grpc"):
            # Not gRPC: a plain HTTP answer (RFC: 415 for the wrong content type).
            status = b"405" if method != b"POST" else b"415"
            conn.respond(stream, encode_literal(b":status", status))
            return
        rpc = path.decode("latin-1")
        endpoint = self._endpoint(rpc)
        if endpoint is None:
            self._error(conn, stream, UNIMPLEMENTED, f"unknown method {rpc[:200]}", None, 404)
            return
        body = stream.body[0] if len(stream.body) == 1 else b"".join(stream.body)
        try:
            message = self._unframe(body, encoding)
            self._call(conn, stream, endpoint, message)
        except ServeError as exc:
            self._error(conn, stream, GRPC_STATUS.get(exc.status, UNKNOWN), exc.message, endpoint, exc.status)
        except Exception as exc:  # a bug must not kill the connection or the process
            log.exception("Failed to handle gRPC %s", rpc[:200])
            self._error(conn, stream, INTERNAL, f"internal error: {type(exc).__name__}", endpoint, 500)

    def too_large(self, conn: H2Connection, stream: Stream) -> None:
        limit = self.dp.settings.max_body_bytes
        self._error(conn, stream, RESOURCE_EXHAUSTED, f"the message exceeds {limit} bytes (MODELSHIP_MAX_BODY_BYTES)",
                    self._endpoint(self._path(stream).decode("latin-1")), 413)

    @staticmethod
    def _path(stream: Stream) -> bytes:
        for name, value in stream.headers:
            if name == b":path":
                return value
        return b""

    @staticmethod
    def _endpoint(path: str) -> str | None:
        return ENDPOINTS.get(path[len(SERVICE):]) if path.startswith(SERVICE) else None

    # -- calls -------------------------------------------------------------

    @staticmethod
    def _unframe(body: bytes, encoding: bytes) -> bytes:
        if len(body) < 5:
            raise BadRequest("the request body is not a length-prefixed gRPC message")
        if body[0] == 1:
            if encoding and encoding != b"identity":
                raise _Unimplemented(f"message compression {encoding[:40].decode('latin-1')!r} is not supported")
            raise BadRequest("a message flagged compressed without grpc-encoding")
        if body[0] != 0:
            raise BadRequest(f"bad message flag {body[0]}")
        n = int.from_bytes(body[1:5], "big")
        if n != len(body) - 5:
            raise BadRequest(f"the message prefix says {n} bytes, the body has {len(body) - 5} (one message per call)")
        return body[5:]

    def _call(self, conn: H2Connection, stream: Stream, endpoint: str, message: bytes) -> None:
        dp = self.dp
        if endpoint == "infer":
            feed, outputs, request_id = grpc_codec.decode_infer(dp, message)
            dp.infer(feed, outputs, self._replier(conn, stream, request_id))
            return
        if endpoint == "live":
            grpc_codec.parse(pb.ServerLiveRequest, message)
            answer = pb.ServerLiveResponse(live=True).SerializeToString()
        elif endpoint == "ready":
            grpc_codec.parse(pb.ServerReadyRequest, message)
            answer = pb.ServerReadyResponse(ready=dp.ready).SerializeToString()
        elif endpoint == "model_ready":
            req = grpc_codec.parse(pb.ModelReadyRequest, message)
            dp.check_model(req.name, req.version or None)
            answer = pb.ModelReadyResponse(ready=dp.ready).SerializeToString()
        elif endpoint == "server":
            grpc_codec.parse(pb.ServerMetadataRequest, message)
            answer = grpc_codec.server_metadata(dp)
        else:
            req = grpc_codec.parse(pb.ModelMetadataRequest, message)
            dp.check_model(req.name, req.version or None)
            answer = grpc_codec.model_metadata(dp)
        self._ok(conn, stream, answer, endpoint)

    def _replier(self, conn: H2Connection, stream: Stream, request_id: str) -> Callable[[Feed | BaseException], None]:
        dp = self.dp

        def done(result: Feed | BaseException) -> None:
            if isinstance(result, ServeError):
                self._error(conn, stream, GRPC_STATUS.get(result.status, UNKNOWN), result.message, "infer",
                            result.status)
            elif isinstance(result, BaseException):
                # onnxruntime refused input that passed the checks: still the input's fault.
                text = str(result).splitlines()[0][:500] if str(result) else type(result).__name__
                self._error(conn, stream, INVALID_ARGUMENT, f"the model refused the input: {text}", "infer", 422)
            else:
                try:
                    answer = grpc_codec.encode_infer(dp, result, request_id)
                except Exception as exc:
                    log.exception("Failed to encode a gRPC response")
                    self._error(conn, stream, INTERNAL, f"internal error: {type(exc).__name__}", "infer", 500)
                    return
                self._ok(conn, stream, answer, "infer")

        return done

    def _ok(self, conn: H2Connection, stream: Stream, answer: bytes, endpoint: str) -> None:
        conn.respond(stream, RESPONSE_HEADERS, _frame_message(answer), TRAILERS_OK)
        self._record(stream, endpoint, 200)

    def _error(self, conn: H2Connection, stream: Stream, code: int, message: str, endpoint: str | None,
               http_status: int) -> None:
        block = _status_block(code, message)
        if code == UNIMPLEMENTED:
            block += _ACCEPT
        conn.respond(stream, block)
        if endpoint is not None:
            self._record(stream, endpoint, http_status)

    def _record(self, stream: Stream, endpoint: str, code: int) -> None:
        seconds = time.perf_counter() - stream.start if endpoint == "infer" else None
        self.dp.record("grpc", endpoint, code, seconds)


class _Unimplemented(ServeError):
    status = 405  # maps to UNIMPLEMENTED


async def listen(dp: DataPlane, settings: ServeSettings, connections: set[Any], *,
                 reuse_port: bool = False) -> asyncio.Server:
    """Starts the gRPC listener on ``settings.grpc_port``; connections join ``connections``."""
    loop = asyncio.get_running_loop()
    app = GrpcApp(dp)
    limit = settings.max_body_bytes + 5  # the message and its gRPC prefix
    return await loop.create_server(
        lambda: H2Connection(app, limit, connections), settings.host, settings.grpc_port,
        reuse_port=reuse_port or None, backlog=4096,
    )
