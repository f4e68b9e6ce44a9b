"""HTTP routes read from MarketService's google.api.http rules, requests built from HTTP input,
and the OpenAPI document generated from the descriptors (no server)."""

from __future__ import annotations

import pytest

from lwm.rpc.learnware.v1 import common_pb2, market_pb2
from lwm.services.web.openapi import openapi_document
from lwm.services.web.transcode import BadRequestError, build_request, match, routes_of

SERVICE = market_pb2.DESCRIPTOR.services_by_name["MarketService"]
ROUTES = routes_of(SERVICE)


def test_every_method_has_one_route() -> None:
    assert sorted(route.method.name for route in ROUTES) == sorted(method.name for method in SERVICE.methods)


@pytest.mark.parametrize(
    ("verb", "path", "method", "params"),
    [
        ("POST", "/v1/learnwares:search", "SearchLearnware", {}),
        ("GET", "/v1/learnwares/ab12:download", "DownloadLearnware", {"learnware_id": "ab12"}),
        ("POST", "/v1/learnwares/ab12:recheck", "RecheckLearnware", {"learnware_id": "ab12"}),
        ("GET", "/v1/learnwares/ab12", "GetLearnware", {"learnware_id": "ab12"}),
        ("DELETE", "/v1/learnwares/ab12", "DeleteLearnware", {"learnware_id": "ab12"}),
        ("GET", "/v1/learnwares", "ListLearnwares", {}),
        ("POST", "/v1/learnwares", "AddLearnware", {}),
    ],
)
def test_paths_find_their_rpc(verb: str, path: str, method: str, params: dict[str, str]) -> None:
    route, found, _ = match(ROUTES, verb, path)
    assert route is not None and route.method.name == method and found == params


def test_unknown_paths_and_verbs() -> None:
    assert match(ROUTES, "PUT", "/v1/market") == (None, {}, True)  # known path, other verb: 405
    assert match(ROUTES, "GET", "/v1/nothing/here") == (None, {}, False)
    assert match(ROUTES, "GET", "/v1/learnwares/a/b")[0] is None  # a path parameter is one segment
    assert match(ROUTES, "GET", "/v1/market\n")[0] is None


def test_requests_from_path_query_and_body() -> None:
    route = match(ROUTES, "GET", "/v1/learnwares")[0]
    assert route is not None
    query = [("statuses", "LEARNWARE_STATUS_USABLE"), ("statuses", "LEARNWARE_STATUS_INVALID"), ("page.pageSize", "5"), ("owner", "alice")]
    request = build_request(route, {}, query, None)
    assert list(request.statuses) == [common_pb2.LEARNWARE_STATUS_USABLE, common_pb2.LEARNWARE_STATUS_INVALID]
    assert request.page.page_size == 5 and request.owner == "alice"

    recheck = match(ROUTES, "POST", "/v1/learnwares/x1:recheck")[0]
    assert recheck is not None
    message = build_request(recheck, {"learnware_id": "x1"}, [], {"learnwareId": "ignored", "waitForCheck": True})
    assert message.learnware_id == "x1" and message.wait_for_check  # the path wins over the body


@pytest.mark.parametrize(
    ("query", "body", "words"),
    [
        ([("page.pageSize", "many")], None, "page_size"),
        ([("colour", "red")], None, "colour"),
        ([("statuses", "SHINY")], None, "SHINY"),
        ([("page", "1")], None, "message"),
    ],
)
def test_bad_query_parameters_are_named(query: list[tuple[str, str]], body: object, words: str) -> None:
    route = match(ROUTES, "GET", "/v1/learnwares")[0]
    assert route is not None
    with pytest.raises(BadRequestError, match=words):
        build_request(route, {}, query, body)


def test_bad_bodies_are_named() -> None:
    search = match(ROUTES, "POST", "/v1/learnwares:search")[0]
    assert search is not None
    with pytest.raises(BadRequestError, match="JSON object"):
        build_request(search, {}, [], [1, 2])
    with pytest.raises(BadRequestError, match="colour"):
        build_request(search, {}, [], {"colour": "red"})
    with pytest.raises(BadRequestError, match="maxResults|max_results"):
        build_request(search, {}, [], {"maxResults": "lots"})


def test_openapi_document_follows_the_json_mapping() -> None:
    document = openapi_document(ROUTES)
    schemas = document["components"]["schemas"]
    info = schemas["learnware.v1.LearnwareInfo"]["properties"]
    assert info["zipSize"] == {"type": "string", "format": "int64", "pattern": "^-?[0-9]{1,18}$"}
    assert info["status"] == {"$ref": "#/components/schemas/learnware.v1.LearnwareStatus"}
    assert "LEARNWARE_STATUS_USABLE" in schemas["learnware.v1.LearnwareStatus"]["enum"]
    assert schemas["learnware.v1.Tensor"]["properties"]["data"]["format"] == "byte"
    counts = schemas["learnware.v1.MarketGetMarketInfoResponse"]["properties"]["learnwareCounts"]
    assert counts["type"] == "object" and counts["additionalProperties"]["type"] == "string"
    listing = document["paths"]["/v1/learnwares"]["get"]
    names = {parameter["name"] for parameter in listing["parameters"]}
    assert names == {"page.page_size", "page.page_token", "statuses", "owner", "market_id"}
    get = document["paths"]["/v1/learnwares/{learnware_id}"]["get"]
    assert [p["name"] for p in get["parameters"] if p["in"] == "path"] == ["learnware_id"]
    assert set(document["paths"]["/v1/learnwares"]["post"]["requestBody"]["content"]) == {"multipart/form-data"}
