"""JSON values to typed numpy arrays, refusing what does not fit.

Shared by both protocols. Strings or true/false where numbers belong, fractions where
integers belong, null or NaN (unless the artifact's graph imputes that
input), infinity, ragged nesting and values outside the target type's range
are all the client's error (400), and the message says which input (and,
in a matrix, which feature) and why.
"""

from __future__ import annotations

import contextlib
import itertools
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


def coerce(data: Any, spec: TensorSpec, where: str, allow_missing: bool = False, *,
           missing_category: str = "", columns: list[str] | None = None) -> Array:
    """``data`` as an array of ``spec``'s type. ``allow_missing``: null (and NaN) are let through, as NaN
    for numbers and ``missing_category`` for strings (the artifact says its graph imputes this input).
    ``columns``: the feature of each column of a 2-D input, to name in messages."""
    if spec.dtype is np.object_:
        return _strings(data, where, missing_category if allow_missing else None, columns)
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"{where}: data is ragged or malformed ({exc})") from None
    kind = arr.dtype.kind
    target = np.dtype(spec.dtype)
    if kind in "iuf" and target.kind in "iuf":
        _refuse_booleans(data, arr, spec, where, columns)
    if target.kind == "f":
        if kind not in _FLOAT_SOURCES:
            arr = _floats_with_missing(arr, where, allow_missing, spec, columns)
        if QUIET:
            out = arr.astype(target, copy=False)  # out-of-range values become inf: refused below
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                out = arr.astype(target, copy=False)
        if not finite(out):
            flat = out.ravel()
            bad = np.isinf(flat) if allow_missing else ~np.isfinite(flat)
            if bad.any():
                at = _at(where, int(np.argmax(bad)), out.shape, columns)
                if allow_missing:
                    raise BadRequest(f"{at}: contains infinity or a value outside the {spec.datatype} range")
                raise BadRequest(f"{at}: contains NaN, infinity or a value outside the {spec.datatype} range; "
                                 f"{NOT_IMPUTED}")
        return out
    if target.kind in "iu":
        if kind not in "iu":
            if _all_ints(data):  # numpy made floats or objects of integers too large for int64
                raise BadRequest(f"{where}: a value is outside the {spec.datatype} range")
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


def _refuse_booleans(data: Any, arr: Array, spec: TensorSpec, where: str, columns: list[str] | None) -> None:
    """JSON true/false among numbers: numpy reads them as 1 and 0, so a client's mistake would be
    scored as a feature value. A few values are looked at directly (about 1 us); in a larger
    array only a 0 or a 1 can hide one, so the values are looked at only when one vectorised
    look finds some."""
    if isinstance(data, np.ndarray) or not arr.size or (arr.size > 64 and not ((arr == 0) | (arr == 1)).any()):
        return
    if bool in set(map(type, _flat(data, arr.ndim))):
        first = next(i for i, v in enumerate(_flat(data, arr.ndim)) if type(v) is bool)
        raise BadRequest(f"{_at(where, first, arr.shape, columns)}: {spec.datatype} needs numbers, got true/false")


def _flat(data: Any, ndim: int) -> Any:
    """The values of a regular nest of ``ndim`` lists, in row-major order."""
    if ndim == 0:
        return (data,)
    for _ in range(ndim - 1):
        data = itertools.chain.from_iterable(data)
    return data


def _all_ints(data: Any) -> bool:
    """Every value is an integer (not a bool): read only on the refusal path."""
    try:
        flat = np.array(data, dtype=object).ravel().tolist()
    except (ValueError, TypeError):
        return False
    return bool(flat) and all(isinstance(v, int) and not isinstance(v, bool) for v in flat)


def finite(arr: Array) -> bool:
    """No NaN or infinity in a float array.

    A sum is finite when every value is (and the sum does not overflow): one
    numpy call; only a non-finite sum needs the exact check.
    """
    with np.errstate(over="ignore", invalid="ignore") if not QUIET else _NULL:
        return math.isfinite(arr.sum()) or bool(np.isfinite(arr).all())


NOT_IMPUTED = "the model does not impute this input (missing values are accepted only where its metadata.json's imputedInputs says)"


def _at(where: str, flat_index: int, shape: tuple[int, ...], columns: list[str] | None) -> str:
    """``where``, naming the feature of the value at ``flat_index`` when the columns are known."""
    # A matrix with one column per feature, or (v2) its row-major flattening.
    if columns and ((len(shape) == 2 and shape[1] == len(columns)) or (len(shape) == 1 and shape[0] % len(columns) == 0)):
        return f"{where} (feature {columns[flat_index % len(columns)]!r})"
    return where


def _floats_with_missing(arr: Array, where: str, allow_missing: bool, spec: TensorSpec,
                         columns: list[str] | None) -> Array:
    if arr.dtype.kind == "O":
        flat = arr.ravel().tolist()
        if any(isinstance(v, list) for v in flat):
            raise BadRequest(f"{where}: data is ragged or malformed")
        if all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in flat):
            if not allow_missing:
                first = next(i for i, v in enumerate(flat) if v is None)
                raise BadRequest(f"{_at(where, first, arr.shape, columns)}: contains null; {NOT_IMPUTED}")
            return np.array([np.nan if v is None else v for v in flat], dtype=np.float64).reshape(arr.shape)
    raise BadRequest(f"{where}: {spec.datatype} needs numbers, got {_describe(arr)}")


def _strings(data: Any, where: str, missing: str | None = None, columns: list[str] | None = None) -> Array:
    try:
        arr = np.array(data, dtype=object)
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"{where}: data is ragged or malformed ({exc})") from None
    flat = arr.ravel().tolist() if arr.ndim else [arr.item()]
    for v in flat:
        if isinstance(v, str):
            continue
        if (isinstance(v, int) and not isinstance(v, bool)) or v is None:
            break
        raise BadRequest(f"{where}: BYTES needs strings, got {type(v).__name__}")
    else:
        return arr
    out = []
    for i, v in enumerate(flat):
        if v is None:
            if missing is None:
                raise BadRequest(f"{_at(where, i, arr.shape, columns)}: contains null; {NOT_IMPUTED}")
            out.append(missing)
        else:
            out.append(v if isinstance(v, str) else _int_str(v, where))
    return np.array(out, dtype=object).reshape(arr.shape)


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
