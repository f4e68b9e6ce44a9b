"""Texts in the Tensor message: round trips and malformed messages."""

from __future__ import annotations

import numpy as np
import pytest

from lwm.rpc import tensors
from lwm.rpc.learnware.v1 import common_pb2
from lwm.rpc.tensors import STR_DTYPE, from_tensor, to_tensor

TEXTS = ["great coffee", "", "très bon café ☕", "非常好", "line\nbreak", "  spaces  "]


def test_str_array_round_trip_keeps_non_ascii_and_empty_texts() -> None:
    tensor = to_tensor(np.array(TEXTS))
    assert tensor.dtype == STR_DTYPE and list(tensor.shape) == [len(TEXTS)] and tensor.data == b""
    back = from_tensor(common_pb2.Tensor.FromString(tensor.SerializeToString()))
    assert back.dtype.kind == "U" and back.tolist() == TEXTS


def test_list_and_object_array_of_str_are_texts() -> None:
    assert from_tensor(to_tensor(TEXTS)).tolist() == TEXTS
    assert from_tensor(to_tensor(np.array(TEXTS, dtype=object))).tolist() == TEXTS


def test_two_dimensional_texts_keep_their_shape() -> None:
    texts = np.array([["a", "bb"], ["ccc", ""], ["é", "f"]])
    back = from_tensor(to_tensor(texts))
    assert back.shape == (3, 2)
    np.testing.assert_array_equal(back, texts)


def test_empty_text_array() -> None:
    back = from_tensor(common_pb2.Tensor(dtype=STR_DTYPE, shape=[0]))
    assert back.shape == (0,) and back.dtype.kind == "U"


def test_to_tensor_refuses_mixed_objects_and_invalid_unicode() -> None:
    with pytest.raises(ValueError, match="cannot be sent"):
        to_tensor(np.array(["a", 1, None], dtype=object))
    with pytest.raises(ValueError, match="valid Unicode"):
        to_tensor(["fine", "lone \ud800 surrogate"])


def test_from_tensor_refuses_malformed_text_tensors() -> None:
    with pytest.raises(ValueError, match=r"needs 3 strings, got 2"):
        from_tensor(common_pb2.Tensor(dtype=STR_DTYPE, shape=[3], strings=["a", "b"]))
    with pytest.raises(ValueError, match="data must be empty"):
        from_tensor(common_pb2.Tensor(dtype=STR_DTYPE, shape=[1], strings=["a"], data=b"a"))
    with pytest.raises(ValueError, match="only dtype 'str' may"):
        from_tensor(common_pb2.Tensor(dtype="uint8", shape=[1], data=b"a", strings=["a"]))
    with pytest.raises(ValueError, match="negative dimension"):
        from_tensor(common_pb2.Tensor(dtype=STR_DTYPE, shape=[-1]))


def test_from_tensor_refuses_texts_whose_padded_array_is_too_large(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tensors, "MAX_TEXT_ARRAY_BYTES", 1000)
    tensor = to_tensor(["x" * 200] + [""] * 10)
    with pytest.raises(ValueError, match="padded to the longest"):
        from_tensor(tensor, "x")
