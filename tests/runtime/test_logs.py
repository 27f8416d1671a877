"""One request followed across the mesh by its id: Envoy's JSON access line (gateway.log) and the JSON call lines
of every service it reached, all with the same request_id, the user id on the service lines, no credential in any
log; `flowdock logs --request ID` prints them in time order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.share.support import User
from tests.support.mesh import SCAN_OFF, flowdock_up


def lines_with(log_dir: Path, request_id: str) -> list[dict[str, object]]:
    found = []
    for path in log_dir.glob("*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if request_id in line and line.startswith("{"):
                entry = json.loads(line)
                if entry.get("request_id") == request_id:
                    found.append({**entry, "_file": path.name})
    return found


def test_one_request_is_followed_through_gateway_and_services(tmp_path: Path) -> None:
    with flowdock_up(tmp_path / "data", "sqlite") as mesh:
        owner, friend = User(mesh, "own"), User(mesh, "fr")
        folder = owner.folder("Team")
        r = owner.http.post(
            "/api/v1/shares",
            json={"node_id": folder, "grantee_email": friend.email, "role": "SHARE_ROLE_VIEWER"},
        )
        assert r.status_code == 200, r.text
        request_id = r.headers["x-request-id"]
        log_dir = mesh.data_dir / "logs"
        deadline = time.monotonic() + 4
        while True:  # Envoy flushes its access log every second (gateway/runner.py)
            found = lines_with(log_dir, request_id)
            if any(e["_file"] == "gateway.log" for e in found) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "flowdock_runtime",
                "logs",
                "--request",
                request_id,
                "--data-dir",
                str(mesh.data_dir),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **SCAN_OFF},
            check=False,
        )
        everything = "".join(p.read_text(errors="replace") for p in log_dir.glob("*.log"))
    [gateway] = [e for e in found if e["_file"] == "gateway.log"]
    assert gateway["method"] == "POST" and gateway["path"] == "/api/v1/shares" and gateway["response_code"] == 200
    assert isinstance(gateway["duration_ms"], int)
    calls = [e for e in found if e.get("msg") == "call"]
    services = {e["service"] for e in calls}
    assert "share_svc" in services or "share" in services, calls
    assert len(services) >= 2, f"CreateShare reaches another service too: {calls}"
    entry = next(e for e in calls if str(e["method"]).endswith("CreateShare"))
    assert entry["code"] == "OK" and isinstance(entry["ms"], float) and entry["user_id"]
    assert owner.token not in everything and owner.token.split(".")[2] not in everything
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert len(out) == len(found) and any("gateway" in line and "POST /api/v1/shares" in line for line in out)
    assert any("CreateShare -> OK" in line and f"user {entry['user_id']}" in line for line in out)
