"""Entry points for statistical specifications: make one from data, load one from JSON."""

from __future__ import annotations

import json
import os
from typing import Any

from lwm.learnware.vocabulary import HETERO_SPEC_TYPE, IMAGE_SPEC_TYPE, TABLE_SPEC_TYPES, TEXT_SPEC_TYPE

from .hetero.spec import HeteroMapTableSpecification
from .image import RKMEImageSpecification
from .rkme import RKMETableSpecification, generate_rkme_table_spec
from .text import RKMETextSpecification

# RKMETextSpecification is an RKMETableSpecification too.
StatSpecification = RKMETableSpecification | RKMEImageSpecification

def _as_dict(source: str | bytes | os.PathLike[str] | dict[str, Any]) -> dict[str, Any]:
    if isinstance(source, dict):
        return source
    if isinstance(source, bytes):
        source = source.decode("utf-8")
    if isinstance(source, str) and source.lstrip().startswith("{"):
        try:
            data: dict[str, Any] = json.loads(source)
            return data
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
) -> StatSpecification:
    """Load a statistical spec from a file path, a JSON string/bytes or a dict.

    Dispatches on "type": RKMETableSpecification (also the old name
    RKMEStatSpecification, or no type at all), RKMEImageSpecification,
    RKMETextSpecification, HeteroMapTableSpecification. Any other type raises ValueError.
    """
    data = _as_dict(source)
    spec_type = data.get("type", TABLE_SPEC_TYPES[0])
    if spec_type in TABLE_SPEC_TYPES:
        return RKMETableSpecification.from_dict(data, device=device)
    if spec_type == IMAGE_SPEC_TYPE:
        return RKMEImageSpecification.from_dict(data, device=device)
    if spec_type == TEXT_SPEC_TYPE:
        return RKMETextSpecification.from_dict(data, device=device)
    if spec_type == HETERO_SPEC_TYPE:
        return HeteroMapTableSpecification.from_dict(data, device=device)
    raise ValueError(f"statistical specification type {spec_type!r} is not supported by lwm.spec")


def generate_stat_spec(type: str = "table", X: Any = None, **kwargs: Any) -> StatSpecification:
    """Make a statistical spec from local data (the reference's function of the same name).

    type="table": X (n, d) numeric (numpy, pandas, torch); kwargs go to
    :func:`lwm.spec.rkme.generate_rkme_table_spec` (gamma, reduced_set_size,
    step_size, steps, nonnegative_beta, reduce, device, random_state,
    verbose; the reference's cuda_idx too: -1 = CPU, i >= 0 = cuda:i).
    type="image": X (N, C, H, W); type="text": X a sequence of strings. For
    both, device/cuda_idx (and gamma for text) build the spec and the other
    kwargs go to its generate_stat_spec_from_data (K, steps, ...).
    """
    if X is None:
        raise ValueError(f"generate_stat_spec(type={type!r}) needs data X")
    if type == "table":
        return generate_rkme_table_spec(X, **kwargs)
    device, cuda_idx = kwargs.pop("device", None), kwargs.pop("cuda_idx", None)
    spec: StatSpecification
    if type == "image":
        spec = RKMEImageSpecification(device=device, cuda_idx=cuda_idx)
    elif type == "text":
        spec = RKMETextSpecification(gamma=kwargs.pop("gamma", 0.1), device=device, cuda_idx=cuda_idx)
    else:
        raise ValueError(f"unknown statistical specification type {type!r}; supported: 'table', 'image', 'text'")
    spec.generate_stat_spec_from_data(X, **kwargs)
    return spec
