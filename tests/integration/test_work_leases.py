"""Named leases on background work and the checkpoints fenced by them (the organizer's
work_leases and checkpoints tables), on SQLite and on a real PostgreSQL, through the store,
the organizer's RPCs and the LeaseKeeper that services hold them with."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from organizer_testing import db_url, pg_url, postgres  # noqa: F401 - fixtures

from lwm.rpc.learnware.v1 import organizer_pb2, organizer_pb2_grpc
from lwm.rpc.leases import LeaseKeeper
from lwm.rpc.server import channel
from lwm.services.organizer.leases import Fence, LeaseStore, StaleFence
from lwm.services.organizer.metadata import MetadataStore
from lwm.services.organizer.server import OrganizerConfig, build_server


class Clock:
    """The organizer's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_grant_renewal_expiry_takeover_and_release(db_url: str) -> None:
    clock = Clock()
    leases = LeaseStore(MetadataStore(db_url), clock)
    first = leases.acquire("hetero-trainer", "a", 30)
    assert (first.granted, first.epoch, first.expires_at) == (True, 1, clock.now + 30)
    refused = leases.acquire("hetero-trainer", "b", 30)
    assert (refused.granted, refused.holder, refused.epoch) == (False, "a", 1)
    clock.now += 20
    renewed = leases.acquire("hetero-trainer", "a", 30)
    assert (renewed.granted, renewed.epoch, renewed.expires_at) == (True, 1, clock.now + 30)  # a renewal keeps the epoch
    clock.now += 29
    assert not leases.acquire("hetero-trainer", "b", 30).granted
    clock.now += 1  # a's lease has expired: b takes it, with a new epoch
    taken = leases.acquire("hetero-trainer", "b", 30)
    assert (taken.granted, taken.holder, taken.epoch) == (True, "b", 2)
    assert not leases.acquire("hetero-trainer", "a", 30).granted
    assert leases.get("hetero-trainer") == taken

    assert not leases.release("hetero-trainer", "a")  # only the holder can release
    assert leases.release("hetero-trainer", "b")
    assert leases.get("hetero-trainer").granted is False
    again = leases.acquire("hetero-trainer", "b", 30)
    assert (again.granted, again.epoch) == (True, 3)  # released and taken again: a new holding
    forced = leases.acquire("hetero-trainer", "a", 30, take_over=True)
    assert (forced.granted, forced.holder, forced.epoch) == (True, "a", 4)
    assert leases.acquire("other-work", "b", 5).epoch == 1  # leases are independent
    assert leases.get("never-taken") is None


def test_a_checkpoint_write_is_refused_once_its_lease_has_a_newer_holding(db_url: str) -> None:
    clock = Clock()
    leases = LeaseStore(MetadataStore(db_url), clock)
    a = leases.acquire("trainer", "a", 10)
    record, replaced = leases.record_checkpoint("engine", "checkpoints/engine.1", "sha-1", 3, Fence("trainer", "a", a.epoch))
    assert (record.version, record.writer, record.epoch, replaced) == (1, "a", 1, None)
    clock.now += 11  # a stalls past its lease; b takes over
    b = leases.acquire("trainer", "b", 10)
    with pytest.raises(StaleFence, match="epoch 1 of 'a' is no longer current .*epoch 2, holder 'b'"):
        leases.record_checkpoint("engine", "checkpoints/engine.late", "sha-late", 3, Fence("trainer", "a", a.epoch))
    with pytest.raises(StaleFence):
        leases.check_fence(Fence("trainer", "a", a.epoch))
    leases.check_fence(Fence("trainer", "b", b.epoch))
    assert leases.checkpoint("engine") == record
    record, replaced = leases.record_checkpoint("engine", "checkpoints/engine.2", "sha-2", 4, Fence("trainer", "b", b.epoch))
    assert (record.version, record.writer, record.epoch, replaced) == (2, "b", 2, "checkpoints/engine.1")
    unfenced, _ = leases.record_checkpoint("engine", "checkpoints/engine.3", "sha-3", 5, None)
    assert (unfenced.version, unfenced.writer, unfenced.epoch) == (3, "", 0)
    with pytest.raises(StaleFence, match="nobody has held it"):
        leases.record_checkpoint("engine", "k", "s", 1, Fence("no-such-lease", "a", 1))


def test_concurrent_acquires_from_two_organizers_grant_the_lease_once(db_url: str) -> None:
    stores = [LeaseStore(MetadataStore(db_url)), LeaseStore(MetadataStore(db_url))]  # as two organizer processes would
    granted: list[str] = []
    start = threading.Barrier(8)

    def contend(holder: str) -> None:
        start.wait()
        if stores[int(holder[-1]) % 2].acquire("contended", holder, 60).granted:
            granted.append(holder)

    threads = [threading.Thread(target=contend, args=(f"holder-{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 1
    lease = stores[0].get("contended")
    assert (lease.holder, lease.epoch) == (granted[0], 1)


@pytest.fixture
def organizer(tmp_path: Path) -> Iterator[organizer_pb2_grpc.OrganizerServiceStub]:
    server, _ = build_server(OrganizerConfig.in_directory(tmp_path / "organizer"), 0)
    server.start()
    yield organizer_pb2_grpc.OrganizerServiceStub(channel(server.address))
    server.stop()


def rpc_error(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        call()
    return error.value


def test_lease_and_fenced_checkpoint_rpcs(organizer: organizer_pb2_grpc.OrganizerServiceStub) -> None:
    acquire = organizer.AcquireLease
    first = acquire(organizer_pb2.AcquireLeaseRequest(name="hetero-trainer", holder="a", ttl_s=30))
    assert first.granted and first.epoch == 1 and first.holder == "a" and first.expires_at > time.time()
    second = acquire(organizer_pb2.AcquireLeaseRequest(name="hetero-trainer", holder="b", ttl_s=30))
    assert not second.granted and second.holder == "a"
    for bad in (dict(name="Bad Name", holder="a", ttl_s=1), dict(name="x", holder="", ttl_s=1), dict(name="x", holder="a", ttl_s=0), dict(name="../x", holder="a", ttl_s=1)):
        assert rpc_error(lambda bad=bad: acquire(organizer_pb2.AcquireLeaseRequest(**bad))).code() == grpc.StatusCode.INVALID_ARGUMENT

    fence_a = organizer_pb2.LeaseFence(name="hetero-trainer", holder="a", epoch=1)
    put = organizer.PutCheckpoint(organizer_pb2.PutCheckpointRequest(name="hetero-engine", data=b"from a", fence=fence_a))
    assert put.version == 1
    taken = acquire(organizer_pb2.AcquireLeaseRequest(name="hetero-trainer", holder="b", ttl_s=30, take_over=True))
    assert taken.granted and taken.epoch == 2
    stale = rpc_error(lambda: organizer.PutCheckpoint(organizer_pb2.PutCheckpointRequest(name="hetero-engine", data=b"late from a", fence=fence_a)))
    assert stale.code() == grpc.StatusCode.FAILED_PRECONDITION and "no longer current" in stale.details()
    stored = organizer.GetCheckpoint(organizer_pb2.GetCheckpointRequest(name="hetero-engine"))
    assert (stored.data, stored.version, stored.writer, stored.epoch) == (b"from a", 1, "a", 1)
    unchanged = organizer.GetCheckpoint(organizer_pb2.GetCheckpointRequest(name="hetero-engine", after_version=1))
    assert (unchanged.data, unchanged.version) == (b"", 1)  # a poll that finds nothing newer carries no bytes
    fence_b = organizer_pb2.LeaseFence(name="hetero-trainer", holder="b", epoch=2)
    assert organizer.PutCheckpoint(organizer_pb2.PutCheckpointRequest(name="hetero-engine", data=b"from b", fence=fence_b)).version == 2
    newer = organizer.GetCheckpoint(organizer_pb2.GetCheckpointRequest(name="hetero-engine", after_version=1))
    assert (newer.data, newer.version, newer.writer) == (b"from b", 2, "b")

    assert not organizer.ReleaseLease(organizer_pb2.ReleaseLeaseRequest(name="hetero-trainer", holder="a")).released
    assert organizer.ReleaseLease(organizer_pb2.ReleaseLeaseRequest(name="hetero-trainer", holder="b")).released
    assert acquire(organizer_pb2.AcquireLeaseRequest(name="hetero-trainer", holder="a", ttl_s=30)).epoch == 3


def test_lease_keepers_hand_the_lease_over_when_its_holder_stops(organizer: organizer_pb2_grpc.OrganizerServiceStub) -> None:
    changes: list[tuple[str, int | None]] = []
    keepers = [LeaseKeeper(organizer, "work", ttl_s=1.0, holder=name, on_change=lambda epoch, name=name: changes.append((name, epoch))) for name in ("a", "b")]
    keepers[0].start()
    wait_for(lambda: keepers[0].epoch() is not None)
    keepers[1].start()
    time.sleep(0.5)  # b has asked at least once (it asks at start) and was refused
    assert keepers[1].epoch() is None and keepers[1].fence() is None
    fence = keepers[0].fence()
    assert fence is not None and (fence.holder, fence.epoch) == ("a", 1)
    keepers[0].stop()  # releases: b takes the lease at its next attempt
    try:
        wait_for(lambda: keepers[1].epoch() is not None)
        assert keepers[1].epoch() == 2 and keepers[0].epoch() is None
        assert ("a", 1) in changes and ("b", 2) in changes
        taken = keepers[0].take_over()  # a stopped keeper can still take the lease on demand
        assert (taken.holder, taken.epoch) == ("a", 3)
    finally:
        keepers[1].stop()


def wait_for(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout_s} s")
        time.sleep(0.05)
