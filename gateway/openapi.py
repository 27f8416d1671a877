"""Build the REST surface's OpenAPI 3.0 document from the compiled contract (the descriptor set Envoy transcodes with).

Our own generator rather than Debian's `protoc-gen-swagger`: that one refuses parts of these protos (proto3
`optional`, several packages in one file, client-streaming methods with path parameters), and what it emits is not
what the gateway speaks (proto field names instead of the JSON names, no security, no error bodies, nothing required).
Reading the same descriptor set Envoy's grpc_json_transcoder loads lets the document state exactly what the gateway
does: the proto3 JSON mapping (lowerCamelCase names, 64-bit integers as strings, bytes as base64, enums by name,
Timestamps as RFC 3339), `google.api.http` bindings (path, body and query parameters), `(flowdock.api.v1.public)`
methods without a token, `google.api.field_behavior` REQUIRED fields, and the `google.rpc.Status` error body.
Deterministic output: `tools/gen.py --check` compares it byte for byte.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.api import annotations_pb2, field_behavior_pb2, http_pb2
from google.protobuf import descriptor_pb2

from gateway.descriptor import DescriptorError, _bindings

try:  # as in gateway.descriptor: installed, or from a plain checkout's gen/python
    from flowdock.api.v1 import options_pb2
except ImportError:  # pragma: no cover
    from gateway.descriptor import options_pb2  # type: ignore[attr-defined]

__all__ = ["build_openapi", "render_openapi"]

FDP = descriptor_pb2.FieldDescriptorProto
HTTP_BODY = "google.api.HttpBody"
STATUS = "google.rpc.Status"
TITLE = "FlowDock REST API"
#: Where the gateway serves this document (see gateway.envoy_config).
OPENAPI_PATH = "/api/v1/openapi.json"
LINK_SESSION_HEADER = "X-Link-Session"

_INT64 = {FDP.TYPE_INT64, FDP.TYPE_SINT64, FDP.TYPE_SFIXED64}
_UINT64 = {FDP.TYPE_UINT64, FDP.TYPE_FIXED64}
_INT32 = {FDP.TYPE_INT32, FDP.TYPE_SINT32, FDP.TYPE_SFIXED32}
_UINT32 = {FDP.TYPE_UINT32, FDP.TYPE_FIXED32}

# Well-known types travel in their special JSON forms (proto3 JSON mapping), never as objects of their fields.
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time", "example": "2026-01-31T12:00:00Z"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$", "example": "1.5s"},
    "google.protobuf.FieldMask": {"type": "string", "description": "Comma-separated lowerCamelCase field paths."},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Any": {
        "type": "object",
        "required": ["@type"],
        "properties": {"@type": {"type": "string"}},
        "additionalProperties": True,
    },
    "google.protobuf.StringValue": {"type": "string", "nullable": True},
    "google.protobuf.BytesValue": {"type": "string", "format": "byte", "nullable": True},
    "google.protobuf.BoolValue": {"type": "boolean", "nullable": True},
    "google.protobuf.Int32Value": {"type": "integer", "format": "int32", "nullable": True},
    "google.protobuf.UInt32Value": {"type": "integer", "format": "int64", "minimum": 0, "nullable": True},
    "google.protobuf.Int64Value": {"type": "string", "format": "int64", "pattern": r"^-?[0-9]+$", "nullable": True},
    "google.protobuf.UInt64Value": {"type": "string", "format": "uint64", "pattern": r"^[0-9]+$", "nullable": True},
    "google.protobuf.FloatValue": {"type": "number", "format": "float", "nullable": True},
    "google.protobuf.DoubleValue": {"type": "number", "format": "double", "nullable": True},
}

# How Envoy's transcoder (convert_grpc_status) and the gateway's local replies answer each gRPC code over HTTP.
# Every error body is a google.rpc.Status.
_ERROR_STATUSES: tuple[tuple[str, str], ...] = (
    (
        "400",
        "INVALID_ARGUMENT (the field is named; details carry a google.rpc.BadRequest), FAILED_PRECONDITION "
        "(says what to do first) or OUT_OF_RANGE.",
    ),
    ("401", "UNAUTHENTICATED: no, an expired or an invalid access token (or wrong credentials on login)."),
    ("403", "PERMISSION_DENIED, or a token for another audience."),
    ("404", "NOT_FOUND: also what another account's ids and unknown, revoked or expired link tokens answer."),
    ("409", "ALREADY_EXISTS (a name is taken) or ABORTED (a concurrent change: retry)."),
    ("413", "A request body over the gateway's limit for this route."),
    ("429", "RESOURCE_EXHAUSTED: a rate limit or a size/quota limit; the message names the limit."),
    ("499", "CANCELLED: the client went away."),
    ("500", "INTERNAL, UNKNOWN or DATA_LOSS: a bug; never an answer to bad input."),
    ("501", "UNIMPLEMENTED."),
    ("503", "UNAVAILABLE: a service, its database or the virus scanner is starting or restarting; retry shortly."),
    ("504", "DEADLINE_EXCEEDED."),
    (
        "507",
        "RESOURCE_EXHAUSTED with reason DISK_FULL: the server's data disk (or its database's) is full, not your "
        "storage quota; nothing of the call was kept. Retry after Retry-After, once the operator freed space.",
    ),
)

#: Downloads that serve HTTP Range requests (a client resuming a broken transfer): 206 with Content-Range, or 416
#: when the range starts beyond the content (storage_svc/servicer.py, the gateway's _CONTENT_LENGTH_LUA).
_RANGED_DOWNLOADS = frozenset(
    {
        "flowdock.storage.v1.StorageService.DownloadFile",
        "flowdock.storage.v1.StorageService.DownloadByUrl",
        "flowdock.storage.v1.PublicLinkService.DownloadLinkFile",
    }
)
_RANGE_HEADERS = (
    {
        "name": "Range",
        "in": "header",
        "required": False,
        "description": "One byte range (`bytes=first-`, `bytes=first-last` or `bytes=-suffix`): the answer is 206 "
        "with Content-Range. Several ranges, or another unit, are answered with the whole content (200).",
        "schema": {"type": "string", "pattern": r"^bytes=[0-9]*-[0-9]*$"},
    },
    {
        "name": "If-Range",
        "in": "header",
        "required": False,
        "description": "The ETag of the content the range was computed on: if the content changed since, the "
        "whole new content is sent (200).",
        "schema": {"type": "string"},
    },
)


def _camel(name: str) -> str:
    """protoc's default json_name (used when the descriptor lacks one)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _json_name(f: FDP) -> str:
    return f.json_name or _camel(f.name)


def _clean(comment: str) -> str:
    lines = [line.strip() for line in comment.strip().splitlines()]
    return " ".join(line for line in lines if line and not line.startswith("buf:lint"))


@dataclass
class _Index:
    """Messages and enums by full name, with their comments and the package they come from."""

    messages: dict[str, descriptor_pb2.DescriptorProto] = field(default_factory=dict)
    enums: dict[str, descriptor_pb2.EnumDescriptorProto] = field(default_factory=dict)
    comments: dict[tuple[str, str], str] = field(default_factory=dict)  # (full name, field name or "") -> text
    enum_comments: dict[tuple[str, str], str] = field(default_factory=dict)
    method_comments: dict[tuple[str, str], str] = field(default_factory=dict)
    service_comments: dict[str, str] = field(default_factory=dict)

    def add_file(self, file: descriptor_pb2.FileDescriptorProto) -> None:
        by_path = {tuple(loc.path): _clean(loc.leading_comments) for loc in file.source_code_info.location}
        prefix = f".{file.package}" if file.package else ""

        def walk_enum(e: descriptor_pb2.EnumDescriptorProto, scope: str, path: tuple[int, ...]) -> None:
            name = f"{scope}.{e.name}"
            self.enums[name] = e
            self.enum_comments[(name, "")] = by_path.get(path, "")
            for i, v in enumerate(e.value):
                self.enum_comments[(name, v.name)] = by_path.get((*path, 2, i), "")

        def walk(m: descriptor_pb2.DescriptorProto, scope: str, path: tuple[int, ...]) -> None:
            name = f"{scope}.{m.name}"
            self.messages[name] = m
            self.comments[(name, "")] = by_path.get(path, "")
            for i, f in enumerate(m.field):
                self.comments[(name, f.name)] = by_path.get((*path, 2, i), "")
            for i, nested in enumerate(m.nested_type):
                walk(nested, name, (*path, 3, i))
            for i, e in enumerate(m.enum_type):
                walk_enum(e, name, (*path, 4, i))

        for i, m in enumerate(file.message_type):
            walk(m, prefix, (4, i))
        for i, e in enumerate(file.enum_type):
            walk_enum(e, prefix, (5, i))
        for i, svc in enumerate(file.service):
            svc_name = f"{file.package}.{svc.name}"
            self.service_comments[svc_name] = by_path.get((6, i), "")
            for j, rpc in enumerate(svc.method):
                self.method_comments[(svc_name, rpc.name)] = by_path.get((6, i, 2, j), "")


def _required(f: FDP) -> bool:
    return field_behavior_pb2.REQUIRED in f.options.Extensions[field_behavior_pb2.field_behavior]


def _has_presence(f: FDP) -> bool:
    """Fields the transcoder leaves out of a response when unset (always_print_primitive_fields prints the rest,
    except in sparse_json methods' compact answers)."""
    return (f.type == FDP.TYPE_MESSAGE and f.label != FDP.LABEL_REPEATED) or f.HasField("oneof_index")


class _Builder:
    def __init__(self, index: _Index) -> None:
        self.index = index
        self.schemas: dict[str, dict[str, Any]] = {}
        self.names: dict[str, str] = {}  # proto full name (no dot) -> component name
        short: dict[str, list[str]] = {}
        for full in [*index.messages, *index.enums]:
            if full.startswith(".flowdock."):
                short.setdefault(full.rsplit(".", 1)[-1], []).append(full)
            else:
                self.names[full[1:]] = full[1:]
        for simple, fulls in short.items():
            for full in fulls:
                # Short names read best in client generators; qualify only the ones two packages share.
                self.names[full[1:]] = simple if len(fulls) == 1 else _qualified(full[1:])
        self.direction: dict[str, bool] = {}
        #: Messages a sparse_json method's answer holds (its response and the messages under it): the gateway prints
        #: only their set fields when asked `compact=true`, so none is required (a full print still matches).
        self.sparse: set[str] = set()

    def mark_sparse(self, full: str) -> None:
        """`full` (no leading dot) and every message its fields hold, transitively."""
        if full in self.sparse or f".{full}" not in self.index.messages:
            return
        self.sparse.add(full)
        for f in self.index.messages[f".{full}"].field:
            if f.type == FDP.TYPE_MESSAGE:
                self.mark_sparse(f.type_name[1:])

    # ------------------------------------------------------------------ schemas

    def ref(self, full: str, *, output: bool) -> dict[str, Any]:
        name = self.names[full]
        # A message's required list differs by direction (responses print every field without presence; requests
        # require what field_behavior says), so one schema must serve one direction only.
        if self.direction.setdefault(name, output) != output and f".{full}" in self.index.messages:
            raise DescriptorError(f"{full} is used in both requests and responses; give each its own message")
        if name not in self.schemas:
            self.schemas[name] = {}  # placeholder against recursion
            self.schemas[name] = (
                self._enum(full) if f".{full}" in self.index.enums else self._message(full, output=output)
            )
        return {"$ref": f"#/components/schemas/{name}"}

    def _enum(self, full: str) -> dict[str, Any]:
        e = self.index.enums[f".{full}"]
        lines = [self.index.enum_comments.get((f".{full}", ""), "")]
        for v in e.value:
            text = self.index.enum_comments.get((f".{full}", v.name), "")
            if text:
                lines.append(f"`{v.name}`: {text}")
        schema: dict[str, Any] = {"type": "string", "enum": [v.name for v in e.value]}
        description = " ".join(line for line in lines if line)
        if description:
            schema["description"] = description + " (Requests may also send the number.)"
        else:
            schema["description"] = "Enum value by name. (Requests may also send the number.)"
        return schema

    def field_schema(self, f: FDP, *, output: bool) -> dict[str, Any]:
        if f.type == FDP.TYPE_MESSAGE:
            message = self.index.messages[f.type_name]
            if message.options.map_entry:
                value = next(x for x in message.field if x.name == "value")
                return {"type": "object", "additionalProperties": self.field_schema(value, output=output)}
        item = self._singular(f, output=output)
        if f.label == FDP.LABEL_REPEATED:
            return {"type": "array", "items": item}
        return item

    def _singular(self, f: FDP, *, output: bool) -> dict[str, Any]:
        t = f.type
        if t == FDP.TYPE_STRING:
            return {"type": "string"}
        if t == FDP.TYPE_BYTES:
            return {"type": "string", "format": "byte", "description": "base64"}
        if t == FDP.TYPE_BOOL:
            return {"type": "boolean"}
        if t in _INT32:
            return {"type": "integer", "format": "int32"}
        if t in _UINT32:
            return {"type": "integer", "format": "int64", "minimum": 0, "maximum": 4294967295}
        if t in _INT64:
            # Always a string in responses; requests may also send a JSON number.
            return {"type": "string", "format": "int64", "pattern": r"^-?[0-9]{1,19}$"}
        if t in _UINT64:
            return {"type": "string", "format": "uint64", "pattern": r"^[0-9]{1,20}$"}
        if t == FDP.TYPE_DOUBLE:
            return {"type": "number", "format": "double"}
        if t == FDP.TYPE_FLOAT:
            return {"type": "number", "format": "float"}
        if t == FDP.TYPE_ENUM:
            return self.ref(f.type_name[1:], output=output)
        if t in (FDP.TYPE_MESSAGE, FDP.TYPE_GROUP):
            wkt = _WELL_KNOWN.get(f.type_name[1:])
            if wkt is not None:
                return dict(wkt)
            return self.ref(f.type_name[1:], output=output)
        raise DescriptorError(f"field {f.name}: unsupported type {t}")

    def _message(self, full: str, *, output: bool, skip: Iterable[str] = ()) -> dict[str, Any]:
        m = self.index.messages[f".{full}"]
        skipped = set(skip)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for f in m.field:
            if f.name in skipped:
                continue
            schema = self.field_schema(f, output=output)
            text = self.index.comments.get((f".{full}", f.name), "")
            if text:
                # OpenAPI 3.0 ignores siblings of $ref: a described reference goes through allOf.
                if "$ref" in schema:
                    schema = {"allOf": [schema], "description": text}
                else:
                    schema = {**schema, "description": _join(schema.get("description", ""), text)}
            properties[_json_name(f)] = schema
            if (output and not _has_presence(f) and full not in self.sparse) or (not output and _required(f)):
                required.append(_json_name(f))
        out: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            out["required"] = required
        description = self.index.comments.get((f".{full}", ""), "")
        if description:
            out["description"] = description
        return out

    def inline_request(self, full: str, skip: Iterable[str]) -> dict[str, Any]:
        return self._message(full, output=False, skip=skip)

    # ------------------------------------------------------------------ parameters

    def query_parameters(self, full: str, skip: set[str], prefix: str = "", depth: int = 0) -> list[dict[str, Any]]:
        """Every non-path, non-body leaf field, nested ones by dotted name, as the transcoder binds them."""
        m = self.index.messages[f".{full}"]
        out: list[dict[str, Any]] = []
        for f in m.field:
            if not prefix and f.name in skip:
                continue
            name = f"{prefix}{_json_name(f)}"
            is_message = f.type == FDP.TYPE_MESSAGE and f.type_name[1:] not in _WELL_KNOWN
            if is_message and f.label != FDP.LABEL_REPEATED:
                if f.type_name == f".{HTTP_BODY}" or depth > 4:
                    continue
                out.extend(self.query_parameters(f.type_name[1:], skip, f"{name}.", depth + 1))
                continue
            if is_message:
                continue  # repeated messages cannot be bound from a query string
            schema = self.field_schema(f, output=False)
            param: dict[str, Any] = {"name": name, "in": "query", "schema": schema}
            if schema.get("type") == "array":
                param |= {"style": "form", "explode": True}
            text = self.index.comments.get((f".{full}", f.name), "")
            if text:
                param["description"] = text
            if _required(f):
                param["required"] = True
            out.append(param)
        return out

    def path_parameter(self, full: str, name: str) -> dict[str, Any]:
        f = self._field_by_path(full, name)
        schema = self.field_schema(f, output=False)
        if "$ref" not in schema:
            schema = {**schema, "minLength": 1} if schema.get("type") == "string" else schema
        param = {"name": name, "in": "path", "required": True, "schema": schema}
        text = self.index.comments.get((f".{full}", f.name), "")
        if text:
            param["description"] = text
        return param

    def _field_by_path(self, full: str, dotted: str) -> FDP:
        m = self.index.messages[f".{full}"]
        head, _, rest = dotted.partition(".")
        for f in m.field:
            if f.name == head:
                return self._field_by_path(f.type_name[1:], rest) if rest else f
        raise DescriptorError(f"{full} has no field {dotted!r} (named in an http rule)")


def _join(a: str, b: str) -> str:
    return f"{a} {b}".strip() if a != b else a


def _qualified(full: str) -> str:
    """`flowdock.auth.v1.GetUserQuotaRequest` -> `auth.v1.GetUserQuotaRequest`."""
    return full.removeprefix("flowdock.")


_VAR = re.compile(r"\{([^}=]+)(?:=[^}]*)?\}")


def _status_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "google.rpc.Status: every error answer's body.",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "integer", "format": "int32", "description": "The google.rpc.Code number."},
            "message": {"type": "string", "description": "What went wrong; names the field or limit."},
            "details": {
                "type": "array",
                "description": "google.rpc error details, e.g. google.rpc.BadRequest with fieldViolations.",
                "items": {"$ref": "#/components/schemas/Any"},
            },
        },
    }


def build_openapi(fds: descriptor_pb2.FileDescriptorSet) -> dict[str, Any]:
    """The OpenAPI 3.0.3 document of every routed (non-internal) method's REST bindings."""
    index = _Index()
    for file in fds.file:
        index.add_file(file)
    builder = _Builder(index)
    for file in fds.file:  # before any schema is built: a sparse answer's messages print no default values
        for svc in file.service:
            if svc.options.Extensions[options_pb2.internal]:
                continue
            for method in svc.method:
                if method.options.Extensions[options_pb2.sparse_json]:
                    builder.mark_sparse(method.output_type[1:])
    paths: dict[str, dict[str, Any]] = {}
    tags: list[dict[str, str]] = []
    for file in fds.file:
        for svc in file.service:
            if svc.options.Extensions[options_pb2.internal]:
                continue
            svc_name = f"{file.package}.{svc.name}"
            routed = False
            for method in svc.method:
                rule: http_pb2.HttpRule = method.options.Extensions[annotations_pb2.http]
                bindings = _bindings(rule)
                bodies = _bodies(rule)
                for n, (binding, body) in enumerate(zip(bindings, bodies, strict=True)):
                    routed = True
                    op = _operation(builder, index, svc_name, method, binding.template, body, n)
                    path = _VAR.sub(lambda m: "{" + m.group(1) + "}", binding.template)
                    verb = binding.verb.lower()
                    if verb in paths.setdefault(path, {}):
                        raise DescriptorError(f"{binding.verb} {path} is bound twice")
                    paths[path][verb] = op
            if routed:
                tag = {"name": svc.name}
                if index.service_comments.get(svc_name):
                    tag["description"] = index.service_comments[svc_name]
                tags.append(tag)
    paths[OPENAPI_PATH] = {
        "get": {
            "operationId": "OpenApi",
            "summary": "This document.",
            "tags": ["Gateway"],
            "security": [],
            "responses": {"200": {"description": "This OpenAPI document.", "content": {"application/json": {}}}},
        }
    }
    tags.append({"name": "Gateway", "description": "Served by the gateway itself."})
    schemas = dict(sorted(builder.schemas.items()))
    schemas["Any"] = _WELL_KNOWN["google.protobuf.Any"]
    schemas["Status"] = _status_schema()
    return {
        "openapi": "3.0.3",
        "info": {
            "title": TITLE,
            "version": "v1",
            "description": (
                "Generated from protos/ by tools/gen.py (gateway/openapi.py): the REST surface of the Envoy gateway "
                "(grpc_json_transcoder). Bodies follow the proto3 JSON mapping: lowerCamelCase names (requests may "
                "also use the proto names), 64-bit integers as strings (requests may send numbers), bytes as "
                "base64, enums by name, Timestamps as RFC 3339 strings. Unset message fields and proto3 `optional` "
                "fields are left out of responses; every other field is always present. Every error is an HTTP "
                "status with a google.rpc.Status body. Send `Authorization: Bearer <accessToken>` (from "
                "/api/v1/auth/login) except on operations marked with no security."
            ),
        },
        "servers": [{"url": "/"}],
        "tags": tags,
        "security": [{"bearerAuth": []}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "The accessToken from login, refresh or TOTP login (valid 5 minutes).",
                }
            },
            "responses": _error_responses(),
            "schemas": schemas,
        },
    }


def _error_responses() -> dict[str, Any]:
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}}
    out = {f"Error{code}": {"description": text, "content": error} for code, text in _ERROR_STATUSES}
    out["Error"] = {"description": "Any other error.", "content": error}
    return out


def _bodies(rule: http_pb2.HttpRule) -> list[str]:
    """The body selector of a rule and of each additional binding, in _bindings' order."""
    out = [rule.body] if rule.WhichOneof("pattern") else []
    for extra in rule.additional_bindings:
        out.extend(_bodies(extra))
    return out


def _operation(
    builder: _Builder,
    index: _Index,
    svc_name: str,
    method: descriptor_pb2.MethodDescriptorProto,
    template: str,
    body: str,
    n: int,
) -> dict[str, Any]:
    public = bool(method.options.Extensions[options_pb2.public])
    request = method.input_type[1:]
    response = method.output_type[1:]
    path_fields = [m.group(1) for m in _VAR.finditer(template)]
    comment = index.method_comments.get((svc_name, method.name), "")
    short_svc = svc_name.rsplit(".", 1)[-1]
    op: dict[str, Any] = {
        "operationId": f"{short_svc}_{method.name}" + (f"_{n}" if n else ""),
        "tags": [short_svc],
        "summary": comment.split(". ")[0].rstrip(".") if comment else method.name,
    }
    if comment:
        op["description"] = comment
    if public:
        op["security"] = []
    params = [builder.path_parameter(request, name) for name in path_fields]
    top_path = {name.split(".")[0] for name in path_fields}
    if body != "*":
        skip = set(path_fields) | ({body} if body else set())
        params += builder.query_parameters(request, skip)
    request_msg = index.messages[f".{request}"]
    if any(f.name == "session" for f in request_msg.field) and public:
        params.append(
            {
                "name": LINK_SESSION_HEADER,
                "in": "header",
                "required": False,
                "description": "The link session from OpenLink (instead of the `session` field).",
                "schema": {"type": "string"},
            }
        )
    ranged = f"{svc_name}.{method.name}" in _RANGED_DOWNLOADS
    if ranged:
        params += [dict(header) for header in _RANGE_HEADERS]
    if params:
        op["parameters"] = params
    if body == "*":
        schema = builder.inline_request(request, top_path) if top_path else builder.ref(request, output=False)
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    elif body:
        f = next(x for x in request_msg.field if x.name == body)
        if f.type_name == f".{HTTP_BODY}":
            op["requestBody"] = {
                "required": True,
                "description": "The raw bytes (any Content-Type).",
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            }
        else:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": builder.field_schema(f, output=False)}},
            }
    ok: dict[str, Any]
    if response == HTTP_BODY and method.server_streaming:
        ok = {
            "description": "The raw bytes, with their Content-Type, Content-Disposition and Content-Length.",
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        }
    elif response == HTTP_BODY:
        # A document the method renders itself (the JWKS is JSON): any media type, any content.
        ok = {"description": "A document in its own Content-Type.", "content": {"*/*": {}}}
    elif method.server_streaming:
        ok = {
            "description": "A JSON array of messages, sent as they come.",
            "content": {"application/json": {"schema": {"type": "array", "items": builder.ref(response, output=True)}}},
        }
    else:
        ok = {"description": "OK", "content": {"application/json": {"schema": builder.ref(response, output=True)}}}
    responses: dict[str, Any] = {"200": ok}
    if ranged:
        responses["206"] = {
            "description": "The bytes of the requested range, with Content-Range (`bytes first-last/size`).",
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        }
        responses["416"] = {
            "description": "FAILED_PRECONDITION with reason RANGE_NOT_SATISFIABLE: the range starts at or beyond "
            "the end of the content (its size is in the ErrorInfo's metadata and in `Content-Range: bytes */size`).",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}},
        }
    for code, _ in _ERROR_STATUSES:
        responses[code] = {"$ref": f"#/components/responses/Error{code}"}
    responses["default"] = {"$ref": "#/components/responses/Error"}
    op["responses"] = responses
    return op


def render_openapi(descriptor_path: Path) -> str:
    """The document as committed: sorted paths, two-space indent, trailing newline."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(Path(descriptor_path).read_bytes())
    return json.dumps(build_openapi(fds), indent=2, ensure_ascii=False) + "\n"
