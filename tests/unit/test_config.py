"""Configuration: env over TOML over default; a bad value names its key; docs generated from the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flowdock_kernel.config import ConfigError, load
from storage_svc.config import StorageConfig

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_and_env_override() -> None:
    cfg = load(StorageConfig, {})
    assert cfg.storage_chunk_bytes == 1024 * 1024 and cfg.log_level == "info"
    cfg = load(StorageConfig, {"FLOWDOCK_STORAGE_CHUNK_BYTES": "2_097_152", "FLOWDOCK_LOG_LEVEL": "debug"})
    assert cfg.storage_chunk_bytes == 2 * 1024 * 1024 and cfg.log_level == "debug"


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("FLOWDOCK_GRPC_PORT", "seventy", "not a valid int"),
        ("FLOWDOCK_GRPC_PORT", "70000", "TCP port"),
        ("FLOWDOCK_STORAGE_CHUNK_BYTES", "0", "greater than 0"),
        ("FLOWDOCK_LOG_LEVEL", "loud", "one of"),
        ("FLOWDOCK_DB_URL", "mysql://x", "postgresql://"),
    ],
)
def test_bad_env_value_names_key(key: str, value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load(StorageConfig, {key: value})
    assert exc.value.key == key and problem in str(exc.value)


def test_toml_file_and_precedence(tmp_path: Path) -> None:
    f = tmp_path / "fd.toml"
    f.write_text('storage_chunk_bytes = 4096\nlog_level = "warning"\n')
    cfg = load(StorageConfig, {"FLOWDOCK_CONFIG": str(f), "FLOWDOCK_LOG_LEVEL": "error"})
    assert cfg.storage_chunk_bytes == 4096 and cfg.log_level == "error"


def test_toml_unknown_key_and_bad_syntax(tmp_path: Path) -> None:
    f = tmp_path / "fd.toml"
    f.write_text("storage_chunk_byte = 4096\n")
    with pytest.raises(ConfigError, match="storage_chunk_byte.*unknown setting"):
        load(StorageConfig, {"FLOWDOCK_CONFIG": str(f)})
    f.write_text("storage_chunk_bytes = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(StorageConfig, {"FLOWDOCK_CONFIG": str(f)})
    with pytest.raises(ConfigError, match="cannot read"):
        load(StorageConfig, {"FLOWDOCK_CONFIG": str(tmp_path / "missing.toml")})


def test_service_exits_clearly_on_invalid_config(tmp_path: Path) -> None:
    env = {"FLOWDOCK_DATA_DIR": str(tmp_path), "FLOWDOCK_GRPC_PORT": "not-a-port", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "auth_svc", "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "FLOWDOCK_GRPC_PORT" in result.stderr and "Traceback" not in result.stderr


def test_configuration_doc_is_current() -> None:
    result = subprocess.run([sys.executable, "tools/gen_config_docs.py", "--check"], cwd=ROOT, capture_output=True)
    assert result.returncode == 0, result.stdout


def test_flowdock_migrate_creates_every_service_database(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flowdock_runtime", "migrate", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    import sqlite3

    root = Path(__file__).resolve().parents[2]
    for service in ("auth", "storage", "share"):
        head = max(p.name[:4] for p in (root / f"{service}_svc" / "migrations" / "versions").glob("[0-9]*.py"))
        with sqlite3.connect(tmp_path / f"{service}.db") as conn:
            assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (head,)


def test_service_without_its_mesh_certificate_exits_clearly(tmp_path: Path) -> None:
    """mesh_tls is on by default: a service started without its certificate says which file and how to make it."""
    env = {"FLOWDOCK_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "auth_svc", "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert "mesh TLS file" in result.stderr and "flowdock_kernel.mesh init" in result.stderr
    assert "Traceback" not in result.stderr


def test_download_url_key_file_is_shared_by_replicas_that_name_it(tmp_path: Path) -> None:
    """storage_url_key_file: replicas with their own data folders check each other's URLs when they name the same
    key file; without it each keeps data_dir/storage/url.key, and a URL one signs is refused by the other."""
    from storage_svc.adapters import HmacUrlSigner

    def signer(host: str, key_file: str = "") -> HmacUrlSigner:
        env = {"FLOWDOCK_DATA_DIR": str(tmp_path / host), "FLOWDOCK_STORAGE_URL_KEY_FILE": key_file}
        cfg = load(StorageConfig, env)
        assert cfg.url_key_path == (Path(key_file) if key_file else tmp_path / host / "storage" / "url.key")
        return HmacUrlSigner(cfg.url_key_path)

    claims = {"file_id": "f1", "exp": 1}
    shared = str(tmp_path / "secrets" / "url.key")
    assert signer("app2", shared).verify(signer("app1", shared).sign(claims)) == claims
    assert signer("app2").verify(signer("app1").sign(claims)) is None
