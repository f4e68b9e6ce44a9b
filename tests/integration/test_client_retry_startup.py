"""A MarketClient call made before the market is up is retried until the market serves it."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import free_port

from lwm.client import MarketClient, RetryPolicy

pytestmark = pytest.mark.integration


def test_call_started_before_the_market_succeeds_once_it_serves(market_process, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lwm.client.retry")
    port = free_port()
    # About 200 s of retries (jittered backoff up to 1 s): longer than a loaded machine's market start (MarketProcess waits 180 s).
    patient = RetryPolicy(max_attempts=400, initial_backoff_s=0.2, max_backoff_s=1.0)
    # The client closes first: a call still retrying (the market failed to start) then ends at once.
    with ThreadPoolExecutor(max_workers=1) as pool, MarketClient(f"127.0.0.1:{port}", token="", tls_ca="", retry=patient) as client:
        info = pool.submit(client.market_info)
        time.sleep(2.0)
        assert not info.done(), "the call must still be retrying: nothing listens on the port yet"
        market_process.start(port)
        assert info.result(timeout=240)["kind"] == "EASY"
    assert any("market unavailable" in record.getMessage() for record in caplog.records)
