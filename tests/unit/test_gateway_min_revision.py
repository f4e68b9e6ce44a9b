"""Per-caller read-your-writes at the gateway: a search waits only for the revision its caller
sends (min_revision), never for other callers' writes; and the wait ends with
DEADLINE_EXCEEDED naming the step when the caller's deadline runs out.

Real organizer, searcher and gateway servers in this process; the searcher's change feed
is stopped after it loaded the market, so later writes stay unapplied."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lwm.client import DeadlineExceededError, MarketClient
from lwm.rpc import convert
from lwm.rpc.learnware.v1 import common_pb2, organizer_pb2, organizer_pb2_grpc, searcher_pb2, searcher_pb2_grpc
from lwm.rpc.server import channel
from lwm.services.gateway.server import Backends
from lwm.services.gateway.server import build_server as build_gateway
from lwm.services.organizer.server import OrganizerConfig
from lwm.services.organizer.server import build_server as build_organizer
from lwm.services.searcher.server import build_server as build_searcher
from lwm.testing.local_servers import free_port
from lwm.testing.synthetic import TableWorld


def _add_usable(organizer: organizer_pb2_grpc.OrganizerServiceStub, zip_path: Path, semantic: dict) -> common_pb2.LearnwareInfo:
    def requests() -> Iterator[organizer_pb2.AddLearnwareRequest]:
        yield organizer_pb2.AddLearnwareRequest(metadata=organizer_pb2.AddLearnwareMetadata(semantic_spec=convert.semantic_from_dict(semantic)))
        yield organizer_pb2.AddLearnwareRequest(chunk=common_pb2.Chunk(data=zip_path.read_bytes()))

    added = organizer.AddLearnware(requests(), timeout=60).learnware
    # Checks are not part of this test: the learnware is declared USABLE.
    return organizer.UpdateLearnware(organizer_pb2.UpdateLearnwareRequest(learnware_id=added.id, status=common_pb2.LEARNWARE_STATUS_USABLE), timeout=60).learnware


def test_a_search_waits_for_its_callers_revision_only(tmp_path: Path) -> None:
    organizer_server, _sweeper = build_organizer(OrganizerConfig.in_directory(tmp_path / "data"), 0)
    organizer_server.start()
    searcher_server, follower, _ = build_searcher(organizer_server.address, 0, device="cpu")
    searcher_server.start()
    follower.start()
    unused = f"127.0.0.1:{free_port()}"  # checker and reuse: not called here
    gateway_server, _ = build_gateway(Backends(organizer_server.address, unused, searcher_server.address, unused), 0)
    gateway_server.start()
    try:
        organizer = organizer_pb2_grpc.OrganizerServiceStub(channel(organizer_server.address))
        world = TableWorld.make(tasks=2, seed=3)
        kept, other = (_add_usable(organizer, *world.write_learnware(task, tmp_path)) for task in range(2))
        searcher = searcher_pb2_grpc.SearcherServiceStub(channel(searcher_server.address))
        deadline = time.monotonic() + 60
        while searcher.GetIndexStats(searcher_pb2.GetIndexStatsRequest(), timeout=10).revision < other.revision:
            assert time.monotonic() < deadline, "the searcher did not load the market"
            time.sleep(0.05)
        follower.stop()  # from here on the searcher's index stays at other.revision

        with MarketClient(gateway_server.address, token="", tls_ca="", timeouts={"SearchLearnware": 5.0}) as someone, MarketClient(gateway_server.address, token="", tls_ca="", timeouts={"SearchLearnware": 2.0}) as me:
            someone.delete_learnware(other.id)  # another caller's write through the same gateway
            assert someone.seen_revision > other.revision and me.seen_revision == 0
            # My search does not wait for it: it answers from the index as it is (which still has the deleted learnware).
            assert {result.learnware.id for result in me.search_learnware({}).get_single_results()} == {kept.id, other.id}
            # Its writer's search waits for it, until its deadline: the step that ran out is named.
            with pytest.raises(DeadlineExceededError, match=r"searcher\.SearchLearnwares did not answer within 4\.\d s \(the time the caller had left\)"):
                someone.search_learnware({})
    finally:
        gateway_server.stop()
        searcher_server.stop()
        organizer_server.stop()
