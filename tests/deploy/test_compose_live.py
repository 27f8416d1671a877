"""docker-compose's mesh parts run for real (no Docker engine here): the `certs` step's commands, and each gRPC
service's healthcheck — taken from docker-compose.yml as written — against the services of a real `flowdock up`,
with the files the compose mounts (each identity's own folder of the split mesh)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.compose import GRPC_SERVICES, MESH_MOUNT, env_of, load_deployment, services
from tests.support.mesh import Running, start_up, stop_up


def _mesh_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowdock_kernel.mesh", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_certs_step_edge_certificate_is_made_once_and_kept(tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    assert _mesh_cli("edge", str(folder), "--host", "localhost", "--host", "127.0.0.1").returncode == 0
    first = (folder / "cert.pem").read_bytes()
    assert (folder / "key.pem").stat().st_mode & 0o777 == 0o600
    assert _mesh_cli("edge", str(folder), "--host", "localhost").returncode == 0
    assert (folder / "cert.pem").read_bytes() == first  # a restart (or your own mounted files) is not overwritten


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    up = start_up(tmp_path_factory.mktemp("up-compose"), "sqlite")
    try:
        yield up
    finally:
        code, err = stop_up(up)
        assert code == 0, err


def test_split_mesh_gives_each_identity_only_its_own_files(running: Running) -> None:
    mesh = running.data_dir / "mesh"
    result = _mesh_cli("init", str(mesh), "--split")
    assert result.returncode == 0, result.stderr
    for identity in ("auth_svc", "storage_svc", "share_svc", "gateway"):
        own = mesh / identity
        assert own.stat().st_mode & 0o777 == 0o700
        assert sorted(p.name for p in own.iterdir()) == sorted(["ca.pem", f"{identity}.pem", f"{identity}.key"])
        assert (own / f"{identity}.key").stat().st_mode & 0o777 == 0o600
        assert (own / f"{identity}.key").read_bytes() == (mesh / f"{identity}.key").read_bytes()


@pytest.mark.parametrize("name", list(GRPC_SERVICES))
def test_compose_healthcheck_passes_over_mutual_tls(running: Running, name: str) -> None:
    mesh = running.data_dir / "mesh"
    assert _mesh_cli("init", str(mesh), "--split").returncode == 0
    svc = services(load_deployment())[name]
    module = GRPC_SERVICES[name][0]
    env = {
        key: value.replace(f"{MESH_MOUNT}/", f"{mesh / module}/")
        for key, value in env_of(svc).items()
        if key.startswith("FLOWDOCK_MESH_")
    }
    env["FLOWDOCK_GRPC_PORT"] = running.services[name].split(",")[0].rsplit(":", 1)[1]
    test = svc["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"]
    argv = [sys.executable, *test[2:]]
    ok = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0, ok.stderr
    # Someone else's key with this identity's certificate: the handshake fails, so does the check.
    other = next(m for m, _, _ in GRPC_SERVICES.values() if m != module)
    wrong = {**env, "FLOWDOCK_MESH_KEY_FILE": str(mesh / f"{other}.key")}
    bad = subprocess.run(argv, env=wrong, capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode != 0
