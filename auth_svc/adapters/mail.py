"""Outgoing mail: SMTP, or .eml files in an outbox folder when no mail server is configured."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import smtplib
import ssl
import uuid
from email.message import EmailMessage
from pathlib import Path

from auth_svc.domain import mask_email
from flowdock_kernel.clock import Clock, SystemClock

log = logging.getLogger("flowdock.auth")


def _message(sender: str, to: str, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = email.utils.make_msgid(domain=sender.rpartition("@")[2].strip("> ") or "flowdock")
    msg.set_content(body)
    return msg


class SmtpMailer:
    """SMTP with STARTTLS, implicit TLS or plain (local relays), optional login; runs smtplib in a thread."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        security: str,
        username: str,
        password: str,
        sender: str,
        timeout: float,
        ca_file: str = "",
    ) -> None:
        self.host, self.port, self.security = host, port, security
        self.username, self._password, self.sender, self.timeout = username, password, sender, timeout
        self.ca_file = ca_file

    def _send(self, msg: EmailMessage) -> None:
        # Certificates and host names are always verified; ca_file only says which CA to trust.
        context = ssl.create_default_context(cafile=self.ca_file or None)
        smtp: smtplib.SMTP
        if self.security == "tls":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            if self.security == "starttls":
                smtp.starttls(context=context)
            if self.username:
                smtp.login(self.username, self._password)
            smtp.send_message(msg)

    async def send(self, to: str, subject: str, body: str) -> None:
        await asyncio.to_thread(self._send, _message(self.sender, to, subject, body))
        log.info("mail sent", extra={"to": mask_email(to), "subject": subject})


class OutboxMailer:
    """The embedded default: each mail becomes an .eml file in <data_dir>/outbox/ (no mail server needed).

    The log line names the file, never the link inside it (links carry single-use secrets)."""

    def __init__(self, folder: Path, sender: str, clock: Clock | None = None) -> None:
        self.folder = folder
        self.sender = sender
        self._clock = clock or SystemClock()

    def _write(self, msg: EmailMessage) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = self._clock.now().strftime("%Y%m%dT%H%M%S")
        path = self.folder / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(bytes(msg))
        os.chmod(tmp, 0o600)
        tmp.replace(path)
        return path

    async def send(self, to: str, subject: str, body: str) -> None:
        path = await asyncio.to_thread(self._write, _message(self.sender, to, subject, body))
        log.info(
            "mail written to the outbox (no SMTP server configured); open the file for the link",
            extra={"to": mask_email(to), "subject": subject, "file": str(path)},
        )
