"""The Market API over HTTP/JSON (`lwm web` in front of `lwm serve --all`): every route with
valid and invalid input, tokens as Authorization: Bearer, gRPC statuses as HTTP statuses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import json_format
from web_testing import assert_error, http, multipart, post_json, upload, web_market  # noqa: F401 (web_market is a fixture)

from lwm.rpc.convert import semantic_from_dict, stat_spec_to_proto
from lwm.rpc.learnware.v1 import market_pb2
from lwm.rpc.tensors import to_tensor
from lwm.spec import RKMETableSpecification
from lwm.testing.synthetic import TableWorld

pytestmark = pytest.mark.integration


def test_every_route_over_http(web_market, tmp_path: Path) -> None:
    base, token = web_market
    alice, bob, root = token["alice"], token["bob"], token["root"]

    document = http(f"{base}/openapi.json").json()
    operations = {op["operationId"] for path in document["paths"].values() for op in path.values()}
    assert operations == {m.name for m in market_pb2.DESCRIPTOR.services_by_name["MarketService"].methods}
    assert document["paths"]["/v1/learnwares/{learnware_id}"]["get"]["operationId"] == "GetLearnware"

    info = http(f"{base}/v1/market").json()
    assert info["kind"] == "MARKET_KIND_EASY" and info["version"]

    # AddLearnware: a multipart form (metadata JSON + the zip), the owner from the token.
    world = TableWorld.make(tasks=2, seed=3)
    zips = [world.write_learnware(task, tmp_path) for task in range(2)]
    assert_error(upload(base, *zips[0], token=""), 401, "UNAUTHENTICATED", "token")
    assert_error(upload(base, *zips[0], token="lwm_nobody_secret"), 401, "UNAUTHENTICATED")
    added = [upload(base, path, semantic, alice).json()["learnware"] for path, semantic in zips]
    assert [lw["status"] for lw in added] == ["LEARNWARE_STATUS_USABLE"] * 2 and added[0]["owner"] == "alice"
    first = added[0]["id"]
    body, content_type = multipart({"metadata": (None, b'{"semanticSpec": {}}')})
    assert_error(http(f"{base}/v1/learnwares", "POST", body, alice, content_type), 400, "INVALID_ARGUMENT", "chunk")
    body, content_type = multipart({"metadata": (None, b"{not json"), "chunk": ("a.zip", b"PK")})
    assert_error(http(f"{base}/v1/learnwares", "POST", body, alice, content_type), 400, "INVALID_ARGUMENT", "metadata")
    assert_error(post_json(f"{base}/v1/learnwares", {"semanticSpec": {}}, alice), 400, "INVALID_ARGUMENT", "multipart")

    # GetLearnware, ListLearnwares (query parameters, proto or JSON names).
    assert http(f"{base}/v1/learnwares/{first}").json()["learnware"]["semanticSpec"]["name"] == zips[0][1]["Name"]["Values"]
    assert_error(http(f"{base}/v1/learnwares/0123456789abcdef"), 404, "NOT_FOUND")
    listed = http(f"{base}/v1/learnwares?statuses=LEARNWARE_STATUS_USABLE&page.page_size=1", token=alice).json()
    assert listed["total"] == "2" and len(listed["learnwares"]) == 1 and listed["nextPageToken"]
    assert http(f"{base}/v1/learnwares", token=bob).json().get("total", "0") == "0"
    assert_error(http(f"{base}/v1/learnwares"), 401, "UNAUTHENTICATED")
    assert_error(http(f"{base}/v1/learnwares?page.pageSize=5000", token=alice), 400, "INVALID_ARGUMENT")
    assert_error(http(f"{base}/v1/learnwares?page.pageSize=many", token=alice), 400, "INVALID_ARGUMENT", "page")
    assert_error(http(f"{base}/v1/learnwares?colour=red", token=alice), 400, "INVALID_ARGUMENT", "colour")
    assert_error(http(f"{base}/v1/learnwares?statuses=SHINY", token=alice), 400, "INVALID_ARGUMENT")

    # DownloadLearnware: the zip's bytes as they were uploaded.
    download = http(f"{base}/v1/learnwares/{first}:download")
    assert download.status == 200 and download.body == zips[0][0].read_bytes()
    assert_error(http(f"{base}/v1/learnwares/0123456789abcdef:download"), 404, "NOT_FOUND")

    # SearchLearnware with the user's statistical specification: the matching learnware first.
    x, _ = world.sample(1, 300, np.random.default_rng(7))
    spec = RKMETableSpecification()
    spec.generate_stat_spec_from_data(x)
    stat = json_format.MessageToDict(stat_spec_to_proto(json.loads(spec.to_json())))
    found = post_json(f"{base}/v1/learnwares:search", {"semanticSpec": {"data": ["Table"]}, "statSpecs": [stat], "maxSearchNum": 1}).json()
    assert found["searchPath"] == "statistical" and found["singleResults"][0]["learnware"]["id"] == added[1]["id"]
    assert_error(http(f"{base}/v1/learnwares:search", "POST", b"{oops"), 400, "INVALID_ARGUMENT", "json")
    assert_error(post_json(f"{base}/v1/learnwares:search", [1, 2]), 400, "INVALID_ARGUMENT", "object")
    assert_error(post_json(f"{base}/v1/learnwares:search", {"colour": "red"}), 400, "INVALID_ARGUMENT", "colour")
    assert_error(post_json(f"{base}/v1/learnwares:search", {"maxResults": -1}), 400, "INVALID_ARGUMENT")

    # Predict and Reuse: tensors as proto3 JSON (bytes in base64).
    tensor = json_format.MessageToDict(to_tensor(x[:5]))
    predictions = post_json(f"{base}/v1/learnwares/{first}:predict", {"x": tensor}).json()["predictions"]
    assert predictions["shape"][0] == "5"
    assert_error(post_json(f"{base}/v1/learnwares/{first}:predict", {"x": {"dtype": "float64", "shape": ["3"], "data": "AAAA"}}), 400, "INVALID_ARGUMENT")
    reused = post_json(f"{base}/v1/reuse", {"reuse": {"learnwareIds": [lw["id"] for lw in added], "x": tensor, "averaging": {}}}).json()
    assert reused["predictions"]["shape"][0] == "5"
    assert_error(post_json(f"{base}/v1/reuse", {"reuse": {"learnwareIds": [first], "x": tensor}}), 400, "INVALID_ARGUMENT")
    stream = post_json(f"{base}/v1/reuse:stream", {"reuse": {"reuse": {"learnwareIds": [first], "x": tensor, "averaging": {}}}})
    assert stream.status == 200 and stream.content_type.startswith("application/x-ndjson")
    blocks = [json.loads(line) for line in stream.body.splitlines()]
    assert blocks and all("block" in b for b in blocks)
    assert_error(post_json(f"{base}/v1/reuse:stream", {"reuse": {"reuse": {"learnwareIds": ["0123456789abcdef"], "x": tensor, "averaging": {}}}}), 404, "NOT_FOUND")

    # UpdateLearnware and RecheckLearnware: owners and admins only.
    semantic = json_format.MessageToDict(semantic_from_dict(zips[0][1]))
    assert_error(post_json(f"{base}/v1/learnwares/{first}", {"semanticSpec": semantic}, bob, "PATCH"), 403, "PERMISSION_DENIED", "alice")
    updated = post_json(f"{base}/v1/learnwares/{first}", {"semanticSpec": semantic | {"description": "new words"}}, alice, "PATCH").json()
    assert updated["learnware"]["semanticSpec"]["description"] == "new words"
    assert_error(post_json(f"{base}/v1/learnwares/{first}:recheck", {}, alice), 403, "PERMISSION_DENIED")
    rechecked = post_json(f"{base}/v1/learnwares/{first}:recheck", {"waitForCheck": True}, root).json()
    assert rechecked["learnware"]["status"] == "LEARNWARE_STATUS_USABLE"

    # DeleteLearnware: not by another user; by an admin; then it is gone.
    assert_error(http(f"{base}/v1/learnwares/{first}", "DELETE", token=bob), 403, "PERMISSION_DENIED")
    deleted = http(f"{base}/v1/learnwares/{first}", "DELETE", token=root).json()
    assert list(deleted) == ["revision"] and int(deleted["revision"]) > int(rechecked["revision"])  # int64 travels as a JSON string
    assert_error(http(f"{base}/v1/learnwares/{first}"), 404, "NOT_FOUND")
    assert_error(http(f"{base}/v1/learnwares/{first}", "DELETE", token=root), 404, "NOT_FOUND")

    # The hetero engine's routes answer an Easy market with the reason; ClearMarket only for the owner of all.
    assert_error(http(f"{base}/v1/market/hetero-engine"), 400, "FAILED_PRECONDITION", "Hetero market")
    assert_error(post_json(f"{base}/v1/market/hetero-engine:train", {}, alice), 400, "FAILED_PRECONDITION", "Hetero market")
    assert_error(post_json(f"{base}/v1/market:clear", {}, bob), 403, "PERMISSION_DENIED", "alice")
    assert_error(post_json(f"{base}/v1/market:clear", {"marketId": "no spaces"}, alice), 400, "INVALID_ARGUMENT")
    assert post_json(f"{base}/v1/market:clear", {}, alice).json()["deletedIds"] == [added[1]["id"]]
    assert http(f"{base}/v1/learnwares", token=alice).json().get("total", "0") == "0"

    # Routes that do not exist.
    assert http(f"{base}/v1/market", "PUT", b"{}").status == 405
    assert http(f"{base}/v1/nothing").status == 404
