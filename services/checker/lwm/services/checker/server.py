"""Checker service: runs the checks of a stored learnware (model in a separate sandboxed process).

Besides answering CheckLearnware, a checker pulls check jobs from the organizer
(CheckWorkers): it leases a job, heartbeats while the check runs and stores the report
through CompleteCheckJob. A checker that dies leaves a lease that expires; another takes the job.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from lwm.checks import check_learnware, semantic_problems
from lwm.learnware.settings import env_float, env_int
from lwm.rpc import convert, metrics
from lwm.rpc.errors import grpc_errors, invalid_argument
from lwm.rpc.learnware.v1 import checker_pb2, checker_pb2_grpc, common_pb2, organizer_pb2, organizer_pb2_grpc
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

    def check(self, learnware_id: str) -> common_pb2.CheckReport:
        """Download the learnware from the organizer and check it (the report is not stored)."""
        info = self.organizer.GetLearnware(organizer_pb2.GetLearnwareRequest(learnware_id=learnware_id)).learnware
        zip_bytes = b"".join(r.chunk.data for r in self.organizer.DownloadLearnware(organizer_pb2.DownloadLearnwareRequest(learnware_id=learnware_id)))
        started = time.perf_counter()
        report = check_learnware(convert.semantic_to_dict(info.semantic_spec), zip_bytes, timeout_s=self.timeout_s, environments=self.environments, sandbox=self.sandbox)
        metrics.CHECK_DURATION.labels(convert.STATUS_NAMES[report.status]).observe(time.perf_counter() - started)
        log.info("checked %s: %s", learnware_id, convert.STATUS_NAMES[report.status])
        return report

    def CheckLearnware(self, request: checker_pb2.CheckLearnwareRequest, context: grpc.ServicerContext) -> checker_pb2.CheckLearnwareResponse:
        if not request.learnware_id:
            raise invalid_argument("learnware_id is empty")
        return checker_pb2.CheckLearnwareResponse(report=self.check(request.learnware_id))

    def CheckSemanticSpec(self, request: checker_pb2.CheckSemanticSpecRequest, context: grpc.ServicerContext) -> checker_pb2.CheckSemanticSpecResponse:
        problems = semantic_problems(request.semantic_spec)
        return checker_pb2.CheckSemanticSpecResponse(valid=not problems, problems=problems)


@dataclass
class WorkerConfig:
    """How a checker pulls check jobs; each field has an LWM_* environment variable."""

    workers: int = field(default_factory=lambda: env_int("LWM_CHECK_WORKERS", 2, minimum=1))  # checks run at once
    lease_s: float = field(default_factory=lambda: env_float("LWM_CHECK_LEASE_S", 30.0, minimum=0.1))  # renewed every lease_s / 3 while a check runs
    poll_s: float = field(default_factory=lambda: env_float("LWM_CHECK_POLL_S", 1.0, minimum=0.01))  # pause of an idle worker between claims


class CheckWorkers:
    """Threads that each claim a check job, heartbeat its lease while checking, and complete it."""

    def __init__(self, organizer: organizer_pb2_grpc.OrganizerServiceStub, check: Callable[[str], common_pb2.CheckReport], config: WorkerConfig | None = None) -> None:
        self.organizer = organizer
        self.check = check
        self.config = config if config is not None else WorkerConfig()
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(f"{self.name}:{i}",), name=f"check-worker-{i}", daemon=True) for i in range(self.config.workers)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()
        log.info("%d check workers (%s) pull jobs, lease %.0f s", len(self._threads), self.name, self.config.lease_s)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop claiming; checks still running after timeout_s are abandoned (their leases expire and another checker retries them)."""
        self._stopping.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))

    def _loop(self, holder: str) -> None:
        while not self._stopping.is_set():
            try:
                claimed = self.organizer.ClaimCheckJob(organizer_pb2.ClaimCheckJobRequest(holder=holder, lease_s=self.config.lease_s))
            except grpc.RpcError as error:
                log.warning("cannot claim a check job (%s: %s); retrying", error.code(), error.details())
                self._stopping.wait(self.config.poll_s)
                continue
            if not claimed.HasField("job"):
                self._stopping.wait(self.config.poll_s)
                continue
            self.run_job(claimed.job, holder)

    def run_job(self, job: organizer_pb2.CheckJob, holder: str) -> None:
        """Check the job's learnware while a thread renews the lease, then store the outcome (once, if the lease is still ours)."""
        finished = threading.Event()
        heartbeat = threading.Thread(target=self._heartbeat, args=(job.id, holder, finished), name=f"check-heartbeat-{job.id}", daemon=True)
        heartbeat.start()
        request = organizer_pb2.CompleteCheckJobRequest(job_id=job.id, holder=holder)
        try:
            request.report.CopyFrom(self.check(job.learnware_id))
        except grpc.RpcError as error:
            request.error = f"{error.code().name}: {error.details()}"
        except Exception as error:  # a bug or a broken environment: recorded on the job, which another attempt may pass
            log.exception("check of %s (job %d) failed", job.learnware_id, job.id)
            request.error = f"{type(error).__name__}: {error}"
        finally:
            finished.set()
            heartbeat.join()
        try:
            self.organizer.CompleteCheckJob(request)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.FAILED_PRECONDITION:
                log.warning("check job %d: the lease was lost, the outcome is dropped (%s)", job.id, error.details())
            else:
                log.error("check job %d: cannot store the outcome (%s: %s); the lease expires and the job is retried", job.id, error.code(), error.details())

    def _heartbeat(self, job_id: int, holder: str, finished: threading.Event) -> None:
        while not finished.wait(self.config.lease_s / 3):
            try:
                self.organizer.HeartbeatCheckJob(organizer_pb2.HeartbeatCheckJobRequest(job_id=job_id, holder=holder, lease_s=self.config.lease_s))
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.FAILED_PRECONDITION:
                    log.warning("check job %d: lease lost (%s)", job_id, error.details())
                    return
                log.warning("check job %d: heartbeat failed (%s: %s); retrying", job_id, error.code(), error.details())


def build_server(organizer_address: str, port: int, host: str = "127.0.0.1", timeout_s: float = 120.0, workers: WorkerConfig | None = None) -> tuple[Server, CheckWorkers]:
    """The checker's server and its job workers (not started yet)."""
    organizer = organizer_pb2_grpc.OrganizerServiceStub(channel(organizer_address))
    servicer = CheckerServicer(organizer, timeout_s)
    server = Server("checker", port, host)
    server.add(checker_pb2_grpc.add_CheckerServiceServicer_to_server, servicer, [checker_pb2.DESCRIPTOR.services_by_name["CheckerService"].full_name])
    return server, CheckWorkers(organizer, servicer.check, workers)
