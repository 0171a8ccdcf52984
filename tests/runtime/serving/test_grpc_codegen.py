"""The checked-in protobuf module is protoc's output for the checked-in .proto (no drift)."""

from __future__ import annotations

from pathlib import Path

from modelship_runtime.serving.oip import codegen


def test_generated_grpc_module_matches_the_proto(tmp_path: Path) -> None:
    for fresh in codegen.generate(tmp_path):
        checked_in = codegen.HERE / fresh.name
        assert checked_in.read_text() == fresh.read_text(), (
            f"{checked_in.name} is stale: run `python -m modelship_runtime.serving.oip.codegen`"
        )


def test_the_serving_image_needs_no_grpc_runtime() -> None:
    """The server speaks gRPC on its own HTTP/2 code: grpcio is a test dependency only."""
    import subprocess
    import sys

    code = ("import sys; import modelship_runtime.serving.server, modelship_runtime.serving.grpc_server; "
            "sys.exit(1 if 'grpc' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
