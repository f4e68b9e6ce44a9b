"""HeteroMapTableSpecification: a table's RKME mapped into the hetero engine's space.

File format: the reference's (table format with "type": "HeteroMapTableSpecification"),
plus "engine", the id of the engine that mapped it: specs of different engines live in
different spaces and are never compared (the reference's files carry no engine and
compare only with each other).
"""

from __future__ import annotations

from typing import Any, cast

from lwm.learnware.vocabulary import HETERO_SPEC_TYPE

from ..rkme import RKMETableSpecification


class HeteroMapTableSpecification(RKMETableSpecification):
    """RKME (z, beta) whose points are rows embedded by a hetero engine (see HeteroEngine.map_spec)."""

    type: str = HETERO_SPEC_TYPE
    accepted_types: tuple[str, ...] = (HETERO_SPEC_TYPE,)
    engine: str = ""

    def generate_stat_spec_from_data(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("a HeteroMapTableSpecification is made by HeteroEngine.map_spec from a table spec, not from data")

    def _check_comparable(self, other: RKMETableSpecification) -> None:
        super()._check_comparable(other)
        other_engine = cast(HeteroMapTableSpecification, other).engine
        if other_engine != self.engine:
            raise ValueError(f"hetero specs from different engines are not comparable: {self.engine!r} vs {other_engine!r}")

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "engine": self.engine}

    def _read_extra_fields(self, d: dict[str, Any]) -> None:
        engine = d.get("engine", "")
        if not isinstance(engine, str):
            raise ValueError(f"hetero spec 'engine' must be a string, got {engine!r}")
        self.engine = engine
