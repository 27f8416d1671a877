"""storage_svc.scanner against a real clamd (tests/support/clamd.py), plus fake peers for the broken-connection paths.

Each failure mode is a distinct outcome: a verdict (clean / infected with the signature), ScanLimitExceeded
(carrying the limit), or Unavailable (fail closed: never a clean verdict).
"""

from __future__ import annotations

import asyncio
import io
import logging
import random
import socket
import struct
import tracemalloc
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import TypeAlias

import pytest

from flowdock_kernel.errors import FailedPrecondition, Unavailable
from storage_svc.domain import ScanLimitExceeded
from storage_svc.ports import ScanVerdict, VirusScanner
from storage_svc.scanner import ClamdAddress, ClamdScanner, DisabledScanner
from tests.support.clamd import (
    CLAM_EXE_SIGNATURE,
    EICAR,
    EICAR_SIGNATURE,
    REQUIRE_SERVERS,
    TESTFILES,
    ClamdServer,
)

pytest_plugins = ["tests.support.clamd"]

MiB = 1024 * 1024


def scanner_for(server: ClamdServer, *, unix: bool = False, **kwargs: float) -> ClamdScanner:
    address = server.unix_socket if unix else server.address
    return ClamdScanner(address, stream_max_bytes=server.stream_max_bytes, **kwargs)  # type: ignore[arg-type]


async def chunks_of(data: bytes, size: int = MiB) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def zipped(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def need_testfile(name: str) -> Path:
    path = TESTFILES / name
    if not path.is_file():
        why = f"{path} missing (apt-get install -y clamav-testfiles)"
        if REQUIRE_SERVERS:
            pytest.fail(f"{why} (FLOWDOCK_REQUIRE_SERVERS=1 forbids skipping)")
        pytest.skip(why)
    return path


# -- verdicts from the real clamd ------------------------------------------------------------------------------


@pytest.mark.parametrize("unix", [False, True], ids=["tcp", "unix"])
async def test_clean_bytes_are_clean(clamd: ClamdServer, unix: bool) -> None:
    verdict = await scanner_for(clamd, unix=unix).scan(chunks_of(b"just a holiday photo\n" * 1000))
    assert verdict == ScanVerdict(clean=True, signature=None, scanned=True)


async def test_empty_file_is_clean(clamd: ClamdServer) -> None:
    async with await scanner_for(clamd).open(0) as session:
        assert await session.finish() == ScanVerdict(clean=True)


@pytest.mark.parametrize("unix", [False, True], ids=["tcp", "unix"])
async def test_eicar_is_infected_with_the_signature_name(clamd: ClamdServer, unix: bool) -> None:
    verdict = await scanner_for(clamd, unix=unix).scan(chunks_of(EICAR), size=len(EICAR))
    assert not verdict.clean
    assert verdict.signature is not None
    assert verdict.signature.startswith(EICAR_SIGNATURE)  # clamd appends ".UNOFFICIAL" to a local database's names


async def test_eicar_split_across_tiny_frames_is_found(clamd: ClamdServer) -> None:
    scanner = ClamdScanner(clamd.address, stream_max_bytes=clamd.stream_max_bytes, frame_bytes=7)
    session = await scanner.open(len(EICAR) + 1000)
    await session.feed(b"\n" * 1000)
    await session.feed(EICAR)
    verdict = await session.finish()
    assert verdict.signature is not None
    assert verdict.signature.startswith(EICAR_SIGNATURE)


async def test_eicar_inside_a_zip_is_infected(clamd: ClamdServer) -> None:
    data = zipped({"docs/readme.txt": b"hello\n", "docs/eicar.com": EICAR})
    assert EICAR not in data  # deflated: only unpacking finds it
    verdict = await scanner_for(clamd).scan(chunks_of(data), size=len(data))
    assert verdict.signature is not None
    assert verdict.signature.startswith(EICAR_SIGNATURE)


async def test_eicar_inside_a_nested_zip_is_infected(clamd: ClamdServer) -> None:
    data = zipped({"outer/inner.zip": zipped({"eicar.txt": EICAR})})
    verdict = await scanner_for(clamd).scan(chunks_of(data))
    assert verdict.signature is not None
    assert verdict.signature.startswith(EICAR_SIGNATURE)


@pytest.mark.parametrize("name", ["clam.exe", "clam.zip", "clam.7z", "clam.tar.gz"])
async def test_clamav_testfiles_are_infected(clamd: ClamdServer, name: str) -> None:
    need_testfile("clam.exe")  # the hash signature is generated from it
    data = need_testfile(name).read_bytes()
    verdict = await scanner_for(clamd).scan(chunks_of(data, 4096), size=len(data))
    assert verdict.signature is not None
    assert verdict.signature.startswith(CLAM_EXE_SIGNATURE)


async def test_20_mib_stream_is_clean_and_memory_stays_flat(clamd: ClamdServer) -> None:
    total = 20 * MiB
    assert total < clamd.stream_max_bytes

    rng = random.Random(20)  # incompressible but the same every run

    async def fresh_chunks() -> AsyncIterator[bytes]:  # made on the fly: never the whole file in memory
        for _ in range(total // MiB):
            yield rng.randbytes(MiB)

    tracemalloc.start()
    try:
        verdict = await scanner_for(clamd).scan(fresh_chunks(), size=total)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert verdict == ScanVerdict(clean=True)
    assert peak < 4 * MiB, f"peak {peak / MiB:.1f} MiB while streaming 20 MiB"


async def test_a_large_feed_goes_out_in_bounded_frames(fake_peer: FakePeerFactory) -> None:
    frames: list[int] = []

    async def record_frames(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert await reader.readexactly(10) == b"zINSTREAM\0"
        while n := struct.unpack(">I", await reader.readexactly(4))[0]:
            await reader.readexactly(n)
            frames.append(n)
        writer.write(b"stream: OK\0")
        await writer.drain()

    async with fake_peer(record_frames) as address:
        scanner = ClamdScanner(address, stream_max_bytes=64 * MiB, frame_bytes=MiB)
        async with await scanner.open() as session:
            await session.feed(bytes(5 * MiB + 3))
            assert session.sent == 5 * MiB + 3
            assert await session.finish() == ScanVerdict(clean=True)
    assert frames == [MiB] * 5 + [3]


# -- the scanner's limit ---------------------------------------------------------------------------------------


async def test_declared_size_over_the_limit_is_refused_before_connecting(fake_peer: FakePeerFactory) -> None:
    connections = 0

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1

    async with fake_peer(count) as address:
        scanner = ClamdScanner(address, stream_max_bytes=8 * MiB)
        with pytest.raises(ScanLimitExceeded) as caught:
            await scanner.open(8 * MiB + 1)

        consumed = False

        async def never_read() -> AsyncIterator[bytes]:
            nonlocal consumed
            consumed = True
            yield b"x"

        with pytest.raises(ScanLimitExceeded):
            await scanner.scan(never_read(), size=9 * MiB)
        await asyncio.sleep(0.05)
    assert connections == 0
    assert not consumed
    err = caught.value
    assert isinstance(err, FailedPrecondition)
    assert err.limit_bytes == 8 * MiB
    assert err.size == 8 * MiB + 1
    assert err.reason == "SCAN_LIMIT_EXCEEDED"
    assert err.metadata == {"limit_bytes": str(8 * MiB), "scanner_limit": "declared size"}


async def test_declared_size_at_the_limit_is_scanned(clamd: ClamdServer) -> None:
    async def zeros() -> AsyncIterator[bytes]:
        for _ in range(clamd.stream_max_bytes // MiB):
            yield bytes(MiB)

    assert clamd.stream_max_bytes % MiB == 0
    verdict = await scanner_for(clamd).scan(zeros(), size=clamd.stream_max_bytes)
    assert verdict.clean


async def test_undeclared_stream_crossing_the_limit_is_stopped_before_the_excess(clamd: ClamdServer) -> None:
    scanner = scanner_for(clamd)
    session = await scanner.open()
    for _ in range(clamd.stream_max_bytes // MiB):
        await session.feed(bytes(MiB))
    with pytest.raises(ScanLimitExceeded) as caught:
        await session.feed(b"one byte too many")
    assert session.sent == clamd.stream_max_bytes
    assert caught.value.limit_bytes == clamd.stream_max_bytes
    with pytest.raises(RuntimeError):
        await session.feed(b"x")  # the session is closed


async def test_clamd_refusing_an_oversize_stream_is_a_limit_not_an_outage(
    clamd: ClamdServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Misconfigured: the service believes clamd takes twice what its StreamMaxLength allows.
    scanner = ClamdScanner(clamd.address, stream_max_bytes=2 * clamd.stream_max_bytes)

    async def too_much() -> AsyncIterator[bytes]:
        for _ in range(clamd.stream_max_bytes // MiB + 2):
            yield bytes(MiB)

    with caplog.at_level(logging.ERROR, "flowdock.storage.scanner"), pytest.raises(ScanLimitExceeded) as caught:
        await scanner.scan(too_much())
    assert caught.value.limit_bytes == 2 * clamd.stream_max_bytes
    assert "StreamMaxLength is smaller" in caplog.text


async def test_clean_archive_within_the_limits_is_clean(clamd: ClamdServer) -> None:
    data = zipped({"a.bin": bytes(clamd.stream_max_bytes), "b.txt": b"notes\n" * 1000})
    assert (await scanner_for(clamd).scan(chunks_of(data), size=len(data))).clean


async def test_archive_expanding_beyond_clamds_limits_is_a_limit_not_clean(clamd: ClamdServer) -> None:
    # A small zip (a "zip bomb" in miniature) unpacking past MaxScanSize: clamd cannot vouch for all of it.
    data = zipped({"big.bin": bytes(clamd.max_scan_bytes + MiB), "eicar.txt": EICAR})
    assert len(data) < MiB
    with pytest.raises(ScanLimitExceeded) as caught:
        await scanner_for(clamd).scan(chunks_of(data), size=len(data))
    assert caught.value.detail.startswith("Heuristics.Limits.Exceeded")
    assert "could not scan all" in caught.value.message


# -- clamd down, connections breaking: fail closed -------------------------------------------------------------


@pytest.mark.parametrize("unix", [False, True], ids=["tcp", "unix"])
async def test_clamd_stopped_is_unavailable_and_scanning_resumes_after_restart(
    clamd_server: ClamdServer, unix: bool
) -> None:
    scanner = scanner_for(clamd_server, unix=unix, connect_timeout=2.0)
    clamd_server.start()
    assert await scanner.ping()
    clamd_server.stop()
    try:
        with pytest.raises(Unavailable) as caught:
            await scanner.scan(chunks_of(EICAR))
        assert caught.value.message == "virus scanner unreachable; retry later"
        assert not await scanner.ping()
    finally:
        clamd_server.start()
    assert await scanner.ping()
    verdict = await scanner.scan(chunks_of(EICAR))
    assert verdict.signature is not None
    assert verdict.signature.startswith(EICAR_SIGNATURE)


async def test_clamd_stopped_mid_stream_is_unavailable(clamd_server: ClamdServer) -> None:
    clamd_server.start()
    scanner = scanner_for(clamd_server, read_timeout=5.0)
    session = await scanner.open()
    await session.feed(bytes(MiB))
    clamd_server.stop()

    async def the_rest() -> ScanVerdict:
        await session.feed(bytes(MiB))
        return await session.finish()

    try:
        with pytest.raises(Unavailable):
            await the_rest()
    finally:
        clamd_server.start()


async def test_nothing_listening_is_unavailable(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connection refused
        for address in (f"127.0.0.1:{port}", str(tmp_path / "no-such.sock")):
            scanner = ClamdScanner(address, stream_max_bytes=MiB, connect_timeout=2.0)
            with pytest.raises(Unavailable, match="unreachable"):
                await scanner.open()
            assert not await scanner.ping()


async def test_connect_timeout_is_unavailable() -> None:
    # A listening socket whose backlog is full and never accepted: the connect hangs until the timeout.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(0)
        fillers = []
        try:
            for _ in range(8):
                f = socket.socket()
                f.setblocking(False)
                f.connect_ex(s.getsockname())
                fillers.append(f)
            scanner = ClamdScanner(f"127.0.0.1:{s.getsockname()[1]}", stream_max_bytes=MiB, connect_timeout=0.3)
            loop = asyncio.get_running_loop()
            began = loop.time()
            with pytest.raises(Unavailable):
                await scanner.scan(chunks_of(b"data"))
            assert loop.time() - began < 5
        finally:
            for f in fillers:
                f.close()


Handler: TypeAlias = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
FakePeerFactory: TypeAlias = Callable[[Handler], AbstractAsyncContextManager[str]]


@pytest.fixture
def fake_peer() -> FakePeerFactory:
    """A tiny TCP server of the test's own, standing in for a misbehaving clamd: yields its `host:port`."""

    @asynccontextmanager
    async def serve(handler: Handler) -> AsyncIterator[str]:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await handler(reader, writer)
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(run, "127.0.0.1", 0)
        try:
            yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        finally:
            server.close()
            await server.wait_closed()

    return serve


async def test_peer_closing_mid_stream_is_unavailable(fake_peer: FakePeerFactory) -> None:
    async def take_some_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(10 + 4 + 1000)  # the command and part of the first frame

    async with fake_peer(take_some_then_close) as address:
        scanner = ClamdScanner(address, stream_max_bytes=64 * MiB, read_timeout=5.0)
        with pytest.raises(Unavailable, match="unreachable"):
            await scanner.scan(chunks_of(bytes(8 * MiB)))


async def test_peer_resetting_the_connection_is_unavailable(fake_peer: FakePeerFactory) -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(10)
        writer.transport.abort()  # RST

    async with fake_peer(reset) as address:
        scanner = ClamdScanner(address, stream_max_bytes=64 * MiB, read_timeout=5.0)
        with pytest.raises(Unavailable):
            await scanner.scan(chunks_of(bytes(4 * MiB)))


async def test_peer_closing_after_the_stream_without_a_verdict_is_unavailable(fake_peer: FakePeerFactory) -> None:
    async def read_all_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(10)
        while n := struct.unpack(">I", await reader.readexactly(4))[0]:
            await reader.readexactly(n)

    async with fake_peer(read_all_then_close) as address:
        scanner = ClamdScanner(address, stream_max_bytes=MiB)
        with pytest.raises(Unavailable, match="unreachable"):
            await scanner.scan(chunks_of(EICAR))


async def test_peer_never_answering_is_unavailable_after_the_read_timeout(fake_peer: FakePeerFactory) -> None:
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            pass

    async with fake_peer(swallow) as address:
        scanner = ClamdScanner(address, stream_max_bytes=MiB, read_timeout=0.3)
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(Unavailable):
            await scanner.scan(chunks_of(b"hello"))
        assert loop.time() - began < 3
        assert not await scanner.ping()


async def test_peer_not_reading_is_unavailable_after_the_read_timeout(fake_peer: FakePeerFactory) -> None:
    stop = asyncio.Event()

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await stop.wait()  # never reads: the socket buffers fill and the writer must give up

    async with fake_peer(stall) as address:
        scanner = ClamdScanner(address, stream_max_bytes=256 * MiB, read_timeout=0.5)
        try:
            with pytest.raises(Unavailable):
                await scanner.scan(chunks_of(bytes(64 * MiB)))
        finally:
            stop.set()


@pytest.mark.parametrize(
    "reply",
    [b"stream: Something ERROR\0", b"UNKNOWN COMMAND\0", b"stream: \0", b"stream: O\0", b"\xff\xfe\0", b"x" * 5000],
)
async def test_any_other_reply_is_unavailable_and_logged(
    fake_peer: FakePeerFactory, caplog: pytest.LogCaptureFixture, reply: bytes
) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(10)
        while n := struct.unpack(">I", await reader.readexactly(4))[0]:
            await reader.readexactly(n)
        writer.write(reply)
        await writer.drain()

    async with fake_peer(answer) as address:
        scanner = ClamdScanner(address, stream_max_bytes=MiB)
        with caplog.at_level(logging.WARNING, "flowdock.storage.scanner"), pytest.raises(Unavailable) as caught:
            await scanner.scan(chunks_of(b"data"))
    assert caught.value.message == "virus scanner gave no verdict; retry later"
    assert caplog.records, "the unexpected reply is logged"


async def test_limit_reply_from_the_peer_is_a_limit(fake_peer: FakePeerFactory) -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(10 + 4 + 10)
        writer.write(b"INSTREAM size limit exceeded. ERROR\0")
        await writer.drain()

    async with fake_peer(refuse) as address:
        scanner = ClamdScanner(address, stream_max_bytes=MiB)
        with pytest.raises(ScanLimitExceeded) as caught:
            await scanner.scan(chunks_of(bytes(10)))
    assert caught.value.limit_bytes == MiB


# -- ping, addresses, the disabled scanner ---------------------------------------------------------------------


@pytest.mark.parametrize("unix", [False, True], ids=["tcp", "unix"])
async def test_ping(clamd: ClamdServer, unix: bool) -> None:
    assert await scanner_for(clamd, unix=unix).ping()


def test_addresses() -> None:
    assert ClamdAddress.parse("clamav:3310") == ClamdAddress(host="clamav", port=3310)
    assert ClamdAddress.parse("tcp://127.0.0.1:3310") == ClamdAddress(host="127.0.0.1", port=3310)
    assert ClamdAddress.parse("[::1]:3310") == ClamdAddress(host="::1", port=3310)
    assert ClamdAddress.parse("/run/clamav/clamd.ctl") == ClamdAddress(unix_path="/run/clamav/clamd.ctl")
    assert ClamdAddress.parse("unix:/tmp/c.sock") == ClamdAddress(unix_path="/tmp/c.sock")
    assert str(ClamdAddress.parse("[::1]:3310")) == "[::1]:3310"
    for bad in ("clamav", "clamav:", ":3310", "clamav:0", "clamav:70000", "clamav:x", "unix:"):
        with pytest.raises(ValueError, match="clamd address"):
            ClamdAddress.parse(bad)
    with pytest.raises(ValueError, match="positive"):
        ClamdScanner("clamav:3310", stream_max_bytes=0)


async def test_finished_session_cannot_be_reused(clamd: ClamdServer) -> None:
    session = await scanner_for(clamd).open()
    await session.feed(b"hello")
    assert (await session.finish()).clean
    with pytest.raises(RuntimeError):
        await session.feed(b"more")
    with pytest.raises(RuntimeError):
        await session.finish()
    await session.close()  # idempotent


async def test_disabled_scanner_says_clean_but_not_scanned() -> None:
    scanner: VirusScanner = DisabledScanner()
    assert scanner.enabled is False
    assert "DISABLED" in scanner.description
    async with await scanner.open(10**12) as session:
        await session.feed(EICAR)
        assert await session.finish() == ScanVerdict(clean=True, signature=None, scanned=False)
    assert await scanner.scan(chunks_of(EICAR)) == ScanVerdict(clean=True, signature=None, scanned=False)
    assert await scanner.ping()


def test_clamd_scanner_describes_itself(clamd: ClamdServer) -> None:
    scanner: VirusScanner = scanner_for(clamd)
    assert scanner.enabled is True
    assert clamd.address in scanner.description
