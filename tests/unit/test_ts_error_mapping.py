"""The TypeScript SDK's FlowDockError mapping, fed the exact statuses the server's own encoder makes.

flowdock_kernel.grpc_errors.to_status turns domain errors (built here as the services build them) into
google.rpc.Status bytes; clients/ts/src/server-errors.test.ts decodes each as the grpc-web trailer Envoy sends and
checks the kind and fields the app relies on. A renamed limit, reason or message shape on the server fails here.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from flowdock_kernel import errors, grpc_errors
from storage_svc.domain import ScanLimitExceeded, Usage, offset_mismatch
from storage_svc.usecases.common import quota_exceeded
from tests.support.mesh import REQUIRE_SERVERS

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / "clients" / "ts"
VITEST = ROOT / "clients" / "node_modules" / ".bin" / "vitest"


def case(exc: errors.DomainError, expect: dict[str, Any]) -> dict[str, Any]:
    status = grpc_errors.to_status(exc)
    details = dict(status.trailing_metadata)["grpc-status-details-bin"]
    assert isinstance(details, bytes)
    return {
        "code": status.code.value[0],
        "message": status.details,
        "detailsBin": base64.b64encode(details).decode().rstrip("="),
        "expect": expect,
    }


def cases() -> list[dict[str, Any]]:
    quota = quota_exceeded(Usage(used=900, reserved=50, limit=1000), 200)
    return [
        case(errors.InvalidArgument("name", "must not contain '/'"), {"kind": "invalid", "field": "name"}),
        case(quota, {"kind": "quota", "limit": "storage_quota_bytes", "usedBytes": 900, "limitBytes": 1000}),
        case(
            errors.ResourceExhausted(
                "too many login attempts; try again in 13 s", limit="auth.login", retry_after_seconds=12.5
            ),
            {"kind": "rate_limited", "limit": "auth.login", "retryAfterSeconds": 12.5},
        ),
        case(
            errors.ResourceExhausted("size 9 exceeds the per-file limit", limit="storage_max_file_bytes"),
            {"kind": "too_large", "limit": "storage_max_file_bytes"},
        ),
        case(offset_mismatch(0, 4), {"kind": "precondition", "reason": "UPLOAD_OFFSET_MISMATCH", "committedSize": "4"}),
        case(ScanLimitExceeded(100), {"kind": "too_large", "limitBytes": 100}),
        case(errors.AlreadyExists("an entry named 'a' already exists in this folder"), {"kind": "conflict"}),
        case(errors.NotFound("no such node"), {"kind": "not_found"}),
        case(errors.PermissionDenied("not yours"), {"kind": "permission"}),
        case(errors.Unauthenticated("access token expired"), {"kind": "unauthenticated"}),
        case(errors.Unavailable("virus scanner unreachable; retry later"), {"kind": "unavailable"}),
        case(
            errors.DiskFull("/srv/flowdock/storage"),
            {"kind": "unavailable", "limit": "data_disk", "retryAfterSeconds": 30},
        ),
        case(errors.DataLoss("stored bytes are damaged"), {"kind": "internal"}),
    ]


def test_sdk_maps_the_servers_own_statuses(tmp_path: Path) -> None:
    if shutil.which("node") is None or not VITEST.exists():
        problem = "clients/node_modules missing: run `npm ci --prefix clients`"
        if REQUIRE_SERVERS:
            pytest.fail(f"{problem} (FLOWDOCK_REQUIRE_SERVERS=1 forbids skipping)")
        pytest.skip(problem)
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(cases()))
    result = subprocess.run(
        [str(VITEST), "run", "src/server-errors.test.ts", "--no-color"],
        cwd=SDK,
        env={**os.environ, "FLOWDOCK_ERROR_CASES": str(path), "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # The spec skips itself without the cases file: make sure every case ran.
    passed = re.search(r"Tests\s+(\d+) passed \((\d+)\)", output)
    assert passed is not None and int(passed.group(1)) == int(passed.group(2)) == len(cases()), output
