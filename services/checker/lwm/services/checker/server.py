"""Checker service: runs the checks of a stored learnware (model in a separate sandboxed process)."""

from __future__ import annotations

import logging

import grpc

from lwm.checks import check_learnware, semantic_problems
from lwm.rpc import convert
from lwm.rpc.errors import grpc_errors, invalid_argument
from lwm.rpc.learnware.v1 import checker_pb2, checker_pb2_grpc, organizer_pb2, organizer_pb2_grpc
from lwm.rpc.server import Server, channel
from lwm.runtime.environment import EnvironmentManager
from lwm.runtime.sandbox import SandboxConfig

log = logging.getLogger(__name__)


@grpc_errors
class CheckerServicer(checker_pb2_grpc.CheckerServiceServicer):
    def __init__(
        self,
        organizer: organizer_pb2_grpc.OrganizerServiceStub,
        timeout_s: float,
        environments: EnvironmentManager | None = None,
        sandbox: SandboxConfig | None = None,
    ) -> None:
        self.organizer = organizer
        self.timeout_s = timeout_s
        self.environments = environments if environments is not None else EnvironmentManager()
        self.sandbox = sandbox if sandbox is not None else SandboxConfig.from_env()

    def CheckLearnware(self, request: checker_pb2.CheckLearnwareRequest, context: grpc.ServicerContext) -> checker_pb2.CheckLearnwareResponse:
        if not request.learnware_id:
            raise invalid_argument("learnware_id is empty")
        info = self.organizer.GetLearnware(organizer_pb2.GetLearnwareRequest(learnware_id=request.learnware_id)).learnware
        zip_bytes = b"".join(r.chunk.data for r in self.organizer.DownloadLearnware(organizer_pb2.DownloadLearnwareRequest(learnware_id=request.learnware_id)))
        report = check_learnware(
            convert.semantic_to_dict(info.semantic_spec), zip_bytes, timeout_s=self.timeout_s, environments=self.environments, sandbox=self.sandbox
        )
        log.info("checked %s: %s", request.learnware_id, convert.STATUS_NAMES[report.status])
        return checker_pb2.CheckLearnwareResponse(report=report)

    def CheckSemanticSpec(self, request: checker_pb2.CheckSemanticSpecRequest, context: grpc.ServicerContext) -> checker_pb2.CheckSemanticSpecResponse:
        problems = semantic_problems(request.semantic_spec)
        return checker_pb2.CheckSemanticSpecResponse(valid=not problems, problems=problems)


def build_server(organizer_address: str, port: int, host: str = "127.0.0.1", timeout_s: float = 120.0) -> Server:
    organizer = organizer_pb2_grpc.OrganizerServiceStub(channel(organizer_address))
    server = Server("checker", port, host)
    server.add(checker_pb2_grpc.add_CheckerServiceServicer_to_server, CheckerServicer(organizer, timeout_s), [checker_pb2.DESCRIPTOR.services_by_name["CheckerService"].full_name])
    return server
