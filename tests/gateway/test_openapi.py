"""The generated OpenAPI document states what the gateway speaks (gateway/openapi.py; GET /api/v1/openapi.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from google.protobuf import descriptor_pb2

from flowdock_kernel.grpc_errors import REST_STATUS_BY_REASON
from gateway.descriptor import load_services
from gateway.openapi import build_openapi, render_openapi

REPO = Path(__file__).resolve().parents[2]
DESCRIPTOR = REPO / "gen" / "python" / "flowdock" / "descriptor.binpb"
COMMITTED = REPO / "gen" / "python" / "flowdock" / "openapi.json"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return build_openapi(descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR.read_bytes()))


def schema(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(doc["components"]["schemas"][name])


def test_committed_document_is_current() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render_openapi(DESCRIPTOR)


def test_every_routed_binding_is_an_operation_and_nothing_internal(doc: dict[str, Any]) -> None:
    bindings = {(b.verb.lower(), b.template) for svc in load_services(DESCRIPTOR) for m in svc.methods for b in m.http}
    operations = {(verb, path) for path, ops in doc["paths"].items() for verb in ops}
    assert bindings == operations - {("get", "/api/v1/openapi.json")}
    ids = {op["operationId"] for ops in doc["paths"].values() for op in ops.values()}
    assert not {i for i in ids if i.startswith(("AccessService", "AuthInternalService", "StorageAdminService"))}
    assert {"CheckSessionRequest", "DeleteUserDataRequest", "CheckAccessResponse"}.isdisjoint(
        doc["components"]["schemas"]
    )


def test_json_names_and_proto3_mapping(doc: dict[str, Any]) -> None:
    node = schema(doc, "Node")["properties"]
    assert {"parentId", "createTime", "ownerId", "contentType"} <= set(node)
    assert "parent_id" not in node
    assert node["size"]["type"] == "string" and node["size"]["format"] == "int64"
    assert node["createTime"] == {"type": "string", "format": "date-time", "example": "2026-01-31T12:00:00Z"}
    kind = schema(doc, "NodeKind")
    assert kind["enum"] == ["NODE_KIND_UNSPECIFIED", "NODE_KIND_FOLDER", "NODE_KIND_FILE"]
    upload = schema(doc, "CreateUploadRequest")["properties"]
    assert upload["content"]["format"] == "byte"
    activity = schema(doc, "ActivityEvent")["properties"]
    assert activity["details"]["type"] == "object"
    assert activity["details"]["additionalProperties"] == {"type": "string"}


def test_required_fields(doc: dict[str, Any]) -> None:
    assert schema(doc, "LoginRequest")["required"] == ["email", "password"]
    assert schema(doc, "CreateFolderRequest")["required"] == ["parentId", "name"]
    # Responses: everything without presence is always printed; message fields are not.
    required = schema(doc, "Upload")["required"]
    assert "committedSize" in required and "state" in required
    assert "node" not in required and "expireTime" not in required
    search = {p["name"]: p for p in doc["paths"]["/api/v1/search"]["get"]["parameters"]}
    assert search["query"]["required"] is True
    assert "required" not in search["pageToken"]
    # proto3 optional: never required, and the path field is not in the body.
    update_link = doc["paths"]["/api/v1/links/{link_id}"]["patch"]["requestBody"]["content"]["application/json"]
    assert "linkId" not in update_link["schema"]["properties"]
    assert "maxDownloads" in update_link["schema"]["properties"]


def test_security_public_routes_and_errors(doc: dict[str, Any]) -> None:
    assert doc["security"] == [{"bearerAuth": []}]
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert doc["paths"]["/api/v1/auth/login"]["post"]["security"] == []
    assert doc["paths"]["/.well-known/jwks.json"]["get"]["security"] == []
    assert doc["paths"]["/api/v1/public/links/{token}/children"]["get"]["security"] == []
    assert "security" not in doc["paths"]["/api/v1/folders"]["post"]
    status = schema(doc, "Status")
    assert set(status["properties"]) == {"code", "message", "details"}
    for ops in doc["paths"].values():
        for verb, op in ops.items():
            if op["operationId"] != "OpenApi":
                assert op["responses"]["default"] == {"$ref": "#/components/responses/Error"}, verb
                assert op["responses"]["401"] == {"$ref": "#/components/responses/Error401"}
                # A full data disk (issue 18): any call may need a write (a session, an audit event, a chunk).
                assert op["responses"]["507"] == {"$ref": "#/components/responses/Error507"}
    assert "DISK_FULL" in doc["components"]["responses"]["Error507"]["description"]
    # Every REST status a reason maps to (flowdock_kernel.grpc_errors) is documented somewhere.
    documented = {code for ops in doc["paths"].values() for op in ops.values() for code in op["responses"]}
    assert {str(code) for code in REST_STATUS_BY_REASON.values()} <= documented


def test_raw_bodies_and_query_parameters(doc: dict[str, Any]) -> None:
    put = doc["paths"]["/api/v1/uploads/{upload_id}"]["put"]
    assert list(put["requestBody"]["content"]) == ["application/octet-stream"]
    assert [p["name"] for p in put["parameters"]] == ["upload_id", "offset"]
    for path in ("/api/v1/files/{file_id}/content", "/api/v1/download/{token}"):
        ok = doc["paths"][path]["get"]["responses"]["200"]["content"]
        assert ok == {"*/*": {"schema": {"type": "string", "format": "binary"}}}
    content = {p["name"] for p in doc["paths"]["/api/v1/files/{file_id}/content"]["get"]["parameters"]}
    assert content == {"file_id", "offset", "length", "version", "Range", "If-Range"}
    # Every download a browser or curl can resume takes Range and If-Range and documents 206 and 416 (issue 18).
    link_file = "/api/v1/public/links/{token}/files/{file_id}/content"
    for path in ("/api/v1/files/{file_id}/content", "/api/v1/download/{token}", link_file):
        get = doc["paths"][path]["get"]
        assert {"Range", "If-Range"} <= {p["name"] for p in get["parameters"]}, path
        ranged = get["responses"]
        assert "Content-Range" in ranged["206"]["description"], path
        assert (
            "RANGE_NOT_SATISFIABLE" in ranged["416"]["description"] and "bytes */size" in ranged["416"]["description"]
        )
    # Not the other routes (a listing has no ranges).
    assert "206" not in doc["paths"]["/api/v1/public/links/{token}/children"]["get"]["responses"]
    children = doc["paths"]["/api/v1/public/links/{token}/children"]["get"]["parameters"]
    assert {p["name"] for p in children} == {"token", "folderId", "pageSize", "pageToken", "session", "X-Link-Session"}


def test_schemathesis_loads_every_operation(doc: dict[str, Any]) -> None:
    loaded = schemathesis.openapi.from_dict(doc)
    operations = [result.ok() for result in loaded.get_all_operations()]
    assert len(operations) == sum(len(ops) for ops in doc["paths"].values())
