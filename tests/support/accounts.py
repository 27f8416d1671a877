"""Accounts made the way users and operators make them, through the gateway of a running mesh: register, read
the mail, verify, log in, turn on 2FA; administrators through `flowdock admin create-user --admin`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.parse
import uuid
from dataclasses import dataclass

import httpx
import pyotp

from tests.support.mailbox import Mailbox, link_token
from tests.support.mesh import Running

PASSWORD = "correct horse battery staple"
# What `register_and_login` uses (the shared mesh does not require verified emails).
MESH_PASSWORD = "correct horse battery"


def new_email() -> str:
    return f"u{uuid.uuid4().hex[:12]}@example.org"


def rest(mesh: Running, token: str = "") -> httpx.Client:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=mesh.url, headers=headers, timeout=60)


def cli(
    mesh: Running, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`flowdock <args>` against the mesh's data folder and database, as an operator runs it."""
    argv = [sys.executable, "-m", "flowdock_cli", *args, "--data-dir", str(mesh.data_dir)]
    if mesh.db_url:
        argv += ["--db", mesh.db_url]
    return subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}, check=False
    )


def register_and_login(mesh: Running, email: str | None = None) -> str:
    """An access token of a new account on a mesh that does not require verified emails."""
    email = email or f"u{uuid.uuid4().hex[:10]}@example.org"
    r = httpx.post(f"{mesh.url}/api/v1/auth/register", json={"email": email, "password": MESH_PASSWORD})
    assert r.status_code == 200, r.text
    r = httpx.post(f"{mesh.url}/api/v1/auth/login", json={"email": email, "password": MESH_PASSWORD})
    assert r.status_code == 200, r.text
    token = r.json()["accessToken"]
    assert token.count(".") == 2
    return str(token)


@dataclass
class Account:
    email: str
    password: str
    access_token: str = ""
    refresh_token: str = ""
    totp_secret: str = ""

    def totp(self, offset_steps: int = 0) -> str:
        return pyotp.TOTP(self.totp_secret).at(time.time() + 30 * offset_steps)


def register_verified(mesh: Running, mailbox: Mailbox, email_addr: str = "", password: str = PASSWORD) -> Account:
    email_addr = email_addr or new_email()
    before = mailbox.count()
    with rest(mesh) as c:
        r = c.post("/api/v1/auth/register", json={"email": email_addr, "password": password})
        assert r.status_code == 200, r.text
        token = link_token(mailbox.wait(email_addr, "Confirm", after=before))
        r = c.post("/api/v1/auth/verify-email", json={"token": token})
        assert r.status_code == 200, r.text
    return Account(email_addr, password)


def login(mesh: Running, account: Account, device: str = "") -> Account:
    with rest(mesh) as c:
        r = c.post(
            "/api/v1/auth/login", json={"email": account.email, "password": account.password, "device_name": device}
        )
    assert r.status_code == 200, r.text
    data = r.json()
    assert not data["mfaRequired"], data
    account.access_token, account.refresh_token = data["accessToken"], data["refreshToken"]
    return account


def user(mesh: Running, mailbox: Mailbox, device: str = "") -> Account:
    """A fresh verified account, logged in."""
    return login(mesh, register_verified(mesh, mailbox), device)


_admins: dict[str, Account] = {}


def make_admin(mesh: Running, *, fresh: bool = False) -> Account:
    """An administrator made with `flowdock admin create-user --admin` (one per mesh unless `fresh`)."""
    if not fresh and mesh.url in _admins:
        return login(mesh, _admins[mesh.url])
    email = new_email()
    made = cli(mesh, "admin", "create-user", "--email", email, "--admin", "--password-stdin", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    assert "administrator" in made.stdout
    admin = login(mesh, Account(email, PASSWORD))
    if not fresh:
        _admins[mesh.url] = admin
    return admin


def admin_token(mesh: Running) -> str:
    """An administrator made the way operators do (`flowdock admin create-user --admin`), logged in over REST."""
    email, password = f"admin-{uuid.uuid4().hex[:8]}@example.org", "an admin passphrase 42"
    argv = ["admin", "create-user", "--email", email, "--admin", "--password-stdin"]
    made = subprocess.run(
        [sys.executable, "-m", "flowdock_cli", *argv, "--data-dir", str(mesh.data_dir)]
        + (["--db", mesh.db_url] if mesh.db_url else []),
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    r = httpx.post(f"{mesh.url}/api/v1/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return str(r.json()["accessToken"])


def enable_totp(mesh: Running, me: Account) -> list[str]:
    with rest(mesh, me.access_token) as c:
        started = c.post("/api/v1/me/totp", json={})
        assert started.status_code == 200, started.text
        data = started.json()
        me.totp_secret = data["secret"]
        uri = urllib.parse.urlparse(data["otpauthUri"])
        assert uri.scheme == "otpauth" and uri.netloc == "totp"
        query = urllib.parse.parse_qs(uri.query)
        assert query["secret"] == [me.totp_secret] and query["issuer"] == ["FlowDock"]
        assert urllib.parse.unquote(uri.path).endswith(me.email)
        assert data["qrSvg"].lstrip().startswith("<svg") and "</svg>" in data["qrSvg"]
        assert len(me.totp_secret) >= 32  # ≥ 160 bits of base32
        wrong = c.post("/api/v1/me/totp/confirm", json={"code": "000000" if me.totp() != "000000" else "111111"})
        assert wrong.status_code == 400
        assert c.get("/api/v1/me").json()["totpEnabled"] is False
        confirmed = c.post("/api/v1/me/totp/confirm", json={"code": me.totp()})
        assert confirmed.status_code == 200, confirmed.text
        codes = list(confirmed.json()["recoveryCodes"])
        assert c.get("/api/v1/me").json()["totpEnabled"] is True
    assert len(codes) == len(set(codes)) == 10
    return codes


def challenge(mesh: Running, me: Account) -> str:
    with rest(mesh) as c:
        r = c.post("/api/v1/auth/login", json={"email": me.email, "password": me.password})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["mfaRequired"] is True and data["mfaToken"] and not data["accessToken"] and not data["refreshToken"]
    return str(data["mfaToken"])


def answer(mesh: Running, mfa_token: str, code: str) -> int:
    with rest(mesh) as c:
        return c.post("/api/v1/auth/login/totp", json={"mfa_token": mfa_token, "code": code}).status_code
