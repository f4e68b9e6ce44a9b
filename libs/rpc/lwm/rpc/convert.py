"""Conversions between protobuf messages and the reference package's data shapes."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from lwm.learnware.vocabulary import CLASSIFICATION, LEGACY_TABLE_SPEC_TYPE, REGRESSION, TABLE_SPEC_TYPE
from lwm.rpc.learnware.v1 import common_pb2, reuse_pb2
from lwm.rpc.tensors import from_tensor, to_tensor

# proto field <-> key of the reference package's semantic spec dictionary, with its Type.
SEMANTIC_LIST_FIELDS: dict[str, tuple[str, str]] = {
    "data": ("Data", "Class"),
    "task": ("Task", "Class"),
    "library": ("Library", "Class"),
    "scenario": ("Scenario", "Tag"),
    "license": ("License", "Class"),
    "model": ("Model", "Optional"),
}
# Keys written only when they have values (absent from older reference specs).
SEMANTIC_OMITTED_WHEN_EMPTY = frozenset({"Model"})
SEMANTIC_STRING_FIELDS: dict[str, str] = {"name": "Name", "description": "Description"}
SEMANTIC_FEATURE_FIELDS: dict[str, str] = {"input": "Input", "output": "Output"}

STATUS_NAMES: dict[common_pb2.LearnwareStatus, str] = {
    common_pb2.LEARNWARE_STATUS_UNSPECIFIED: "UNSPECIFIED",
    common_pb2.LEARNWARE_STATUS_PENDING: "PENDING",
    common_pb2.LEARNWARE_STATUS_INVALID: "INVALID",
    common_pb2.LEARNWARE_STATUS_NONUSABLE: "NONUSABLE",
    common_pb2.LEARNWARE_STATUS_USABLE: "USABLE",
}
STATUS_VALUES: dict[str, common_pb2.LearnwareStatus] = {name: value for value, name in STATUS_NAMES.items()}

# The reuse enums by the names the reusers use (lwm.learnware.vocabulary).
AVERAGING_MODE_VALUES: dict[str, reuse_pb2.AveragingMode] = {
    "mean": reuse_pb2.AVERAGING_MODE_MEAN,
    "vote_by_label": reuse_pb2.AVERAGING_MODE_VOTE_BY_LABEL,
    "vote_by_prob": reuse_pb2.AVERAGING_MODE_VOTE_BY_PROB,
}
TASK_KIND_VALUES: dict[str, reuse_pb2.TaskKind] = {CLASSIFICATION: reuse_pb2.TASK_KIND_CLASSIFICATION, REGRESSION: reuse_pb2.TASK_KIND_REGRESSION}


def semantic_to_dict(spec: common_pb2.SemanticSpec) -> dict[str, Any]:
    """The reference package's dictionary form. Empty list fields stay as empty Values."""
    out: dict[str, Any] = {}
    for field, (key, kind) in SEMANTIC_LIST_FIELDS.items():
        values = list(getattr(spec, field))
        if values or key not in SEMANTIC_OMITTED_WHEN_EMPTY:
            out[key] = {"Values": values, "Type": kind}
    for field, key in SEMANTIC_STRING_FIELDS.items():
        out[key] = {"Values": getattr(spec, field), "Type": "String"}
    for field, key in SEMANTIC_FEATURE_FIELDS.items():
        if spec.HasField(field):
            feature = getattr(spec, field)
            out[key] = {
                "Dimension": feature.dimension,
                "Description": {str(i): text for i, text in sorted(feature.descriptions.items())},
            }
    return out


def semantic_from_dict(spec: dict[str, Any]) -> common_pb2.SemanticSpec:
    """Parse the reference dictionary; raises ValueError naming the key for wrong shapes."""
    if not isinstance(spec, dict):
        raise ValueError(f"semantic specification must be a dictionary, got {type(spec).__name__}")
    known = {key for key, _ in SEMANTIC_LIST_FIELDS.values()} | set(SEMANTIC_STRING_FIELDS.values()) | set(SEMANTIC_FEATURE_FIELDS.values())
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ValueError(f"semantic specification has unknown keys {unknown}; known keys are {sorted(known)}")
    msg = common_pb2.SemanticSpec()
    for field, (key, _) in SEMANTIC_LIST_FIELDS.items():
        values = _values(spec, key)
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValueError(f"semantic specification: {key}.Values must be a list of strings")
        getattr(msg, field).extend(values)
    for field, key in SEMANTIC_STRING_FIELDS.items():
        value = _values(spec, key)
        if isinstance(value, list) and len(value) <= 1 and all(isinstance(v, str) for v in value):
            value = value[0] if value else ""  # some clients send a one-element list
        if not isinstance(value, str):
            raise ValueError(f"semantic specification: {key}.Values must be a string")
        setattr(msg, field, value)
    for field, key in SEMANTIC_FEATURE_FIELDS.items():
        if key in spec and spec[key] is not None:
            _feature_from_dict(getattr(msg, field), spec[key], key)
    return msg


def _values(spec: dict[str, Any], key: str) -> Any:
    entry = spec.get(key)
    if entry is None:
        return []
    if not isinstance(entry, dict) or "Values" not in entry:
        raise ValueError(f"semantic specification: {key} must be a dictionary with 'Values' and 'Type'")
    return entry["Values"]


def _feature_from_dict(target: common_pb2.FeatureDescription, entry: Any, key: str) -> None:
    if not isinstance(entry, dict):
        raise ValueError(f"semantic specification: {key} must be a dictionary with 'Dimension' and 'Description'")
    dimension = entry.get("Dimension", 0)
    if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension < 0:
        raise ValueError(f"semantic specification: {key}.Dimension must be a non-negative integer, got {dimension!r}")
    target.dimension = dimension
    descriptions = entry.get("Description", {}) or {}
    if not isinstance(descriptions, dict):
        raise ValueError(f"semantic specification: {key}.Description must map feature indices to strings")
    for index, text in descriptions.items():
        try:
            i = int(index)
        except (TypeError, ValueError):
            raise ValueError(f"semantic specification: {key}.Description key {index!r} is not a feature index") from None
        if not isinstance(text, str):
            raise ValueError(f"semantic specification: {key}.Description[{index}] must be a string")
        target.descriptions[i] = text
    # Presence matters (optional field): mark it set even when empty.
    target.SetInParent()


# Old class name written by early versions of the reference package.
STAT_SPEC_ALIASES = {LEGACY_TABLE_SPEC_TYPE: TABLE_SPEC_TYPE}
_STAT_ARRAY_KEYS = ("z", "beta")
_STAT_SCALAR_KEYS = ("type", "gamma", "num_points")


def stat_spec_type(spec: dict[str, Any]) -> str:
    """The canonical type of a reference spec dictionary (no "type" key means a table spec)."""
    name = spec.get("type") or TABLE_SPEC_TYPE
    return STAT_SPEC_ALIASES.get(name, name)


def stat_spec_to_proto(spec: dict[str, Any]) -> common_pb2.StatSpec:
    """A reference spec dictionary (as in the spec JSON file) as a StatSpec message."""
    missing = [key for key in _STAT_ARRAY_KEYS if key not in spec]
    if missing:
        raise ValueError(f"statistical specification lacks {missing}")
    try:
        z = np.asarray(spec["z"], dtype=np.float64)
        beta = np.asarray(spec["beta"], dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as error:
        raise ValueError(f"statistical specification: z and beta must be numeric arrays ({error})") from None
    if z.ndim < 2 or z.shape[0] != beta.shape[0]:
        raise ValueError(f"statistical specification: z has shape {z.shape} but beta has {beta.shape[0]} weights")
    attributes = {key: json.dumps(value) for key, value in spec.items() if key not in _STAT_ARRAY_KEYS + _STAT_SCALAR_KEYS}
    return common_pb2.StatSpec(
        type=stat_spec_type(spec),
        z=to_tensor(z),
        beta=to_tensor(beta),
        gamma=float(spec.get("gamma", 0.1)),
        num_points=int(spec.get("num_points", 0) or 0),
        attributes=attributes,
    )


def stat_spec_from_proto(message: common_pb2.StatSpec) -> dict[str, Any]:
    """The reference spec dictionary of a StatSpec message (arrays as numpy arrays)."""
    if not message.type:
        raise ValueError("statistical specification: type is empty")
    spec: dict[str, Any] = {key: json.loads(value) for key, value in message.attributes.items()}
    spec.update(
        type=message.type,
        z=from_tensor(message.z, "stat spec z"),
        beta=from_tensor(message.beta, "stat spec beta"),
        gamma=message.gamma,
        num_points=message.num_points,
    )
    return spec
