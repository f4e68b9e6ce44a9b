"""The gateway's check of a request's market_id: empty is the default market, bad names are INVALID_ARGUMENT."""

from __future__ import annotations

import grpc
import pytest

from lwm.rpc.errors import ServiceError
from lwm.services.gateway.server import market_id_of


@pytest.mark.parametrize("name", ["default", "a", "Team-1_v2.0", "x" * 64])
def test_good_names_are_kept(name: str) -> None:
    assert market_id_of(name) == name


def test_empty_is_the_default_market() -> None:
    assert market_id_of("") == "default"


@pytest.mark.parametrize("name", ["x" * 65, "has space", "a/b", "ümlaut", "semi;colon", "new\nline"])
def test_bad_names_are_refused_with_the_rule(name: str) -> None:
    with pytest.raises(ServiceError) as refused:
        market_id_of(name)
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT and "64 letters, digits" in refused.value.message
