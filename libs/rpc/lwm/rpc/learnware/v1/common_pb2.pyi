from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LearnwareStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LEARNWARE_STATUS_UNSPECIFIED: _ClassVar[LearnwareStatus]
    LEARNWARE_STATUS_PENDING: _ClassVar[LearnwareStatus]
    LEARNWARE_STATUS_INVALID: _ClassVar[LearnwareStatus]
    LEARNWARE_STATUS_NONUSABLE: _ClassVar[LearnwareStatus]
    LEARNWARE_STATUS_USABLE: _ClassVar[LearnwareStatus]
LEARNWARE_STATUS_UNSPECIFIED: LearnwareStatus
LEARNWARE_STATUS_PENDING: LearnwareStatus
LEARNWARE_STATUS_INVALID: LearnwareStatus
LEARNWARE_STATUS_NONUSABLE: LearnwareStatus
LEARNWARE_STATUS_USABLE: LearnwareStatus

class Tensor(_message.Message):
    __slots__ = ("dtype", "shape", "data", "strings")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    STRINGS_FIELD_NUMBER: _ClassVar[int]
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    strings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ..., strings: _Optional[_Iterable[str]] = ...) -> None: ...

class FeatureDescription(_message.Message):
    __slots__ = ("dimension", "descriptions")
    class DescriptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: str
        def __init__(self, key: _Optional[int] = ..., value: _Optional[str] = ...) -> None: ...
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    dimension: int
    descriptions: _containers.ScalarMap[int, str]
    def __init__(self, dimension: _Optional[int] = ..., descriptions: _Optional[_Mapping[int, str]] = ...) -> None: ...

class SemanticSpec(_message.Message):
    __slots__ = ("data", "task", "library", "scenario", "license", "name", "description", "input", "output", "model")
    DATA_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    LIBRARY_FIELD_NUMBER: _ClassVar[int]
    SCENARIO_FIELD_NUMBER: _ClassVar[int]
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    data: _containers.RepeatedScalarFieldContainer[str]
    task: _containers.RepeatedScalarFieldContainer[str]
    library: _containers.RepeatedScalarFieldContainer[str]
    scenario: _containers.RepeatedScalarFieldContainer[str]
    license: _containers.RepeatedScalarFieldContainer[str]
    name: str
    description: str
    input: FeatureDescription
    output: FeatureDescription
    model: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, data: _Optional[_Iterable[str]] = ..., task: _Optional[_Iterable[str]] = ..., library: _Optional[_Iterable[str]] = ..., scenario: _Optional[_Iterable[str]] = ..., license: _Optional[_Iterable[str]] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., input: _Optional[_Union[FeatureDescription, _Mapping]] = ..., output: _Optional[_Union[FeatureDescription, _Mapping]] = ..., model: _Optional[_Iterable[str]] = ...) -> None: ...

class StatSpec(_message.Message):
    __slots__ = ("type", "z", "beta", "gamma", "num_points", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TYPE_FIELD_NUMBER: _ClassVar[int]
    Z_FIELD_NUMBER: _ClassVar[int]
    BETA_FIELD_NUMBER: _ClassVar[int]
    GAMMA_FIELD_NUMBER: _ClassVar[int]
    NUM_POINTS_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    type: str
    z: Tensor
    beta: Tensor
    gamma: float
    num_points: int
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, type: _Optional[str] = ..., z: _Optional[_Union[Tensor, _Mapping]] = ..., beta: _Optional[_Union[Tensor, _Mapping]] = ..., gamma: _Optional[float] = ..., num_points: _Optional[int] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CheckStep(_message.Message):
    __slots__ = ("name", "passed", "messages", "duration_s")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    name: str
    passed: bool
    messages: _containers.RepeatedScalarFieldContainer[str]
    duration_s: float
    def __init__(self, name: _Optional[str] = ..., passed: bool = ..., messages: _Optional[_Iterable[str]] = ..., duration_s: _Optional[float] = ...) -> None: ...

class CheckReport(_message.Message):
    __slots__ = ("status", "steps", "dropped_requirements", "checked_at")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_REQUIREMENTS_FIELD_NUMBER: _ClassVar[int]
    CHECKED_AT_FIELD_NUMBER: _ClassVar[int]
    status: LearnwareStatus
    steps: _containers.RepeatedCompositeFieldContainer[CheckStep]
    dropped_requirements: _containers.RepeatedScalarFieldContainer[str]
    checked_at: float
    def __init__(self, status: _Optional[_Union[LearnwareStatus, str]] = ..., steps: _Optional[_Iterable[_Union[CheckStep, _Mapping]]] = ..., dropped_requirements: _Optional[_Iterable[str]] = ..., checked_at: _Optional[float] = ...) -> None: ...

class LearnwareInfo(_message.Message):
    __slots__ = ("id", "owner", "semantic_spec", "status", "check_report", "stat_spec_types", "created_at", "updated_at", "zip_size", "zip_sha256", "revision", "market_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_SPEC_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CHECK_REPORT_FIELD_NUMBER: _ClassVar[int]
    STAT_SPEC_TYPES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    ZIP_SIZE_FIELD_NUMBER: _ClassVar[int]
    ZIP_SHA256_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    MARKET_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    owner: str
    semantic_spec: SemanticSpec
    status: LearnwareStatus
    check_report: CheckReport
    stat_spec_types: _containers.RepeatedScalarFieldContainer[str]
    created_at: float
    updated_at: float
    zip_size: int
    zip_sha256: str
    revision: int
    market_id: str
    def __init__(self, id: _Optional[str] = ..., owner: _Optional[str] = ..., semantic_spec: _Optional[_Union[SemanticSpec, _Mapping]] = ..., status: _Optional[_Union[LearnwareStatus, str]] = ..., check_report: _Optional[_Union[CheckReport, _Mapping]] = ..., stat_spec_types: _Optional[_Iterable[str]] = ..., created_at: _Optional[float] = ..., updated_at: _Optional[float] = ..., zip_size: _Optional[int] = ..., zip_sha256: _Optional[str] = ..., revision: _Optional[int] = ..., market_id: _Optional[str] = ...) -> None: ...

class Chunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class PageRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...
