"""Graceful shutdown: a service told to stop (SIGTERM) refuses new calls but finishes
the calls in flight, then exits cleanly."""

from __future__ import annotations

import hashlib
import signal
import time
from pathlib import Path

import grpc
import pytest
from organizer_testing import Backend, OrganizerProcess, padded_zip, upload

from lwm.rpc.learnware.v1 import organizer_pb2, organizer_pb2_grpc
from lwm.rpc.server import channel
from lwm.testing.synthetic import TableWorld

pytestmark = pytest.mark.integration


def test_sigterm_finishes_a_download_in_flight(tmp_path: Path) -> None:
    zip_path, semantic = TableWorld.make(tasks=1, seed=4).write_learnware(0, tmp_path)
    big = padded_zip(zip_path, tmp_path / "big.zip", 8 * 1024 * 1024)  # 8+ chunks of 1 MiB
    organizer = OrganizerProcess(Backend("shutdown", tmp_path / "data", ""), tmp_path / "organizer.log").start()
    try:
        stub = organizer_pb2_grpc.OrganizerServiceStub(channel(organizer.address))
        info = upload(stub, big, semantic)
        stream = stub.DownloadLearnware(organizer_pb2.DownloadLearnwareRequest(learnware_id=info.id), timeout=60)
        digest = hashlib.sha256(next(stream).chunk.data)
        assert organizer.process is not None
        organizer.process.send_signal(signal.SIGTERM)  # mid-download
        time.sleep(1.0)
        with pytest.raises(grpc.RpcError) as refused:  # new calls are refused while it drains
            stub.GetLearnware(organizer_pb2.GetLearnwareRequest(learnware_id=info.id), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        for reply in stream:  # the call in flight completes
            digest.update(reply.chunk.data)
        assert digest.hexdigest() == info.zip_sha256
        assert organizer.process.wait(timeout=30) == 0
        organizer.process = None
    finally:
        organizer.stop()
