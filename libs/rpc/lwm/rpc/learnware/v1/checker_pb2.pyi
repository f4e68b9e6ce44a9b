from lwm.rpc.learnware.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CheckLearnwareRequest(_message.Message):
    __slots__ = ("learnware_id",)
    LEARNWARE_ID_FIELD_NUMBER: _ClassVar[int]
    learnware_id: str
    def __init__(self, learnware_id: _Optional[str] = ...) -> None: ...

class CheckLearnwareResponse(_message.Message):
    __slots__ = ("report",)
    REPORT_FIELD_NUMBER: _ClassVar[int]
    report: _common_pb2.CheckReport
    def __init__(self, report: _Optional[_Union[_common_pb2.CheckReport, _Mapping]] = ...) -> None: ...

class CheckSemanticSpecRequest(_message.Message):
    __slots__ = ("semantic_spec",)
    SEMANTIC_SPEC_FIELD_NUMBER: _ClassVar[int]
    semantic_spec: _common_pb2.SemanticSpec
    def __init__(self, semantic_spec: _Optional[_Union[_common_pb2.SemanticSpec, _Mapping]] = ...) -> None: ...

class CheckSemanticSpecResponse(_message.Message):
    __slots__ = ("valid", "problems")
    VALID_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    valid: bool
    problems: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, valid: bool = ..., problems: _Optional[_Iterable[str]] = ...) -> None: ...
