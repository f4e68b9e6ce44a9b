"""Frames exchanged with the learnware runner process (parent side).

A frame is a 4-byte big-endian header length, a UTF-8 JSON header, then one raw
payload per entry of `header["arrays"]` ({"dtype", "shape", "nbytes"}):
little-endian, C-order bytes. Tuples travel as {"__tuple__": [...]} so model
kwargs and shapes keep their type. No pickles, in either direction.
The child (sandbox_root/lwm_runner.py) is standalone and keeps its own copy of this.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

HEADER_LEN = struct.Struct(">I")
MAX_HEADER_BYTES = 16 * 1024**2
MAX_ARRAY_BYTES = 8 * 1024**3
# bool, ints, floats, complex, fixed-width bytes and str: all have a plain byte layout.
WIRE_KINDS = "biufcSU"


class FramingError(ValueError):
    """A frame is malformed or holds an array that cannot travel."""


def tag_tuples(value: Any) -> Any:
    """Copy of `value` with tuples replaced by {"__tuple__": [...]}, ready for json.dumps."""
    if isinstance(value, tuple):
        return {"__tuple__": [tag_tuples(v) for v in value]}
    if isinstance(value, list):
        return [tag_tuples(v) for v in value]
    if isinstance(value, dict):
        return {k: tag_tuples(v) for k, v in value.items()}
    return value


def _untag_tuple(obj: dict) -> Any:
    return tuple(obj["__tuple__"]) if obj.keys() == {"__tuple__"} else obj


def to_wire_array(array: Any) -> np.ndarray:
    """`array` as a C-contiguous little-endian ndarray, or FramingError if it has no raw byte form."""
    arr = np.asarray(array)
    if arr.dtype.kind not in WIRE_KINDS:
        raise FramingError(f"arrays of dtype {arr.dtype} cannot be sent; use a numeric or string array")
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return np.ascontiguousarray(arr)


def pack_frame(header: dict, arrays: Sequence[Any] = ()) -> list[bytes | memoryview]:
    """The chunks of one frame, to be written in order (array payloads are not copied)."""
    wire = [to_wire_array(a) for a in arrays]
    full = dict(header, arrays=[{"dtype": a.dtype.str, "shape": list(a.shape), "nbytes": a.nbytes} for a in wire])
    raw = json.dumps(tag_tuples(full)).encode("utf-8")
    return [HEADER_LEN.pack(len(raw)) + raw, *(memoryview(a.reshape(-1).view(np.uint8).data) for a in wire)]


def _array_meta(meta: Any) -> tuple[np.dtype, tuple[int, ...], int]:
    try:
        dtype = np.dtype(meta["dtype"])
        shape = tuple(int(d) for d in meta["shape"])
        nbytes = int(meta["nbytes"])
    except (KeyError, TypeError, ValueError) as exc:
        raise FramingError(f"bad array description {meta!r}: {exc}") from None
    if dtype.kind not in WIRE_KINDS or any(d < 0 for d in shape):
        raise FramingError(f"bad array description {meta!r}")
    if nbytes != dtype.itemsize * math.prod(shape) or nbytes > MAX_ARRAY_BYTES:
        raise FramingError(f"array size {nbytes} does not match {meta!r} or is over the limit")
    return dtype, shape, nbytes


def read_frame(read_exact: Callable[[int], bytearray]) -> tuple[dict, list[np.ndarray]]:
    """Read one frame with `read_exact(n)`, which returns exactly n bytes (or raises)."""
    (size,) = HEADER_LEN.unpack(read_exact(HEADER_LEN.size))
    if size > MAX_HEADER_BYTES:
        raise FramingError(f"frame header of {size} bytes is over the limit of {MAX_HEADER_BYTES}")
    try:
        header = json.loads(bytes(read_exact(size)).decode("utf-8"), object_hook=_untag_tuple)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FramingError(f"frame header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise FramingError("frame header is not a JSON object")
    arrays = []
    for meta in header.get("arrays", []):
        dtype, shape, nbytes = _array_meta(meta)
        arrays.append(np.frombuffer(read_exact(nbytes), dtype=dtype).reshape(shape))
    return header, arrays
