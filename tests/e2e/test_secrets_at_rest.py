"""Secrets at rest through `flowdock up`: an owner-only data folder, sealed signing keys and TOTP secrets in auth's
database (read raw here) that still work, plaintext rows from before sealed on the next start, and the key-file
paths (auth's secrets key, storage's keyring) honoured outside the data folder."""

from __future__ import annotations

import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.support.accounts import Account, answer, challenge, enable_totp, login, rest
from tests.support.mesh import PG_URL, Running, drop_databases, need_postgres, start_up, stop_up

PASSWORD = "correct horse battery staple"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    db_url = prefix = ""
    if request.param == "postgres":
        need_postgres()
        prefix = f"fdsec_{uuid.uuid4().hex[:8]}"
        db_url = f"{PG_URL}/{prefix}"
    yield request.param, db_url
    if prefix:
        drop_databases(prefix)


def rows(mesh: Running, query: str, **params: Any) -> list[Any]:
    engine = sa.create_engine(mesh.service_db_url("auth"))
    try:
        with engine.begin() as conn:
            return list(conn.execute(sa.text(query), params).all())
    finally:
        engine.dispose()


def execute(mesh: Running, statement: str, **params: Any) -> None:
    engine = sa.create_engine(mesh.service_db_url("auth"))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(statement), params)
    finally:
        engine.dispose()


def account(mesh: Running) -> Account:
    me = Account(f"s{uuid.uuid4().hex[:10]}@example.org", PASSWORD)
    with rest(mesh) as c:
        assert c.post("/api/v1/auth/register", json={"email": me.email, "password": PASSWORD}).status_code == 200
    return login(mesh, me)


def modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.lstat().st_mode) for p in [root, *root.rglob("*")]}


def test_secrets_are_sealed_and_files_owner_only(backend: tuple[str, str], tmp_path: Path) -> None:
    name, db_url = backend
    data = tmp_path / "data"
    secrets_dir = tmp_path / "mounted-secrets"
    env = {
        "FLOWDOCK_AUTH_SECRETS_KEY_FILE": str(secrets_dir / "auth-secrets.key"),
        "FLOWDOCK_STORAGE_KEYRING_PATH": str(secrets_dir / "keyring.json"),
    }
    mesh = start_up(data, name, db_url, extra_env=env)
    try:
        me = account(mesh)
        enable_totp(mesh, me)
        assert answer(mesh, challenge(mesh, me), me.totp(1)) == 200  # 2FA login works with the sealed secret
        with rest(mesh, me.access_token) as c:  # storage writes its keyring and blobs
            up = c.post("/api/v1/uploads", json={"parent_id": "root", "name": "a.txt", "size": 3}).json()
            assert c.put(f"/api/v1/uploads/{up['uploadId']}", params={"offset": 0}, content=b"abc").is_success
            assert c.post(f"/api/v1/uploads/{up['uploadId']}/finish", json={}).is_success

        # The raw database holds no plaintext signing key and no plaintext TOTP secret.
        keys = rows(mesh, "SELECT kid, private_pem FROM signing_keys")
        assert keys and all(pem.startswith("enc1:") and "PRIVATE KEY" not in pem for _, pem in keys)
        (stored,) = rows(mesh, "SELECT totp_secret FROM users WHERE email = :email", email=me.email)
        assert stored[0].startswith("enc1:") and me.totp_secret not in stored[0]

        # Key paths honoured: both key files live in the "mounted secret" folder, none in the data folder.
        assert (secrets_dir / "auth-secrets.key").stat().st_size == 64
        assert (secrets_dir / "keyring.json").exists()
        assert not list(data.rglob("auth-secrets.key")) and not list(data.rglob("keyring.json"))
        assert stat.S_IMODE((secrets_dir / "auth-secrets.key").stat().st_mode) == 0o600

        # Owner-only: the data folder and every folder in it 0700, every file 0600 (databases, logs, blobs...).
        found = modes(data)
        loose = {p: oct(m) for p, m in found.items() if m not in (0o700, 0o600)}
        assert not loose, loose
        assert found["."] == 0o700
        if name == "sqlite":
            assert found["auth.db"] == found["storage.db"] == found["share.db"] == 0o600
        assert found["logs/gateway.log"] == 0o600
    finally:
        code, err = stop_up(mesh)
        assert code == 0, err

    # Rows written before sealing (plaintext) are sealed on the next start and keep working.
    execute(
        mesh,
        "UPDATE users SET totp_secret = :secret, totp_last_step = 0 WHERE email = :email",
        secret=me.totp_secret,
        email=me.email,
    )
    mesh = start_up(data, name, db_url, extra_env=env)
    try:
        (stored,) = rows(mesh, "SELECT totp_secret FROM users WHERE email = :email", email=me.email)
        assert stored[0].startswith("enc1:"), "a plaintext TOTP secret was not sealed at start"
        assert answer(mesh, challenge(mesh, me), me.totp(1)) == 200  # last_step was reset with the row
    finally:
        code, err = stop_up(mesh)
        assert code == 0, err


def test_a_loose_data_folder_from_before_is_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "logs").mkdir(parents=True)
    data.chmod(0o755)
    (data / "logs" / "old.log").write_text("x")
    (data / "logs" / "old.log").chmod(0o644)
    mesh = start_up(data, "sqlite")
    code, err = stop_up(mesh)
    assert code == 0, err
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "logs" / "old.log").stat().st_mode) == 0o600
