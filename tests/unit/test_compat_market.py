"""lwm.client.compat.instantiate_learnware_market takes the reference's keyword arguments."""

from __future__ import annotations

import socket

import pytest

from lwm.client import UnavailableError
from lwm.client.compat import instantiate_learnware_market
from lwm.client.retry import RetryPolicy


def closed_address() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def test_reference_keywords_are_accepted() -> None:
    # Past the keywords, it connects: here to a closed port, so UNAVAILABLE.
    with pytest.raises(UnavailableError):
        instantiate_learnware_market(
            market_id="workflow", name="hetero", rebuild=False, organizer_kwargs=None, searcher_kwargs={}, checker_kwargs=None, conda_checker=True,
            address=closed_address(), timeout_s=2, retry=RetryPolicy(max_attempts=1),
        )


@pytest.mark.parametrize(
    "keywords, named",
    [
        ({"organizer_kwargs": {"auto_update": True, "auto_update_limit": 3}}, "LWM_HETERO_"),
        ({"searcher_kwargs": {"k": 1}}, "searcher_kwargs ['k']"),
        ({"checker_kwargs": {"k": 1}}, "checker_kwargs ['k']"),
        ({"conda_checker": "yes"}, "conda_checker must be True or False"),
    ],
)
def test_reference_keywords_the_market_cannot_honour_are_refused_by_name(keywords: dict, named: str) -> None:
    with pytest.raises(TypeError, match=named.replace("[", r"\[").replace("]", r"\]")):
        instantiate_learnware_market(market_id="workflow", name="easy", address=closed_address(), **keywords)
