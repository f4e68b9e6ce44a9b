"""numpy arrays <-> the `Tensor` message (dtype, shape, raw little-endian bytes; or texts)."""

from __future__ import annotations

from typing import Any

import numpy as np

from lwm.rpc.learnware.v1 import common_pb2

ALLOWED_DTYPES = frozenset({"float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"})
STR_DTYPE = "str"  # texts travel in Tensor.strings and decode to a numpy str array
# A numpy str array pads every text to the longest one, 4 bytes a character: a few long texts
# among many short ones could need far more memory than the message took.
MAX_TEXT_ARRAY_BYTES = 1024**3


def is_text(array: np.ndarray) -> bool:
    """Whether the array holds texts: a numpy str array, or an object array of str only."""
    if array.dtype.kind == "U":
        return True
    return array.dtype.kind == "O" and array.size > 0 and all(isinstance(item, str) for item in array.flat)


def to_tensor(array: Any) -> common_pb2.Tensor:
    """Encode an array of numbers (dtype in ALLOWED_DTYPES) or of texts (a str array or a list of str)."""
    array = np.asarray(array)
    if is_text(array):
        try:
            return common_pb2.Tensor(dtype=STR_DTYPE, shape=list(array.shape), strings=[str(text) for text in array.flat])
        except UnicodeEncodeError as error:
            raise ValueError(f"texts must be valid Unicode to be sent as UTF-8: {error}") from None
    if array.dtype.name not in ALLOWED_DTYPES:
        raise ValueError(f"arrays of dtype {array.dtype} cannot be sent; use one of {sorted(ALLOWED_DTYPES)}, or texts (str only)")
    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return common_pb2.Tensor(dtype=array.dtype.name, shape=list(array.shape), data=np.ascontiguousarray(little).tobytes())


def from_tensor(tensor: common_pb2.Tensor, name: str = "tensor") -> np.ndarray:
    """Decode a Tensor, checking that dtype, shape and byte or text count agree; texts become a numpy str array."""
    if tensor.dtype != STR_DTYPE and tensor.dtype not in ALLOWED_DTYPES:
        raise ValueError(f"{name}: unsupported dtype {tensor.dtype!r}; expected {STR_DTYPE!r} or one of {sorted(ALLOWED_DTYPES)}")
    shape = tuple(int(s) for s in tensor.shape)
    if any(s < 0 for s in shape):
        raise ValueError(f"{name}: negative dimension in shape {shape}")
    count = int(np.prod(shape, dtype=np.int64))
    if tensor.dtype == STR_DTYPE:
        return _texts(tensor, shape, count, name)
    if tensor.strings:
        raise ValueError(f"{name}: a {tensor.dtype} tensor carries {len(tensor.strings)} strings; only dtype {STR_DTYPE!r} may")
    dtype = np.dtype(tensor.dtype).newbyteorder("<")
    expected = count * dtype.itemsize
    if expected != len(tensor.data):
        raise ValueError(f"{name}: shape {shape} of {tensor.dtype} needs {expected} bytes, got {len(tensor.data)}")
    return np.frombuffer(tensor.data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=True)


def _texts(tensor: common_pb2.Tensor, shape: tuple[int, ...], count: int, name: str) -> np.ndarray:
    if tensor.data:
        raise ValueError(f"{name}: a {STR_DTYPE!r} tensor carries its texts in strings; data must be empty, got {len(tensor.data)} bytes")
    if len(tensor.strings) != count:
        raise ValueError(f"{name}: shape {shape} needs {count} strings, got {len(tensor.strings)}")
    width = max((len(text) for text in tensor.strings), default=0) or 1
    padded = count * width * 4
    if padded > MAX_TEXT_ARRAY_BYTES:
        raise ValueError(f"{name}: {count} texts padded to the longest ({width} characters) take {padded} bytes, over the limit of {MAX_TEXT_ARRAY_BYTES}; send fewer or shorter texts at a time")
    return np.array(list(tensor.strings), dtype=f"<U{width}").reshape(shape)
