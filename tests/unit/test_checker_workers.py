"""The checker's job workers against a real organizer (SQLite): they store each report through
their lease, a check that fails is retried and, after the last attempt, reported INVALID; and
the organizer's job RPCs refuse callers that do not hold the lease."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from lwm.rpc.learnware.v1 import common_pb2, organizer_pb2, organizer_pb2_grpc
from lwm.rpc.server import channel
from lwm.services.checker.server import CheckWorkers, WorkerConfig
from lwm.services.organizer.metadata import JOB_DONE, JOB_FAILED, MetadataStore
from lwm.services.organizer.server import OrganizerConfig, build_server


def add(store: MetadataStore, learnware_id: str) -> None:
    store.add(learnware_id=learnware_id, owner="alice", status="PENDING", semantic_spec={}, stat_specs=[], zip_key=f"learnwares/{learnware_id}.zip", zip_size=1, zip_sha256="0" * 64)


def check(learnware_id: str) -> common_pb2.CheckReport:
    """Stands in for the sandboxed check (tested in test_checker_checks): one learnware breaks it."""
    if learnware_id == "broken":
        raise RuntimeError("the environment could not be built")
    return common_pb2.CheckReport(status=common_pb2.LEARNWARE_STATUS_USABLE, steps=[common_pb2.CheckStep(name="predict", passed=True)])


def test_workers_store_reports_and_report_a_check_that_keeps_failing(tmp_path: Path) -> None:
    config = OrganizerConfig.in_directory(tmp_path)
    config.max_check_attempts = 2
    server, _ = build_server(config, 0)
    server.start()
    store = MetadataStore(config.db_url)
    try:
        for learnware_id in ("ok1", "ok2", "broken"):
            add(store, learnware_id)
        workers = CheckWorkers(organizer_pb2_grpc.OrganizerServiceStub(channel(server.address)), check, WorkerConfig(workers=2, lease_s=30, poll_s=0.05))
        workers.start()
        deadline = time.monotonic() + 60
        while store.unfinished_jobs() and time.monotonic() < deadline:
            time.sleep(0.05)
        workers.stop()
        for learnware_id in ("ok1", "ok2"):
            record = store.get(learnware_id)
            assert record is not None and record.status == "USABLE"
            assert [(job.state, job.attempts) for job in store.jobs_of(learnware_id)] == [(JOB_DONE, 1)]
        broken = store.get("broken")
        assert broken is not None and broken.status == "INVALID"
        assert "attempted 2 times and never finished; last error: RuntimeError: the environment could not be built" in broken.check_report
        assert [(job.state, job.attempts) for job in store.jobs_of("broken")] == [(JOB_FAILED, 2)]
    finally:
        store.close()
        server.stop()


def test_job_rpcs_refuse_a_caller_without_the_lease(tmp_path: Path) -> None:
    config = OrganizerConfig.in_directory(tmp_path)
    server, _ = build_server(config, 0)
    server.start()
    store = MetadataStore(config.db_url)
    try:
        add(store, "lw1")
        organizer = organizer_pb2_grpc.OrganizerServiceStub(channel(server.address))
        with pytest.raises(grpc.RpcError) as bad:
            organizer.ClaimCheckJob(organizer_pb2.ClaimCheckJobRequest(holder="", lease_s=10))
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        job = organizer.ClaimCheckJob(organizer_pb2.ClaimCheckJobRequest(holder="a", lease_s=60)).job
        assert job.learnware_id == "lw1" and job.state == organizer_pb2.CHECK_JOB_STATE_RUNNING
        assert not organizer.ClaimCheckJob(organizer_pb2.ClaimCheckJobRequest(holder="b", lease_s=60)).HasField("job")
        report = common_pb2.CheckReport(status=common_pb2.LEARNWARE_STATUS_USABLE)
        for call in (
            lambda: organizer.HeartbeatCheckJob(organizer_pb2.HeartbeatCheckJobRequest(job_id=job.id, holder="b", lease_s=60)),
            lambda: organizer.CompleteCheckJob(organizer_pb2.CompleteCheckJobRequest(job_id=job.id, holder="b", report=report)),
        ):
            with pytest.raises(grpc.RpcError) as lost:
                call()
            assert lost.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "not leased by 'b'" in (lost.value.details() or "")
        with pytest.raises(grpc.RpcError) as pending:
            organizer.CompleteCheckJob(organizer_pb2.CompleteCheckJobRequest(job_id=job.id, holder="a", report=common_pb2.CheckReport(status=common_pb2.LEARNWARE_STATUS_PENDING)))
        assert pending.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert organizer.WaitCheckJob(organizer_pb2.WaitCheckJobRequest(job_id=job.id, wait_s=0)).job.state == organizer_pb2.CHECK_JOB_STATE_RUNNING
        done = organizer.CompleteCheckJob(organizer_pb2.CompleteCheckJobRequest(job_id=job.id, holder="a", report=report))
        assert done.job.state == organizer_pb2.CHECK_JOB_STATE_DONE and done.learnware.status == common_pb2.LEARNWARE_STATUS_USABLE
        waited = organizer.WaitCheckJob(organizer_pb2.WaitCheckJobRequest(job_id=job.id, wait_s=10))
        assert waited.job.state == organizer_pb2.CHECK_JOB_STATE_DONE and waited.learnware.revision == done.learnware.revision
        recheck = organizer.CreateCheckJob(organizer_pb2.CreateCheckJobRequest(learnware_id="lw1")).job
        assert recheck.id != job.id and recheck.state == organizer_pb2.CHECK_JOB_STATE_QUEUED
    finally:
        store.close()
        server.stop()
