"""Entry points for statistical specifications: make one from data, load one from JSON."""

from __future__ import annotations

import json
import os
from typing import Any

from .rkme import TABLE_SPEC_TYPES, RKMETableSpecification, generate_rkme_table_spec

# Types the reference package writes that lwm.spec cannot read yet.
KNOWN_UNSUPPORTED_TYPES = (
    "RKMEImageSpecification",
    "RKMETextSpecification",
    "HeteroMapTableSpecification",
    "GenerativeModelSpecification",
    "LLMGeneralCapabilitySpecification",
)


def _as_dict(source: str | bytes | os.PathLike[str] | dict[str, Any]) -> dict[str, Any]:
    if isinstance(source, dict):
        return source
    if isinstance(source, bytes):
        source = source.decode("utf-8")
    if isinstance(source, str) and source.lstrip().startswith("{"):
        try:
            return json.loads(source)
        except json.JSONDecodeError as err:
            raise ValueError(f"statistical specification is not valid JSON: {err}") from None
    if isinstance(source, (str, os.PathLike)):
        with open(source, encoding="utf-8") as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as err:
                raise ValueError(f"{os.fspath(source)} is not valid JSON: {err}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{os.fspath(source)} must hold a JSON object")
        return data
    raise TypeError(f"expected a path, a JSON string or a dict, got {type(source).__name__}")


def load_stat_spec(
    source: str | bytes | os.PathLike[str] | dict[str, Any], device: str | None = None
) -> RKMETableSpecification:
    """Load a statistical spec from a file path, a JSON string/bytes or a dict.

    Dispatches on "type": RKMETableSpecification, the old name
    RKMEStatSpecification, or no type at all -> RKMETableSpecification.
    Any other type raises ValueError.
    """
    data = _as_dict(source)
    spec_type = data.get("type", TABLE_SPEC_TYPES[0])
    if spec_type in TABLE_SPEC_TYPES:
        return RKMETableSpecification.from_dict(data, device=device)
    raise ValueError(f"statistical specification type {spec_type!r} is not supported yet by lwm.spec")


def generate_stat_spec(type: str = "table", X: Any = None, **kwargs: Any) -> RKMETableSpecification:
    """Make a statistical spec from local data (the reference's function of the same name).

    Only type="table" exists for now; kwargs go to
    :func:`lwm.spec.rkme.generate_rkme_table_spec` (gamma, reduced_set_size,
    step_size, steps, nonnegative_beta, reduce, device, random_state; the
    reference's cuda_idx is accepted too: -1 = CPU, i >= 0 = cuda:i).
    """
    if type == "table":
        if X is None:
            raise ValueError("generate_stat_spec(type='table') needs data X")
        return generate_rkme_table_spec(X, **kwargs)
    if type == "image":
        raise NotImplementedError("image specifications (RKMEImageSpecification) are not implemented yet in lwm.spec")
    if type == "text":
        raise NotImplementedError("text specifications (RKMETextSpecification) are not implemented yet in lwm.spec")
    raise ValueError(f"unknown statistical specification type {type!r}; supported: 'table'")
