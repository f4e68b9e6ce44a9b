from __future__ import annotations

import numpy as np
import pytest

from lwm.rpc import convert
from lwm.rpc.learnware.v1 import common_pb2
from lwm.rpc.tensors import from_tensor, to_tensor

SEMANTIC = {
    "Data": {"Values": ["Table"], "Type": "Class"},
    "Task": {"Values": ["Classification"], "Type": "Class"},
    "Library": {"Values": ["Scikit-learn"], "Type": "Class"},
    "Scenario": {"Values": ["Business", "Financial"], "Type": "Tag"},
    "License": {"Values": ["MIT"], "Type": "Class"},
    "Name": {"Values": "churn model", "Type": "String"},
    "Description": {"Values": "predicts churn", "Type": "String"},
    "Input": {"Dimension": 2, "Description": {"0": "age", "1": "income"}},
    "Output": {"Dimension": 2, "Description": {"0": "stay", "1": "leave"}},
}


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "uint8", "bool"])
def test_tensor_round_trip(dtype: str) -> None:
    array = (np.arange(24).reshape(2, 3, 4) % 2).astype(dtype)
    back = from_tensor(to_tensor(array))
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_tensor_rejects_inconsistent_messages() -> None:
    with pytest.raises(ValueError, match="needs 24 bytes"):
        from_tensor(common_pb2.Tensor(dtype="float32", shape=[2, 3], data=b"\0" * 7))
    with pytest.raises(ValueError, match="unsupported dtype"):
        from_tensor(common_pb2.Tensor(dtype="object", shape=[1], data=b"\0"))
    with pytest.raises(ValueError, match="cannot be sent"):
        to_tensor(np.array([b"a", b"b"]))


def test_semantic_round_trip() -> None:
    assert convert.semantic_to_dict(convert.semantic_from_dict(SEMANTIC)) == SEMANTIC


def test_semantic_from_dict_errors_name_the_key() -> None:
    with pytest.raises(ValueError, match="Scenario"):
        convert.semantic_from_dict(dict(SEMANTIC, Scenario={"Values": [1, 2], "Type": "Tag"}))
    with pytest.raises(ValueError, match="Input.Dimension"):
        convert.semantic_from_dict(dict(SEMANTIC, Input={"Dimension": "two", "Description": {}}))
    with pytest.raises(ValueError, match="unknown keys"):
        convert.semantic_from_dict(dict(SEMANTIC, Colour={"Values": ["red"], "Type": "Tag"}))


def test_stat_spec_round_trip_and_old_type_name() -> None:
    spec = {"type": "RKMEStatSpecification", "z": [[0.0, 1.0], [2.0, 3.0]], "beta": [0.25, 0.75], "gamma": 0.1, "num_points": 10, "cuda_idx": -1}
    message = convert.stat_spec_to_proto(spec)
    assert message.type == "RKMETableSpecification"
    back = convert.stat_spec_from_proto(message)
    np.testing.assert_array_equal(back["z"], np.array(spec["z"]))
    np.testing.assert_array_equal(back["beta"], np.array(spec["beta"]))
    assert back["num_points"] == 10 and back["cuda_idx"] == -1
    with pytest.raises(ValueError, match="beta"):
        convert.stat_spec_to_proto(dict(spec, beta=[1.0]))
