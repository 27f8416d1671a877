"""The SMTP mailer against a real SMTP server (aiosmtpd) speaking STARTTLS and implicit TLS with AUTH, with a
certificate from a test CA: credentials only travel encrypted, the certificate is verified, a wrong password
fails. The outbox mailer (the embedded default) writes .eml files and logs no link."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import logging
import smtplib
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from auth_svc.adapters import OutboxMailer, SmtpMailer
from tests.support.mailbox import Mailbox
from tests.support.mesh import free_port

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


def make_cert(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "FlowDock test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


PW = "pw-123"


class Authenticator:
    def __init__(self) -> None:
        self.seen: list[tuple[str, bool]] = []

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"mailer", b"pw-123")
        self.seen.append((mechanism, server.transport.get_extra_info("ssl_object") is not None))
        return AuthResult(success=ok)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Mailbox, int, int, Authenticator]]:
    ca, cert, key = make_cert(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    box, auth = Mailbox(), Authenticator()
    starttls = Controller(
        box, hostname="127.0.0.1", port=free_port(), tls_context=context, require_starttls=True,
        authenticator=auth, auth_required=True, auth_exclude_mechanism=["LOGIN"],
    )  # fmt: skip
    implicit = Controller(
        box, hostname="127.0.0.1", port=free_port(), ssl_context=context, authenticator=auth, auth_required=True,
        auth_require_tls=False,  # the whole connection is TLS; aiosmtpd only knows STARTTLS as "TLS"
        auth_exclude_mechanism=["LOGIN"],
    )  # fmt: skip
    starttls.start()
    implicit.start()
    try:
        yield str(ca), box, starttls.port, implicit.port, auth
    finally:
        starttls.stop()
        implicit.stop()


def mailer(port: int, security: str, ca: str, password: str, timeout: float = 10) -> SmtpMailer:
    return SmtpMailer(
        host="127.0.0.1", port=port, security=security, username="mailer", password=password,
        sender="FlowDock <no-reply@flowdock.test>", timeout=timeout, ca_file=ca,
    )  # fmt: skip


async def test_starttls_and_implicit_tls_with_credentials(tls_server: Any) -> None:
    ca, box, starttls_port, implicit_port, auth = tls_server
    await mailer(starttls_port, "starttls", ca, PW).send("a@example.org", "over starttls", "hello")
    await mailer(implicit_port, "tls", ca, PW).send("b@example.org", "over tls", "hello")
    assert box.wait("a@example.org", "over starttls", timeout=5)["From"] == "FlowDock <no-reply@flowdock.test>"
    assert box.wait("b@example.org", "over tls", timeout=5)
    assert auth.seen and all(encrypted for _, encrypted in auth.seen)


async def test_wrong_password_untrusted_ca_and_plain_text_are_refused(tls_server: Any, tmp_path: Path) -> None:
    ca, box, starttls_port, _, _ = tls_server
    # aiosmtpd answers a failed AUTH PLAIN by stalling: the mailer gives up (timeout) without sending.
    with pytest.raises(smtplib.SMTPException):
        await mailer(starttls_port, "starttls", ca, password="wrong", timeout=2).send("c@example.org", "x", "y")
    (tmp_path / "other").mkdir()
    other_ca, _, _ = make_cert(tmp_path / "other")
    with pytest.raises(ssl.SSLCertVerificationError):
        await mailer(starttls_port, "starttls", str(other_ca), PW).send("c@example.org", "x", "y")
    with pytest.raises(smtplib.SMTPException):  # the server demands STARTTLS before AUTH or MAIL
        await mailer(starttls_port, "none", ca, PW).send("c@example.org", "x", "y")
    await asyncio.sleep(0.2)
    assert not box.to("c@example.org")


async def test_outbox_mailer_writes_eml_and_logs_no_link(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    out = OutboxMailer(tmp_path / "outbox", "FlowDock <no-reply@flowdock.test>")
    await out.send("ada@example.org", "Confirm", "open http://x/verify-email?token=SECRET123")
    files = list((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 1 and files[0].stat().st_mode & 0o077 == 0
    msg = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert msg["To"] == "ada@example.org" and "SECRET123" in msg.get_body().get_content()  # type: ignore[union-attr]
    logged = " ".join(str(r.__dict__) for r in caplog.records)  # message and every extra field
    assert "SECRET123" not in logged and "a***@example.org" in logged and files[0].name in logged
