"""KServe's Python ModelServer wrapping onnxruntime, for the benchmark.

Runs inside the KServe benchmark venv. Usage: kserve_onnx.py NAME MODEL_PATH HTTP_PORT
Latency logging is off (it is a debugging aid) so the peer is measured at its best.
"""

import os
import sys

import numpy as np
import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer

DATATYPES = {np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64", np.dtype(np.float64): "FP64"}


class OnnxModel(Model):  # type: ignore[misc]  # kserve is in the peer's venv only
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.path = path
        self.load()

    def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("BENCH_ORT_THREADS", "2"))
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(self.path, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.ready = True
        return True

    def predict(self, payload, headers=None):  # type: ignore[no-untyped-def]
        if isinstance(payload, InferRequest):
            x = payload.inputs[0].as_numpy().astype(np.float32, copy=False)
            results = self.session.run(None, {self.input_name: x})
            outputs = []
            for name, arr in zip(self.output_names, results, strict=False):
                out = InferOutput(name=name, shape=list(arr.shape), datatype=DATATYPES[arr.dtype])
                out.set_data_from_numpy(arr, binary_data=False)
                outputs.append(out)
            return InferResponse(response_id=payload.id or "", model_name=self.name, infer_outputs=outputs)
        x = np.asarray(payload["instances"], dtype=np.float32)
        return {"predictions": self.session.run(None, {self.input_name: x})[0].tolist()}


if __name__ == "__main__":
    name, path, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ModelServer(http_port=port, enable_grpc=False, workers=1, enable_latency_logging=False).start(
        [OnnxModel(name, path)]
    )
