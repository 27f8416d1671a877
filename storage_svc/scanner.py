"""Virus scanning: stream bytes to clamd (INSTREAM) and turn its answer into a verdict or a domain error.

Protocol (clamd 1.4): connect, send `zINSTREAM\\0`, then frames of a 4-byte big-endian length and that many bytes,
then a zero length; clamd answers one NUL-terminated line: `stream: OK`, `stream: <Signature> FOUND`, or
`INSTREAM size limit exceeded. ERROR` once more than its StreamMaxLength arrived.

Outcomes, each distinct:

- clean → `ScanVerdict(clean=True)`; infected → `ScanVerdict(clean=False, signature=<name>)`;
- clamd unreachable, connection refused/reset/closed mid-stream, a timeout → `Unavailable` (fail closed: a
  failure is never a clean verdict, and the caller may retry later);
- content beyond the scanner's limit → `ScanLimitExceeded` carrying the limit. Raised before any byte is sent
  when the size is declared (`open(size)`), before the byte that would cross the limit otherwise, when clamd
  itself says its size limit was exceeded (its StreamMaxLength is smaller than `stream_max_bytes`: a
  misconfiguration, logged), and when clamd reports `Heuristics.Limits.Exceeded.*` (an archive expanding beyond
  MaxFileSize/MaxScanSize: part of it was not scanned). What happens then is the caller's policy
  (`storage_scan_oversize`: refuse | allow-unscanned); this module only reports it;
- any other reply → `Unavailable`, with the reply logged.

clamd configuration this module relies on (measured with clamd 1.4.6; tests/support/clamd.py uses it):
`StreamMaxLength` = `stream_max_bytes`; `MaxScanSize` = `MaxFileSize` = a few times that (headroom: bytes clamd
extracts from archives or finds embedded count against MaxScanSize, so without headroom ordinary files near the
limit come back `Heuristics.Limits.Exceeded.MaxScanSize`); `AlertExceedsMax yes`. MaxFileSize must not be below
MaxScanSize: an archive member larger than MaxFileSize is skipped silently and the archive answers `OK`. "OK"
is only trustworthy under those settings, so the service enforces `stream_max_bytes` itself rather than relying
on clamd, and treats the limit alerts as "not fully scanned", never as clean.

Memory stays flat: bytes go out in frames of at most `frame_bytes` as they are fed, with backpressure (each
frame is drained before the next), and nothing is buffered beyond the frame in flight. One connection per
scan (clamd may restart or come up late; nothing is pooled).

Implements the `VirusScanner` port (storage_svc/ports.py, with `ScanVerdict`); `ScanLimitExceeded` is a domain
error (storage_svc/domain.py). No gRPC or SQLAlchemy here: `grpc_errors` maps the domain errors (Unavailable →
UNAVAILABLE, ScanLimitExceeded → FAILED_PRECONDITION with reason SCAN_LIMIT_EXCEEDED and `limit_bytes` in its
metadata).
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Self

from flowdock_kernel import metrics
from flowdock_kernel.errors import Unavailable
from storage_svc.domain import ScanLimitExceeded
from storage_svc.ports import ScanVerdict

log = logging.getLogger("flowdock.storage.scanner")

MiB: Final = 1024 * 1024
DEFAULT_FRAME_BYTES: Final = MiB
MAX_REPLY_BYTES: Final = 4096

UNREACHABLE: Final = "virus scanner unreachable; retry later"
NO_VERDICT: Final = "virus scanner gave no verdict; retry later"

_FRAME_LENGTH = struct.Struct(">I")
_END_OF_STREAM = _FRAME_LENGTH.pack(0)
_CLAMD_LIMIT_REPLY = "INSTREAM size limit exceeded. ERROR"
_LIMIT_SIGNATURE_PREFIX = "Heuristics.Limits.Exceeded"


@dataclass(frozen=True, slots=True)
class ClamdAddress:
    """Where clamd listens: a unix socket path, or a TCP host and port."""

    unix_path: str | None = None
    host: str = ""
    port: int = 0

    @classmethod
    def parse(cls, address: str) -> ClamdAddress:
        """`host:port`, `[ipv6]:port`, `tcp://host:port`, or a unix socket: `/path`, `./path`, `unix:/path`."""
        text = address.strip()
        if text.startswith("unix:"):
            text = text.removeprefix("unix:").removeprefix("//")
            if not text:
                raise ValueError(f"clamd address {address!r}: empty unix socket path")
            return cls(unix_path=text)
        if text.startswith(("/", "./", "../")):
            return cls(unix_path=text)
        text = text.removeprefix("tcp://")
        host, sep, port_text = text.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"clamd address {address!r}: expected host:port or a unix socket path")
        return cls(host=host, port=int(port_text))

    def __str__(self) -> str:
        if self.unix_path is not None:
            return f"unix:{self.unix_path}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


SCAN_RESULTS = ("clean", "infected", "error")


def _clamd_answered(up: bool) -> None:
    """flowdock_clamd_up: created on first use, so that a service scanning nothing exports no series."""
    metrics.CLAMD_UP.labels("storage").set(1 if up else 0)


class ClamdScanner:
    """Scans with clamd over TCP or a unix socket; one INSTREAM connection per file."""

    enabled: bool = True

    def __init__(
        self,
        address: str,
        *,
        stream_max_bytes: int,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        frame_bytes: int = DEFAULT_FRAME_BYTES,
    ) -> None:
        """`stream_max_bytes`: clamd's StreamMaxLength (and ≤ its MaxFileSize/MaxScanSize). `read_timeout` bounds
        every wait on clamd: each frame's write (backpressure) and the verdict after the last byte."""
        if stream_max_bytes <= 0 or frame_bytes <= 0 or connect_timeout <= 0 or read_timeout <= 0:
            raise ValueError("stream_max_bytes, frame_bytes and the timeouts must be positive")
        self.address = ClamdAddress.parse(address)
        self.stream_max_bytes = stream_max_bytes
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.frame_bytes = frame_bytes
        for result in SCAN_RESULTS:  # every result exported from the start, at 0 (rates need a first sample)
            metrics.SCAN_SECONDS.labels(result)

    @property
    def description(self) -> str:
        return f"virus scanning with clamd at {self.address} (files up to {self.stream_max_bytes} bytes)"

    def __repr__(self) -> str:
        return f"ClamdScanner({str(self.address)!r}, stream_max_bytes={self.stream_max_bytes})"

    async def open(self, size: int | None = None) -> ScanSession:
        """A connection streaming one file; `size` (if known) is checked against the limit before connecting."""
        if size is not None and size > self.stream_max_bytes:
            raise ScanLimitExceeded(self.stream_max_bytes, size=size, detail="declared size")
        reader, writer = await self._connect()
        session = ScanSession(self, reader, writer, size)
        await session._begin()
        return session

    async def scan(self, chunks: AsyncIterator[bytes], size: int | None = None) -> ScanVerdict:
        """Stream `chunks` and return the verdict (the connection is closed whatever happens)."""
        async with await self.open(size) as session:
            async for chunk in chunks:
                await session.feed(chunk)
            return await session.finish()

    async def ping(self) -> bool:
        """True if clamd answers PING with PONG within the timeouts; never raises for a down scanner."""
        try:
            reader, writer = await self._connect()
        except Unavailable:
            return False
        try:
            async with asyncio.timeout(self.read_timeout):
                writer.write(b"zPING\0")
                await writer.drain()
                reply = await reader.readuntil(b"\0")
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            log.warning("clamd did not answer PING", extra={"clamd_address": str(self.address), "error": repr(exc)})
            return False
        finally:
            await _close(writer)
        answered = reply.rstrip(b"\0").strip() == b"PONG"
        _clamd_answered(answered)
        return answered

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            async with asyncio.timeout(self.connect_timeout):
                if self.address.unix_path is not None:
                    return await asyncio.open_unix_connection(self.address.unix_path, limit=MAX_REPLY_BYTES)
                return await asyncio.open_connection(self.address.host, self.address.port, limit=MAX_REPLY_BYTES)
        except (OSError, TimeoutError) as exc:
            raise self._unreachable("connect", exc) from exc

    def _unreachable(self, stage: str, exc: BaseException) -> Unavailable:
        _clamd_answered(False)
        log.warning(
            "virus scanner unreachable",
            extra={"clamd_address": str(self.address), "stage": stage, "error": repr(exc)},
        )
        return Unavailable(UNREACHABLE)

    def _verdict(self, raw: bytes, sent: int) -> ScanVerdict:
        reply = raw.rstrip(b"\0").decode("utf-8", "replace").strip()
        if reply == _CLAMD_LIMIT_REPLY:
            raise self._clamd_limit(sent)
        body = reply.removeprefix("stream: ") if reply.startswith("stream: ") else None
        if body == "OK":
            return ScanVerdict(clean=True)
        if body is not None and body.endswith(" FOUND") and len(body) > len(" FOUND"):
            signature = body.removesuffix(" FOUND")
            if signature.startswith(_LIMIT_SIGNATURE_PREFIX):
                log.warning(
                    "clamd could not scan all of a file",
                    extra={"clamd_address": str(self.address), "clamd_reply": signature, "sent_bytes": sent},
                )
                raise ScanLimitExceeded(
                    self.stream_max_bytes,
                    size=sent,
                    detail=signature,
                    message="the virus scanner could not scan all of this file (archive too large or too deep)",
                )
            return ScanVerdict(clean=False, signature=signature)
        log.error(
            "unexpected reply from clamd",
            extra={"clamd_address": str(self.address), "clamd_reply": reply[:500], "sent_bytes": sent},
        )
        raise Unavailable(NO_VERDICT)

    def _clamd_limit(self, sent: int) -> ScanLimitExceeded:
        log.error(
            "clamd's StreamMaxLength is smaller than the configured scanner limit",
            extra={"clamd_address": str(self.address), "stream_max_bytes": self.stream_max_bytes, "sent_bytes": sent},
        )
        return ScanLimitExceeded(self.stream_max_bytes, size=sent, detail=_CLAMD_LIMIT_REPLY)


class ScanSession:
    """One INSTREAM connection: `feed` bytes in order, then `finish` for the verdict (or `close` to abandon).

    Any failure closes the session. Use as `async with await scanner.open(size) as session:`.
    """

    def __init__(
        self,
        scanner: ClamdScanner,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        declared_size: int | None,
    ) -> None:
        self._scanner = scanner
        self._reader = reader
        self._writer = writer
        self.declared_size = declared_size
        self._sent = 0
        self._closed = False
        self._started = time.perf_counter()  # for metrics.SCAN_SECONDS

    @property
    def sent(self) -> int:
        """Bytes handed to clamd so far."""
        return self._sent

    async def _begin(self) -> None:
        await self._write(b"zINSTREAM\0")

    async def feed(self, data: bytes) -> None:
        """Send `data` in frames of at most the scanner's `frame_bytes`; returns once clamd has taken them.

        Raises ScanLimitExceeded (before sending anything of `data`) if it would carry the stream past the limit.
        """
        self._check_open()
        if not data:
            return  # a zero-length frame would end the stream
        limit = self._scanner.stream_max_bytes
        if self._sent + len(data) > limit:
            await self.close()
            size = max(self._sent + len(data), self.declared_size or 0)
            raise ScanLimitExceeded(limit, size=size, detail="stream longer than the limit")
        view = memoryview(data)
        step = self._scanner.frame_bytes
        for start in range(0, len(view), step):
            frame = view[start : start + step]
            await self._write(_FRAME_LENGTH.pack(len(frame)), frame)
            self._sent += len(frame)

    async def finish(self) -> ScanVerdict:
        """End the stream and return clamd's verdict; the session is closed afterwards."""
        self._check_open()
        try:
            await self._write(_END_OF_STREAM)
            reply = await self._read_reply()
            verdict = self._scanner._verdict(reply, self._sent)
        except Exception:
            metrics.SCAN_SECONDS.labels("error").observe(time.perf_counter() - self._started)
            raise
        finally:
            await self.close()
        _clamd_answered(True)
        result = "clean" if verdict.clean else "infected"
        metrics.SCAN_SECONDS.labels(result).observe(time.perf_counter() - self._started)
        return verdict

    async def close(self) -> None:
        """Abandon (or after `finish`, release) the connection; idempotent."""
        if not self._closed:
            self._closed = True
            await _close(self._writer)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("scan session already finished or closed")

    async def _write(self, *parts: bytes | memoryview) -> None:
        try:
            async with asyncio.timeout(self._scanner.read_timeout):
                for part in parts:
                    self._writer.write(part)
                await self._writer.drain()
        except (OSError, TimeoutError) as exc:
            # clamd closes the connection right after refusing an oversize stream: tell that apart from a crash.
            early = await self._early_reply()
            await self.close()
            if early.rstrip(b"\0").strip() == _CLAMD_LIMIT_REPLY.encode():
                raise self._scanner._clamd_limit(self._sent) from exc
            raise self._scanner._unreachable("send", exc) from exc

    async def _early_reply(self) -> bytes:
        """Whatever clamd already said before the connection broke (nothing on a reset or a timeout)."""
        try:
            async with asyncio.timeout(0.5):
                return await self._reader.read(MAX_REPLY_BYTES)
        except (OSError, TimeoutError):
            return b""

    async def _read_reply(self) -> bytes:
        try:
            async with asyncio.timeout(self._scanner.read_timeout):
                return await self._reader.readuntil(b"\0")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:  # closed without the terminator: still an answer to judge
                return exc.partial
            raise self._scanner._unreachable("verdict: closed without a reply", exc) from exc
        except asyncio.LimitOverrunError as exc:
            log.error("clamd's reply is too long", extra={"clamd_address": str(self._scanner.address)})
            raise Unavailable(NO_VERDICT) from exc
        except (OSError, TimeoutError) as exc:
            raise self._scanner._unreachable("verdict", exc) from exc


class UnscannedSession:
    """DisabledScanner's session: accepts bytes, sends them nowhere, says clean-but-not-scanned."""

    def __init__(self) -> None:
        self._sent = 0

    @property
    def sent(self) -> int:
        return self._sent

    async def feed(self, data: bytes) -> None:
        self._sent += len(data)

    async def finish(self) -> ScanVerdict:
        return ScanVerdict(clean=True, signature=None, scanned=False)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        return None


class DisabledScanner:
    """Scanning switched off by config: every file is 'clean' with `scanned=False`; the service says so at start."""

    enabled: bool = False
    description: Final = "virus scanning DISABLED by configuration: uploads are not scanned"

    async def open(self, size: int | None = None) -> UnscannedSession:
        return UnscannedSession()

    async def scan(self, chunks: AsyncIterator[bytes], size: int | None = None) -> ScanVerdict:
        """Does not consume `chunks` (reading them would cost I/O for nothing)."""
        return ScanVerdict(clean=True, signature=None, scanned=False)

    async def ping(self) -> bool:
        return True


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        async with asyncio.timeout(1.0):
            await writer.wait_closed()
    except (OSError, TimeoutError):
        writer.transport.abort()
