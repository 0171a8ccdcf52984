"""JSON values to typed numpy arrays, refusing what does not fit.

Shared by both protocols. Strings where numbers belong, fractions where
integers belong, null (unless missing values are allowed), ragged nesting and
values outside the target type's range are all the client's error (400), and
the message says which input and why.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import BadRequest
from .model import TensorSpec

Array = npt.NDArray[Any]
_FLOAT_SOURCES = frozenset("fiu")
# Set by the server, which turns numpy's floating-point warnings off for the whole
# process (results are checked explicitly): a casting overflow then needs no
# ``np.errstate`` (1.5 us per request) to stay quiet.
QUIET = False
_NULL = contextlib.nullcontext()


def quiet_numpy() -> None:
    """Turns numpy's overflow/invalid warnings off in this thread's context, for good."""
    global QUIET
    np.seterr(over="ignore", invalid="ignore")
    QUIET = True


def coerce(data: Any, spec: TensorSpec, where: str, allow_missing: bool = False) -> Array:
    if spec.dtype is np.object_:
        return _strings(data, where)
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"{where}: data is ragged or malformed ({exc})") from None
    kind = arr.dtype.kind
    target = np.dtype(spec.dtype)
    if target.kind == "f":
        if kind not in _FLOAT_SOURCES:
            arr = _floats_with_missing(arr, where, allow_missing, spec)
        if QUIET:
            out = arr.astype(target, copy=False)  # out-of-range values become inf: refused below
            ok = finite(out)
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                out = arr.astype(target, copy=False)
                ok = finite(out)
        if not allow_missing and not ok:
            raise BadRequest(
                f"{where}: contains NaN, infinity or a value outside the {spec.datatype} range; "
                "this model does not accept missing values"
            )
        return out
    if target.kind in "iu":
        if kind not in "iu":
            raise BadRequest(f"{where}: {spec.datatype} needs integers, got {_describe(arr)}")
        info = np.iinfo(target)
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise BadRequest(f"{where}: a value is outside the {spec.datatype} range")
        return arr.astype(target, copy=False)
    if target.kind == "b":
        if kind != "b":
            raise BadRequest(f"{where}: BOOL needs true/false, got {_describe(arr)}")
        return arr
    raise BadRequest(f"{where}: unsupported datatype {spec.datatype}")


def finite(arr: Array) -> bool:
    """No NaN or infinity in a float array.

    A sum is finite when every value is (and the sum does not overflow): one
    numpy call; only a non-finite sum needs the exact check.
    """
    with np.errstate(over="ignore", invalid="ignore") if not QUIET else _NULL:
        return math.isfinite(arr.sum()) or bool(np.isfinite(arr).all())


def _floats_with_missing(arr: Array, where: str, allow_missing: bool, spec: TensorSpec) -> Array:
    if arr.dtype.kind == "O":
        flat = arr.ravel().tolist()
        if any(isinstance(v, list) for v in flat):
            raise BadRequest(f"{where}: data is ragged or malformed")
        if all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in flat):
            if not allow_missing:
                raise BadRequest(f"{where}: contains null; this model does not accept missing values")
            return np.array([np.nan if v is None else v for v in flat], dtype=np.float64).reshape(arr.shape)
    raise BadRequest(f"{where}: {spec.datatype} needs numbers, got {_describe(arr)}")


def _strings(data: Any, where: str) -> Array:
    try:
        arr = np.array(data, dtype=object)
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"{where}: data is ragged or malformed ({exc})") from None
    flat = arr.ravel().tolist() if arr.ndim else [arr.item()]
    for v in flat:
        if isinstance(v, str):
            continue
        if isinstance(v, int) and not isinstance(v, bool):
            break
        raise BadRequest(f"{where}: BYTES needs strings, got {type(v).__name__}")
    else:
        return arr
    return np.array([v if isinstance(v, str) else _int_str(v, where) for v in flat], dtype=object).reshape(arr.shape)


def _int_str(v: Any, where: str) -> str:
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    raise BadRequest(f"{where}: BYTES needs strings, got {type(v).__name__}")


def _describe(arr: Array) -> str:
    kind = arr.dtype.kind
    return {
        "U": "strings", "S": "strings", "f": "fractional numbers", "b": "booleans", "O": "mixed or null values",
        "i": "integers", "u": "integers",
    }.get(kind, str(arr.dtype))
