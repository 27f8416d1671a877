"""Replicas behind the gateway: balanced, health-checked, and sharing upload state through the database."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.accounts import register_and_login
from tests.support.mesh import Running, flowdock_up, start_up, stop_up


@pytest.fixture(params=["sqlite", "postgres"])
def replicated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Running]:
    with flowdock_up(tmp_path / "data", request.param, args=["--replicas", "storage=2"], db_prefix="fdrep") as running:
        yield running


def storage_endpoints(mesh: Running) -> dict[int, str]:
    """grpc port of each storage replica → Envoy's health flags for it."""
    text = httpx.get(f"{mesh.admin_url}/clusters").text
    flags: dict[int, str] = {}
    for line in text.splitlines():
        if line.startswith("storage::") and "::health_flags::" in line:
            address = line.split("::")[1]
            flags[int(address.rsplit(":", 1)[1])] = line.rsplit("::", 1)[1]
    return flags


def wait_health(mesh: Running, port: int, healthy: bool, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (storage_endpoints(mesh).get(port) == "healthy") == healthy:
            return
        time.sleep(0.2)
    raise AssertionError(f"storage replica on {port} never became {'healthy' if healthy else 'unhealthy'}")


def test_upload_begun_on_one_replica_finishes_on_the_other(replicated: Running) -> None:
    mesh = replicated
    ports = {
        name: json.loads((mesh.data_dir / "run" / f"{name}.json").read_text()) for name in ("storage", "storage-1")
    }
    assert set(storage_endpoints(mesh)) == {p["grpc_port"] for p in ports.values()}
    token = register_and_login(mesh)
    h = {"authorization": f"Bearer {token}"}
    data = os.urandom(2 * 1024 * 1024 + 11)
    half = len(data) // 2
    # Balanced: a burst of calls reaches both replicas.
    for _ in range(20):
        assert httpx.get(f"{mesh.url}/api/v1/folders/root/children", headers=h).status_code == 200
    assert "ListChildren" in mesh.log("storage")
    assert "ListChildren" in mesh.log("storage-1")

    first, second = ports["storage"], ports["storage-1"]
    os.kill(second["pid"], signal.SIGSTOP)  # only the first replica can answer
    try:
        wait_health(mesh, second["grpc_port"], healthy=False)
        upload = httpx.post(
            f"{mesh.url}/api/v1/uploads", headers=h, json={"parent_id": "root", "name": "moved.bin", "size": len(data)}
        ).json()
        r = httpx.put(f"{mesh.url}/api/v1/uploads/{upload['uploadId']}?offset=0", headers=h, content=data[:half])
        assert int(r.json()["committedSize"]) == half
    finally:
        os.kill(second["pid"], signal.SIGCONT)
    wait_health(mesh, second["grpc_port"], healthy=True)
    os.kill(first["pid"], signal.SIGSTOP)  # now only the second replica can answer
    try:
        wait_health(mesh, first["grpc_port"], healthy=False)
        r = httpx.put(f"{mesh.url}/api/v1/uploads/{upload['uploadId']}?offset={half}", headers=h, content=data[half:])
        assert int(r.json()["committedSize"]) == len(data)
        node = httpx.post(f"{mesh.url}/api/v1/uploads/{upload['uploadId']}/finish", headers=h, json={}).json()["node"]
        # The second replica never saw the first half: it hashed those committed bytes once, then went on.
        assert node["sha256"] == hashlib.sha256(data).hexdigest()
        got = httpx.get(f"{mesh.url}/api/v1/files/{node['id']}/content", headers=h)
        assert got.content == data
    finally:
        os.kill(first["pid"], signal.SIGCONT)
    assert upload["uploadId"] in mesh.log("storage-1") or "FinishUpload" in mesh.log("storage-1")


def test_a_crashed_service_is_reported_and_everything_stops(tmp_path: Path) -> None:
    mesh = start_up(tmp_path / "data", "sqlite")
    os.kill(mesh.pids["storage"], signal.SIGKILL)
    mesh.proc.wait(timeout=30)  # `up` notices on its own, without a signal
    code, err = stop_up(mesh)  # no orphans: asserted inside
    assert code == 1
    assert "storage stopped unexpectedly" in err
