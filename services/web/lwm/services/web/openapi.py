"""The OpenAPI 3.1 document of the HTTP routes, generated from the proto descriptors.

Schemas follow proto3's JSON mapping: lowerCamelCase names, 64-bit integers as decimal
strings, enums by name, bytes as base64, maps as objects.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from lwm.services.web.transcode import Route, chunk_field

ERROR_SCHEMA = {
    "type": "object",
    "description": "A gRPC status: its code number and name, and the human-readable message.",
    "properties": {"code": {"type": "integer"}, "status": {"type": "string"}, "message": {"type": "string"}},
    "required": ["code", "status", "message"],
}
_INT64_TYPES = (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64)
_UINT64_TYPES = (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64)
_INT32_TYPES = (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32)
_UINT32_TYPES = (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32)


def _ref(descriptor: Descriptor | EnumDescriptor) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{descriptor.full_name}"}


class _Schemas:
    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {"Status": ERROR_SCHEMA}

    def enum(self, enum: EnumDescriptor) -> dict[str, Any]:
        if enum.full_name not in self.schemas:
            self.schemas[enum.full_name] = {"type": "string", "enum": [value.name for value in enum.values]}
        return _ref(enum)

    def message(self, message: Descriptor) -> dict[str, Any]:
        if message.full_name not in self.schemas:
            self.schemas[message.full_name] = {}  # placeholder: recursive messages refer to themselves
            properties = {field.json_name: self.field(field) for field in message.fields}
            self.schemas[message.full_name] = {"type": "object", "properties": properties, "additionalProperties": False}
        return _ref(message)

    def field(self, field: FieldDescriptor) -> dict[str, Any]:
        message = field.message_type
        if message is not None and message.GetOptions().map_entry:
            return {"type": "object", "additionalProperties": self.single(message.fields_by_name["value"])}
        if field.is_repeated:
            return {"type": "array", "items": self.single(field)}
        return self.single(field)

    def single(self, field: FieldDescriptor) -> dict[str, Any]:
        kind = field.type
        if field.message_type is not None:
            return self.message(field.message_type)
        if field.enum_type is not None:
            return self.enum(field.enum_type)
        if kind in _INT64_TYPES:
            return {"type": "string", "format": "int64", "pattern": "^-?[0-9]{1,18}$"}
        if kind in _UINT64_TYPES:
            return {"type": "string", "format": "uint64", "pattern": "^[0-9]{1,19}$"}
        if kind in _INT32_TYPES:
            return {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1}
        if kind in _UINT32_TYPES:
            return {"type": "integer", "format": "uint32", "minimum": 0, "maximum": 2**32 - 1}
        if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return {"type": "number"}
        if kind == FieldDescriptor.TYPE_BOOL:
            return {"type": "boolean"}
        if kind == FieldDescriptor.TYPE_BYTES:
            return {"type": "string", "format": "byte", "contentEncoding": "base64"}
        return {"type": "string"}


def _query_parameters(schemas: _Schemas, message: Descriptor, prefix: str, skip: set[str]) -> list[dict[str, Any]]:
    """Scalar and repeated-scalar fields as query parameters, nested messages as dotted names."""
    parameters = []
    for field in message.fields:
        name = prefix + field.name
        if name in skip:
            continue
        if field.message_type is not None:
            if not field.message_type.GetOptions().map_entry and not field.is_repeated:
                parameters += _query_parameters(schemas, field.message_type, name + ".", skip)
            continue
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": False, "schema": schemas.field(field)}
        if field.is_repeated:
            parameter |= {"style": "form", "explode": True}
        parameters.append(parameter)
    return parameters


def _operation(schemas: _Schemas, route: Route) -> dict[str, Any]:
    method = route.method
    parameters: list[dict[str, Any]] = [{"name": name, "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[^/]+$"}} for name in route.path_fields]
    operation: dict[str, Any] = {"operationId": method.name, "summary": f"{method.containing_service.name}.{method.name}", "tags": [method.containing_service.name]}
    if route.upload:
        stream_type = route.request_type
        chunk = chunk_field(stream_type)
        first = next(field for field in stream_type.fields if field is not chunk)
        assert chunk is not None
        schemas.message(first.message_type)
        operation["description"] = f"Client stream as a multipart form: part {first.name!r} holds {first.message_type.full_name} as JSON, part {chunk.name!r} the file."
        form = {"type": "object", "properties": {first.name: {"type": "string", "contentMediaType": "application/json"}, chunk.name: {"type": "string", "contentMediaType": "application/octet-stream"}}, "required": [first.name, chunk.name]}
        operation["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": form}}}
    elif route.body == "*":
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": schemas.message(route.request_type)}}}
    elif route.body:
        field = route.request_type.fields_by_name[route.body]
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": schemas.field(field)}}}
    if route.body != "*" and not route.upload:
        parameters += _query_parameters(schemas, route.request_type, "", set(route.path_fields) | {route.body})
    if parameters:
        operation["parameters"] = parameters
    if route.download:
        content = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    elif route.method.server_streaming:
        content = {"application/x-ndjson": {"schema": schemas.message(route.response_type)}}
    else:
        content = {"application/json": {"schema": schemas.message(route.response_type)}}
    error = {"description": "A gRPC error: its status mapped to HTTP, the message in the body.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}}}
    operation["responses"] = {"200": {"description": "OK", "content": content}, "default": error}
    return operation


def openapi_document(routes: list[Route], title: str = "Learnware Market API", version: str = "v1") -> dict[str, Any]:
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for route in sorted(routes, key=lambda route: route.template):
        paths.setdefault(route.template, {})[route.verb.lower()] = _operation(schemas, route)
    security = {"bearer": {"type": "http", "scheme": "bearer", "description": "An API token of the market (lwm admin token create)."}}
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": "The MarketService of protos/learnware/v1 over HTTP/JSON (proto3 JSON mapping), generated from its google.api.http rules."},
        "paths": paths,
        "components": {"schemas": schemas.schemas, "securitySchemes": security},
        "security": [{}, {"bearer": []}],
    }
