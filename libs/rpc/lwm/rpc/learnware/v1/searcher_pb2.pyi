from lwm.rpc.learnware.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MixtureStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MIXTURE_STRATEGY_UNSPECIFIED: _ClassVar[MixtureStrategy]
    MIXTURE_STRATEGY_GREEDY: _ClassVar[MixtureStrategy]
    MIXTURE_STRATEGY_AUTO: _ClassVar[MixtureStrategy]

class SearchMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEARCH_MODE_UNSPECIFIED: _ClassVar[SearchMode]
    SEARCH_MODE_HOMOGENEOUS: _ClassVar[SearchMode]
    SEARCH_MODE_HETERO: _ClassVar[SearchMode]
MIXTURE_STRATEGY_UNSPECIFIED: MixtureStrategy
MIXTURE_STRATEGY_GREEDY: MixtureStrategy
MIXTURE_STRATEGY_AUTO: MixtureStrategy
SEARCH_MODE_UNSPECIFIED: SearchMode
SEARCH_MODE_HOMOGENEOUS: SearchMode
SEARCH_MODE_HETERO: SearchMode

class SearchLearnwaresRequest(_message.Message):
    __slots__ = ("semantic_spec", "stat_specs", "max_search_num", "mixture_strategy", "mode", "max_results", "learnware_ids", "min_revision", "market_id")
    SEMANTIC_SPEC_FIELD_NUMBER: _ClassVar[int]
    STAT_SPECS_FIELD_NUMBER: _ClassVar[int]
    MAX_SEARCH_NUM_FIELD_NUMBER: _ClassVar[int]
    MIXTURE_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MAX_RESULTS_FIELD_NUMBER: _ClassVar[int]
    LEARNWARE_IDS_FIELD_NUMBER: _ClassVar[int]
    MIN_REVISION_FIELD_NUMBER: _ClassVar[int]
    MARKET_ID_FIELD_NUMBER: _ClassVar[int]
    semantic_spec: _common_pb2.SemanticSpec
    stat_specs: _containers.RepeatedCompositeFieldContainer[_common_pb2.StatSpec]
    max_search_num: int
    mixture_strategy: MixtureStrategy
    mode: SearchMode
    max_results: int
    learnware_ids: _containers.RepeatedScalarFieldContainer[str]
    min_revision: int
    market_id: str
    def __init__(self, semantic_spec: _Optional[_Union[_common_pb2.SemanticSpec, _Mapping]] = ..., stat_specs: _Optional[_Iterable[_Union[_common_pb2.StatSpec, _Mapping]]] = ..., max_search_num: _Optional[int] = ..., mixture_strategy: _Optional[_Union[MixtureStrategy, str]] = ..., mode: _Optional[_Union[SearchMode, str]] = ..., max_results: _Optional[int] = ..., learnware_ids: _Optional[_Iterable[str]] = ..., min_revision: _Optional[int] = ..., market_id: _Optional[str] = ...) -> None: ...

class SingleResult(_message.Message):
    __slots__ = ("learnware", "score")
    LEARNWARE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    learnware: _common_pb2.LearnwareInfo
    score: float
    def __init__(self, learnware: _Optional[_Union[_common_pb2.LearnwareInfo, _Mapping]] = ..., score: _Optional[float] = ...) -> None: ...

class MixtureResult(_message.Message):
    __slots__ = ("learnwares", "weights", "score")
    LEARNWARES_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    learnwares: _containers.RepeatedCompositeFieldContainer[_common_pb2.LearnwareInfo]
    weights: _containers.RepeatedScalarFieldContainer[float]
    score: float
    def __init__(self, learnwares: _Optional[_Iterable[_Union[_common_pb2.LearnwareInfo, _Mapping]]] = ..., weights: _Optional[_Iterable[float]] = ..., score: _Optional[float] = ...) -> None: ...

class SearchLearnwaresResponse(_message.Message):
    __slots__ = ("single_results", "multiple_results", "search_path", "messages")
    SINGLE_RESULTS_FIELD_NUMBER: _ClassVar[int]
    MULTIPLE_RESULTS_FIELD_NUMBER: _ClassVar[int]
    SEARCH_PATH_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    single_results: _containers.RepeatedCompositeFieldContainer[SingleResult]
    multiple_results: _containers.RepeatedCompositeFieldContainer[MixtureResult]
    search_path: str
    messages: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, single_results: _Optional[_Iterable[_Union[SingleResult, _Mapping]]] = ..., multiple_results: _Optional[_Iterable[_Union[MixtureResult, _Mapping]]] = ..., search_path: _Optional[str] = ..., messages: _Optional[_Iterable[str]] = ...) -> None: ...

class GetIndexStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetIndexStatsResponse(_message.Message):
    __slots__ = ("learnware_count", "stat_spec_counts", "revision", "synced", "shard", "index_bytes", "hetero")
    class StatSpecCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    LEARNWARE_COUNT_FIELD_NUMBER: _ClassVar[int]
    STAT_SPEC_COUNTS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    SYNCED_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    INDEX_BYTES_FIELD_NUMBER: _ClassVar[int]
    HETERO_FIELD_NUMBER: _ClassVar[int]
    learnware_count: int
    stat_spec_counts: _containers.ScalarMap[str, int]
    revision: int
    synced: bool
    shard: str
    index_bytes: int
    hetero: HeteroEngineStats
    def __init__(self, learnware_count: _Optional[int] = ..., stat_spec_counts: _Optional[_Mapping[str, int]] = ..., revision: _Optional[int] = ..., synced: bool = ..., shard: _Optional[str] = ..., index_bytes: _Optional[int] = ..., hetero: _Optional[_Union[HeteroEngineStats, _Mapping]] = ...) -> None: ...

class HeteroEngineStats(_message.Message):
    __slots__ = ("engine_id", "trained_on", "qualifying", "training", "trainer", "checkpoint_version")
    ENGINE_ID_FIELD_NUMBER: _ClassVar[int]
    TRAINED_ON_FIELD_NUMBER: _ClassVar[int]
    QUALIFYING_FIELD_NUMBER: _ClassVar[int]
    TRAINING_FIELD_NUMBER: _ClassVar[int]
    TRAINER_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_VERSION_FIELD_NUMBER: _ClassVar[int]
    engine_id: str
    trained_on: int
    qualifying: int
    training: bool
    trainer: bool
    checkpoint_version: int
    def __init__(self, engine_id: _Optional[str] = ..., trained_on: _Optional[int] = ..., qualifying: _Optional[int] = ..., training: bool = ..., trainer: bool = ..., checkpoint_version: _Optional[int] = ...) -> None: ...

class TrainHeteroEngineRequest(_message.Message):
    __slots__ = ("learnware_ids", "steps", "min_revision")
    LEARNWARE_IDS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    MIN_REVISION_FIELD_NUMBER: _ClassVar[int]
    learnware_ids: _containers.RepeatedScalarFieldContainer[str]
    steps: int
    min_revision: int
    def __init__(self, learnware_ids: _Optional[_Iterable[str]] = ..., steps: _Optional[int] = ..., min_revision: _Optional[int] = ...) -> None: ...

class TrainHeteroEngineResponse(_message.Message):
    __slots__ = ("engine", "checkpoint", "messages")
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    engine: HeteroEngineStats
    checkpoint: bytes
    messages: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, engine: _Optional[_Union[HeteroEngineStats, _Mapping]] = ..., checkpoint: _Optional[bytes] = ..., messages: _Optional[_Iterable[str]] = ...) -> None: ...

class GetHeteroEngineRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetHeteroEngineResponse(_message.Message):
    __slots__ = ("engine", "checkpoint")
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    engine: HeteroEngineStats
    checkpoint: bytes
    def __init__(self, engine: _Optional[_Union[HeteroEngineStats, _Mapping]] = ..., checkpoint: _Optional[bytes] = ...) -> None: ...

class SearchShardRequest(_message.Message):
    __slots__ = ("search",)
    SEARCH_FIELD_NUMBER: _ClassVar[int]
    search: SearchLearnwaresRequest
    def __init__(self, search: _Optional[_Union[SearchLearnwaresRequest, _Mapping]] = ...) -> None: ...

class SearchShardResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: ShardResult
    def __init__(self, result: _Optional[_Union[ShardResult, _Mapping]] = ...) -> None: ...

class MergeSearchResultsRequest(_message.Message):
    __slots__ = ("search", "shards")
    SEARCH_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    search: SearchLearnwaresRequest
    shards: _containers.RepeatedCompositeFieldContainer[ShardResult]
    def __init__(self, search: _Optional[_Union[SearchLearnwaresRequest, _Mapping]] = ..., shards: _Optional[_Iterable[_Union[ShardResult, _Mapping]]] = ...) -> None: ...

class MergeSearchResultsResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: SearchLearnwaresResponse
    def __init__(self, result: _Optional[_Union[SearchLearnwaresResponse, _Mapping]] = ...) -> None: ...

class DistanceSummary(_message.Message):
    __slots__ = ("count", "sum", "min", "max")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SUM_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    count: int
    sum: float
    min: float
    max: float
    def __init__(self, count: _Optional[int] = ..., sum: _Optional[float] = ..., min: _Optional[float] = ..., max: _Optional[float] = ...) -> None: ...

class ShardCandidate(_message.Message):
    __slots__ = ("learnware", "semantic_score", "mmd", "stat_spec", "self_term")
    LEARNWARE_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_SCORE_FIELD_NUMBER: _ClassVar[int]
    MMD_FIELD_NUMBER: _ClassVar[int]
    STAT_SPEC_FIELD_NUMBER: _ClassVar[int]
    SELF_TERM_FIELD_NUMBER: _ClassVar[int]
    learnware: _common_pb2.LearnwareInfo
    semantic_score: float
    mmd: float
    stat_spec: _common_pb2.StatSpec
    self_term: float
    def __init__(self, learnware: _Optional[_Union[_common_pb2.LearnwareInfo, _Mapping]] = ..., semantic_score: _Optional[float] = ..., mmd: _Optional[float] = ..., stat_spec: _Optional[_Union[_common_pb2.StatSpec, _Mapping]] = ..., self_term: _Optional[float] = ...) -> None: ...

class ShardResult(_message.Message):
    __slots__ = ("shard", "semantic_matches", "fuzzy_text_match", "candidates", "distances", "comparable_count", "incomparable_groups", "indexed")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_MATCHES_FIELD_NUMBER: _ClassVar[int]
    FUZZY_TEXT_MATCH_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    DISTANCES_FIELD_NUMBER: _ClassVar[int]
    COMPARABLE_COUNT_FIELD_NUMBER: _ClassVar[int]
    INCOMPARABLE_GROUPS_FIELD_NUMBER: _ClassVar[int]
    INDEXED_FIELD_NUMBER: _ClassVar[int]
    shard: str
    semantic_matches: int
    fuzzy_text_match: bool
    candidates: _containers.RepeatedCompositeFieldContainer[ShardCandidate]
    distances: DistanceSummary
    comparable_count: int
    incomparable_groups: _containers.RepeatedScalarFieldContainer[str]
    indexed: bool
    def __init__(self, shard: _Optional[str] = ..., semantic_matches: _Optional[int] = ..., fuzzy_text_match: bool = ..., candidates: _Optional[_Iterable[_Union[ShardCandidate, _Mapping]]] = ..., distances: _Optional[_Union[DistanceSummary, _Mapping]] = ..., comparable_count: _Optional[int] = ..., incomparable_groups: _Optional[_Iterable[str]] = ..., indexed: bool = ...) -> None: ...
