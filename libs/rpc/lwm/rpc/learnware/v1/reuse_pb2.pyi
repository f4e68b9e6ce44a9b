from lwm.rpc.learnware.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_KIND_UNSPECIFIED: _ClassVar[TaskKind]
    TASK_KIND_CLASSIFICATION: _ClassVar[TaskKind]
    TASK_KIND_REGRESSION: _ClassVar[TaskKind]

class AveragingMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AVERAGING_MODE_UNSPECIFIED: _ClassVar[AveragingMode]
    AVERAGING_MODE_MEAN: _ClassVar[AveragingMode]
    AVERAGING_MODE_VOTE_BY_LABEL: _ClassVar[AveragingMode]
    AVERAGING_MODE_VOTE_BY_PROB: _ClassVar[AveragingMode]
TASK_KIND_UNSPECIFIED: TaskKind
TASK_KIND_CLASSIFICATION: TaskKind
TASK_KIND_REGRESSION: TaskKind
AVERAGING_MODE_UNSPECIFIED: AveragingMode
AVERAGING_MODE_MEAN: AveragingMode
AVERAGING_MODE_VOTE_BY_LABEL: AveragingMode
AVERAGING_MODE_VOTE_BY_PROB: AveragingMode

class LabelledData(_message.Message):
    __slots__ = ("x", "y")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    x: _common_pb2.Tensor
    y: _common_pb2.Tensor
    def __init__(self, x: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., y: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ...) -> None: ...

class PredictRequest(_message.Message):
    __slots__ = ("learnware_id", "x")
    LEARNWARE_ID_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    learnware_id: str
    x: _common_pb2.Tensor
    def __init__(self, learnware_id: _Optional[str] = ..., x: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("predictions",)
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    predictions: _common_pb2.Tensor
    def __init__(self, predictions: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ...) -> None: ...

class JobSelectorParams(_message.Message):
    __slots__ = ("user_spec", "herding_num")
    USER_SPEC_FIELD_NUMBER: _ClassVar[int]
    HERDING_NUM_FIELD_NUMBER: _ClassVar[int]
    user_spec: _common_pb2.StatSpec
    herding_num: int
    def __init__(self, user_spec: _Optional[_Union[_common_pb2.StatSpec, _Mapping]] = ..., herding_num: _Optional[int] = ...) -> None: ...

class AveragingParams(_message.Message):
    __slots__ = ("mode",)
    MODE_FIELD_NUMBER: _ClassVar[int]
    mode: AveragingMode
    def __init__(self, mode: _Optional[_Union[AveragingMode, str]] = ...) -> None: ...

class EnsemblePruningParams(_message.Message):
    __slots__ = ("train", "task")
    TRAIN_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    train: LabelledData
    task: TaskKind
    def __init__(self, train: _Optional[_Union[LabelledData, _Mapping]] = ..., task: _Optional[_Union[TaskKind, str]] = ...) -> None: ...

class FeatureAugmentParams(_message.Message):
    __slots__ = ("train", "task")
    TRAIN_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    train: LabelledData
    task: TaskKind
    def __init__(self, train: _Optional[_Union[LabelledData, _Mapping]] = ..., task: _Optional[_Union[TaskKind, str]] = ...) -> None: ...

class HeteroAlignParams(_message.Message):
    __slots__ = ("user_semantic_spec", "train", "task")
    USER_SEMANTIC_SPEC_FIELD_NUMBER: _ClassVar[int]
    TRAIN_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    user_semantic_spec: _common_pb2.SemanticSpec
    train: LabelledData
    task: TaskKind
    def __init__(self, user_semantic_spec: _Optional[_Union[_common_pb2.SemanticSpec, _Mapping]] = ..., train: _Optional[_Union[LabelledData, _Mapping]] = ..., task: _Optional[_Union[TaskKind, str]] = ...) -> None: ...

class ReuseRequest(_message.Message):
    __slots__ = ("learnware_ids", "x", "job_selector", "averaging", "ensemble_pruning", "feature_augment", "hetero_align")
    LEARNWARE_IDS_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    JOB_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    AVERAGING_FIELD_NUMBER: _ClassVar[int]
    ENSEMBLE_PRUNING_FIELD_NUMBER: _ClassVar[int]
    FEATURE_AUGMENT_FIELD_NUMBER: _ClassVar[int]
    HETERO_ALIGN_FIELD_NUMBER: _ClassVar[int]
    learnware_ids: _containers.RepeatedScalarFieldContainer[str]
    x: _common_pb2.Tensor
    job_selector: JobSelectorParams
    averaging: AveragingParams
    ensemble_pruning: EnsemblePruningParams
    feature_augment: FeatureAugmentParams
    hetero_align: HeteroAlignParams
    def __init__(self, learnware_ids: _Optional[_Iterable[str]] = ..., x: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., job_selector: _Optional[_Union[JobSelectorParams, _Mapping]] = ..., averaging: _Optional[_Union[AveragingParams, _Mapping]] = ..., ensemble_pruning: _Optional[_Union[EnsemblePruningParams, _Mapping]] = ..., feature_augment: _Optional[_Union[FeatureAugmentParams, _Mapping]] = ..., hetero_align: _Optional[_Union[HeteroAlignParams, _Mapping]] = ...) -> None: ...

class ReuseResponse(_message.Message):
    __slots__ = ("predictions", "messages")
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    predictions: _common_pb2.Tensor
    messages: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, predictions: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., messages: _Optional[_Iterable[str]] = ...) -> None: ...

class ReuseStreamRequest(_message.Message):
    __slots__ = ("reuse", "block_rows")
    REUSE_FIELD_NUMBER: _ClassVar[int]
    BLOCK_ROWS_FIELD_NUMBER: _ClassVar[int]
    reuse: ReuseRequest
    block_rows: int
    def __init__(self, reuse: _Optional[_Union[ReuseRequest, _Mapping]] = ..., block_rows: _Optional[int] = ...) -> None: ...

class ReuseStreamResponse(_message.Message):
    __slots__ = ("row_offset", "predictions", "rows_done", "rows_total", "messages")
    ROW_OFFSET_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    ROWS_DONE_FIELD_NUMBER: _ClassVar[int]
    ROWS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    row_offset: int
    predictions: _common_pb2.Tensor
    rows_done: int
    rows_total: int
    messages: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, row_offset: _Optional[int] = ..., predictions: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., rows_done: _Optional[int] = ..., rows_total: _Optional[int] = ..., messages: _Optional[_Iterable[str]] = ...) -> None: ...
