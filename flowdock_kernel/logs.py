"""Structured logging with a request id that follows a call across service hops.

The id comes from the `x-request-id` metadata (Envoy sets one per request) or is made here, lives in a
contextvar for the duration of the call, and the client interceptor in `channels` forwards it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


@dataclass(frozen=True)
class Client:
    """Where a call came from, for the audit trail."""

    ip: str = ""
    user_agent: str = ""


#: Set by the gateway (gateway/envoy_config.py CLIENT_IP_HEADER): the client address after its trusted proxy hops.
CLIENT_IP_HEADER = "x-flowdock-client-ip"

client_var: contextvars.ContextVar[Client] = contextvars.ContextVar("client", default=Client())  # noqa: B039 (frozen)


def client_from(metadata: Iterable[tuple[str, str | bytes]], peer: str, *, trust_forwarded: bool = True) -> Client:
    """Envoy (use_remote_address) appends the client's address to X-Forwarded-For: only the last entry is
    trustworthy, and only when the caller is the gateway (`trust_forwarded`, from its mesh identity). Anyone else:
    the peer address."""
    values = {k: v if isinstance(v, str) else v.decode("latin-1") for k, v in metadata}
    ip = ""
    if trust_forwarded:
        # The gateway's own verdict (after its xff_num_trusted_hops) first; older gateways: XFF's last entry.
        forwarded = values.get("x-forwarded-for", "")
        ip = values.get(CLIENT_IP_HEADER, "").strip() or (forwarded.rsplit(",", 1)[-1].strip() if forwarded else "")
    if not ip and peer.startswith(("ipv4:", "ipv6:")):
        ip = peer[5:].rsplit(":", 1)[0].strip("[]")
    agent = values.get("x-user-agent") or values.get("user-agent", "")
    return Client(ip=ip[:64], user_agent=agent[:256])


_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; json.dumps escapes control characters, so input cannot forge lines."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id_var.get()
        if rid:
            entry["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__("%(asctime)s %(levelname)s " + service + " %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = request_id_var.get()
        line = line.replace("\n", "\\n").replace("\r", "\\r")
        return f"{line} request_id={rid}" if rid else line


def setup(service: str, level: str = "info", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if fmt == "json" else TextFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("sqlalchemy", "alembic", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
