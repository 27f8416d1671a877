"""Unknown JSON fields in REST bodies are refused with 400 naming them (issue 16, item 4).

Envoy's grpc_json_transcoder (1.40) drops unknown body fields silently and has no option to refuse them (its
`request_validation_options` cover unknown methods, query parameters and body/path collisions only): a typo'd
field was ignored, and a 50 MB junk field still created the folder. This builds a Lua request filter from the
descriptor set: for each REST binding that takes a JSON body, the fields its message (and nested messages)
accept, by JSON name and proto name as the proto3 JSON parser does. The script runs before the transcoder, reads
the body and answers 400 naming the first unknown field (`{"code": 3, "message": ...}`); anything it cannot judge
(malformed JSON) goes on to the transcoder, which answers that itself.
"""

from __future__ import annotations

import re
from pathlib import Path

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

from flowdock.api.v1 import options_pb2

_VERBS = ("get", "put", "post", "delete", "patch")
#: Message types whose JSON form is not an object of their fields: any value is theirs to judge.
_OPAQUE_PREFIXES = ("google.protobuf.", "google.api.HttpBody", "google.rpc.")
_LUA_MAGIC = re.compile(r"([\^$()%.\[\]*+\-?])")
_VARIABLE = re.compile(r"\{([^}=]+)(?:=([^}]*))?\}")


def _lua_pattern(template: str) -> str:
    """A google.api.http path template as an anchored Lua pattern (`{x}`/`*` one segment, `**` any)."""

    def segments(piece: str) -> str:
        out = []
        for seg in piece.split("/"):
            if seg == "**":
                out.append(".*")
            elif seg == "*":
                out.append("[^/]+")
            else:
                out.append(_LUA_MAGIC.sub(r"%\1", seg))
        return "/".join(out)

    parts: list[str] = []
    pos = 0
    for match in _VARIABLE.finditer(template):
        parts.append(segments(template[pos : match.start()]))
        parts.append(segments(match.group(2) or "*"))
        pos = match.end()
    parts.append(segments(template[pos:]))
    return "^" + "".join(parts) + "/?$"


class _Schemas:
    """Message name -> index into the Lua SCHEMAS table (each a map of accepted key -> schema index, 0 = any)."""

    def __init__(self, messages: dict[str, descriptor_pb2.DescriptorProto]) -> None:
        self.messages = messages
        self.index: dict[str, int] = {}
        self.tables: list[dict[str, int]] = []

    def of(self, full_name: str) -> int:
        if full_name.startswith(_OPAQUE_PREFIXES) or full_name not in self.messages:
            return 0
        if full_name in self.index:
            return self.index[full_name]
        msg = self.messages[full_name]
        if msg.options.map_entry:
            return 0
        table: dict[str, int] = {}
        self.tables.append(table)
        self.index[full_name] = len(self.tables)  # before the fields: recursive messages refer to themselves
        for f in msg.field:
            sub = self.of(f.type_name.lstrip(".")) if f.type == f.TYPE_MESSAGE else 0
            table[f.name] = sub
            table[f.json_name or f.name] = sub
        return self.index[full_name]


def _bindings(rule: http_pb2.HttpRule) -> list[tuple[str, str, str]]:
    """(verb, template, body) of one rule and its additional bindings."""
    out: list[tuple[str, str, str]] = []
    pattern = rule.WhichOneof("pattern")
    if pattern in _VERBS:
        out.append((pattern.upper(), getattr(rule, pattern), rule.body))
    elif pattern == "custom":
        out.append((rule.custom.kind.upper(), rule.custom.path, rule.body))
    for extra in rule.additional_bindings:
        out.extend(_bindings(extra))
    return out


def body_routes(descriptor_path: Path) -> tuple[list[tuple[str, str, int, str]], list[dict[str, int]]]:
    """[(verb, Lua pattern, schema index, message name)] for every REST binding with a JSON body, and the schemas."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(Path(descriptor_path).read_bytes())
    messages: dict[str, descriptor_pb2.DescriptorProto] = {}

    def collect(prefix: str, msgs: list[descriptor_pb2.DescriptorProto]) -> None:
        for m in msgs:
            messages[f"{prefix}.{m.name}"] = m
            collect(f"{prefix}.{m.name}", list(m.nested_type))

    for file in fds.file:
        collect(file.package, list(file.message_type))
    schemas = _Schemas(messages)
    routes: list[tuple[str, str, int, str]] = []
    for file in fds.file:
        for svc in file.service:
            if svc.options.Extensions[options_pb2.internal]:
                continue
            for method in svc.method:
                request = method.input_type.lstrip(".")
                for verb, template, body in _bindings(method.options.Extensions[annotations_pb2.http]):
                    if not body:
                        continue
                    target = request
                    if body != "*":
                        field = next((f for f in messages[request].field if f.name == body), None)
                        if field is None or field.type != field.TYPE_MESSAGE:
                            continue
                        target = field.type_name.lstrip(".")
                    index = schemas.of(target)
                    if index:  # an opaque body (HttpBody uploads, Struct): nothing to check
                        routes.append((verb, _lua_pattern(template), index, target))
    return routes, schemas.tables


def _lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


_SCRIPT = r"""
local ROUTES = {%(routes)s}
local SCHEMAS = {%(schemas)s}

local function ws(s, i) return string.find(s, "[^ \t\r\n]", i) or (#s + 1) end

local function after_string(s, i)  -- s[i] is the opening quote; the index after the closing one
  local j = i + 1
  while true do
    local k = string.find(s, '["\\]', j)
    if k == nil then error({}) end
    if string.byte(s, k) == 34 then return k + 1 end
    j = k + 2
  end
end

local value
local function object(s, i, schema, where)
  i = ws(s, i + 1)
  if string.byte(s, i) == 125 then return i + 1 end
  while true do
    if string.byte(s, i) ~= 34 then error({}) end
    local j = after_string(s, i)
    local key = string.sub(s, i + 1, j - 2)
    local sub = 0
    if schema ~= nil then
      sub = schema[key]
      if sub == nil then error({unknown = where .. key}) end
    end
    i = ws(s, j)
    if string.byte(s, i) ~= 58 then error({}) end
    i = ws(s, value(s, ws(s, i + 1), SCHEMAS[sub], where .. key .. "."))
    local c = string.byte(s, i)
    if c == 44 then i = ws(s, i + 1) elseif c == 125 then return i + 1 else error({}) end
  end
end

value = function(s, i, schema, where)
  local c = string.byte(s, i)
  if c == 123 then return object(s, i, schema, where) end
  if c == 91 then
    i = ws(s, i + 1)
    if string.byte(s, i) == 93 then return i + 1 end
    while true do
      i = ws(s, value(s, i, schema, where))
      local d = string.byte(s, i)
      if d == 44 then i = ws(s, i + 1) elseif d == 93 then return i + 1 else error({}) end
    end
  end
  if c == 34 then return after_string(s, i) end
  local j = string.find(s, "[,%%]} \t\r\n]", i) or (#s + 1)
  if j == i then error({}) end
  return j
end

-- A field name for the message: at most 200 bytes, control characters replaced.
local function shown(text)
  return (string.gsub(string.sub(text, 1, 200), "%%c", "?"))
end

function envoy_on_request(handle)
  local headers = handle:headers()
  local method = headers:get(":method")
  if method ~= "POST" and method ~= "PUT" and method ~= "PATCH" and method ~= "DELETE" then return end
  local ctype = headers:get("content-type") or ""
  if string.sub(ctype, 1, 16) == "application/grpc" then return end
  local path = string.match(headers:get(":path") or "", "^[^?]*")
  local route = nil
  for _, r in ipairs(ROUTES) do
    if r[1] == method and string.find(path, r[2]) then route = r; break end
  end
  if route == nil then return end
  local body = handle:body()
  if body == nil or body:length() == 0 then return end
  local s = body:getBytes(0, body:length())
  local ok, err = pcall(function() return value(s, ws(s, 1), SCHEMAS[route[3]], "") end)
  if ok or type(err) ~= "table" or err.unknown == nil then return end
  -- Plain text: the gateway's local-reply mapping makes it the REST error JSON {"code":3,"message":...}.
  handle:respond(
    {[":status"] = "400", ["content-type"] = "text/plain"},
    'unknown field "' .. shown(err.unknown) .. '" in the request body (' .. route[4] .. ' has no such field)'
  )
end
"""


def lua_source(descriptor_path: Path) -> str:
    """The Lua request filter refusing unknown fields in the JSON bodies of `descriptor_path`'s REST routes."""
    routes, tables = body_routes(descriptor_path)
    route_items = ", ".join(
        f"{{{_lua_string(verb)}, {_lua_string(pattern)}, {index}, {_lua_string(name)}}}"
        for verb, pattern, index, name in routes
    )
    schema_items = ", ".join(
        "{" + ", ".join(f"[{_lua_string(key)}] = {sub}" for key, sub in sorted(table.items())) + "}" for table in tables
    )
    return _SCRIPT % {"routes": route_items, "schemas": schema_items}
