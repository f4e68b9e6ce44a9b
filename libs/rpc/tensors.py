"""numpy arrays <-> the `Tensor` message (dtype, shape, raw little-endian bytes)."""

from __future__ import annotations

import numpy as np

from lwm.rpc.learnware.v1 import common_pb2

ALLOWED_DTYPES = frozenset({"float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"})


def to_tensor(array: np.ndarray) -> common_pb2.Tensor:
    """Encode an array; object/string arrays are refused."""
    array = np.asarray(array)
    if array.dtype.name not in ALLOWED_DTYPES:
        raise ValueError(f"arrays of dtype {array.dtype} cannot be sent; use one of {sorted(ALLOWED_DTYPES)}")
    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return common_pb2.Tensor(dtype=array.dtype.name, shape=list(array.shape), data=np.ascontiguousarray(little).tobytes())


def from_tensor(tensor: common_pb2.Tensor, name: str = "tensor") -> np.ndarray:
    """Decode a Tensor, checking that dtype, shape and byte count agree."""
    if tensor.dtype not in ALLOWED_DTYPES:
        raise ValueError(f"{name}: unsupported dtype {tensor.dtype!r}; expected one of {sorted(ALLOWED_DTYPES)}")
    shape = tuple(int(s) for s in tensor.shape)
    if any(s < 0 for s in shape):
        raise ValueError(f"{name}: negative dimension in shape {shape}")
    dtype = np.dtype(tensor.dtype).newbyteorder("<")
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if expected != len(tensor.data):
        raise ValueError(f"{name}: shape {shape} of {tensor.dtype} needs {expected} bytes, got {len(tensor.data)}")
    return np.frombuffer(tensor.data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=True)
