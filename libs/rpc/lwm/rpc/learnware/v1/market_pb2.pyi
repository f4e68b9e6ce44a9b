from google.api import annotations_pb2 as _annotations_pb2
from lwm.rpc.learnware.v1 import common_pb2 as _common_pb2
from lwm.rpc.learnware.v1 import reuse_pb2 as _reuse_pb2
from lwm.rpc.learnware.v1 import searcher_pb2 as _searcher_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MarketKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MARKET_KIND_UNSPECIFIED: _ClassVar[MarketKind]
    MARKET_KIND_EASY: _ClassVar[MarketKind]
    MARKET_KIND_HETERO: _ClassVar[MarketKind]
MARKET_KIND_UNSPECIFIED: MarketKind
MARKET_KIND_EASY: MarketKind
MARKET_KIND_HETERO: MarketKind

class MarketAddLearnwareMetadata(_message.Message):
    __slots__ = ("semantic_spec", "zip_size", "wait_for_check", "market_id", "client_request_id")
    SEMANTIC_SPEC_FIELD_NUMBER: _ClassVar[int]
    ZIP_SIZE_FIELD_NUMBER: _ClassVar[int]
    WAIT_FOR_CHECK_FIELD_NUMBER: _ClassVar[int]
    MARKET_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    semantic_spec: _common_pb2.SemanticSpec
    zip_size: int
    wait_for_check: bool
    market_id: str
    client_request_id: str
    def __init__(self, semantic_spec: _Optional[_Union[_common_pb2.SemanticSpec, _Mapping]] = ..., zip_size: _Optional[int] = ..., wait_for_check: bool = ..., market_id: _Optional[str] = ..., client_request_id: _Optional[str] = ...) -> None: ...

class MarketAddLearnwareRequest(_message.Message):
    __slots__ = ("metadata", "chunk")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    metadata: MarketAddLearnwareMetadata
    chunk: _common_pb2.Chunk
    def __init__(self, metadata: _Optional[_Union[MarketAddLearnwareMetadata, _Mapping]] = ..., chunk: _Optional[_Union[_common_pb2.Chunk, _Mapping]] = ...) -> None: ...

class MarketAddLearnwareResponse(_message.Message):
    __slots__ = ("learnware", "revision")
    LEARNWARE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    learnware: _common_pb2.LearnwareInfo
    revision: int
    def __init__(self, learnware: _Optional[_Union[_common_pb2.LearnwareInfo, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class MarketGetLearnwareRequest(_message.Message):
    __slots__ = ("learnware_id",)
    LEARNWARE_ID_FIELD_NUMBER: _ClassVar[int]
    learnware_id: str
    def __init__(self, learnware_id: _Optional[str] = ...) -> None: ...

class MarketGetLearnwareResponse(_message.Message):
    __slots__ = ("learnware",)
    LEARNWARE_FIELD_NUMBER: _ClassVar[int]
    learnware: _common_pb2.LearnwareInfo
    def __init__(self, learnware: _Optional[_Union[_common_pb2.LearnwareInfo, _Mapping]] = ...) -> None: ...

class MarketListLearnwaresRequest(_message.Message):
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

class MarketListLearnwaresResponse(_message.Message):
    __slots__ = ("learnwares", "next_page_token", "total")
    LEARNWARES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    learnwares: _containers.RepeatedCompositeFieldContainer[_common_pb2.LearnwareInfo]
    next_page_token: str
    total: int
    def __init__(self, learnwares: _Optional[_Iterable[_Union[_common_pb2.LearnwareInfo, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total: _Optional[int] = ...) -> None: ...

class MarketUpdateLearnwareRequest(_message.Message):
    __slots__ = ("learnware_id", "semantic_spec")
    LEARNWARE_ID_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_SPEC_FIELD_NUMBER: _ClassVar[int]
    learnware_id: str
    semantic_spec: _common_pb2.SemanticSpec
    def __init__(self, learnware_id: _Optional[str] = ..., semantic_spec: _Optional[_Union[_common_pb2.SemanticSpec, _Mapping]] = ...) -> None: ...

class MarketUpdateLearnwareResponse(_message.Message):
    __slots__ = ("learnware", "revision")
    LEARNWARE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    learnware: _common_pb2.LearnwareInfo
    revision: int
    def __init__(self, learnware: _Optional[_Union[_common_pb2.LearnwareInfo, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class MarketDeleteLearnwareRequest(_message.Message):
    __slots__ = ("learnware_id",)
    LEARNWARE_ID_FIELD_NUMBER: _ClassVar[int]
    learnware_id: str
    def __init__(self, learnware_id: _Optional[str] = ...) -> None: ...

class MarketDeleteLearnwareResponse(_message.Message):
    __slots__ = ("revision",)
    REVISION_FIELD_NUMBER: _ClassVar[int]
    revision: int
    def __init__(self, revision: _Optional[int] = ...) -> None: ...

class MarketDownloadLearnwareRequest(_message.Message):
    __slots__ = ("learnware_id",)
    LEARNWARE_ID_FIELD_NUMBER: _ClassVar[int]
    learnware_id: str
    def __init__(self, learnware_id: _Optional[str] = ...) -> None: ...

class MarketDownloadLearnwareResponse(_message.Message):
    __slots__ = ("chunk",)
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    chunk: _common_pb2.Chunk
    def __init__(self, chunk: _Optional[_Union[_common_pb2.Chunk, _Mapping]] = ...) -> None: ...

class MarketSearchLearnwareRequest(_message.Message):
    __slots__ = ("semantic_spec", "stat_specs", "max_search_num", "mixture_strategy", "mode", "max_results", "learnware_ids", "market_id", "min_revision")
    SEMANTIC_SPEC_FIELD_NUMBER: _ClassVar[int]
    STAT_SPECS_FIELD_NUMBER: _ClassVar[int]
    MAX_SEARCH_NUM_FIELD_NUMBER: _ClassVar[int]
    MIXTURE_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MAX_RESULTS_FIELD_NUMBER: _ClassVar[int]
    LEARNWARE_IDS_FIELD_NUMBER: _ClassVar[int]
    MARKET_ID_FIELD_NUMBER: _ClassVar[int]
    MIN_REVISION_FIELD_NUMBER: _ClassVar[int]
    semantic_spec: _common_pb2.SemanticSpec
    stat_specs: _containers.RepeatedCompositeFieldContainer[_common_pb2.StatSpec]
    max_search_num: int
    mixture_strategy: _searcher_pb2.MixtureStrategy
    mode: _searcher_pb2.SearchMode
    max_results: int
    learnware_ids: _containers.RepeatedScalarFieldContainer[str]
    market_id: str
    min_revision: int
    def __init__(self, semantic_spec: _Optional[_Union[_common_pb2.SemanticSpec, _Mapping]] = ..., stat_specs: _Optional[_Iterable[_Union[_common_pb2.StatSpec, _Mapping]]] = ..., max_search_num: _Optional[int] = ..., mixture_strategy: _Optional[_Union[_searcher_pb2.MixtureStrategy, str]] = ..., mode: _Optional[_Union[_searcher_pb2.SearchMode, str]] = ..., max_results: _Optional[int] = ..., learnware_ids: _Optional[_Iterable[str]] = ..., market_id: _Optional[str] = ..., min_revision: _Optional[int] = ...) -> None: ...

class MarketSearchLearnwareResponse(_message.Message):
    __slots__ = ("single_results", "multiple_results", "search_path", "messages")
    SINGLE_RESULTS_FIELD_NUMBER: _ClassVar[int]
    MULTIPLE_RESULTS_FIELD_NUMBER: _ClassVar[int]
    SEARCH_PATH_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    single_results: _containers.RepeatedCompositeFieldContainer[_searcher_pb2.SingleResult]
    multiple_results: _containers.RepeatedCompositeFieldContainer[_searcher_pb2.MixtureResult]
    search_path: str
    messages: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, single_results: _Optional[_Iterable[_Union[_searcher_pb2.SingleResult, _Mapping]]] = ..., multiple_results: _Optional[_Iterable[_Union[_searcher_pb2.MixtureResult, _Mapping]]] = ..., search_path: _Optional[str] = ..., messages: _Optional[_Iterable[str]] = ...) -> None: ...

class MarketPredictRequest(_message.Message):
    __slots__ = ("learnware_id", "x")
    LEARNWARE_ID_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    learnware_id: str
    x: _common_pb2.Tensor
    def __init__(self, learnware_id: _Optional[str] = ..., x: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ...) -> None: ...

class MarketPredictResponse(_message.Message):
    __slots__ = ("predictions",)
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    predictions: _common_pb2.Tensor
    def __init__(self, predictions: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ...) -> None: ...

class MarketReuseRequest(_message.Message):
    __slots__ = ("reuse",)
    REUSE_FIELD_NUMBER: _ClassVar[int]
    reuse: _reuse_pb2.ReuseRequest
    def __init__(self, reuse: _Optional[_Union[_reuse_pb2.ReuseRequest, _Mapping]] = ...) -> None: ...

class MarketReuseResponse(_message.Message):
    __slots__ = ("predictions", "messages")
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    predictions: _common_pb2.Tensor
    messages: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, predictions: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., messages: _Optional[_Iterable[str]] = ...) -> None: ...

class MarketReuseStreamRequest(_message.Message):
    __slots__ = ("reuse",)
    REUSE_FIELD_NUMBER: _ClassVar[int]
    reuse: _reuse_pb2.ReuseStreamRequest
    def __init__(self, reuse: _Optional[_Union[_reuse_pb2.ReuseStreamRequest, _Mapping]] = ...) -> None: ...

class MarketReuseStreamResponse(_message.Message):
    __slots__ = ("block",)
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    block: _reuse_pb2.ReuseStreamResponse
    def __init__(self, block: _Optional[_Union[_reuse_pb2.ReuseStreamResponse, _Mapping]] = ...) -> None: ...

class MarketRecheckLearnwareRequest(_message.Message):
    __slots__ = ("learnware_id", "wait_for_check")
    LEARNWARE_ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_FOR_CHECK_FIELD_NUMBER: _ClassVar[int]
    learnware_id: str
    wait_for_check: bool
    def __init__(self, learnware_id: _Optional[str] = ..., wait_for_check: bool = ...) -> None: ...

class MarketRecheckLearnwareResponse(_message.Message):
    __slots__ = ("learnware", "revision")
    LEARNWARE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    learnware: _common_pb2.LearnwareInfo
    revision: int
    def __init__(self, learnware: _Optional[_Union[_common_pb2.LearnwareInfo, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class MarketGetMarketInfoRequest(_message.Message):
    __slots__ = ("market_id",)
    MARKET_ID_FIELD_NUMBER: _ClassVar[int]
    market_id: str
    def __init__(self, market_id: _Optional[str] = ...) -> None: ...

class MarketGetMarketInfoResponse(_message.Message):
    __slots__ = ("kind", "version", "learnware_counts", "hetero_engine", "market_id")
    class LearnwareCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    KIND_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LEARNWARE_COUNTS_FIELD_NUMBER: _ClassVar[int]
    HETERO_ENGINE_FIELD_NUMBER: _ClassVar[int]
    MARKET_ID_FIELD_NUMBER: _ClassVar[int]
    kind: MarketKind
    version: str
    learnware_counts: _containers.ScalarMap[str, int]
    hetero_engine: _searcher_pb2.HeteroEngineStats
    market_id: str
    def __init__(self, kind: _Optional[_Union[MarketKind, str]] = ..., version: _Optional[str] = ..., learnware_counts: _Optional[_Mapping[str, int]] = ..., hetero_engine: _Optional[_Union[_searcher_pb2.HeteroEngineStats, _Mapping]] = ..., market_id: _Optional[str] = ...) -> None: ...

class MarketClearMarketRequest(_message.Message):
    __slots__ = ("market_id",)
    MARKET_ID_FIELD_NUMBER: _ClassVar[int]
    market_id: str
    def __init__(self, market_id: _Optional[str] = ...) -> None: ...

class MarketClearMarketResponse(_message.Message):
    __slots__ = ("deleted_ids", "revision")
    DELETED_IDS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    deleted_ids: _containers.RepeatedScalarFieldContainer[str]
    revision: int
    def __init__(self, deleted_ids: _Optional[_Iterable[str]] = ..., revision: _Optional[int] = ...) -> None: ...

class MarketTrainHeteroEngineRequest(_message.Message):
    __slots__ = ("train",)
    TRAIN_FIELD_NUMBER: _ClassVar[int]
    train: _searcher_pb2.TrainHeteroEngineRequest
    def __init__(self, train: _Optional[_Union[_searcher_pb2.TrainHeteroEngineRequest, _Mapping]] = ...) -> None: ...

class MarketTrainHeteroEngineResponse(_message.Message):
    __slots__ = ("trained",)
    TRAINED_FIELD_NUMBER: _ClassVar[int]
    trained: _searcher_pb2.TrainHeteroEngineResponse
    def __init__(self, trained: _Optional[_Union[_searcher_pb2.TrainHeteroEngineResponse, _Mapping]] = ...) -> None: ...

class MarketGetHeteroEngineRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MarketGetHeteroEngineResponse(_message.Message):
    __slots__ = ("engine",)
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    engine: _searcher_pb2.GetHeteroEngineResponse
    def __init__(self, engine: _Optional[_Union[_searcher_pb2.GetHeteroEngineResponse, _Mapping]] = ...) -> None: ...
