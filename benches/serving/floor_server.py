"""The floors: modelship-serve's own HTTP/1.1 and HTTP/2 (gRPC) stacks answering fixed OIP responses.

No JSON or protobuf parsing, no inference, no metrics: what is left is the
cost of the event loop, the parsers and the socket writes, the best any model
on these stacks could do. Usage: python floor_server.py HTTP_PORT [GRPC_PORT]
"""

from __future__ import annotations

import asyncio
import signal
import struct
import sys
from typing import Any

import orjson

from modelship_runtime.serving.cli import _loop_factory
from modelship_runtime.serving.grpc_server import RESPONSE_HEADERS, TRAILERS_OK
from modelship_runtime.serving.h2 import H2Connection, Stream
from modelship_runtime.serving.server import HttpProtocol, Request, Response
from modelship_runtime.serving.settings import ServeSettings

CANNED = orjson.dumps({
    "model_name": "floor", "model_version": "1",
    "outputs": [
        {"name": "label", "datatype": "INT64", "shape": [1], "data": [1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [1, 2], "data": [0.25, 0.75]},
    ],
})


def _canned_grpc() -> bytes:
    """A ModelInferResponse like the logistic model's at batch 1, encoded by hand (no protobuf here)."""

    def field(tag: int, data: bytes) -> bytes:
        return bytes((tag << 3 | 2, len(data))) + data

    label = field(1, b"label") + field(2, b"INT64") + field(3, b"\x01")
    proba = field(1, b"probabilities") + field(2, b"FP32") + field(3, b"\x01\x02")
    message = (field(1, b"floor") + field(2, b"1") + field(5, label) + field(5, proba)
               + field(6, struct.pack("<q", 1)) + field(6, struct.pack("<ff", 0.25, 0.75)))
    return b"\x00" + struct.pack(">I", len(message)) + message


class FloorApp:
    def __init__(self) -> None:
        self.settings = ServeSettings(model_uri="floor")
        self.connections: set[Any] = set()
        self.closing = False
        self.response = Response(200, CANNED)

    def handle(self, req: Request, reply: Any) -> Response:
        return self.response


class GrpcFloor:
    answer = _canned_grpc()

    def request(self, conn: H2Connection, stream: Stream) -> None:
        conn.respond(stream, RESPONSE_HEADERS, self.answer, TRAILERS_OK)

    def too_large(self, conn: H2Connection, stream: Stream) -> None:
        conn.respond(stream, RESPONSE_HEADERS)


async def main(port: int, grpc_port: int | None) -> None:
    loop = asyncio.get_running_loop()
    app = FloorApp()
    servers = [await loop.create_server(lambda: HttpProtocol(app), "127.0.0.1", port, backlog=4096)]  # type: ignore[arg-type]
    if grpc_port is not None:
        floor = GrpcFloor()
        servers.append(await loop.create_server(lambda: H2Connection(floor, 1 << 24, app.connections),
                                                "127.0.0.1", grpc_port, backlog=4096))
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print("ready", flush=True)
    await stop.wait()
    for server in servers:
        server.close()


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(main(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else None))
