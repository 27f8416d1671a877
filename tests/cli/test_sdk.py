"""flowdock_sdk in-process: the sync client, token refresh (before expiry, on UNAUTHENTICATED, one rotation at a
time under parallel transfers), progress, and errors with their details."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from flowdock_sdk import (
    AlreadyExists,
    AsyncClient,
    AuthenticationError,
    Client,
    InvalidArgument,
    LocalFileError,
    NotFound,
    TransferProgress,
    _transfer,
)
from flowdock_sdk._session import RpcSession
from tests.support.accounts import PASSWORD
from tests.support.mesh import Running


def register(server: Running) -> str:
    email = f"sdk{uuid.uuid4().hex[:10]}@example.org"
    with Client(server.url) as anonymous:
        anonymous.register(email, PASSWORD)
    return email


def test_sync_client_round_trip_refresh_and_errors(server: Running, tmp_path: Path) -> None:
    email = register(server)
    rotated: list[str] = []
    with Client(server.url, email=email, password=PASSWORD, on_refresh_token=rotated.append) as fd:
        assert fd.me().email == email
        assert len(rotated) == 1 and fd.refresh_token == rotated[-1]

        data = os.urandom(3 * 1024 * 1024 + 5)
        (tmp_path / "a.bin").write_bytes(data)
        events: list[TransferProgress] = []
        [node] = fd.upload(tmp_path / "a.bin", "/In", progress=events.append)
        assert node.size == len(data) and fd.download_bytes("/In/a.bin") == data
        assert fd.download_bytes(node, offset=10, length=20) == data[10:30]
        done = [e.done for e in events]
        assert done == sorted(done) and done[-1] == len(data) and events[-1].total == len(data)

        # Before expiry: a token about to expire is refreshed first (and the new refresh token handed over).
        tokens = fd._async._session.tokens  # white-box: the SDK's session, reached through the clients
        tokens.access_until = time.monotonic()
        assert fd.me().email == email
        assert len(rotated) == 2
        # A token the server refuses: refreshed once, the call made again.
        tokens = fd._async._session.tokens
        tokens.access = tokens.access[:-4] + "AAAA"
        assert fd.quota().used == len(data)
        assert len(rotated) == 3

        with pytest.raises(InvalidArgument) as bad:
            fd.create_folder("/", "a\x00b")
        assert bad.value.violations and bad.value.violations[0].field == "name"
        with pytest.raises(AlreadyExists):
            fd.mkdir("/In")
        with pytest.raises(NotFound):
            fd.stat("/In/missing")
        fd.logout()
    with Client(server.url, refresh_token=rotated[-1]) as dead, pytest.raises(AuthenticationError, match="log in"):
        dead.me()


async def test_parallel_uploads_share_one_refresh(server: Running, tmp_path: Path) -> None:
    email = register(server)
    rotated: list[str] = []
    src = tmp_path / "many"
    for i in range(8):
        (src / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 3}" / f"f{i}.bin").write_bytes(os.urandom(1000 * i))
    async with AsyncClient(server.url, email=email, password=PASSWORD, on_refresh_token=rotated.append) as fd:
        fd.max_parallel = 3
        await fd.authenticate()
        fd._session.tokens.access_until = time.monotonic()  # every upload will want a fresh token at once
        nodes = await fd.upload(src, "/")
        assert len(nodes) == 8 and len(rotated) == 2  # one login, then exactly one rotation
        walked = {rel: n.size for rel, n in await fd.walk("/many") if not n.is_folder}
        assert walked == {f"d{i % 3}/f{i}.bin": 1000 * i for i in range(8)}
        out = tmp_path / "out"
        paths = await asyncio.wait_for(fd.download("/many", out), 60)
        assert len(paths) == 8
        for i in range(8):
            assert (out / f"d{i % 3}" / f"f{i}.bin").read_bytes() == (src / f"d{i % 3}" / f"f{i}.bin").read_bytes()


def test_unreadable_local_paths_are_refused_before_anything_is_sent(
    server: Running, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root reads everything, so "unreadable" is simulated where the SDK asks the OS (os.access); the CLI tests
    chmod 000 for real when not run as root."""
    email = register(server)
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "ok.bin").write_bytes(b"ok")
    blocked = tmp_path / "tree" / "sub" / "secret.bin"
    blocked.write_bytes(b"secret")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != blocked and real_access(p, mode))
    with Client(server.url, email=email, password=PASSWORD) as fd:
        with pytest.raises(LocalFileError, match="secret.bin: permission denied"):
            fd.upload(tmp_path / "tree", "/")
        with pytest.raises(LocalFileError, match="permission denied"):
            fd.upload(blocked, "/")
        assert fd.listdir("/") == []  # nothing was created
        with pytest.raises(LocalFileError, match="no such"):
            fd.upload(tmp_path / "missing", "/")


async def test_small_files_go_in_one_call_and_fall_back_when_the_server_takes_less(
    server: Running, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    email = register(server)
    sizes = {"empty": 0, "one": 1, "edge": _transfer.INLINE, "over": _transfer.INLINE + 1, "five": 5 * 1024 * 1024}
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    files = {name: os.urandom(n) for name, n in sizes.items()}
    for name, data in files.items():
        (tree / "sub" / name).write_bytes(data)
    sent: list[tuple[str, int]] = []
    original = RpcSession.call

    async def recording(self: RpcSession, method: Any, request: Any) -> Any:
        sent.append((type(request).__name__, len(getattr(request, "content", b"") or b"")))
        return await original(self, method, request)

    monkeypatch.setattr(RpcSession, "call", recording)
    # Claim a client limit above the server's 4 MiB: the 5 MiB file is refused inline and goes in chunks instead.
    monkeypatch.setattr(_transfer, "INLINE", 8 * 1024 * 1024)
    async with AsyncClient(server.url, email=email, password=PASSWORD) as fd:
        nodes = await fd.upload(tree, "/small")
        assert sorted(n.name for n in nodes if n.kind == "file") == sorted(files)
        for name, data in files.items():
            assert await fd.download_bytes(f"/small/tree/sub/{name}") == data
        creates = [n for kind, n in sent if kind == "CreateUploadRequest"]
        # Every non-empty file went inline first (the 5 MiB one was refused and created again without content);
        # only the empty one and the refused one needed FinishUpload.
        assert sorted(creates) == sorted([*sizes.values(), 0]), creates
        assert sum(1 for kind, _ in sent if kind == "FinishUploadRequest") == 2


def _node(name: str, *, folder: bool = False, node_id: str = "") -> Any:
    from flowdock_sdk import Node

    return Node(
        id=node_id or uuid.uuid4().hex,
        parent_id="p",
        name=name,
        is_folder=folder,
        size=1,
        modified=None,
        created=None,
        content_type="",
        sha256="",
    )


@pytest.mark.parametrize("name", ["..", ".", "", "../evil", "a/b", "/etc/passwd", "a\\b", "..\\evil", "C:evil", "x\0y"])
async def test_server_supplied_names_that_escape_the_destination_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """A hostile server's names (a fake server here: real ones refuse such names at creation) never become paths."""
    from flowdock_sdk import UnsafeName

    async def fake_stat(self: AsyncClient, ref: Any) -> Any:
        return _node("folder", folder=True, node_id="top") if ref == "/folder" else _node(name)

    async def fake_walk(self: AsyncClient, folder: Any = "/") -> list[tuple[str, Any]]:
        return [("ok.txt", _node("ok.txt")), (name, _node(name))]

    async def no_transfer(*args: Any, **kwargs: Any) -> Path:
        raise AssertionError("nothing may be downloaded")

    monkeypatch.setattr(AsyncClient, "stat", fake_stat)
    monkeypatch.setattr(AsyncClient, "walk", fake_walk)
    monkeypatch.setattr(_transfer, "download_file", no_transfer)
    dest = tmp_path / "dest"
    dest.mkdir()
    client = AsyncClient("http://127.0.0.1:9")
    try:
        with pytest.raises(UnsafeName, match="refusing the server-supplied name"):
            await client.download("/folder", dest)
        assert list(dest.iterdir()) == []  # nothing created, not even the folder
        if name:  # a file downloaded into an existing directory takes the server's name
            with pytest.raises(UnsafeName):
                await client.download("/file", dest)
    finally:
        await client.close()
    assert not (tmp_path / "evil").exists() and list(dest.iterdir()) == []
