"""The organizer's named checkpoints (where the searcher keeps its trained hetero engine)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import grpc
import pytest

from lwm.rpc.learnware.v1 import organizer_pb2, organizer_pb2_grpc
from lwm.rpc.server import channel
from lwm.services.organizer.server import OrganizerConfig, build_server


def test_checkpoints_round_trip_and_survive_a_restart(tmp_path: Path) -> None:
    config = OrganizerConfig.in_directory(tmp_path)
    data = bytes(range(256)) * 1000
    for attempt in range(2):
        server, _ = build_server(config, 0)
        server.start()
        try:
            organizer = organizer_pb2_grpc.OrganizerServiceStub(channel(server.address))
            if attempt == 0:
                with pytest.raises(grpc.RpcError) as missing:
                    organizer.GetCheckpoint(organizer_pb2.GetCheckpointRequest(name="hetero-engine"))
                assert missing.value.code() == grpc.StatusCode.NOT_FOUND
                organizer.PutCheckpoint(organizer_pb2.PutCheckpointRequest(name="hetero-engine", data=b"old"))
                reply = organizer.PutCheckpoint(organizer_pb2.PutCheckpointRequest(name="hetero-engine", data=data))
                assert reply.sha256 == hashlib.sha256(data).hexdigest()
            stored = organizer.GetCheckpoint(organizer_pb2.GetCheckpointRequest(name="hetero-engine"))
            assert stored.data == data and stored.sha256 == hashlib.sha256(data).hexdigest()
            for bad in ("../learnwares/x", "Upper", ""):
                with pytest.raises(grpc.RpcError) as error:
                    organizer.PutCheckpoint(organizer_pb2.PutCheckpointRequest(name=bad, data=b"x"))
                assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        finally:
            server.stop()
