from lwm.rpc.learnware.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CheckJobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHECK_JOB_STATE_UNSPECIFIED: _ClassVar[CheckJobState]
    CHECK_JOB_STATE_QUEUED: _ClassVar[CheckJobState]
    CHECK_JOB_STATE_RUNNING: _ClassVar[CheckJobState]
    CHECK_JOB_STATE_DONE: _ClassVar[CheckJobState]
    CHECK_JOB_STATE_FAILED: _ClassVar[CheckJobState]

class ChangeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANGE_KIND_UNSPECIFIED: _ClassVar[ChangeKind]
    CHANGE_KIND_UPSERTED: _ClassVar[ChangeKind]
    CHANGE_KIND_DELETED: _ClassVar[ChangeKind]
    CHANGE_KIND_SYNCED: _ClassVar[ChangeKind]
CHECK_JOB_STATE_UNSPECIFIED: CheckJobState
CHECK_JOB_STATE_QUEUED: CheckJobState
CHECK_JOB_STATE_RUNNING: CheckJobState
CHECK_JOB_STATE_DONE: CheckJobState
CHECK_JOB_STATE_FAILED: CheckJobState
CHANGE_KIND_UNSPECIFIED: ChangeKind
CHANGE_KIND_UPSERTED: ChangeKind
CHANGE_KIND_DELETED: ChangeKind
CHANGE_KIND_SYNCED: ChangeKind

class CheckJob(_message.Message):
    __slots__ = ("id", "learnware_id", "state", "attempts", "lease_holder", "lease_expires_at", "created_at", "finished_at", "last_error")
    ID_FIELD_NUMBER: _ClassVar[int]
    LEARNWARE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LEASE_HOLDER_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    id: int
    learnware_id: str
    state: CheckJobState
    attempts: int
    lease_holder: str
    lease_expires_at: float
    created_at: float
    finished_at: float
    last_error: str
    def __init__(self, id: _Optional[int] = ..., learnware_id: _Optional[str] = ..., state: _Optional[_Union[CheckJobState, str]] = ..., attempts: _Optional[int] = ..., lease_holder: _Optional[str] = ..., lease_expires_at: _Optional[float] = ..., created_at: _Optional[float] = ..., finished_at: _Optional[float] = ..., last_error: _Optional[str] = ...) -> None: ...

class CreateCheckJobRequest(_message.Message):
    __slots__ = ("learnware_id",)
    LEARNWARE_ID_FIELD_NUMBER: _ClassVar[int]
    learnware_id: str
    def __init__(self, learnware_id: _Optional[str] = ...) -> None: ...

class CreateCheckJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: CheckJob
    def __init__(self, job: _Optional[_Union[CheckJob, _Mapping]] = ...) -> None: ...

class ClaimCheckJobRequest(_message.Message):
    __slots__ = ("holder", "lease_s")
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    LEASE_S_FIELD_NUMBER: _ClassVar[int]
    holder: str
    lease_s: float
    def __init__(self, holder: _Optional[str] = ..., lease_s: _Optional[float] = ...) -> None: ...

class ClaimCheckJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: CheckJob
    def __init__(self, job: _Optional[_Union[CheckJob, _Mapping]] = ...) -> None: ...

class HeartbeatCheckJobRequest(_message.Message):
    __slots__ = ("job_id", "holder", "lease_s")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    LEASE_S_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    holder: str
    lease_s: float
    def __init__(self, job_id: _Optional[int] = ..., holder: _Optional[str] = ..., lease_s: _Optional[float] = ...) -> None: ...

class HeartbeatCheckJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: CheckJob
    def __init__(self, job: _Optional[_Union[CheckJob, _Mapping]] = ...) -> None: ...

class CompleteCheckJobRequest(_message.Message):
    __slots__ = ("job_id", "holder", "report", "error")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    holder: str
    report: _common_pb2.CheckReport
    error: str
    def __init__(self, job_id: _Optional[int] = ..., holder: _Optional[str] = ..., report: _Optional[_Union[_common_pb2.CheckReport, _Mapping]] = ..., error: _Optional[str] = ...) -> None: ...

class CompleteCheckJobResponse(_message.Message):
    __slots__ = ("job", "learnware")
    JOB_FIELD_NUMBER: _ClassVar[int]
    LEARNWARE_FIELD_NUMBER: _ClassVar[int]
    job: CheckJob
    learnware: _common_pb2.LearnwareInfo
    def __init__(self, job: _Optional[_Union[CheckJob, _Mapping]] = ..., learnware: _Optional[_Union[_common_pb2.LearnwareInfo, _Mapping]] = ...) -> None: ...

class WaitCheckJobRequest(_message.Message):
    __slots__ = ("job_id", "wait_s")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_S_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    wait_s: float
    def __init__(self, job_id: _Optional[int] = ..., wait_s: _Optional[float] = ...) -> None: ...

class WaitCheckJobResponse(_message.Message):
    __slots__ = ("job", "learnware")
    JOB_FIELD_NUMBER: _ClassVar[int]
    LEARNWARE_FIELD_NUMBER: _ClassVar[int]
    job: CheckJob
    learnware: _common_pb2.LearnwareInfo
    def __init__(self, job: _Optional[_Union[CheckJob, _Mapping]] = ..., learnware: _Optional[_Union[_common_pb2.LearnwareInfo, _Mapping]] = ...) -> None: ...

class AddLearnwareMetadata(_message.Message):
    __slots__ = ("semantic_spec", "owner", "zip_size", "market_id", "client_request_id")
    SEMANTIC_SPEC_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    ZIP_SIZE_FIELD_NUMBER: _ClassVar[int]
    MARKET_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    semantic_spec: _common_pb2.SemanticSpec
    owner: str
    zip_size: int
    market_id: str
    client_request_id: str
    def __init__(self, semantic_spec: _Optional[_Union[_common_pb2.SemanticSpec, _Mapping]] = ..., owner: _Optional[str] = ..., zip_size: _Optional[int] = ..., market_id: _Optional[str] = ..., client_request_id: _Optional[str] = ...) -> None: ...

class AddLearnwareRequest(_message.Message):
    __slots__ = ("metadata", "chunk")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    metadata: AddLearnwareMetadata
    chunk: _common_pb2.Chunk
    def __init__(self, metadata: _Optional[_Union[AddLearnwareMetadata, _Mapping]] = ..., chunk: _Optional[_Union[_common_pb2.Chunk, _Mapping]] = ...) -> None: ...

class AddLearnwareResponse(_message.Message):
    __slots__ = ("learnware", "replayed", "check_job_id")
    LEARNWARE_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    CHECK_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    learnware: _common_pb2.LearnwareInfo
    replayed: bool
    check_job_id: int
    def __init__(self, learnware: _Optional[_Union[_common_pb2.LearnwareInfo, _Mapping]] = ..., replayed: bool = ..., check_job_id: _Optional[int] = ...) -> None: ...

class GetLearnwareRequest(_message.Message):
    __slots__ = ("learnware_id",)
    LEARNWARE_ID_FIELD_NUMBER: _ClassVar[int]
    learnware_id: str
    def __init__(self, learnware_id: _Optional[str] = ...) -> None: ...

class GetLearnwareResponse(_message.Message):
    __slots__ = ("learnware",)
    LEARNWARE_FIELD_NUMBER: _ClassVar[int]
    learnware: _common_pb2.LearnwareInfo
    def __init__(self, learnware: _Optional[_Union[_common_pb2.LearnwareInfo, _Mapping]] = ...) -> None: ...

class ListLearnwaresRequest(_message.Message):
    __slots__ = ("page", "statuses", "owner", "market_id")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    MARKET_ID_FIELD_NUMBER: _ClassVar[int]
    page: _common_pb2.PageRequest
    statuses: _containers.RepeatedScalarFieldContainer[_common_pb2.LearnwareStatus]
    owner: str
    market_id: str
    def __init__(self, page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., statuses: _Optional[_Iterable[_Union[_common_pb2.LearnwareStatus, str]]] = ..., owner: _Optional[str] = ..., market_id: _Optional[str] = ...) -> None: ...

class ListLearnwaresResponse(_message.Message):
    __slots__ = ("learnwares", "next_page_token", "total")
    LEARNWARES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    learnwares: _containers.RepeatedCompositeFieldContainer[_common_pb2.LearnwareInfo]
    next_page_token: str
    total: int
    def __init__(self, learnwares: _Optional[_Iterable[_Union[_common_pb2.LearnwareInfo, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total: _Optional[int] = ...) -> None: ...

class UpdateLearnwareRequest(_message.Message):
    __slots__ = ("learnware_id", "semantic_spec", "status", "check_report")
    LEARNWARE_ID_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_SPEC_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CHECK_REPORT_FIELD_NUMBER: _ClassVar[int]
    learnware_id: str
    semantic_spec: _common_pb2.SemanticSpec
    status: _common_pb2.LearnwareStatus
    check_report: _common_pb2.CheckReport
    def __init__(self, learnware_id: _Optional[str] = ..., semantic_spec: _Optional[_Union[_common_pb2.SemanticSpec, _Mapping]] = ..., status: _Optional[_Union[_common_pb2.LearnwareStatus, str]] = ..., check_report: _Optional[_Union[_common_pb2.CheckReport, _Mapping]] = ...) -> None: ...

class UpdateLearnwareResponse(_message.Message):
    __slots__ = ("learnware",)
    LEARNWARE_FIELD_NUMBER: _ClassVar[int]
    learnware: _common_pb2.LearnwareInfo
    def __init__(self, learnware: _Optional[_Union[_common_pb2.LearnwareInfo, _Mapping]] = ...) -> None: ...

class DeleteLearnwareRequest(_message.Message):
    __slots__ = ("learnware_id",)
    LEARNWARE_ID_FIELD_NUMBER: _ClassVar[int]
    learnware_id: str
    def __init__(self, learnware_id: _Optional[str] = ...) -> None: ...

class DeleteLearnwareResponse(_message.Message):
    __slots__ = ("revision",)
    REVISION_FIELD_NUMBER: _ClassVar[int]
    revision: int
    def __init__(self, revision: _Optional[int] = ...) -> None: ...

class DownloadLearnwareRequest(_message.Message):
    __slots__ = ("learnware_id",)
    LEARNWARE_ID_FIELD_NUMBER: _ClassVar[int]
    learnware_id: str
    def __init__(self, learnware_id: _Optional[str] = ...) -> None: ...

class DownloadLearnwareResponse(_message.Message):
    __slots__ = ("chunk",)
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    chunk: _common_pb2.Chunk
    def __init__(self, chunk: _Optional[_Union[_common_pb2.Chunk, _Mapping]] = ...) -> None: ...

class GetStatSpecsRequest(_message.Message):
    __slots__ = ("learnware_ids",)
    LEARNWARE_IDS_FIELD_NUMBER: _ClassVar[int]
    learnware_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, learnware_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class LearnwareStatSpecs(_message.Message):
    __slots__ = ("learnware_id", "stat_specs")
    LEARNWARE_ID_FIELD_NUMBER: _ClassVar[int]
    STAT_SPECS_FIELD_NUMBER: _ClassVar[int]
    learnware_id: str
    stat_specs: _containers.RepeatedCompositeFieldContainer[_common_pb2.StatSpec]
    def __init__(self, learnware_id: _Optional[str] = ..., stat_specs: _Optional[_Iterable[_Union[_common_pb2.StatSpec, _Mapping]]] = ...) -> None: ...

class GetStatSpecsResponse(_message.Message):
    __slots__ = ("learnwares",)
    LEARNWARES_FIELD_NUMBER: _ClassVar[int]
    learnwares: _containers.RepeatedCompositeFieldContainer[LearnwareStatSpecs]
    def __init__(self, learnwares: _Optional[_Iterable[_Union[LearnwareStatSpecs, _Mapping]]] = ...) -> None: ...

class WatchLearnwaresRequest(_message.Message):
    __slots__ = ("after_revision",)
    AFTER_REVISION_FIELD_NUMBER: _ClassVar[int]
    after_revision: int
    def __init__(self, after_revision: _Optional[int] = ...) -> None: ...

class WatchLearnwaresResponse(_message.Message):
    __slots__ = ("kind", "revision", "learnware_id", "learnware", "stat_specs")
    KIND_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    LEARNWARE_ID_FIELD_NUMBER: _ClassVar[int]
    LEARNWARE_FIELD_NUMBER: _ClassVar[int]
    STAT_SPECS_FIELD_NUMBER: _ClassVar[int]
    kind: ChangeKind
    revision: int
    learnware_id: str
    learnware: _common_pb2.LearnwareInfo
    stat_specs: _containers.RepeatedCompositeFieldContainer[_common_pb2.StatSpec]
    def __init__(self, kind: _Optional[_Union[ChangeKind, str]] = ..., revision: _Optional[int] = ..., learnware_id: _Optional[str] = ..., learnware: _Optional[_Union[_common_pb2.LearnwareInfo, _Mapping]] = ..., stat_specs: _Optional[_Iterable[_Union[_common_pb2.StatSpec, _Mapping]]] = ...) -> None: ...

class PutCheckpointRequest(_message.Message):
    __slots__ = ("name", "data", "fence")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    FENCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    data: bytes
    fence: LeaseFence
    def __init__(self, name: _Optional[str] = ..., data: _Optional[bytes] = ..., fence: _Optional[_Union[LeaseFence, _Mapping]] = ...) -> None: ...

class LeaseFence(_message.Message):
    __slots__ = ("name", "holder", "epoch")
    NAME_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    name: str
    holder: str
    epoch: int
    def __init__(self, name: _Optional[str] = ..., holder: _Optional[str] = ..., epoch: _Optional[int] = ...) -> None: ...

class PutCheckpointResponse(_message.Message):
    __slots__ = ("sha256", "version")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    version: int
    def __init__(self, sha256: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class GetCheckpointRequest(_message.Message):
    __slots__ = ("name", "after_version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AFTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    after_version: int
    def __init__(self, name: _Optional[str] = ..., after_version: _Optional[int] = ...) -> None: ...

class GetCheckpointResponse(_message.Message):
    __slots__ = ("data", "sha256", "version", "writer", "epoch")
    DATA_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    WRITER_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    sha256: str
    version: int
    writer: str
    epoch: int
    def __init__(self, data: _Optional[bytes] = ..., sha256: _Optional[str] = ..., version: _Optional[int] = ..., writer: _Optional[str] = ..., epoch: _Optional[int] = ...) -> None: ...

class AcquireLeaseRequest(_message.Message):
    __slots__ = ("name", "holder", "ttl_s", "take_over")
    NAME_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    TTL_S_FIELD_NUMBER: _ClassVar[int]
    TAKE_OVER_FIELD_NUMBER: _ClassVar[int]
    name: str
    holder: str
    ttl_s: float
    take_over: bool
    def __init__(self, name: _Optional[str] = ..., holder: _Optional[str] = ..., ttl_s: _Optional[float] = ..., take_over: bool = ...) -> None: ...

class AcquireLeaseResponse(_message.Message):
    __slots__ = ("granted", "epoch", "expires_at", "holder")
    GRANTED_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    granted: bool
    epoch: int
    expires_at: float
    holder: str
    def __init__(self, granted: bool = ..., epoch: _Optional[int] = ..., expires_at: _Optional[float] = ..., holder: _Optional[str] = ...) -> None: ...

class ReleaseLeaseRequest(_message.Message):
    __slots__ = ("name", "holder")
    NAME_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    name: str
    holder: str
    def __init__(self, name: _Optional[str] = ..., holder: _Optional[str] = ...) -> None: ...

class ReleaseLeaseResponse(_message.Message):
    __slots__ = ("released",)
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    released: bool
    def __init__(self, released: bool = ...) -> None: ...
