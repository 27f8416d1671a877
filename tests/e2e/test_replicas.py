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
from tests.support.mesh import Running, current_pids, flowdock_up, stop_up


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


def test_a_crashed_replica_is_restarted_while_the_other_serves(replicated: Running) -> None:
    """kill -9 of one storage replica: the other answers every call meanwhile, the dead one comes back on its port
    (healthy in Envoy again), and `up` says so; nothing else restarts (tests/runtime/test_supervision.py: more)."""
    mesh = replicated
    token = register_and_login(mesh)
    h = {"authorization": f"Bearer {token}"}
    before = json.loads((mesh.data_dir / "run" / "up.json").read_text())["pids"]
    ready = mesh.data_dir / "run" / "storage-1.json"
    second = json.loads(ready.read_text())
    os.kill(before["storage-1"], signal.SIGKILL)
    for _ in range(10):  # the first replica answers (Envoy retries a refused connection on it)
        assert httpx.get(f"{mesh.url}/api/v1/folders/root/children", headers=h, timeout=10).status_code == 200
    deadline = time.monotonic() + 30
    while (after := current_pids(mesh))["storage-1"] == before["storage-1"] or not ready.exists():
        assert time.monotonic() < deadline, "storage-1 was not restarted"
        time.sleep(0.1)
    assert json.loads(ready.read_text())["grpc_port"] == second["grpc_port"]  # on its own port again
    wait_health(mesh, second["grpc_port"], healthy=True)
    time.sleep(0.5)  # `up` looks at its children every 0.1 s: it has seen the ready file and said so
    assert {k: v for k, v in after.items() if k != "storage-1"} == {k: v for k, v in before.items() if k != "storage-1"}
    assert mesh.proc.poll() is None
    code, err = stop_up(mesh)  # no orphans (the restarted replica included): asserted inside
    assert code == 0, err
    assert "flowdock: storage-1 crashed (killed by SIGKILL); restarting it in 0.5 s" in err
    assert "flowdock: storage-1 is back" in err
