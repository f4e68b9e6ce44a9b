"""HeteroMap: the reference's name and calls for a hetero engine (learnware.market.heterogeneous.organizer.HeteroMap).

`HeteroMap()` is an untrained engine (as the reference's freshly built model);
`HeteroMap.from_bytes(checkpoint)` or `HeteroMap.load(path)` is a trained one, e.g. the
engine a Hetero market serves (MarketClient.get_hetero_engine). `hetero_mapping` maps a
table spec and its column descriptions into the engine's space.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from ..device import resolve_device
from ..rkme import RKMETableSpecification
from .engine import EngineConfig, HeteroEngine, TabularEncoder
from .spec import HeteroMapTableSpecification

# The reference's description of a column the user did not describe.
UNKNOWN_FEATURE = "Unknown Feature"


class HeteroMap:
    """A hetero engine with the reference HeteroMap's calls: hetero_mapping, save, load, to."""

    def __init__(self, engine: HeteroEngine | None = None, **config: Any) -> None:
        """engine: a trained engine; else an untrained one of EngineConfig `config` (the reference's
        HeteroMap arguments are those of its TransTab model, which this engine is not: TypeError)."""
        if engine is not None and config:
            raise TypeError("give either a trained engine or an EngineConfig for an untrained one, not both")
        if engine is None:
            fields = {f.name for f in dataclasses.fields(EngineConfig)}
            unknown = sorted(set(config) - fields)
            if unknown:
                raise TypeError(f"HeteroMap arguments {unknown} are not settings of this market's hetero engine; choose from {sorted(fields)}")
            engine_config = EngineConfig(**config)
            with torch.random.fork_rng():
                torch.manual_seed(engine_config.seed)
                engine = HeteroEngine(TabularEncoder(engine_config), engine_config, [], resolve_device("cpu"))
        self.engine = engine

    @classmethod
    def from_bytes(cls, checkpoint: bytes, device: str | torch.device | None = None) -> HeteroMap:
        return cls(HeteroEngine.from_bytes(checkpoint, device))

    @staticmethod
    def load(checkpoint: str | Path) -> HeteroMap:
        """A HeteroMap from a file written by `save`."""
        return HeteroMap.from_bytes(Path(checkpoint).read_bytes())

    def save(self, checkpoint: str | Path) -> None:
        Path(checkpoint).write_bytes(self.engine.to_bytes())

    def to(self, device: str | torch.device) -> HeteroMap:
        return HeteroMap.from_bytes(self.engine.to_bytes(), device)

    @property
    def engine_id(self) -> str:
        return self.engine.engine_id

    def hetero_mapping(self, rkme_spec: RKMETableSpecification, features: dict[str, str]) -> HeteroMapTableSpecification:
        """The table spec in the engine's space; `features` maps column index ("0", "1", ...) to its description
        (a column without one is described as "Unknown Feature", as in the reference)."""
        if not isinstance(features, dict):
            raise TypeError(f"features must map column index strings to descriptions, got {type(features).__name__}")
        dimension = rkme_spec.get_z().shape[1]
        descriptions = [str(features.get(str(i), UNKNOWN_FEATURE)) for i in range(dimension)]
        return self.engine.map_spec(rkme_spec, descriptions)
