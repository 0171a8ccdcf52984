"""HTTP/1.1 on asyncio + httptools: routing, keep-alive, limits, lifecycle.

No web framework: at small batches HTTP and JSON are the whole cost of a
prediction, so a request goes from the parser straight to a handler, and an
inference handler answers with a future that the batcher resolves (no task
per request). Responses leave in request order (pipelining is allowed).

Lifecycle: the socket listens at once (liveness answers while the model
loads in a thread); readiness follows the data plane's state. A store that
cannot be read is retried with backoff; past ``load_deadline_seconds``
without a model, liveness answers 503 so the kubelet restarts the pod
instead of leaving it unready for good. On SIGTERM
readiness turns false at once, connections are still accepted for
``drain_seconds`` (endpoints need time to drop the pod), then the listener
closes, in-flight requests finish, idle connections close and the process
exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from typing import Any

import httptools
import orjson

from . import binary, codec, feedback, grpc_server, openapi, requestid, shadow, v1, v2
from .batcher import Feed
from .dataplane import DataPlane, State
from .errors import BadRequest, MethodNotAllowed, NotFound, PayloadTooLarge, ServeError
from .settings import ServeSettings

log = logging.getLogger("modelship.serve")

REASONS = {200: b"OK", 400: b"Bad Request", 401: b"Unauthorized", 404: b"Not Found", 405: b"Method Not Allowed",
           413: b"Payload Too Large", 422: b"Unprocessable Entity", 500: b"Internal Server Error",
           503: b"Service Unavailable"}
JSON = b"application/json"
TEXT = b"text/plain; version=0.0.4; charset=utf-8"
OCTETS = b"application/octet-stream"
INFERENCE_HEADER = b"inference-header-content-length"
MAX_PIPELINED = 64


class Response:
    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(self, status: int, body: bytes, content_type: bytes = JSON, headers: bytes = b"") -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers  # extra header lines, each ending in CRLF


def json_response(status: int, doc: Any) -> Response:
    return Response(status, orjson.dumps(doc))


def error_response(exc: ServeError) -> Response:
    return Response(exc.status, orjson.dumps({"error": exc.message}))


class Request:
    __slots__ = ("authorization", "body", "endpoint", "header_length", "keep_alive", "method", "mirrored",
                 "protocol", "request_id", "start", "url")

    def __init__(self, method: bytes, url: bytes, body: bytes, keep_alive: bool, start: float,
                 header_length: int = -1, request_id: bytes | None = None,
                 authorization: bytes | None = None) -> None:
        self.method = method
        self.url = url
        self.body = body
        self.keep_alive = keep_alive
        self.start = start
        self.protocol = ""
        self.endpoint = ""
        # Inference-Header-Content-Length (binary tensor extension); -1: absent.
        self.header_length = header_length
        self.request_id = request_id  # the x-request-id header, if sent
        self.authorization = authorization
        self.mirrored = False  # a copy from a stable (Modelship-Shadow header): never mirrored again


# A handler answers at once (a Response) or later through its reply callback (None).
Result = Response | None
ReplyTo = Callable[[Response], None]


class App:
    """Routes requests to the protocol modules; owns the connections for shutdown."""

    def __init__(self, dp: DataPlane, settings: ServeSettings) -> None:
        self.dp = dp
        self.settings = settings
        # HTTP/1.1 and HTTP/2 (gRPC) connections alike: busy, finish(), stale(), close().
        self.connections: set[Any] = set()
        self.closing = False
        self._openapi: tuple[str, bytes] | None = None
        self._infer_url = b""  # the last plain infer URL seen, for the hot path
        self._infer_name = ""
        self.ids = requestid.RequestIds()
        self.shadow = shadow.from_settings(settings)  # None: mirroring off

    # -- routing -----------------------------------------------------------

    def handle(self, req: Request, reply: ReplyTo) -> Result:
        try:
            return self._route(req, reply)
        except ServeError as exc:
            return error_response(exc)
        except Exception as exc:  # a bug must not kill the connection or the process
            log.exception("Failed to handle %s %s", req.method.decode(), req.url[:200].decode("latin-1"))
            return Response(500, orjson.dumps({"error": f"internal error: {type(exc).__name__}"}))

    def _route(self, req: Request, reply: ReplyTo) -> Result:
        if req.url == self._infer_url and self._infer_name == self.dp.name:
            # The hot path: skip the general parsing of the path.
            req.protocol = "v2"
            req.endpoint = "infer"
            self._only(req.method, b"POST")
            return self._infer(req, reply)
        raw = req.url.split(b"?", 1)[0]
        path = raw.decode("latin-1")
        if "%" in path:
            path = urllib.parse.unquote(path)
        parts = path.strip("/").split("/")
        method = req.method
        head = parts[0]
        if head == "v2":
            req.protocol = "v2"
            return self._v2(req, method, parts[1:], reply)
        if head == "v1":
            req.protocol = "v1"
            return self._v1(req, method, parts[1:], reply)
        if path == "/metrics":
            self._only(method, b"GET")
            return Response(200, self.dp.metrics.render(), TEXT)
        if path == "/openapi.json":
            self._only(method, b"GET")
            return Response(200, self._openapi_bytes())
        raise NotFound(f"no such endpoint: {path[:200]}")

    def _v2(self, req: Request, method: bytes, parts: list[str], reply: ReplyTo) -> Result:
        dp = self.dp
        n = len(parts)
        if n == 0 or parts == [""]:
            req.endpoint = "server"
            self._only(method, b"GET")
            return json_response(200, dp.server_metadata())
        if parts[0] == "health" and n == 2 and parts[1] in ("live", "ready"):
            req.endpoint = parts[1]
            self._only(method, b"GET")
            if parts[1] == "live":
                if dp.live:
                    return json_response(200, {"live": True})
                return json_response(503, {"live": False, "reason": f"no model after "
                                           f"{dp.settings.load_deadline_seconds:g} s (MODELSHIP_LOAD_DEADLINE_SECONDS): "
                                           f"{dp.reason}"})
            if dp.ready:
                return json_response(200, {"ready": True})
            return json_response(503, {"ready": False, "reason": dp.reason})
        if parts[0] != "models" or n < 2:
            raise NotFound(f"no such endpoint: /v2/{'/'.join(parts)[:200]}")
        name = parts[1]
        rest = parts[2:]
        version = None
        if len(rest) >= 2 and rest[0] == "versions":
            version = rest[1]
            rest = rest[2:]
        if len(rest) > 1:
            raise NotFound(f"no such endpoint: /v2/{'/'.join(parts)[:200]}")
        action = rest[0] if rest else ""
        if action == "infer":
            req.endpoint = "infer"
            self._only(method, b"POST")
            dp.check_model(name, version)
            if version is None:
                self._infer_name = name
                self._infer_url = req.url
            return self._infer(req, reply)
        if action == "feedback" and version is None:
            # Ground truth: labels for logged predictions (serving.feedback).
            req.endpoint = "feedback"
            self._only(method, b"POST")
            dp.check_model(name)
            status, doc = feedback.handle(dp.predlog, dp.feedback_token, req.authorization, req.body)
            return json_response(status, doc)
        if action == "ready":
            req.endpoint = "model_ready"
            self._only(method, b"GET")
            dp.check_model(name, version)
            return self._model_ready()
        if action == "artifact" and version is None:
            # Modelship's extension: the artifact's metadata.json as loaded (schema, drift
            # reference, metrics), so the operator need not read the artifact store itself.
            req.endpoint = "artifact"
            self._only(method, b"GET")
            dp.check_model(name)
            if dp.metadata is None:
                raise NotFound("the artifact has no metadata.json (a bare ONNX model)")
            return json_response(200, dp.metadata.wire())
        if action == "":
            req.endpoint = "model_metadata"
            self._only(method, b"GET")
            dp.check_model(name, version)
            return json_response(200, dp.model_metadata())
        raise NotFound(f"no such endpoint: /v2/{'/'.join(parts)[:200]}")

    def _infer(self, req: Request, reply: ReplyTo) -> Result:
        dp = self.dp
        feed, outputs, body_id, binary_out = v2.decode_request(dp, req.body, req.header_length)
        request_id = self.ids.pick(body_id, req.request_id)
        id_header = requestid.header_line(request_id)
        if binary_out is None:
            done = _replier(reply, lambda result: v2.encode_response(dp, result, request_id), id_header)
            # JSON requests are mirrored (the copy leaves after the answer); binary ones are not.
            if self.shadow is not None and not req.mirrored and req.header_length < 0:
                done = self.shadow.tap(req.url, req.body, False, done)
            dp.infer(feed, outputs, done, request_id=_logged_id(req, request_id))
        else:
            dp.infer(feed, outputs, _replier(reply, lambda result: _binary_response(
                *v2.encode_binary_response(dp, result, request_id, binary_out), id_header)),
                     request_id=_logged_id(req, request_id))
        return None

    def _v1(self, req: Request, method: bytes, parts: list[str], reply: ReplyTo) -> Result:
        dp = self.dp
        if parts == ["models"]:
            req.endpoint = "models"
            self._only(method, b"GET")
            return json_response(200, {"models": [dp.name]})
        if len(parts) != 2 or parts[0] != "models":
            raise NotFound(f"no such endpoint: /v1/{'/'.join(parts)[:200]}")
        target = parts[1]
        if target.endswith(":predict"):
            req.endpoint = "predict"
            self._only(method, b"POST")
            dp.check_model(target[: -len(":predict")])
            feed, want_proba = v1.decode_request(dp, req.body)
            request_id = self.ids.pick(None, req.request_id)
            done = _replier(reply, lambda result: v1.encode_response(dp, result, want_proba, request_id),
                            requestid.header_line(request_id))
            if self.shadow is not None and not req.mirrored:
                done = self.shadow.tap(req.url, req.body, True, done)  # the copy leaves after the answer
            dp.infer(feed, None, done, request_id=_logged_id(req, request_id))
            return None
        if ":" in target:
            raise NotFound(f"no such verb: {target[:200]} (KServe v1 here has :predict)")
        req.endpoint = "model_ready"
        self._only(method, b"GET")
        dp.check_model(target)
        return self._model_ready()

    def _model_ready(self) -> Response:
        dp = self.dp
        if dp.ready:
            return json_response(200, {"name": dp.name, "ready": True})
        return json_response(503, {"name": dp.name, "ready": False, "reason": dp.reason})

    @staticmethod
    def _only(method: bytes, allowed: bytes) -> None:
        if method != allowed:
            raise MethodNotAllowed(f"method {method.decode('latin-1')} not allowed here; use {allowed.decode()}")

    def _openapi_bytes(self) -> bytes:
        key = f"{self.dp.name}/{self.dp.version}"
        if self._openapi is None or self._openapi[0] != key:
            self._openapi = (key, orjson.dumps(openapi.build(self.dp.name, self.dp.version)))
        return self._openapi[1]

    # -- shutdown ----------------------------------------------------------

    @property
    def busy(self) -> bool:
        return any(c.busy for c in self.connections) or not self.dp.idle

    def close_idle(self) -> None:
        for c in list(self.connections):
            if not c.busy:
                c.close()
            else:
                c.finish()

    def reap(self) -> None:
        """Closes connections silent for the idle timeout (idle, or stuck mid-request)."""
        limit = time.monotonic() - self.settings.idle_timeout_seconds
        for c in list(self.connections):
            if c.stale(limit):
                c.close()


def _binary_response(body: bytes, header_length: int, headers: bytes = b"") -> Response:
    return Response(200, body, OCTETS, b"inference-header-content-length: %d\r\n" % header_length + headers)


def _logged_id(req: Request, request_id: str) -> str | None:
    """The id the prediction log files a request under; none for a shadow's mirrored copy: no client
    got its answer, and the stable logged the request already (the log holds what was served)."""
    return None if req.mirrored else request_id


def _replier(reply: ReplyTo, encode: Callable[[Feed], bytes | Response],
             headers: bytes = b"") -> Callable[[Feed | BaseException], None]:
    """Turns an inference result (or its exception) into a response for ``reply``."""

    def done(result: Feed | BaseException) -> None:
        if not isinstance(result, BaseException):
            try:
                out = encode(result)
                reply(out if type(out) is Response else Response(200, out, headers=headers))  # type: ignore[arg-type]
            except ServeError as e:
                reply(error_response(e))
            except Exception as e:
                log.exception("Failed to encode a response")
                reply(Response(500, orjson.dumps({"error": f"internal error: {type(e).__name__}"})))
        elif isinstance(result, ServeError):
            reply(error_response(result))
        else:
            # onnxruntime refused input that passed the checks: still the input's fault.
            text = str(result).splitlines()[0][:500] if str(result) else type(result).__name__
            reply(Response(422, orjson.dumps({"error": f"the model refused the input: {text}"})))

    return done


class HttpProtocol(asyncio.Protocol):
    def __init__(self, app: App) -> None:
        self.app = app
        self.settings = app.settings
        self.limit = app.settings.max_body_bytes
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.pending: deque[Request] = deque()
        self.waiting = False  # a response future is outstanding
        self.in_message = False
        self.paused = False
        self.url = b""
        self.body: list[bytes] = []
        self.size = 0
        self.start = 0.0
        self.too_large = False
        self.header_length = -1
        self.mirrored = False
        self.last_seen = time.monotonic()
        self.request_id: bytes | None = None
        self.authorization: bytes | None = None

    # -- asyncio -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.app.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.app.connections.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.last_seen = time.monotonic()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(BadRequest("protocol upgrades are not supported"))
        except httptools.HttpParserError as exc:
            if self.too_large:
                self._fail(PayloadTooLarge(f"the body exceeds {self.limit} bytes (MODELSHIP_MAX_BODY_BYTES)"))
            else:
                self._fail(BadRequest(f"malformed HTTP request: {exc}"))

    @property
    def busy(self) -> bool:
        return self.waiting or self.in_message or bool(self.pending)

    def stale(self, limit: float) -> bool:
        return self.last_seen < limit and not self.waiting and not self.pending

    def finish(self) -> None:
        """Shutting down: nothing to do, the connection closes after its response (``_write``)."""

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- httptools callbacks -----------------------------------------------

    def on_message_begin(self) -> None:
        self.in_message = True
        self.url = b""
        self.body = []
        self.size = 0
        self.too_large = False
        self.header_length = -1
        self.request_id = None
        self.authorization = None
        self.mirrored = False
        self.start = time.perf_counter()

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > 8192:
            self.too_large = True
            raise httptools.HttpParserError("URL too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        n = len(name)
        if n == 12 and name.lower() == requestid.HEADER:
            self.request_id = value
            return
        if n == 13 and name.lower() == b"authorization":
            self.authorization = value
            return
        if n == 14 and name.lower() == b"content-length":
            try:
                too_large = int(value) > self.limit
            except ValueError:
                return
            if too_large:
                self.too_large = True
                raise httptools.HttpParserError("body too large")
        elif len(name) == 31 and name.lower() == INFERENCE_HEADER:
            try:
                self.header_length = binary.parse_header_length(value)
            except BadRequest:
                self.header_length = binary.INVALID_HEADER_LENGTH  # a 400 when handled, not a broken connection
        elif len(name) == 16 and name.lower() == shadow.HEADER:
            self.mirrored = True

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.limit:
            self.too_large = True
            raise httptools.HttpParserError("body too large")
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.in_message = False
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        req = Request(self.parser.get_method(), self.url, body, self.parser.should_keep_alive(), self.start,
                      self.header_length, self.request_id, self.authorization)
        req.mirrored = self.mirrored
        self.pending.append(req)
        if len(self.pending) > MAX_PIPELINED and self.transport is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        if not self.waiting:
            self._serve_pending()

    # -- responses ---------------------------------------------------------

    def _serve_pending(self) -> None:
        while self.pending and not self.waiting and self.transport is not None:
            req = self.pending.popleft()
            self.waiting = True
            result = self.app.handle(req, lambda resp, r=req: self._on_result(r, resp))  # type: ignore[misc]
            if result is not None:
                self.waiting = False
                self._write(req, result)
        if self.paused and len(self.pending) < MAX_PIPELINED // 2 and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def _on_result(self, req: Request, resp: Response) -> None:
        self.waiting = False
        self.last_seen = time.monotonic()
        self._write(req, resp)
        self._serve_pending()

    def _write(self, req: Request, resp: Response) -> None:
        keep = req.keep_alive and not (self.app.closing and not self.pending)
        body = resp.body
        head = b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n%s%s\r\n" % (
            resp.status, REASONS.get(resp.status, b"Unknown"), resp.content_type, len(body),
            resp.headers, b"" if keep else b"connection: close\r\n",
        )
        if self.transport is not None:
            self.transport.write(head + body)
        if req.protocol:
            seconds = time.perf_counter() - req.start if req.endpoint in ("infer", "predict") else None
            self.app.dp.record(req.protocol, req.endpoint, resp.status, seconds)
        if not keep:
            self.close()

    def _fail(self, exc: ServeError) -> None:
        self.in_message = False
        self.pending.clear()
        resp = error_response(exc)
        if self.transport is not None and not self.waiting:
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
                % (resp.status, REASONS.get(resp.status, b"Unknown"), len(resp.body)) + resp.body
            )
        self.close()


async def _reap_forever(app: App) -> None:
    period = min(5.0, app.settings.idle_timeout_seconds / 2)
    while True:
        await asyncio.sleep(period)
        app.reap()


async def serve(settings: ServeSettings, *, reuse_port: bool = False, ready_file: str | None = None) -> int:
    """Runs one server process until SIGTERM/SIGINT; returns the exit code."""
    loop = asyncio.get_running_loop()
    codec.quiet_numpy()  # inputs are checked explicitly; numpy's warnings would only cost time
    dp = DataPlane(settings)
    app = App(dp, settings)
    server = await loop.create_server(
        lambda: HttpProtocol(app), settings.host, settings.port, reuse_port=reuse_port or None, backlog=4096
    )
    port = server.sockets[0].getsockname()[1]
    log.info("Listening on http://%s:%d (model %s from %s)", settings.host, port, dp.name, settings.model_uri)
    servers = [server]
    if settings.grpc_port >= 0:
        grpc = await grpc_server.listen(dp, settings, app.connections, reuse_port=reuse_port)
        servers.append(grpc)
        log.info("Listening for gRPC on %s:%d", settings.host, grpc.sockets[0].getsockname()[1])
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reaper = loop.create_task(_reap_forever(app))
    loading = loop.run_in_executor(None, dp.load)
    # Once loaded, what exists lives for good: keep it out of the collector's
    # full passes, which would otherwise stall the loop for milliseconds.
    loading.add_done_callback(lambda _: gc.freeze())
    mirror = app.shadow
    if mirror is not None:  # mirroring starts once the model's name, task and outputs are known
        loading.add_done_callback(lambda _: mirror.attach_to(dp))
    await stop.wait()
    was = dp.state
    dp.begin_stopping()
    log.info(
        "Received a stop signal (model was %s); readiness went false, draining for %.1f s",
        was, settings.drain_seconds,
    )
    await asyncio.sleep(settings.drain_seconds)
    reaper.cancel()
    for s in servers:
        s.close()
    app.closing = True
    app.close_idle()
    deadline = loop.time() + settings.shutdown_timeout_seconds
    while app.busy and loop.time() < deadline:
        await asyncio.sleep(0.01)
    app.close_idle()
    for c in list(app.connections):
        c.close()
    if app.shadow is not None:
        await app.shadow.close()
    if not loading.done():
        log.info("Stopped before the model finished loading")
    else:
        dp.close()
    log.info("Stopped serving model %s (state %s)", dp.name, State.STOPPING if was is State.READY else was)
    return 0
