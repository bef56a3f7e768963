"""The gateway's OpenAPI 3.1 document, generated from the protobuf descriptors (pure).

Schemas follow the proto3 JSON mapping the gateway speaks: snake_case names, enums by name, 64-bit
integers as strings, Timestamps as RFC 3339. Descriptions are the contracts' own comments, read from
the descriptor set ``make protos`` writes with source info (without it, the document has no prose).
"""
from pathlib import Path

from google.protobuf import descriptor as d
from google.protobuf import descriptor_pb2

from services.gateway.transcoding import API_PREFIX, HTTP_STATUS

INT32_TYPES = {d.FieldDescriptor.TYPE_INT32, d.FieldDescriptor.TYPE_SINT32, d.FieldDescriptor.TYPE_SFIXED32}
UINT32_TYPES = {d.FieldDescriptor.TYPE_UINT32, d.FieldDescriptor.TYPE_FIXED32}
INT64_TYPES = {d.FieldDescriptor.TYPE_INT64, d.FieldDescriptor.TYPE_SINT64, d.FieldDescriptor.TYPE_SFIXED64,
               d.FieldDescriptor.TYPE_UINT64, d.FieldDescriptor.TYPE_FIXED64}
WRAPPERS = {
    "google.protobuf.StringValue": {"type": "string"},
    "google.protobuf.BoolValue": {"type": "boolean"},
    "google.protobuf.DoubleValue": {"type": "number"},
    "google.protobuf.FloatValue": {"type": "number"},
    "google.protobuf.Int32Value": {"type": "integer", "format": "int32"},
    "google.protobuf.UInt32Value": {"type": "integer", "minimum": 0},
    "google.protobuf.Int64Value": {"type": "string", "pattern": r"^-?[0-9]{1,19}$"},
    "google.protobuf.UInt64Value": {"type": "string", "pattern": r"^[0-9]{1,20}$"},
    "google.protobuf.BytesValue": {"type": "string", "contentEncoding": "base64"},
}
WELL_KNOWN = {
    # Years 1..9999 are what a Timestamp can hold; the pattern keeps generated examples inside them.
    "google.protobuf.Timestamp": {
        "type": "string", "format": "date-time",
        "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z$"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]{1,12}(\.[0-9]{1,9})?s$"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Empty": {"type": "object", "additionalProperties": False},
    **WRAPPERS,
}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["code", "http_status", "message", "field_violations"],
        "properties": {
            "code": {"type": "string", "description": "gRPC status code name, e.g. INVALID_ARGUMENT"},
            "http_status": {"type": "integer"},
            "message": {"type": "string"},
            "field_violations": {"type": "array", "items": {
                "type": "object", "required": ["field", "description"],
                "properties": {"field": {"type": "string"}, "description": {"type": "string"}}}},
            "trace_id": {"type": "string", "description": "quote it to operators: it finds the log lines"},
        },
    }},
}


def load_comments(descriptor_set: Path | None) -> dict[str, str]:
    """Full name (message, field, enum, service method) -> its leading comment."""
    if not descriptor_set or not descriptor_set.exists():
        return {}
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
    comments = {}
    for file in files.file:
        # Source locations are paths of field numbers in descriptor.proto: 4 = message_type,
        # 5 = enum_type, 6 = service; inside a message 2 = field, 3 = nested_type, 4 = enum_type.
        by_path = {tuple(loc.path): loc.leading_comments.strip() for loc in file.source_code_info.location
                   if loc.leading_comments.strip()}
        _message_comments(file.message_type, file.package, (4,), by_path, comments)
        for index, enum in enumerate(file.enum_type):
            comments[f"{file.package}.{enum.name}"] = by_path.get((5, index), "")
        for service_index, service in enumerate(file.service):
            for method_index, method in enumerate(service.method):
                comments[f"{file.package}.{service.name}.{method.name}"] = by_path.get(
                    (6, service_index, 2, method_index), "")
    return {name: text for name, text in comments.items() if text}


def _message_comments(protos, prefix: str, path: tuple, by_path: dict, comments: dict) -> None:
    for index, message in enumerate(protos):
        name, here = f"{prefix}.{message.name}", (*path, index)
        comments[name] = by_path.get(here, "")
        for field_index, field in enumerate(message.field):
            comments[f"{name}.{field.name}"] = by_path.get((*here, 2, field_index), "")
        _message_comments(message.nested_type, name, (*here, 3), by_path, comments)
        for enum_index, enum in enumerate(message.enum_type):
            comments[f"{name}.{enum.name}"] = by_path.get((*here, 4, enum_index), "")


class SchemaBuilder:
    def __init__(self, comments: dict[str, str]):
        self.comments = comments
        self.components: dict[str, dict] = {}

    def ref(self, message: d.Descriptor) -> dict:
        if message.full_name in WELL_KNOWN:
            return dict(WELL_KNOWN[message.full_name])
        if message.full_name not in self.components:
            self.components[message.full_name] = {}  # placeholder first: messages may refer to themselves
            self.components[message.full_name] = self._message(message)
        return {"$ref": f"#/components/schemas/{message.full_name}"}

    def _message(self, message: d.Descriptor) -> dict:
        properties = {}
        for field in message.fields:
            schema = self._field(field)
            if self.comments.get(f"{message.full_name}.{field.name}"):
                schema = {**schema, "description": self.comments[f"{message.full_name}.{field.name}"]}
            properties[field.name] = schema
        schema = {"type": "object", "properties": properties, "additionalProperties": False}
        if self.comments.get(message.full_name):
            schema["description"] = self.comments[message.full_name]
        return schema

    def _field(self, field: d.FieldDescriptor) -> dict:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value = field.message_type.fields_by_name["value"]
            return {"type": "object", "additionalProperties": self._single(value)}
        if field.is_repeated:
            return {"type": "array", "items": self._single(field)}
        return self._single(field)

    def _single(self, field: d.FieldDescriptor) -> dict:
        kind = field.type
        if kind == d.FieldDescriptor.TYPE_MESSAGE:
            return self.ref(field.message_type)
        if kind == d.FieldDescriptor.TYPE_ENUM:
            return {"type": "string", "enum": [value.name for value in field.enum_type.values]}
        if kind in INT32_TYPES:
            return {"type": "integer", "minimum": -2**31, "maximum": 2**31 - 1}
        if kind in UINT32_TYPES:
            return {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}
        if kind in INT64_TYPES:
            return {"type": "string", "pattern": r"^-?[0-9]{1,19}$"}
        if kind in (d.FieldDescriptor.TYPE_DOUBLE, d.FieldDescriptor.TYPE_FLOAT):
            return {"type": "number"}
        if kind == d.FieldDescriptor.TYPE_BOOL:
            return {"type": "boolean"}
        if kind == d.FieldDescriptor.TYPE_BYTES:
            return {"type": "string", "contentEncoding": "base64"}
        return {"type": "string"}


def _upload_body(builder: "SchemaBuilder", rpc, shape) -> dict:
    """multipart/form-data: the header part as JSON, then the file parts (named after their table
    when the RPC takes several files)."""
    header = rpc.method.input_type.fields_by_name[shape.header_field].message_type
    properties = {"header": builder.ref(header)}
    required = ["header"]
    file_start = rpc.method.input_type.fields_by_name[shape.file_field].message_type if shape.file_field else None
    table = file_start.fields_by_name.get("table") if file_start else None
    if table is not None and table.enum_type is not None:
        names = [v.name.split("_TABLE_", 1)[-1].lower() for v in table.enum_type.values if v.number]
        properties |= {name: {"type": "string", "format": "binary"} for name in names}
        required.append(names[0])
    else:
        properties["file"] = {"type": "string", "format": "binary"}
        required.append("file")
    return {"required": True, "content": {"multipart/form-data": {
        "schema": {"type": "object", "properties": properties, "required": required},
        "encoding": {"header": {"contentType": "application/json"}}}}}


def openapi_document(rpcs, comments: dict[str, str], version: str, uploads=(), downloads=()) -> dict:
    """``rpcs``: unary RPCs (JSON in and out); ``uploads``: (rpc, UploadShape) taking multipart
    files; ``downloads``: RPCs whose answer is a file's bytes."""
    builder = SchemaBuilder(comments)
    error = {"$ref": "#/components/schemas/Error"}
    paths = {}
    operations = [(rpc, "json") for rpc in rpcs] + [(rpc, shape) for rpc, shape in uploads] + \
        [(rpc, "download") for rpc in downloads]
    for rpc, kind in sorted(operations, key=lambda o: o[0].http_path):
        if kind == "download":
            ok = {"description": "the file's bytes, with its Content-Type and Content-Disposition",
                  "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}
        else:
            ok = {"description": "the response message",
                  "content": {"application/json": {"schema": builder.ref(rpc.method.output_type)}}}
        responses = {"200": ok}
        for status in sorted({str(code) for code in HTTP_STATUS.values()} | {"413", "500"}):
            responses[status] = {"description": "an error with its gRPC status code and field violations",
                                 "content": {"application/json": {"schema": error}}}
        body = _upload_body(builder, rpc, kind) if kind not in ("json", "download") else {
            "required": True, "content": {"application/json": {"schema": builder.ref(rpc.method.input_type)}}}
        paths[rpc.http_path] = {"post": {
            "operationId": f"{rpc.service}.{rpc.name}",
            "tags": [rpc.service],
            "summary": rpc.name,
            "description": comments.get(rpc.method.full_name, ""),
            "requestBody": body,
            "responses": responses,
        }}
    paths[f"{API_PREFIX}/me"] = {"get": {
        "operationId": "me", "tags": ["session"], "summary": "Who the bearer token belongs to",
        "responses": {
            "200": {"description": "the caller", "content": {"application/json": {"schema": {
                "type": "object", "required": ["id", "role", "team"],
                "properties": {"id": {"type": "string"}, "role": {"type": "string"}, "team": {"type": "string"}}}}}},
            "401": {"description": "no or unknown token", "content": {"application/json": {"schema": error}}},
        },
    }}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Leadflow API", "version": version,
                 "description": "HTTP/JSON gateway over Leadflow's gRPC services. Every unary RPC of the "
                                "contracts is POST /api/v1/{service}/{Method} with the request message as "
                                "proto3 JSON (snake_case names, enums by name, 64-bit integers as strings)."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": ERROR_SCHEMA, **builder.components},
        },
    }
