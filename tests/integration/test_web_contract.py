"""Property-based contract tests of the HTTP API: schemathesis reads /openapi.json from a live
`lwm web` and calls every operation with generated input (valid and invalid), as an admin.

Every answer must be no server error (5xx), have a documented status and content type, and a
body that matches the response schema (the message's JSON, or the error's code/status/message).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance, status_code_conformance
from web_testing import upload

from lwm.rpc.auth import TokenStore
from lwm.rpc.learnware.v1 import market_pb2
from lwm.testing.local_servers import free_port
from lwm.testing.synthetic import TableWorld
from lwm.testing.web import WebProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # make test-all (make test stays under 12 minutes on 2 cores)
CHECKS = [schemathesis.checks.not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[schemathesis.BaseSchema, str]]:
    """A market with one USABLE learnware (so generated calls also reach real ones) and its HTTP API."""
    from conftest import MarketProcess

    tmp_path = tmp_path_factory.mktemp("contract")
    store = TokenStore(tmp_path / "tokens.json")
    token = store.create("root", "admin")[0]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LWM_TOKENS_FILE", str(store.path))
        market = MarketProcess(tmp_path / "market-data", tmp_path / "market.log")
        web = WebProcess(tmp_path / "web.log")
        try:
            base = web.start(market.start(), free_port())
            zip_path, semantic = TableWorld.make(tasks=1, seed=2).write_learnware(0, tmp_path)
            assert upload(base, zip_path, semantic, token).status == 200
            yield schemathesis.openapi.from_url(f"{base}/openapi.json"), token
        finally:
            web.stop()
            market.stop()


@pytest.fixture(scope="module")
def web_schema(live_api: tuple[schemathesis.BaseSchema, str]) -> schemathesis.BaseSchema:
    return live_api[0]


def test_every_operation_keeps_its_contract(live_api: tuple[schemathesis.BaseSchema, str]) -> None:
    """Each operation, with valid and with invalid generated input (schemathesis' two modes)."""
    schema, token = live_api
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len(market_pb2.DESCRIPTOR.services_by_name["MarketService"].methods)
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            @given(case=operation.as_strategy(generation_mode=mode))
            def call(case: schemathesis.Case) -> None:
                case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS, timeout=120)

            try:
                call()
            except Unsatisfiable:
                # Only path parameters (any one segment is valid) or no input at all: no invalid input to make.
                if mode is not GenerationMode.NEGATIVE:
                    failures.append(f"{operation.label} ({mode.value}): no input could be generated")
            except Exception as error:
                failures.append(f"{operation.label} ({mode.value}): {error}")
    assert not failures, "\n\n".join(failures)


def test_the_document_describes_every_route(web_schema: schemathesis.BaseSchema, tmp_path: Path) -> None:
    raw = web_schema.raw_schema
    assert raw["openapi"].startswith("3.1")
    upload_op = raw["paths"]["/v1/learnwares"]["post"]
    assert set(upload_op["requestBody"]["content"]) == {"multipart/form-data"}
    assert "application/octet-stream" in raw["paths"]["/v1/learnwares/{learnware_id}:download"]["get"]["responses"]["200"]["content"]
    assert raw["components"]["schemas"]["learnware.v1.LearnwareInfo"]["properties"]["zipSize"]["type"] == "string"  # int64 as text
