"""HTTP routes of a gRPC service, read from the google.api.http rules in its descriptor.

A route knows its HTTP method, its path template (`/v1/learnwares/{learnware_id}:recheck`),
which part of the request comes from the body, and how to build the request message from
path parameters, query parameters and the JSON body (proto3 JSON mapping).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from google.api import annotations_pb2, http_pb2
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

CHUNK_TYPE = "learnware.v1.Chunk"
_VARIABLE = re.compile(r"\{([a-z_][a-z0-9_.]*)\}")


class BadRequestError(ValueError):
    """The HTTP request cannot become the gRPC request; its message says why."""


@dataclass(frozen=True)
class Route:
    """One RPC reached over HTTP."""

    method: MethodDescriptor
    verb: str  # GET, POST, PATCH, DELETE, PUT
    template: str  # the rule's path, e.g. /v1/learnwares/{learnware_id}
    body: str  # "" (no body), "*" (the whole request) or a field name
    pattern: re.Pattern[str]
    path_fields: tuple[str, ...]

    @property
    def request_type(self) -> Descriptor:
        return self.method.input_type

    @property
    def response_type(self) -> Descriptor:
        return self.method.output_type

    @property
    def upload(self) -> bool:
        """A client stream: a multipart form with the first message's part and the file chunks."""
        return bool(self.method.client_streaming)

    @property
    def download(self) -> bool:
        """A server stream of file chunks: the bytes as one chunked HTTP body."""
        return bool(self.method.server_streaming) and chunk_field(self.response_type) is not None

    def new_request(self) -> Message:
        return GetMessageClass(self.request_type)()


def chunk_field(message: Descriptor) -> FieldDescriptor | None:
    """The field of type Chunk of a stream message, if it carries file bytes."""
    for field in message.fields:
        if field.message_type is not None and field.message_type.full_name == CHUNK_TYPE:
            return field
    return None


def routes_of(service: ServiceDescriptor) -> list[Route]:
    """The routes of every method of `service` that has a google.api.http rule.

    Literal paths come before templated ones so that `/v1/learnwares:search` is not read as
    the id "learnwares:search" of some other route.
    """
    routes = []
    for method in service.methods:
        options = method.GetOptions()
        if not options.HasExtension(annotations_pb2.http):
            continue
        rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]
        verb = rule.WhichOneof("pattern")
        if verb is None or verb == "custom":
            raise ValueError(f"{method.full_name}: unsupported google.api.http rule {rule}")
        template = getattr(rule, verb)
        routes.append(_route(method, verb.upper(), template, rule.body))
    return sorted(routes, key=lambda route: (len(route.path_fields), -len(route.template)))


def _route(method: MethodDescriptor, verb: str, template: str, body: str) -> Route:
    path_fields = tuple(_VARIABLE.findall(template))
    for name in path_fields:
        _field_path(method.input_type, name)  # fails early on a rule naming an unknown field
    if body not in ("", "*"):
        _field_path(method.input_type, body)
    parts = _VARIABLE.split(template)
    regex = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{_group(part)}>[^/]+?)" for i, part in enumerate(parts))
    return Route(method, verb, template, body, re.compile(regex), path_fields)


def _group(field_path: str) -> str:
    return field_path.replace(".", "__")


def match(routes: list[Route], verb: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
    """The route for `verb path`, its path parameters, and whether the path matched another verb."""
    path_known = False
    for route in routes:
        found = route.pattern.fullmatch(path)
        if found is None:
            continue
        if route.verb != verb:
            path_known = True
            continue
        return route, {name: found.group(_group(name)) for name in route.path_fields}, True
    return None, {}, path_known


def _field_path(message: Descriptor, dotted: str) -> list[FieldDescriptor]:
    fields = []
    current: Descriptor | None = message
    for name in dotted.split("."):
        field = None if current is None else current.fields_by_name.get(name) or next((f for f in current.fields if f.json_name == name), None)
        if field is None:
            raise BadRequestError(f"unknown field {dotted!r} of {message.full_name}")
        fields.append(field)
        current = field.message_type
    return fields


def _scalar(field: FieldDescriptor, text: str) -> Any:
    """A query or path value as the JSON value json_format expects for this field."""
    if field.type == FieldDescriptor.TYPE_BOOL:
        if text.lower() not in ("true", "false", "1", "0"):
            raise BadRequestError(f"{field.name} must be true or false, got {text!r}")
        return text.lower() in ("true", "1")
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        try:
            return float(text)
        except ValueError:
            raise BadRequestError(f"{field.name} must be a number, got {text!r}") from None
    if field.message_type is not None:
        raise BadRequestError(f"{field.name} is a message: send it in the JSON body")
    return text  # strings, bytes (base64), enums (by name) and integers (as text) parse from text


def _set_path(tree: dict[str, Any], fields: list[FieldDescriptor], value: Any, append: bool) -> None:
    for field in fields[:-1]:
        tree = tree.setdefault(field.name, {})
    last = fields[-1]
    if append:
        tree.setdefault(last.name, []).append(value)
    else:
        tree[last.name] = value


def build_request(route: Route, path_params: dict[str, str], query: list[tuple[str, str]], body: Any) -> Message:
    """The gRPC request of one HTTP call (path parameters win over body and query)."""
    tree: dict[str, Any] = {}
    if route.body == "*":
        if body is not None and not isinstance(body, dict):
            raise BadRequestError("the request body must be a JSON object")
        tree = dict(body or {})
    elif route.body:
        _set_path(tree, _field_path(route.request_type, route.body), body, append=False)
    if route.body != "*":
        for key, text in query:
            fields = _field_path(route.request_type, key)
            last = fields[-1]
            repeated = last.is_repeated
            _set_path(tree, fields, _scalar(last, text), append=repeated)
    for name, text in path_params.items():
        fields = _field_path(route.request_type, name)
        _set_path(tree, fields, _scalar(fields[-1], text), append=False)
    request = route.new_request()
    try:
        json_format.ParseDict(tree, request)
    except json_format.ParseError as error:
        raise BadRequestError(str(error)) from None
    return request


def to_json(message: Message) -> dict[str, Any]:
    """proto3 JSON mapping: lowerCamelCase names, int64 as strings, enums by name, defaults left out."""
    return json_format.MessageToDict(message)
