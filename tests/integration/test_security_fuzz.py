"""Fuzzing the public Market API of a live market with random and garbled messages
(hypothesis): every call ends with OK or a clear client-error status, never INTERNAL,
UNKNOWN or a dead service."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from conftest import MarketProcess
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lwm.client import MarketClient
from lwm.rpc.learnware.v1 import common_pb2, market_pb2, reuse_pb2
from lwm.rpc.server import wait_until_serving
from lwm.testing.synthetic import TableWorld

pytestmark = pytest.mark.integration
CLIENT_ERRORS = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.OUT_OF_RANGE}
UNARY_METHODS = ["GetLearnware", "ListLearnwares", "UpdateLearnware", "DeleteLearnware", "SearchLearnware", "Predict", "Reuse", "RecheckLearnware", "GetMarketInfo"]
FUZZ = settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A live market holding one usable learnware; yields (address, learnware id)."""
    folder = tmp_path_factory.mktemp("fuzz-market")
    process = MarketProcess(folder / "data", folder / "market.log")
    address = process.start()
    zip_path, semantic = TableWorld.make(tasks=1, seed=2).write_learnware(0, folder)
    with MarketClient(address, token="", tls_ca="") as client:
        learnware = client.add_learnware(zip_path, semantic, wait=True)
    yield address, learnware.id
    process.stop()


def status(call) -> grpc.StatusCode:
    try:
        result = call()
        if isinstance(result, Iterator):
            for _ in result:
                pass
    except grpc.RpcError as error:
        assert error.code() in CLIENT_ERRORS, f"{error.code().name}: {error.details()}"
        assert error.details(), "an error status must carry a message"
        return error.code()
    return grpc.StatusCode.OK


@given(method=st.sampled_from(UNARY_METHODS), payload=st.binary(max_size=512))
@FUZZ
def test_garbled_bytes(market: tuple[str, str], method: str, payload: bytes) -> None:
    with grpc.insecure_channel(market[0]) as ch:
        status(lambda: ch.unary_unary(f"/learnware.v1.MarketService/{method}")(payload, timeout=60))


DTYPES = st.sampled_from(["float32", "float64", "int64", "uint8", "bool", "complex64", "", "float16x"])
tensors = st.builds(
    lambda dtype, shape, data: common_pb2.Tensor(dtype=dtype, shape=shape, data=data),
    DTYPES,
    st.lists(st.integers(min_value=-2, max_value=40), max_size=3),
    st.binary(max_size=2048),
)


def valid_matrix(rows: int, cols: int) -> common_pb2.Tensor:
    from lwm.rpc.tensors import to_tensor

    return to_tensor(np.random.default_rng(rows * 100 + cols).normal(size=(rows, cols)))


matrices = st.one_of(tensors, st.builds(valid_matrix, st.integers(0, 30), st.integers(0, 12)))
semantic_specs = st.builds(
    common_pb2.SemanticSpec,
    data=st.lists(st.text(max_size=12), max_size=3),
    task=st.lists(st.sampled_from(["Classification", "Regression", "", "Nope"]), max_size=2),
    name=st.text(max_size=40),
    description=st.text(max_size=80),
)
stat_specs = st.builds(
    common_pb2.StatSpec,
    type=st.sampled_from(["RKMETableSpecification", "RKMETextSpecification", "HeteroMapTableSpecification", "Bogus", ""]),
    z=matrices,
    beta=tensors,
    gamma=st.floats(allow_nan=True, allow_infinity=True),
    num_points=st.integers(min_value=-5, max_value=10**6),
)


@given(semantic=semantic_specs, stats=st.lists(stat_specs, max_size=2), max_search_num=st.integers(-3, 20), max_results=st.integers(-3, 50))
@FUZZ
def test_random_searches(market: tuple[str, str], semantic: common_pb2.SemanticSpec, stats: list[common_pb2.StatSpec], max_search_num: int, max_results: int) -> None:
    request = market_pb2.MarketSearchLearnwareRequest(semantic_spec=semantic, stat_specs=stats, max_search_num=max_search_num, max_results=max_results)
    with MarketClient(market[0], token="", tls_ca="") as client:
        status(lambda: client._stub.SearchLearnware(request, timeout=60))


@given(use_real_id=st.booleans(), other_id=st.text(max_size=30), x=matrices, method=st.sampled_from(["predict", "averaging", "job_selector"]))
@settings(max_examples=10, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_random_predictions(market: tuple[str, str], use_real_id: bool, other_id: str, x: common_pb2.Tensor, method: str) -> None:
    learnware_id = market[1] if use_real_id else other_id
    with MarketClient(market[0], token="", tls_ca="") as client:
        if method == "predict":
            status(lambda: client._stub.Predict(market_pb2.MarketPredictRequest(learnware_id=learnware_id, x=x), timeout=120))
        else:
            reuse = reuse_pb2.ReuseRequest(learnware_ids=[learnware_id], x=x)
            getattr(reuse, method).SetInParent()
            status(lambda: client._stub.Reuse(market_pb2.MarketReuseRequest(reuse=reuse), timeout=120))


def test_market_still_serves_after_fuzzing(market: tuple[str, str]) -> None:
    wait_until_serving(market[0], timeout_s=10)
    with MarketClient(market[0], token="", tls_ca="") as client:
        assert client.get_learnware(market[1]).status == "USABLE"
