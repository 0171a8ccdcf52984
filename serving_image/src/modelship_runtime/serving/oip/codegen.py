"""Regenerates ``grpc_predict_v2_pb2.py`` and its ``.pyi`` stub from the .proto (dev only).

Usage: ``python -m modelship_runtime.serving.oip.codegen [OUT_DIR]`` (default:
next to the .proto). Needs grpcio-tools (the dev extra); the serving image
carries only the generated module and protobuf's runtime, so building it needs
no compiler. ``tests/runtime/serving/test_grpc_codegen.py`` regenerates into a
temporary directory and fails when the checked-in files differ.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO = "grpc_predict_v2.proto"
OUTPUTS = ("grpc_predict_v2_pb2.py", "grpc_predict_v2_pb2.pyi")


def generate(out_dir: Path) -> list[Path]:
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    code = protoc.main(["protoc", f"-I{HERE}", f"--python_out={out_dir}", f"--pyi_out={out_dir}", str(HERE / PROTO)])
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code}")
    return [out_dir / name for name in OUTPUTS]


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE):
        print(f"Wrote {path}")
