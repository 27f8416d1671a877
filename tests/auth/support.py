"""Helpers for the auth suites: a real SMTP server (aiosmtpd) that keeps what it receives, and account helpers
that go through the gateway exactly as a user would (register, read the mail, verify, log in)."""

from __future__ import annotations

import email
import email.policy
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import httpx
import pyotp

from tests.conftest import Running

PASSWORD = "correct horse battery staple"
_LINK = re.compile(r"https?://\S+?[?&]token=([A-Za-z0-9_-]+)")


@dataclass
class Mailbox:
    """Mails received by the test SMTP server."""

    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        with self.lock:
            self.messages.append(msg)
        return "250 Message accepted for delivery"

    def wait(self, to: str, subject: str, *, after: int = 0, timeout: float = 10.0) -> EmailMessage:
        """The first mail to `to` whose subject contains `subject`, among those received after index `after`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for msg in self.messages[after:]:
                    if msg["To"] == to and subject in str(msg["Subject"]):
                        return msg
            time.sleep(0.05)
        raise AssertionError(f"no mail to {to} about {subject!r} within {timeout} s")

    def count(self) -> int:
        with self.lock:
            return len(self.messages)

    def to(self, to: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if m["To"] == to]


def body(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def link_token(msg: EmailMessage) -> str:
    found = _LINK.search(body(msg))
    assert found, body(msg)
    return found.group(1)


def new_email() -> str:
    return f"u{uuid.uuid4().hex[:12]}@example.org"


def rest(mesh: Running, token: str = "") -> httpx.Client:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=mesh.url, headers=headers, timeout=60)


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
