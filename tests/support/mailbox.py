"""A real SMTP server (aiosmtpd) on a free local port that keeps what it receives, and readers of its mails."""

from __future__ import annotations

import email
import email.policy
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.mesh import free_port

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


@contextmanager
def smtp_server() -> Iterator[Mailbox]:
    """A running SMTP server on 127.0.0.1 (port: `.port`), stopped on leaving."""
    box = Mailbox(port=free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


def body(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def link_token(msg: EmailMessage) -> str:
    found = _LINK.search(body(msg))
    assert found, body(msg)
    return found.group(1)
