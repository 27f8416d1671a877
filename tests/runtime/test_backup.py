"""`flowdock backup`, `backup --verify` and `restore` against a running `flowdock up` (SQLite and PostgreSQL): a
backup taken while the system runs, the installation wiped, the backup restored into a new data folder and new
databases, and every file read back byte-exact by its owner, every account logging in, shares and links working.
Bad input: read-only and full destinations (real mounts), a damaged or incomplete backup, a non-empty target.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flowdock_sdk import Client
from tests.support.accounts import MESH_PASSWORD, register_and_login
from tests.support.dav import Dav, parse_multistatus
from tests.support.mesh import PG_URL, SCAN_OFF, Running, drop_databases, flowdock_up, need_postgres, start_up, stop_up

PROPPATCH = (
    b'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:flowdock:test">'
    b"<D:set><D:prop><Z:colour>teal</Z:colour></D:prop></D:set></D:propertyupdate>"
)
PROPFIND_COLOUR = (
    b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:flowdock:test">'
    b"<D:prop><Z:colour/></D:prop></D:propfind>"
)


def flowdock(*args: str, data_dir: Path, db_url: str = "") -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "flowdock_runtime", *args, "--data-dir", str(data_dir)]
    if db_url:
        argv += ["--db", db_url]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=300, env={**os.environ, **SCAN_OFF}, check=False
    )


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def new_user(mesh: Running) -> tuple[str, Client]:
    email = f"b{uuid.uuid4().hex[:10]}@example.org"
    register_and_login(mesh, email)
    return email, Client(mesh.url, email=email, password=MESH_PASSWORD)


def files_of(client: Client) -> dict[str, str]:
    """path -> SHA-256 of every file the account owns, read back through the API."""
    return {path: sha(client.download_bytes(node)) for path, node in client.walk("/") if not node.is_folder}


def populate(mesh: Running, tmp: Path) -> dict[str, object]:
    """Two accounts with files (empty, small, several chunks, a second version), a share and a public link; what
    must come back after a restore."""
    rng = __import__("random").Random(19)
    alice_email, alice = new_user(mesh)
    bob_email, bob = new_user(mesh)
    tree = tmp / "tree"
    (tree / "deep" / "er").mkdir(parents=True)
    contents = {
        "empty.txt": b"",
        "one.txt": b"1",
        "deep/small.bin": rng.randbytes(300_000),
        "deep/er/big.bin": rng.randbytes(3 * (1 << 20) + 12345),
    }
    for rel, data in contents.items():
        (tree / rel).write_bytes(data)
    alice.upload(tree, "/Docs", contents=True)
    (tree / "one.txt").write_bytes(b"second version")
    alice.upload(tree / "one.txt", "/Docs", overwrite=True)
    alice.share("/Docs/deep", bob_email, role="downloader")
    link = alice.create_link("/Docs/deep/small.bin")
    (tmp / "bob.txt").write_bytes(rng.randbytes(70_000))
    bob.upload(tmp / "bob.txt", "/")
    # A WebDAV user's dead property (dav_svc's database) and app password (auth's): both must come back.
    dav = Dav(mesh)
    assert dav.put("notes.txt", b"dav notes").status_code in (201, 204)
    assert dav.request("PROPPATCH", "notes.txt", content=PROPPATCH).status_code == 207
    dav_email = dav.email
    _, dav_secret = dav.app_password()
    dav.http.close()
    state: dict[str, object] = {
        "accounts": {alice_email: files_of(alice), bob_email: files_of(bob)},
        "bob": bob_email,
        "shared": sha(contents["deep/small.bin"]),
        "link": link.url.rsplit("/", 1)[-1],
        "dav": (dav_email, dav_secret),
    }
    alice.close()
    bob.close()
    return state


def check_restored(mesh: Running, state: dict[str, object]) -> None:
    """Every account logs in and reads every file byte-exact; bob still reaches alice's share; the link opens; the
    WebDAV user signs in with their app password and finds their dead property."""
    dav_email, dav_secret = state["dav"]  # type: ignore[misc]
    with httpx.Client(base_url=mesh.url, auth=(dav_email, dav_secret), timeout=60) as http:
        found = http.request("PROPFIND", "/dav/notes.txt", headers={"Depth": "0"}, content=PROPFIND_COLOUR)
        assert found.status_code == 207, found.text
        assert parse_multistatus(found.content)["/dav/notes.txt"].props.get("colour") == "teal", found.text
        assert http.get("/dav/notes.txt").content == b"dav notes"
    accounts = state["accounts"]
    assert isinstance(accounts, dict)
    for email, expected in accounts.items():
        with Client(mesh.url, email=email, password=MESH_PASSWORD) as client:
            assert files_of(client) == expected, email
            if email == state["bob"]:
                [incoming] = client.shares(direction="incoming")
                listed = {n.name: n for n in client.listdir(incoming.node_id)}
                assert sha(client.download_bytes(listed["small.bin"])) == state["shared"]
    with httpx.Client(base_url=mesh.url, timeout=60) as http:
        opened = http.post(f"/api/v1/public/links/{state['link']}/open", json={})
        assert opened.status_code == 200, opened.text
        session = {"x-link-session": opened.json()["linkSession"]}
        http.cookies.clear()
        [item] = http.get(f"/api/v1/public/links/{state['link']}/children", headers=session).json()["nodes"]
        got = http.get(f"/api/v1/public/links/{state['link']}/files/{item['id']}/content", headers=session)
        assert got.status_code == 200 and sha(got.content) == state["shared"]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_backup_wipe_restore(backend: str, tmp_path: Path) -> None:
    dest, keys = tmp_path / "backup", tmp_path / "keys"
    with flowdock_up(tmp_path / "data", backend, db_prefix="fdbk") as mesh:
        state = populate(mesh, tmp_path)
        # SQLite: the keys kept apart (--keys-only); PostgreSQL: in the backup (--with-keys).
        made = flowdock(
            "backup",
            str(dest),
            *(["--with-keys"] if backend == "postgres" else []),
            data_dir=mesh.data_dir,
            db_url=mesh.db_url,
        )
        assert made.returncode == 0, made.stderr
        assert "backup complete" in made.stdout
        if backend == "sqlite":
            kept = flowdock("backup", "--keys-only", str(keys), data_dir=mesh.data_dir)
            assert kept.returncode == 0, kept.stderr
    # flowdock_up has wiped the databases (PostgreSQL); the data folder goes too.
    shutil.rmtree(tmp_path / "data")
    verified = flowdock("backup", "--verify", str(dest), data_dir=tmp_path / "unused")
    assert verified.returncode == 0, verified.stderr
    assert "complete and intact" in verified.stdout
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["keys_included"] == (backend == "postgres") and manifest["blobs"] == 7
    assert set(manifest["alembic"]) == {"auth", "share", "storage", "dav"}, manifest["alembic"]

    db_url = ""
    if backend == "postgres":
        prefix = f"fdbk_{uuid.uuid4().hex[:8]}"
        db_url = f"{PG_URL}/{prefix}"
    restored_dir = tmp_path / "restored"
    try:
        extra = (
            []
            if backend == "postgres"
            else [
                "--keyring",
                str(keys / "keys/keyring.json"),
                "--auth-secrets-key",
                str(keys / "keys/auth-secrets.key"),
            ]
        )
        if backend == "sqlite":
            refused = flowdock("restore", str(dest), data_dir=restored_dir)
            assert refused.returncode == 1 and "--keyring" in refused.stderr
            assert not restored_dir.exists()
        restored = flowdock("restore", str(dest), *extra, data_dir=restored_dir, db_url=db_url)
        assert restored.returncode == 0, restored.stderr
        mesh = start_up(restored_dir, backend, db_url, extra_env=SCAN_OFF)
        try:
            check_restored(mesh, state)
        finally:
            code, err = stop_up(mesh)
            assert code == 0, err
        fsck = flowdock("fsck", "--deep", data_dir=restored_dir, db_url=db_url)
        assert fsck.returncode == 0, fsck.stdout + fsck.stderr
        if backend == "postgres":  # the databases now hold tables: a second restore into them is refused
            again = flowdock("restore", str(dest), data_dir=tmp_path / "again", db_url=db_url)
            assert again.returncode == 1 and "already hold tables" in again.stderr, again.stderr
            assert not (tmp_path / "again").exists()
    finally:
        if backend == "postgres":
            drop_databases(prefix)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_backup_during_uploads_and_deletes_holds_each_file_whole_or_not_at_all(backend: str, tmp_path: Path) -> None:
    """Uploads keep finishing, one big upload keeps streaming, and files are deleted and purged while the backup
    runs: the backup succeeds, and the restored installation lists only files whose bytes are all there (a purged
    file's blob was held for the backup), and `fsck --deep` finds nothing wrong."""
    dest = tmp_path / "backup"
    stop = threading.Event()
    uploaded: dict[str, str] = {}
    with flowdock_up(tmp_path / "data", backend, db_prefix="fdbk") as mesh:
        email, client = new_user(mesh)
        big = tmp_path / "big.bin"
        big.write_bytes(os.urandom(48 << 20))
        doomed = tmp_path / "doomed"
        doomed.mkdir()
        for i in range(20):
            data = os.urandom(100_000 + i)
            (doomed / f"d{i}.bin").write_bytes(data)
            uploaded[f"doomed/d{i}.bin"] = sha(data)
        client.upload(doomed, "/doomed", contents=True)

        def small_uploads() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                path = tmp_path / f"f{n}.bin"
                data = os.urandom(200_000 + n)
                path.write_bytes(data)
                client.upload(path, "/many")
                uploaded[f"many/{path.name}"] = sha(data)

        def big_upload() -> None:
            with Client(mesh.url, email=email, password=MESH_PASSWORD) as other:
                other.upload(big, "/")

        def deletes() -> None:
            with Client(mesh.url, email=email, password=MESH_PASSWORD) as other:
                for i in range(20):
                    if stop.is_set():
                        return
                    other.delete(f"/doomed/d{i}.bin")
                    other.empty_trash()  # purged: row and blob gone
                    stop.wait(0.25)  # spread over the backup's few seconds

        workers = [threading.Thread(target=f) for f in (small_uploads, big_upload)]
        for w in workers:
            w.start()
        try:
            while len(uploaded) < 23:
                stop.wait(0.05)
            deleter = threading.Thread(target=deletes)
            deleter.start()
            workers.append(deleter)
            made = flowdock("backup", str(dest), "--with-keys", data_dir=mesh.data_dir, db_url=mesh.db_url)
        finally:
            stop.set()
            for w in workers:
                w.join()
        client.close()
        assert made.returncode == 0, made.stderr
        before = dict(uploaded)
    db_url = f"{PG_URL}/fdbk_{uuid.uuid4().hex[:8]}" if backend == "postgres" else ""
    restored_dir = tmp_path / "restored"
    try:
        restored = flowdock("restore", str(dest), data_dir=restored_dir, db_url=db_url)
        assert restored.returncode == 0, restored.stderr
        mesh = start_up(restored_dir, backend, db_url, extra_env=SCAN_OFF)
        try:
            with Client(mesh.url, email=email, password=MESH_PASSWORD) as client:
                present = files_of(client)
        finally:
            stop_up(mesh)
        fsck = flowdock("fsck", "--deep", data_dir=restored_dir, db_url=db_url)
    finally:
        if db_url:
            drop_databases(db_url.rsplit("/", 1)[1])
    assert present, "the backup should hold the uploads finished before it"
    big_sha = sha(big.read_bytes())
    for path, digest in present.items():
        assert digest == (big_sha if path == "big.bin" else before[path]), path
    assert len([p for p in present if p.startswith("many/")]) < len([p for p in before if p.startswith("many/")])
    assert fsck.returncode == 0, fsck.stdout


# -- bad input ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One running installation with ~2 MiB of files."""
    with flowdock_up(tmp_path_factory.mktemp("bk-live"), "sqlite") as mesh:
        _, client = new_user(mesh)
        src = tmp_path_factory.mktemp("bk-src")
        for i in range(4):
            (src / f"f{i}.bin").write_bytes(os.urandom(600_000))
        client.upload(src, "/x", contents=True)
        client.close()
        yield mesh


@contextlib.contextmanager
def mounted_tmpfs(path: Path, size: str, *, read_only: bool = False) -> Iterator[Path]:
    """A real small (or read-only) file system; root only (the test machine's CI runs as root)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir()
    opts = f"size={size}" + (",ro" if read_only else "")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


def test_backup_to_a_full_destination_fails_clearly_and_leaves_nothing(live: Running, tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "small", "1m") as small:
        made = flowdock("backup", str(small / "b"), data_dir=live.data_dir)
        assert made.returncode == 1
        assert "space" in made.stderr and "choose a destination with more space" in made.stderr, made.stderr
        assert not (small / "b").exists()
    with mounted_tmpfs(tmp_path / "tiny", "64k") as tiny:  # too small for even the databases: ENOSPC mid-write
        made = flowdock("backup", str(tiny / "b"), data_dir=live.data_dir)
        assert made.returncode == 1
        assert "no space left" in made.stderr and "nothing was kept" in made.stderr, made.stderr
        assert not (tiny / "b").exists()


def test_backup_to_a_read_only_destination_fails_clearly(live: Running, tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
        made = flowdock("backup", str(ro / "b"), data_dir=live.data_dir)
        assert made.returncode == 1
        assert "read-only file system" in made.stderr, made.stderr
        assert list(ro.iterdir()) == []


def test_backup_into_a_non_empty_folder_is_refused(live: Running, tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "mine.txt").write_text("keep me")
    made = flowdock("backup", str(tmp_path / "b"), data_dir=live.data_dir)
    assert made.returncode == 1 and "not an empty folder" in made.stderr
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["mine.txt"]


@pytest.fixture(scope="module")
def good_backup(live: Running, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("bk-good") / "b"
    made = flowdock("backup", str(dest), "--with-keys", data_dir=live.data_dir)
    assert made.returncode == 0, made.stderr
    return dest


def test_restore_into_a_non_empty_folder_is_refused(good_backup: Path, tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (target / "something").write_text("x")
    restored = flowdock("restore", str(good_backup), data_dir=target)
    assert restored.returncode == 1 and "is not empty" in restored.stderr
    assert [p.name for p in target.iterdir()] == ["something"]


def test_a_damaged_backup_is_detected_before_anything_is_written(good_backup: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged"
    shutil.copytree(good_backup, damaged)
    blob = next(p for p in sorted((damaged / "blobs").rglob("*")) if p.is_file())
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))

    checked = flowdock("backup", "--verify", str(damaged), data_dir=tmp_path / "unused")
    assert checked.returncode == 1
    assert blob.relative_to(damaged).as_posix() in checked.stderr and "SHA-256" in checked.stderr

    target = tmp_path / "target"
    restored = flowdock("restore", str(damaged), data_dir=target)
    assert restored.returncode == 1 and "damaged; nothing was restored" in restored.stderr
    assert not target.exists()

    blob.unlink()
    assert "missing" in flowdock("backup", "--verify", str(damaged), data_dir=tmp_path / "unused").stderr


def test_a_backup_without_its_manifest_is_not_complete(good_backup: Path, tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    shutil.copytree(good_backup, partial)
    (partial / "manifest.json").unlink()
    checked = flowdock("backup", "--verify", str(partial), data_dir=tmp_path / "unused")
    assert checked.returncode == 1 and "not a complete backup" in checked.stderr
    restored = flowdock("restore", str(partial), data_dir=tmp_path / "target")
    assert restored.returncode == 1 and not (tmp_path / "target").exists()


def test_a_sqlite_backup_is_not_restored_into_postgresql(good_backup: Path, tmp_path: Path) -> None:
    need_postgres()
    restored = flowdock("restore", str(good_backup), data_dir=tmp_path / "t", db_url=f"{PG_URL}/fdbkx")
    assert restored.returncode == 1 and "sqlite installation" in restored.stderr


def test_a_killed_backups_hold_links_are_removed_by_the_next(live: Running, tmp_path: Path) -> None:
    stale = live.data_dir / "storage" / ".backup-hold-4194304-dead"  # above any pid_max: that process is gone
    stale.mkdir()
    (stale / "x").write_bytes(b"held")
    made = flowdock("backup", str(tmp_path / "b"), data_dir=live.data_dir)
    assert made.returncode == 0, made.stderr
    assert not stale.exists()
    assert not list((live.data_dir / "storage").glob(".backup-hold-*"))  # its own hold is gone too
