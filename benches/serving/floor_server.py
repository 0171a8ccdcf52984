"""The HTTP floor: modelship-serve's own HTTP stack answering a fixed OIP response.

No JSON parsing, no inference, no metrics: what is left is the cost of the
event loop, the parser and the socket writes, the best any model on this
stack could do. Usage: python floor_server.py PORT
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

import orjson

from modelship_runtime.serving.cli import _loop_factory
from modelship_runtime.serving.server import HttpProtocol, Request, Response
from modelship_runtime.serving.settings import ServeSettings

CANNED = orjson.dumps({
    "model_name": "floor", "model_version": "1",
    "outputs": [
        {"name": "label", "datatype": "INT64", "shape": [1], "data": [1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [1, 2], "data": [0.25, 0.75]},
    ],
})


class FloorApp:
    def __init__(self) -> None:
        self.settings = ServeSettings(model_uri="floor")
        self.connections: set[Any] = set()
        self.closing = False
        self.response = Response(200, CANNED)

    def handle(self, req: Request, reply: Any) -> Response:
        return self.response


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    app = FloorApp()
    server = await loop.create_server(lambda: HttpProtocol(app), "127.0.0.1", port, backlog=4096)  # type: ignore[arg-type]
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print("ready", flush=True)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(main(int(sys.argv[1])))
