"""Organizer service: the only owner of learnware state (zips + metadata)."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.protobuf import json_format

from lwm.learnware.archive import LearnwareArchive
from lwm.learnware.settings import env_float, env_int
from lwm.rpc import convert, metrics
from lwm.rpc.errors import ServiceError, caller_input, failed_precondition, grpc_errors, invalid_argument, not_found
from lwm.rpc.learnware.v1 import common_pb2, organizer_pb2, organizer_pb2_grpc
from lwm.rpc.server import Server
from lwm.services.organizer.leases import CheckpointRecord, Fence, LeaseStore, StaleFence
from lwm.services.organizer.metadata import (
    DEFAULT_MARKET_ID,
    DEFAULT_MAX_CHECK_ATTEMPTS,
    JOB_DONE,
    JOB_FAILED,
    JOB_QUEUED,
    JOB_RUNNING,
    CheckJob,
    DuplicateRequest,
    LearnwareRecord,
    LeaseLost,
    MetadataStore,
)
from lwm.services.organizer.object_store import ObjectNotFound, ObjectStore, S3Config, open_object_store, sha256_file
from lwm.services.organizer.sweeper import Sweeper

log = logging.getLogger(__name__)
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
WATCH_POLL_S = 1.0
# Checkpoints of other services live beside the learnware zips, outside the sweeper's prefix.
CHECKPOINT_PREFIX = "checkpoints/"
CHECKPOINT_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
MAX_CHECKPOINT_BYTES = 64 * 1024 * 1024
MAX_CLIENT_REQUEST_ID_CHARS = 128
LEASE_NAME = re.compile(r"[a-z0-9][a-z0-9._/-]{0,127}")
MAX_LEASE_HOLDER_CHARS = 256
MAX_LEASE_TTL_S = 86400.0
MAX_JOB_WAIT_S = 30.0
# WaitCheckJob calls that may block at once, each holding one of the server's 16 threads; beyond
# it a call answers at once (its caller polls) so that claims and completions always find a thread.
MAX_JOB_WAITERS = 6
JOB_STATES = {JOB_QUEUED: organizer_pb2.CHECK_JOB_STATE_QUEUED, JOB_RUNNING: organizer_pb2.CHECK_JOB_STATE_RUNNING, JOB_DONE: organizer_pb2.CHECK_JOB_STATE_DONE, JOB_FAILED: organizer_pb2.CHECK_JOB_STATE_FAILED}


@dataclass
class OrganizerConfig:
    db_url: str
    object_dir: Path  # zips when no S3 endpoint is configured
    max_zip_bytes: int = 512 * 1024 * 1024
    s3: S3Config | None = None
    sweep_interval_s: float = 600.0
    # Unreferenced objects younger than this may belong to an upload in flight and are kept.
    sweep_grace_s: float = 3600.0
    # Attempts of a check job before the learnware is reported INVALID (a lease that expires is an attempt).
    max_check_attempts: int = DEFAULT_MAX_CHECK_ATTEMPTS
    # Check jobs queued or running beyond which uploads get RESOURCE_EXHAUSTED (0 = no limit).
    max_unfinished_checks: int = 0

    @classmethod
    def in_directory(cls, data_dir: Path) -> OrganizerConfig:
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        return cls(db_url=f"sqlite:///{data_dir / 'metadata.sqlite'}", object_dir=data_dir / "objects")

    @classmethod
    def from_env(cls, data_dir: Path, db_url: str = "") -> OrganizerConfig:
        """Defaults in data_dir, overridden by db_url and LWM_S3_*, LWM_MAX_ZIP_BYTES, LWM_SWEEP_INTERVAL_S, LWM_SWEEP_GRACE_S,
        LWM_CHECK_MAX_ATTEMPTS, LWM_MAX_CONCURRENT_CHECKS."""
        config = cls.in_directory(data_dir)
        config.db_url = db_url or config.db_url
        config.s3 = S3Config.from_env()
        config.max_zip_bytes = env_int("LWM_MAX_ZIP_BYTES", config.max_zip_bytes, minimum=1)
        config.sweep_interval_s = env_float("LWM_SWEEP_INTERVAL_S", config.sweep_interval_s, minimum=0)
        config.sweep_grace_s = env_float("LWM_SWEEP_GRACE_S", config.sweep_grace_s, minimum=0)
        config.max_check_attempts = env_int("LWM_CHECK_MAX_ATTEMPTS", config.max_check_attempts, minimum=1)
        config.max_unfinished_checks = env_int("LWM_MAX_CONCURRENT_CHECKS", 0, minimum=0)
        return config

    def open_storage(self) -> tuple[MetadataStore, ObjectStore]:
        return MetadataStore(self.db_url, self.max_check_attempts), open_object_store(self.object_dir, self.s3)


def learnware_info(record: LearnwareRecord) -> common_pb2.LearnwareInfo:
    info = common_pb2.LearnwareInfo(
        id=record.id,
        owner=record.owner,
        market_id=record.market_id,
        semantic_spec=convert.semantic_from_dict(record.semantic_spec),
        status=convert.STATUS_VALUES[record.status],
        stat_spec_types=[convert.stat_spec_type(spec) for spec in record.stat_specs],
        created_at=record.created_at,
        updated_at=record.updated_at,
        zip_size=record.zip_size,
        zip_sha256=record.zip_sha256,
        revision=record.revision,
    )
    if record.check_report:
        json_format.Parse(record.check_report, info.check_report)
    return info


def check_job_message(job: CheckJob) -> organizer_pb2.CheckJob:
    return organizer_pb2.CheckJob(
        id=job.id,
        learnware_id=job.learnware_id,
        state=JOB_STATES[job.state],
        attempts=job.attempts,
        lease_holder=job.lease_holder,
        lease_expires_at=job.lease_expires_at,
        created_at=job.created_at,
        finished_at=job.finished_at,
        last_error=job.last_error,
    )


def read_stat_specs(archive: LearnwareArchive) -> list[dict]:
    """The statistical specifications named in learnware.yaml, parsed (but not trusted) JSON."""
    specs = []
    for entry in archive.config.stat_specs:
        try:
            spec = json.loads(archive.read(entry.file_name))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise invalid_argument(f"stat spec file {entry.file_name} is not valid JSON: {error}") from None
        if not isinstance(spec, dict):
            raise invalid_argument(f"stat spec file {entry.file_name} must hold a JSON object")
        spec.setdefault("type", entry.class_name)
        with caller_input():
            convert.stat_spec_to_proto(spec)  # validates shapes
        specs.append(spec)
    return specs


@grpc_errors
class OrganizerServicer(organizer_pb2_grpc.OrganizerServiceServicer):
    def __init__(self, metadata: MetadataStore, objects: ObjectStore, config: OrganizerConfig) -> None:
        self.metadata = metadata
        self.objects = objects
        self.config = config
        self.leases = LeaseStore(metadata)
        self._waiters = threading.BoundedSemaphore(MAX_JOB_WAITERS)

    def _get(self, learnware_id: str) -> LearnwareRecord:
        if not learnware_id:
            raise invalid_argument("learnware_id is empty")
        record = self.metadata.get(learnware_id)
        if record is None:
            raise not_found(f"no learnware with id {learnware_id!r}")
        return record

    def AddLearnware(self, request_iterator: Iterator[organizer_pb2.AddLearnwareRequest], context: grpc.ServicerContext) -> organizer_pb2.AddLearnwareResponse:
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("payload") != "metadata":
            raise invalid_argument("the first message of AddLearnware must carry the metadata")
        metadata = first.metadata
        if metadata.zip_size > self.config.max_zip_bytes:
            raise zip_too_large(f"zip of {metadata.zip_size} bytes exceeds the limit of {self.config.max_zip_bytes} bytes")
        semantic_spec = convert.semantic_to_dict(metadata.semantic_spec)
        owner = metadata.owner or "anonymous"
        request_id = metadata.client_request_id
        if len(request_id) > MAX_CLIENT_REQUEST_ID_CHARS:
            raise invalid_argument(f"client_request_id has {len(request_id)} characters; at most {MAX_CLIENT_REQUEST_ID_CHARS} are allowed")
        if request_id and (earlier := self.metadata.by_client_request(owner, request_id)) is not None:
            return self._replayed(earlier)  # the zip still in flight is not read
        limit = self.config.max_unfinished_checks
        if limit and (unfinished := self.metadata.unfinished_jobs()) >= limit:
            metrics.LIMIT_REFUSALS.labels("learnware checks").inc()
            raise ServiceError(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{unfinished} learnware checks are already queued or running (limit {limit}); try again later")
        with tempfile.TemporaryDirectory(prefix="lwm-upload-") as tmp:
            zip_path = Path(tmp) / "learnware.zip"
            size = 0
            with open(zip_path, "wb") as out:
                for message in request_iterator:
                    if message.WhichOneof("payload") != "chunk":
                        raise invalid_argument("after the metadata, AddLearnware accepts only chunks")
                    size += len(message.chunk.data)
                    if size > self.config.max_zip_bytes:
                        raise zip_too_large(f"zip exceeds the limit of {self.config.max_zip_bytes} bytes")
                    out.write(message.chunk.data)
            if size == 0:
                raise invalid_argument("the uploaded zip is empty")
            with caller_input():  # LearnwareFormatError is a ValueError
                archive = LearnwareArchive.from_path(zip_path)
            stat_specs = read_stat_specs(archive)
            learnware_id = uuid.uuid4().hex[:16]
            zip_key = f"learnwares/{learnware_id}.zip"
            zip_sha256 = sha256_file(zip_path)
            # Object first, row second: a crash in between leaves only an unreferenced object (swept later).
            self.objects.put_file(zip_key, zip_path, zip_sha256)
            try:
                record = self.metadata.add(
                    learnware_id=learnware_id,
                    owner=owner,
                    market_id=metadata.market_id or DEFAULT_MARKET_ID,
                    status="PENDING",
                    semantic_spec=semantic_spec,
                    stat_specs=stat_specs,
                    zip_key=zip_key,
                    zip_size=size,
                    zip_sha256=zip_sha256,
                    client_request_id=request_id,
                )
            except DuplicateRequest as duplicate:  # the same upload, committed meanwhile by a concurrent call
                self.objects.delete(zip_key)
                return self._replayed(duplicate.first)
        log.info("added learnware %s (%d bytes)", learnware_id, size)
        job = self.metadata.jobs_of(learnware_id)[-1]
        return organizer_pb2.AddLearnwareResponse(learnware=learnware_info(record), check_job_id=job.id)

    @staticmethod
    def _replayed(first: LearnwareRecord) -> organizer_pb2.AddLearnwareResponse:
        if first.deleted:
            raise not_found(f"the upload with this client_request_id added learnware {first.id}, which has been deleted since")
        log.info("upload repeated (same owner and client_request_id): learnware %s, nothing stored", first.id)
        return organizer_pb2.AddLearnwareResponse(learnware=learnware_info(first), replayed=True)

    def GetLearnware(self, request: organizer_pb2.GetLearnwareRequest, context: grpc.ServicerContext) -> organizer_pb2.GetLearnwareResponse:
        return organizer_pb2.GetLearnwareResponse(learnware=learnware_info(self._get(request.learnware_id)))

    def ListLearnwares(self, request: organizer_pb2.ListLearnwaresRequest, context: grpc.ServicerContext) -> organizer_pb2.ListLearnwaresResponse:
        page_size = request.page.page_size or DEFAULT_PAGE_SIZE
        if not 0 < page_size <= MAX_PAGE_SIZE:
            raise invalid_argument(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        try:
            after_seq = int(request.page.page_token or 0)
        except ValueError:
            raise invalid_argument(f"bad page_token {request.page.page_token!r}") from None
        statuses = [convert.STATUS_NAMES[s] for s in request.statuses if s in convert.STATUS_NAMES]
        rows, total = self.metadata.list(after_seq=after_seq, limit=page_size + 1, statuses=statuses, owner=request.owner, market_id=request.market_id)
        more = len(rows) > page_size
        rows = rows[:page_size]
        return organizer_pb2.ListLearnwaresResponse(
            learnwares=[learnware_info(record) for _, record in rows],
            next_page_token=str(rows[-1][0]) if more and rows else "",
            total=total,
        )

    def UpdateLearnware(self, request: organizer_pb2.UpdateLearnwareRequest, context: grpc.ServicerContext) -> organizer_pb2.UpdateLearnwareResponse:
        self._get(request.learnware_id)
        record = self.metadata.update(
            request.learnware_id,
            semantic_spec=convert.semantic_to_dict(request.semantic_spec) if request.HasField("semantic_spec") else None,
            status=convert.STATUS_NAMES[request.status] if request.status else None,
            check_report=json_format.MessageToJson(request.check_report) if request.HasField("check_report") else None,
        )
        if record is None:
            raise not_found(f"no learnware with id {request.learnware_id!r}")
        return organizer_pb2.UpdateLearnwareResponse(learnware=learnware_info(record))

    def DeleteLearnware(self, request: organizer_pb2.DeleteLearnwareRequest, context: grpc.ServicerContext) -> organizer_pb2.DeleteLearnwareResponse:
        record = self.metadata.mark_deleted(self._get(request.learnware_id).id)
        if record is None:
            raise not_found(f"no learnware with id {request.learnware_id!r}")
        # Row first, object second: a crash in between leaves an object the sweeper removes.
        self.objects.delete(record.zip_key)
        log.info("deleted learnware %s", record.id)
        return organizer_pb2.DeleteLearnwareResponse(revision=record.revision)

    def DownloadLearnware(self, request: organizer_pb2.DownloadLearnwareRequest, context: grpc.ServicerContext) -> Iterator[organizer_pb2.DownloadLearnwareResponse]:
        record = self._get(request.learnware_id)
        digest = hashlib.sha256()
        try:
            for chunk in self.objects.open_chunks(record.zip_key):
                digest.update(chunk)
                yield organizer_pb2.DownloadLearnwareResponse(chunk=common_pb2.Chunk(data=chunk))
        except ObjectNotFound:
            raise not_found(f"the zip of learnware {record.id} is missing from object storage") from None
        if digest.hexdigest() != record.zip_sha256:
            # The chunks are already sent: the status tells the client to discard them.
            raise ServiceError(grpc.StatusCode.DATA_LOSS, f"the stored zip of learnware {record.id} does not match its SHA-256; discard the download")

    def GetStatSpecs(self, request: organizer_pb2.GetStatSpecsRequest, context: grpc.ServicerContext) -> organizer_pb2.GetStatSpecsResponse:
        records = {record.id: record for record in self.metadata.get_many(list(request.learnware_ids))}
        missing = [i for i in request.learnware_ids if i not in records]
        if missing:
            raise not_found(f"no learnwares with ids {missing}")
        return organizer_pb2.GetStatSpecsResponse(
            learnwares=[
                organizer_pb2.LearnwareStatSpecs(learnware_id=i, stat_specs=[convert.stat_spec_to_proto(s) for s in records[i].stat_specs])
                for i in request.learnware_ids
            ]
        )

    def WatchLearnwares(self, request: organizer_pb2.WatchLearnwaresRequest, context: grpc.ServicerContext) -> Iterator[organizer_pb2.WatchLearnwaresResponse]:
        revision = request.after_revision
        synced = False
        while context.is_active():
            changes = self.metadata.changes_after(revision)
            for record in changes:
                revision = record.revision
                if record.deleted:
                    yield organizer_pb2.WatchLearnwaresResponse(kind=organizer_pb2.CHANGE_KIND_DELETED, revision=revision, learnware_id=record.id)
                else:
                    yield organizer_pb2.WatchLearnwaresResponse(
                        kind=organizer_pb2.CHANGE_KIND_UPSERTED,
                        revision=revision,
                        learnware_id=record.id,
                        learnware=learnware_info(record),
                        stat_specs=[convert.stat_spec_to_proto(s) for s in record.stat_specs],
                    )
            if changes:
                continue  # more backlog may follow
            if not synced:
                synced = True
                yield organizer_pb2.WatchLearnwaresResponse(kind=organizer_pb2.CHANGE_KIND_SYNCED, revision=revision)
            with self.metadata.changed:
                if self.metadata.latest_revision() <= revision:
                    self.metadata.changed.wait(WATCH_POLL_S)

    def PutCheckpoint(self, request: organizer_pb2.PutCheckpointRequest, context: grpc.ServicerContext) -> organizer_pb2.PutCheckpointResponse:
        key = f"{CHECKPOINT_PREFIX}{_checkpoint_name(request.name)}.{uuid.uuid4().hex}"  # each version is its own object
        if len(request.data) > MAX_CHECKPOINT_BYTES:
            raise invalid_argument(f"checkpoint of {len(request.data)} bytes exceeds the limit of {MAX_CHECKPOINT_BYTES} bytes")
        fence = None
        if request.HasField("fence"):
            fence = Fence(_lease_name(request.fence.name), _lease_holder(request.fence.holder), request.fence.epoch)
            try:
                self.leases.check_fence(fence)  # refuse a stale writer before storing its bytes
            except StaleFence as error:
                raise failed_precondition(str(error)) from None
        sha256 = hashlib.sha256(request.data).hexdigest()
        with tempfile.TemporaryDirectory(prefix="lwm_checkpoint_") as tmp:
            path = Path(tmp) / "checkpoint"
            path.write_bytes(request.data)
            self.objects.put_file(key, path, sha256)
        try:
            record, replaced = self.leases.record_checkpoint(request.name, key, sha256, len(request.data), fence)
        except StaleFence as error:
            self.objects.delete(key)
            raise failed_precondition(str(error)) from None
        except BaseException:
            self.objects.delete(key)
            raise
        if replaced is not None:
            self.objects.delete(replaced)  # a crash before this leaves an unreferenced object under checkpoints/
        log.info("stored checkpoint %s version %d (%d bytes%s)", request.name, record.version, len(request.data), f", lease epoch {fence.epoch} of {fence.holder}" if fence else "")
        return organizer_pb2.PutCheckpointResponse(sha256=sha256, version=record.version)

    def GetCheckpoint(self, request: organizer_pb2.GetCheckpointRequest, context: grpc.ServicerContext) -> organizer_pb2.GetCheckpointResponse:
        _checkpoint_name(request.name)
        for _ in range(3):  # a write may replace (and delete) the version between reading its row and its object
            record = self.leases.checkpoint(request.name)
            if record is None:
                raise not_found(f"no checkpoint named {request.name!r}")
            if record.version <= request.after_version:
                return checkpoint_reply(record, b"")
            try:
                return checkpoint_reply(record, b"".join(self.objects.open_chunks(record.object_key)))
            except ObjectNotFound:
                continue
        raise ServiceError(grpc.StatusCode.UNAVAILABLE, f"checkpoint {request.name!r} kept changing while it was read; retry")

    def AcquireLease(self, request: organizer_pb2.AcquireLeaseRequest, context: grpc.ServicerContext) -> organizer_pb2.AcquireLeaseResponse:
        name, holder = _lease_name(request.name), _lease_holder(request.holder)
        if not 0 < request.ttl_s <= MAX_LEASE_TTL_S:
            raise invalid_argument(f"ttl_s must be in (0, {MAX_LEASE_TTL_S:g}] seconds, got {request.ttl_s}")
        lease = self.leases.acquire(name, holder, request.ttl_s, take_over=request.take_over)
        if lease.granted and request.take_over:
            log.info("lease %s taken over by %s (epoch %d)", name, holder, lease.epoch)
        return organizer_pb2.AcquireLeaseResponse(granted=lease.granted, epoch=lease.epoch, expires_at=lease.expires_at, holder=lease.holder)

    def ReleaseLease(self, request: organizer_pb2.ReleaseLeaseRequest, context: grpc.ServicerContext) -> organizer_pb2.ReleaseLeaseResponse:
        return organizer_pb2.ReleaseLeaseResponse(released=self.leases.release(_lease_name(request.name), _lease_holder(request.holder)))


    def CreateCheckJob(self, request: organizer_pb2.CreateCheckJobRequest, context: grpc.ServicerContext) -> organizer_pb2.CreateCheckJobResponse:
        job = self.metadata.create_check_job(self._get(request.learnware_id).id)
        if job is None:
            raise not_found(f"no learnware with id {request.learnware_id!r}")
        log.info("queued check job %d of learnware %s", job.id, job.learnware_id)
        return organizer_pb2.CreateCheckJobResponse(job=check_job_message(job))

    def ClaimCheckJob(self, request: organizer_pb2.ClaimCheckJobRequest, context: grpc.ServicerContext) -> organizer_pb2.ClaimCheckJobResponse:
        if not request.holder or request.lease_s <= 0:
            raise invalid_argument(f"ClaimCheckJob needs a holder name and a positive lease_s (got {request.holder!r}, {request.lease_s})")
        job = self.metadata.claim_check_job(request.holder, request.lease_s)
        if job is None:
            return organizer_pb2.ClaimCheckJobResponse()
        log.info("check job %d of learnware %s leased to %s (attempt %d)", job.id, job.learnware_id, job.lease_holder, job.attempts)
        return organizer_pb2.ClaimCheckJobResponse(job=check_job_message(job))

    def HeartbeatCheckJob(self, request: organizer_pb2.HeartbeatCheckJobRequest, context: grpc.ServicerContext) -> organizer_pb2.HeartbeatCheckJobResponse:
        if request.lease_s <= 0:
            raise invalid_argument(f"lease_s must be positive, got {request.lease_s}")
        try:
            job = self.metadata.heartbeat_check_job(request.job_id, request.holder, request.lease_s)
        except LeaseLost as lost:
            raise failed_precondition(str(lost)) from None
        return organizer_pb2.HeartbeatCheckJobResponse(job=check_job_message(job))

    def CompleteCheckJob(self, request: organizer_pb2.CompleteCheckJobRequest, context: grpc.ServicerContext) -> organizer_pb2.CompleteCheckJobResponse:
        outcome = request.WhichOneof("outcome")
        try:
            if outcome == "report":
                status = convert.STATUS_NAMES.get(request.report.status, "")
                if status not in ("USABLE", "INVALID", "NONUSABLE"):
                    raise invalid_argument(f"a check report's status must be USABLE, INVALID or NONUSABLE, got {status or request.report.status!r}")
                job, record = self.metadata.complete_check_job(request.job_id, request.holder, status, json_format.MessageToJson(request.report))
            elif outcome == "error":
                job, record = self.metadata.fail_check_attempt(request.job_id, request.holder, request.error or "unknown error")
            else:
                raise invalid_argument("CompleteCheckJob needs a report or an error")
        except LeaseLost as lost:
            raise failed_precondition(str(lost)) from None
        log.info("check job %d of learnware %s: %s after attempt %d", job.id, job.learnware_id, job.state, job.attempts)
        reply = organizer_pb2.CompleteCheckJobResponse(job=check_job_message(job))
        if record is not None:
            reply.learnware.CopyFrom(learnware_info(record))
        return reply

    def WaitCheckJob(self, request: organizer_pb2.WaitCheckJobRequest, context: grpc.ServicerContext) -> organizer_pb2.WaitCheckJobResponse:
        may_block = self._waiters.acquire(blocking=False)
        try:
            until = time.monotonic() + (min(max(request.wait_s, 0.0), MAX_JOB_WAIT_S) if may_block else 0.0)
            while True:
                job = self.metadata.get_job(request.job_id)
                if job is None:
                    raise not_found(f"no check job with id {request.job_id}")
                left = until - time.monotonic()
                if job.finished or left <= 0 or not context.is_active():
                    break
                with self.metadata.changed:  # a job ends with a learnware change; poll too (another organizer may end it)
                    self.metadata.changed.wait(min(left, WATCH_POLL_S))
        finally:
            if may_block:
                self._waiters.release()
        reply = organizer_pb2.WaitCheckJobResponse(job=check_job_message(job))
        record = self.metadata.get(job.learnware_id) if job.finished else None
        if record is not None:
            reply.learnware.CopyFrom(learnware_info(record))
        return reply


def _checkpoint_name(name: str) -> str:
    if not CHECKPOINT_NAME.fullmatch(name) or ".." in name:
        raise invalid_argument(f"bad checkpoint name {name!r}: use lowercase letters, digits, '-', '_' and '.'")
    return name


def _lease_name(name: str) -> str:
    if not LEASE_NAME.fullmatch(name) or ".." in name:
        raise invalid_argument(f"bad lease name {name!r}: use lowercase letters, digits, '-', '_', '.' and '/' (at most 128)")
    return name


def _lease_holder(holder: str) -> str:
    if not holder or len(holder) > MAX_LEASE_HOLDER_CHARS:
        raise invalid_argument(f"a lease holder must be 1 to {MAX_LEASE_HOLDER_CHARS} characters, got {len(holder)}")
    return holder


def checkpoint_reply(record: CheckpointRecord, data: bytes) -> organizer_pb2.GetCheckpointResponse:
    return organizer_pb2.GetCheckpointResponse(data=data, sha256=record.sha256, version=record.version, writer=record.writer, epoch=record.epoch)


def zip_too_large(message: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.RESOURCE_EXHAUSTED, message)


def build_server(config: OrganizerConfig, port: int, host: str = "127.0.0.1") -> tuple[Server, Sweeper]:
    """The organizer's server and its sweeper (not started yet)."""
    metadata, objects = config.open_storage()
    metrics.register_learnware_counts(metadata.count_by_status)
    server = Server("organizer", port, host)
    server.add(organizer_pb2_grpc.add_OrganizerServiceServicer_to_server, OrganizerServicer(metadata, objects, config), [organizer_pb2.DESCRIPTOR.services_by_name["OrganizerService"].full_name])
    return server, Sweeper(metadata, objects, config.sweep_interval_s, config.sweep_grace_s)
