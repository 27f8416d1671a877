"""Which REST bodies the unknown-field check knows (gateway/json_fields.py); the behaviour is tested through the
gateway in tests/e2e/test_unknown_fields.py."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.json_fields import _lua_pattern, body_routes, lua_source

DESCRIPTOR = Path(__file__).resolve().parents[2] / "gen" / "python" / "flowdock" / "descriptor.binpb"


def lua_matches(pattern: str, path: str) -> bool:
    """The few Lua pattern items _lua_pattern emits, as a Python regex."""
    regex = re.sub(r"%(.)", lambda m: re.escape(m.group(1)), pattern.replace("[^/]+", "\0").replace(".*", "\1"))
    return re.fullmatch(regex.replace("\0", "[^/]+").replace("\1", ".*").strip("^$"), path) is not None


def test_every_json_body_route_is_checked_and_raw_uploads_are_not() -> None:
    routes, schemas = body_routes(DESCRIPTOR)
    by_message = {name: (verb, pattern, schemas[index - 1]) for verb, pattern, index, name in routes}
    verb, pattern, fields = by_message["flowdock.storage.v1.CreateFolderRequest"]
    assert verb == "POST" and lua_matches(pattern, "/api/v1/folders")
    assert {"parent_id", "parentId", "name"} <= set(fields)
    assert not any(name.endswith("UploadChunkRequest") or "HttpBody" in name for name in by_message)
    assert all(not lua_matches(p, "/api/v1/uploads/abc") for v, p, _, _ in routes if v == "PUT")
    assert "flowdock.share.v1.CreateLinkRequest" in by_message


def test_path_templates_become_anchored_lua_patterns() -> None:
    assert _lua_pattern("/api/v1/nodes/{node_id}/copy") == "^/api/v1/nodes/[^/]+/copy/?$"
    assert _lua_pattern("/api/v1/auth/verify-email") == "^/api/v1/auth/verify%-email/?$"
    assert _lua_pattern("/x/{path=a/**}") == "^/x/a/.*/?$"


def test_the_script_embeds_the_tables() -> None:
    source = lua_source(DESCRIPTOR)
    assert "function envoy_on_request(handle)" in source
    assert '"flowdock.storage.v1.CreateFolderRequest"' in source
