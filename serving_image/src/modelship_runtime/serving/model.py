"""One onnxruntime session and what its graph says about inputs and outputs.

onnxruntime's default pool spins waiting for work and burns a core, so the
session gets as many intra-op threads as the pod may use (its cgroup CPU
limit) and no spinning.

A thread pool costs even when it does not help: on two cores a 100-tree
forest takes 35 us per one-row call with two intra-op threads and 22 us with
one, and only from about 256 rows (over a millisecond) do two threads answer
sooner. So a model served with more than one thread gets a second,
single-threaded session for short calls: the batcher runs those inline on the
event loop's thread (``run(feed, small=True)``), and long ones on its worker
thread with the whole pool.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

# ONNX element type -> (Open Inference Protocol datatype, numpy dtype).
ONNX_TYPES: dict[str, tuple[str, Any]] = {
    "tensor(float)": ("FP32", np.float32),
    "tensor(double)": ("FP64", np.float64),
    "tensor(float16)": ("FP16", np.float16),
    "tensor(int8)": ("INT8", np.int8),
    "tensor(int16)": ("INT16", np.int16),
    "tensor(int32)": ("INT32", np.int32),
    "tensor(int64)": ("INT64", np.int64),
    "tensor(uint8)": ("UINT8", np.uint8),
    "tensor(uint16)": ("UINT16", np.uint16),
    "tensor(uint32)": ("UINT32", np.uint32),
    "tensor(uint64)": ("UINT64", np.uint64),
    "tensor(bool)": ("BOOL", np.bool_),
    "tensor(string)": ("BYTES", np.object_),
}

Array = npt.NDArray[Any]


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str  # OIP datatype
    dtype: Any  # numpy dtype
    shape: tuple[int, ...]  # -1 where the graph leaves the dimension open
    # skl2onnx's ZipMap yields a list of {class: probability}; served as a matrix.
    zipmap: bool = False

    def wire(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def cpu_limit() -> int:
    """CPUs this process may use: the cgroup quota (v2, then v1), else the affinity mask."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = None
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if text and text[0] != "max":
            quota = int(text[0]) / int(text[1])
    except (OSError, ValueError, IndexError):
        try:
            q = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
            p = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
            if q > 0 and p > 0:
                quota = q / p
        except (OSError, ValueError):
            pass
    if quota is not None:
        return max(1, min(available, math.ceil(quota)))
    return max(1, available)


def _dims(shape: Any) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (shape or []))


def _spec(arg: Any) -> TensorSpec:
    kind = arg.type
    if kind in ONNX_TYPES:
        datatype, dtype = ONNX_TYPES[kind]
        return TensorSpec(arg.name, datatype, dtype, _dims(arg.shape))
    if kind.startswith("seq(map("):
        return TensorSpec(arg.name, "FP32", np.float32, (-1, -1), zipmap=True)
    raise ValueError(f"tensor {arg.name!r} has type {kind}, which the server cannot exchange")


def _session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxModel:
    def __init__(self, path: Path, threads: int) -> None:
        self.session = _session(path, threads)
        # The single-threaded twin for short calls (see the module doc).
        self.small = _session(path, 1) if threads > 1 else self.session
        self.inputs = [_spec(a) for a in self.session.get_inputs()]
        self.outputs = [_spec(a) for a in self.session.get_outputs()]
        self.input_by_name = {s.name: s for s in self.inputs}
        self.output_by_name = {s.name: s for s in self.outputs}
        self.output_names = [s.name for s in self.outputs]
        # Requests can share a call only when every input's first dimension is open.
        self.batchable = all(s.shape and s.shape[0] == -1 for s in self.inputs)

    def run(self, feed: dict[str, Array], small: bool = False) -> dict[str, Array]:
        results = (self.small if small else self.session).run(self.output_names, feed)
        out: dict[str, Array] = {}
        for spec, value in zip(self.outputs, results, strict=True):
            out[spec.name] = _unzip(value) if spec.zipmap else np.asarray(value)
        return out

    def dummy_feed(self, rows: int = 1) -> dict[str, Array]:
        """A feed of zeros (empty strings) for the warm-up call."""
        feed: dict[str, Array] = {}
        for s in self.inputs:
            shape = tuple(rows if i == 0 and d == -1 else (1 if d == -1 else d) for i, d in enumerate(s.shape))
            if s.dtype is np.object_:
                feed[s.name] = np.full(shape, "", dtype=object)
            else:
                feed[s.name] = np.zeros(shape, dtype=s.dtype)
        return feed


def _unzip(value: Any) -> Array:
    rows = list(value)
    if not rows:
        return np.zeros((0, 0), dtype=np.float32)
    keys = list(rows[0].keys())
    return np.array([[r[k] for k in keys] for r in rows], dtype=np.float32)
