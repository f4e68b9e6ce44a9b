"""The reference's hetero organizer keywords and HeteroMap, without a market."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from lwm.client import UnavailableError
from lwm.client.compat import HeteroMap, instantiate_learnware_market
from lwm.client.retry import RetryPolicy
from lwm.spec import HeteroMapTableSpecification, generate_stat_spec


def closed_address() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def test_the_hetero_organizer_keywords_are_accepted() -> None:
    # Past the keywords, it connects: here to a closed port, so UNAVAILABLE.
    with pytest.raises(UnavailableError):
        instantiate_learnware_market(
            name="hetero", organizer_kwargs={"auto_update": True, "auto_update_limit": 5, "steps": 50},
            address=closed_address(), timeout_s=2, retry=RetryPolicy(max_attempts=1),
        )


@pytest.mark.parametrize(
    "organizer_kwargs, error, named",
    [
        ({"auto_update": True, "num_epoch": 3, "lr": 0.1}, TypeError, r"\['lr', 'num_epoch'\]"),
        ({"auto_update": "yes"}, TypeError, "auto_update must be True or False"),
        ({"auto_update_limit": 0}, ValueError, "auto_update_limit must be a positive int"),
        ({"steps": -1}, ValueError, "steps must be a positive int"),
    ],
)
def test_organizer_keywords_the_market_cannot_honour_are_refused_before_connecting(organizer_kwargs: dict, error: type[Exception], named: str) -> None:
    with pytest.raises(error, match=named):
        instantiate_learnware_market(name="hetero", organizer_kwargs=organizer_kwargs, address=closed_address())


def test_hetero_map_maps_table_specs_of_any_width_and_saves(tmp_path: Path) -> None:
    hetero_map = HeteroMap()
    rng = np.random.default_rng(0)
    for rows, columns in ((1, 50), (5, 20), (200, 7)):
        table = generate_stat_spec(type="table", X=rng.uniform(-100, 100, size=(rows, columns)))
        mapped = hetero_map.hetero_mapping(rkme_spec=table, features={"0": "age of the patient"})
        assert isinstance(mapped, HeteroMapTableSpecification)
        assert mapped.get_z().shape == (table.get_z().shape[0], hetero_map.engine.out_dim) and np.isfinite(mapped.get_z()).all()
        assert mapped.engine == hetero_map.engine_id
        path = tmp_path / f"spec-{columns}.json"
        mapped.save(str(path))
        loaded = HeteroMapTableSpecification()
        loaded.load(str(path))
        assert loaded.type == "HeteroMapTableSpecification" and np.allclose(loaded.get_z(), mapped.get_z())
    hetero_map.save(tmp_path / "engine.pt")
    assert HeteroMap.load(tmp_path / "engine.pt").engine_id == hetero_map.engine_id


def test_a_column_without_description_is_an_unknown_feature() -> None:
    hetero_map = HeteroMap()
    table = generate_stat_spec(type="table", X=np.random.default_rng(1).normal(size=(30, 3)))
    undescribed = hetero_map.hetero_mapping(table, {})
    named_unknown = hetero_map.hetero_mapping(table, {str(i): "Unknown Feature" for i in range(3)})
    described = hetero_map.hetero_mapping(table, {"0": "blood pressure", "1": "body mass index", "2": "age"})
    assert np.allclose(undescribed.get_z(), named_unknown.get_z())
    assert not np.allclose(undescribed.get_z(), described.get_z())


def test_hetero_map_refuses_settings_of_the_reference_model() -> None:
    with pytest.raises(TypeError, match=r"\['hidden_dim'\]"):
        HeteroMap(hidden_dim=128)
