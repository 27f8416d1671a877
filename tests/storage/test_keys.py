"""The keyring file and `python -m storage_svc.keys`: creation, rotation (also killed and resumed), status, prune."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import stat
import sys
import time
from pathlib import Path

import pytest

from storage_svc import envelope as env
from storage_svc.blobstore import EncryptedBlobStore, kek_of
from storage_svc.keyring import Keyring, KeyringError
from storage_svc.keys import main

SEG = 4096


def store_in(data_dir: Path) -> EncryptedBlobStore:
    return EncryptedBlobStore(data_dir / "storage", Keyring(data_dir / "storage" / "keyring.json"), segment_size=SEG)


async def put(store: EncryptedBlobStore, name: str, data: bytes, *, commit: bool = True) -> str:
    await store.create_staging(name)
    await store.write_staging(name, 0, data)
    await store.sync_staging(name)
    if commit:
        await store.commit_staging(name, f"blob-{name}", len(data))
    return f"blob-{name}"


async def read_all(store: EncryptedBlobStore, blob: str, size: int) -> bytes:
    return b"".join([b async for b in store.read(blob, 0, size, 1 << 20)])


def body(path: Path) -> bytes:
    return path.read_bytes()[env.HEADER_SIZE :]


def test_keyring_created_on_first_use_mode_0600_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "deep" / "keyring.json"
    with caplog.at_level(logging.WARNING, logger="flowdock.storage.keyring"):
        ring = Keyring(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert any(str(path) in r.getMessage() and "created" in r.getMessage() for r in caplog.records)
    doc = json.loads(path.read_text())
    assert doc["current"] == ring.current_id and len(doc["keys"]) == 1
    caplog.clear()
    again = Keyring(path)  # a second process (replica) uses the same keyring and says nothing
    assert again.current_id == ring.current_id and not caplog.records


def test_keyring_refuses_malformed_files(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    for text in ["not json", "{}", json.dumps({"format": "flowdock-keyring-v1", "current": "x", "keys": []})]:
        path.write_text(text)
        with pytest.raises(KeyringError, match=str(path)):
            Keyring(path)
    with pytest.raises(KeyringError, match="no keyring"):
        Keyring(tmp_path / "absent.json", create=False)


async def test_rotate_rewraps_headers_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = store_in(tmp_path)
    old = store.keyring.current_id
    datas = {f"f{i}": os.urandom(i * 3000 + 1) for i in range(5)}
    blobs = {name: await put(store, name, data) for name, data in datas.items()}
    await store.link(blobs["f1"], "blob-f1copy")
    await put(store, "open", b"upload in progress", commit=False)
    bodies = {p: body(p) for p in store.files()}

    assert main(["--data-dir", str(tmp_path), "rotate"]) == 0
    out = capsys.readouterr().out
    ring = Keyring(tmp_path / "storage" / "keyring.json")
    new = ring.current_id
    assert new != old and new in out and not ring.rotation_pending
    assert {k.id for k in ring.keks()} == {old, new}  # the old KEK stays until pruned
    for path in store.files():
        assert kek_of(path) == new
        assert body(path) == bodies[path]  # content untouched: only the header changed
    for name, data in datas.items():
        assert await read_all(store, blobs[name], len(data)) == data  # the running store reloads the keyring
    assert await read_all(store, "blob-f1copy", len(datas["f1"])) == datas["f1"]
    await store.write_staging("open", 18, b" and more")
    await store.sync_staging("open")
    await store.commit_staging("open", "blob-open", 27)
    assert await read_all(store, "blob-open", 27) == b"upload in progress and more"
    assert kek_of(store._blob(await put(store, "later", b"new file"))) == new  # new uploads use the new KEK

    assert main(["--data-dir", str(tmp_path), "status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith(old) and line.split()[-1] == "0" for line in lines)
    assert any(line.startswith(f"{new} *") and line.split()[-1] == "8" for line in lines)

    assert main(["--data-dir", str(tmp_path), "prune"]) == 0
    assert old in capsys.readouterr().out
    assert [k.id for k in Keyring(tmp_path / "storage" / "keyring.json").keks()] == [new]
    assert await read_all(store, blobs["f4"], len(datas["f4"])) == datas["f4"]


async def test_status_names_a_missing_kek(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = store_in(tmp_path)
    await put(store, "a", b"data")
    lost = store.keyring.current_id
    assert main(["--data-dir", str(tmp_path), "rotate"]) == 0
    ring_path = tmp_path / "storage" / "keyring.json"
    assert main(["--data-dir", str(tmp_path), "prune"]) == 0
    # Put a file back on the pruned KEK's id: as if restored from an old backup without its keyring.
    other = store_in(tmp_path)
    doc = json.loads(ring_path.read_text())
    doc["keys"].append({"id": lost, "created": "2026-01-01T00:00:00+00:00", "key": doc["keys"][0]["key"]})
    doc["current"] = lost
    ring_path.write_text(json.dumps(doc))
    await put(other, "b", b"old backup")
    doc["keys"].pop()
    doc["current"] = doc["keys"][0]["id"]
    ring_path.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["--data-dir", str(tmp_path), "status"]) == 1
    assert f"{lost} (MISSING)" in capsys.readouterr().out
    assert main(["--data-dir", str(tmp_path), "rewrap"]) == 1
    assert lost in capsys.readouterr().err


async def test_rotation_killed_midway_resumes(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    datas = [os.urandom(100 + i) for i in range(120)]
    blobs = [await put(store, f"k{i:03d}", d) for i, d in enumerate(datas)]
    old = store.keyring.current_id
    argv = [sys.executable, "-m", "storage_svc.keys", "--data-dir", str(tmp_path)]
    proc = await asyncio.create_subprocess_exec(*argv, "rotate", "--pause-ms", "30", stdout=asyncio.subprocess.PIPE)
    deadline = time.monotonic() + 60
    moved = 0
    while time.monotonic() < deadline:
        moved = sum(1 for b in blobs if kek_of(store._blob(b)) not in (old, None))
        if moved >= 10:
            break
        await asyncio.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    assert 10 <= moved < len(blobs), "the rotation should have been killed midway"
    ring = Keyring(tmp_path / "storage" / "keyring.json")
    new = ring.current_id
    assert new != old and ring.rotation_pending
    kinds = {kek_of(store._blob(b)) for b in blobs}
    assert kinds == {old, new}  # half-way: every header whole, on one KEK or the other
    for b, d in zip(blobs, datas, strict=True):
        assert await read_all(store, b, len(d)) == d  # readable throughout

    again = await asyncio.create_subprocess_exec(*argv, "rotate", stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(again.communicate(), 120)
    assert again.returncode == 0
    assert f"resuming the rotation to {new}" in out.decode()
    ring = Keyring(tmp_path / "storage" / "keyring.json")
    assert ring.current_id == new and not ring.rotation_pending
    assert {k.id for k in ring.keks()} == {old, new}  # no third key: the same rotation was finished
    assert {kek_of(store._blob(b)) for b in blobs} == {new}
    for b, d in zip(blobs, datas, strict=True):
        assert await store.verify(b) == len(d)
        assert await read_all(store, b, len(d)) == d


def test_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data-dir", str(tmp_path / "typo"), "status"]) == 2
    assert "no keyring" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()  # nothing created by looking
    (tmp_path / "keyring.json").write_text("{}")
    assert main(["--data-dir", str(tmp_path), "--keyring", str(tmp_path / "keyring.json"), "status"]) == 2
    assert "keyring" in capsys.readouterr().err
