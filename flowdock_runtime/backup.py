"""`flowdock backup DEST`, `flowdock backup --verify SRC` and `flowdock restore SRC`: snapshots of a running
installation, taken without stopping it (docs/backup.md).

A backup is a folder:

    databases/<service>.sqlite | <service>.pgdump   each service's database (SQLite online backup / pg_dump -Fc)
    blobs/ab/cd/<blob id>                             the encrypted blobs the storage snapshot names, as stored
    keys/keyring.json, keys/auth-secrets.key          only with --with-keys (or alone with --keys-only)
    manifest.json                                     written last: size and SHA-256 of every file above

Consistency: every committed blob is first hard-linked into a hold folder beside the blob store (a deletion after
that point cannot take its bytes away), then the databases are snapshotted one by one (dav, share, storage, auth: each
referrer before what it refers to), then exactly the blobs the storage snapshot names are copied. A blob is renamed
into place before its row commits, so every row of the snapshot has its bytes, and an upload that finishes later
is simply absent. Staging files (uploads in progress) are never copied. Reasons in docs/backup.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flowdock_runtime.settings import RUNNING, ServerSettings

FORMAT = "flowdock-backup-v1"
MANIFEST = "manifest.json"
#: Taken in this order: a share names a node and a user, a node names a user; snapshotting the referrer first
#: means anything created meanwhile that it names is in the later snapshot (deletions are the services' usual
#: dangling-reference case).
#: dav_svc's database (WebDAV dead properties and locks) names nodes and users: it goes first. A backup made before
#: dav_svc existed has no dav database; restoring it leaves dav_svc to start with an empty one.
SNAPSHOT_ORDER = ("dav", "share", "storage", "auth")
_CHUNK = 1 << 20

Progress = Callable[[int], None]


class BackupError(Exception):
    """The backup or restore cannot be done; the message says why and what to do."""


# -- the installation's pieces -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Installation:
    """Where each piece of one installation lives, from its configuration."""

    settings: ServerSettings
    backend: str  # "sqlite" | "postgresql"
    db_urls: dict[str, Any]  # service -> sqlalchemy URL (sync)
    storage_root: Path
    keyring: Path
    auth_key: Path

    @classmethod
    def of(cls, settings: ServerSettings) -> Installation:
        from auth_svc.config import AuthConfig
        from flowdock_kernel import db
        from flowdock_kernel.config import CommonConfig, ConfigError, load
        from storage_svc.blobstore import keyring_path
        from storage_svc.config import StorageConfig

        env = settings.command_env()
        try:
            common = load(CommonConfig, env)
            storage = load(StorageConfig, env)
            auth = load(AuthConfig, env)
        except ConfigError as exc:
            raise BackupError(str(exc)) from None
        if storage.storage_blob_backend != "local":
            raise BackupError(
                f"blobs are in an object store (storage_blob_backend = {storage.storage_blob_backend}): "
                "flowdock backup copies local blobs only; use the object store's replication or versioning, "
                "back up the databases with their own tools and the keyring apart (docs/scaling.md)"
            )
        urls = {name: db.service_url(common, name, driver_async=False) for name in RUNNING}
        backend = "sqlite" if urls["auth"].get_backend_name() == "sqlite" else "postgresql"
        if backend == "sqlite" and len({u.database for u in urls.values()}) != len(urls):
            raise BackupError("db_url names one SQLite file for every service; back it up with sqlite3 .backup")
        return cls(
            settings=settings,
            backend=backend,
            db_urls=urls,
            storage_root=settings.data_dir / "storage",
            keyring=keyring_path(storage),
            auth_key=auth.secrets_key_path,
        )

    def db_file(self, name: str) -> str:
        return f"databases/{name}.{'sqlite' if self.backend == 'sqlite' else 'pgdump'}"


def _libpq(url: Any) -> tuple[str, dict[str, str]]:
    """A libpq connection URL without the password, and the environment carrying it (not visible in `ps`)."""
    plain = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return plain, env


def _major(version_text: str) -> int:
    digits = "".join(c if c.isdigit() or c == "." else " " for c in version_text).split()
    return int(digits[0].split(".")[0]) if digits else 0


def _pg_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(
            f"{name} is not installed; install PostgreSQL's client tools (Debian: apt install postgresql-client)"
        )
    return path


def check_pg_dump(server_version: str) -> str:
    """pg_dump's path; BackupError when it is older than the server (pg_dump refuses newer servers)."""
    tool = _pg_tool("pg_dump")
    out = subprocess.run([tool, "--version"], capture_output=True, text=True, check=False).stdout
    if _major(out) < _major(server_version):
        raise BackupError(
            f"{out.strip()} cannot dump a PostgreSQL {server_version} server; install postgresql-client-"
            f"{_major(server_version)} (or newer) and put its bin folder first in PATH"
        )
    return tool


# -- files -------------------------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path, progress: Progress | None = None) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
            if progress:
                progress(len(chunk))
    return size, h.hexdigest()


def copy_hashed(src: Path, dst: Path, progress: Progress | None = None, *, mode: int = 0o600) -> tuple[int, str]:
    """Copy `src` to `dst` (created, fsynced) while hashing: (size, sha256 hex) of what was written."""
    dst.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    h = hashlib.sha256()
    size = 0
    with open(src, "rb") as fin:
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with open(fd, "wb") as fout:
            while chunk := fin.read(_CHUNK):
                fout.write(chunk)
                h.update(chunk)
                size += len(chunk)
                if progress:
                    progress(len(chunk))
            fout.flush()
            os.fsync(fout.fileno())
    return size, h.hexdigest()


def _blob_rel(blob_id: str) -> str:
    return f"blobs/{blob_id[:2]}/{blob_id[2:4]}/{blob_id}"


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def _explain(exc: OSError, dest: Path) -> str:
    import errno

    if exc.errno == errno.ENOSPC:
        return f"no space left on the device holding {dest}"
    if exc.errno == errno.EROFS:
        return f"{dest} is on a read-only file system"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"no permission to write in {dest}"
    return f"{exc.strerror or exc} ({exc.filename or dest})"


@contextlib.contextmanager
def progress_bar(enabled: bool, total: int, label: str) -> Iterator[Progress]:
    """A rich progress bar over bytes on a terminal's stderr; a no-op otherwise."""
    if not enabled or not sys.stderr.isatty():
        yield lambda _n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.progress import (
        Progress as Bar,
    )

    with Bar(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


# -- manifest ----------------------------------------------------------------------------------------------


@dataclass
class Manifest:
    backend: str
    created: str = ""
    keys_included: bool = False
    keys_only: bool = False
    alembic: dict[str, str] = field(default_factory=dict)
    keks_required: list[str] = field(default_factory=list)
    auth_key_sha256: str = ""
    blobs: int = 0
    artefacts: dict[str, dict[str, Any]] = field(default_factory=dict)  # path -> {"size", "sha256"}

    def add(self, rel: str, size: int, digest: str) -> None:
        self.artefacts[rel] = {"size": size, "sha256": digest}

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "created": self.created,
                "backend": self.backend,
                "keys_included": self.keys_included,
                "keys_only": self.keys_only,
                "alembic": self.alembic,
                "keks_required": self.keks_required,
                "auth_key_sha256": self.auth_key_sha256,
                "blobs": self.blobs,
                "bytes": sum(a["size"] for a in self.artefacts.values()),
                "artefacts": self.artefacts,
            },
            indent=1,
            sort_keys=True,
        )

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST
        if not folder.is_dir():
            raise BackupError(f"{folder} is not a folder")
        if not path.is_file():
            raise BackupError(
                f"{folder} has no {MANIFEST}: it is not a complete backup (a backup that failed or was interrupted "
                "never gets one)"
            )
        try:
            data = json.loads(path.read_text())
            if data.get("format") != FORMAT:
                raise BackupError(f"{path}: unknown format {data.get('format')!r} (expected {FORMAT})")
            return cls(
                backend=str(data["backend"]),
                created=str(data["created"]),
                keys_included=bool(data["keys_included"]),
                keys_only=bool(data.get("keys_only", False)),
                alembic=dict(data["alembic"]),
                keks_required=list(data["keks_required"]),
                auth_key_sha256=str(data["auth_key_sha256"]),
                blobs=int(data["blobs"]),
                artefacts={
                    str(k): {"size": int(v["size"]), "sha256": str(v["sha256"])} for k, v in data["artefacts"].items()
                },
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BackupError(f"{path} is damaged ({exc.__class__.__name__}: {exc})") from None

    def write(self, folder: Path) -> None:
        """Last step of a backup: the manifest appears whole (temp file, fsync, rename, fsync the folder)."""
        tmp = folder / (MANIFEST + ".tmp")
        with open(tmp, "w") as f:
            f.write(self.to_json())
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(folder / MANIFEST)
        _fsync_dir(folder)


# -- backup ------------------------------------------------------------------------------------------------


def _keyring_ids(path: Path) -> set[str]:
    try:
        return {k["id"] for k in json.loads(path.read_text())["keys"]}
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Hold:
    """Hard links to every committed blob, in a folder beside the blob store: the bytes of a blob deleted while the
    backup runs stay readable until the backup has copied them. Removed afterwards (only links: no data moves)."""

    def __init__(self, storage_root: Path) -> None:
        self.blobs = storage_root / "blobs"
        self.folder = storage_root / f".backup-hold-{os.getpid()}-{secrets.token_hex(4)}"

    def __enter__(self) -> _Hold:
        # A backup killed outright (SIGKILL, power) left its links: they would keep deleted blobs' space in use.
        for stale in self.folder.parent.glob(".backup-hold-*-*"):
            pid = stale.name.split("-")[2]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(stale, ignore_errors=True)
        self.folder.mkdir(mode=0o700, parents=True)
        if self.blobs.is_dir():
            for path in self.blobs.glob("*/*/*"):
                with contextlib.suppress(FileNotFoundError):
                    os.link(path, self.folder / path.name)
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def source(self, blob_id: str) -> Path | None:
        held = self.folder / blob_id
        if held.exists():
            return held
        live = self.blobs / blob_id[:2] / blob_id[2:4] / blob_id
        return live if live.exists() else None


def _sqlite_snapshot(src: str, dst: Path) -> None:
    """SQLite's online backup API, all pages in one step: one consistent read transaction, writers not stopped
    (WAL)."""
    if not Path(src).is_file():
        raise BackupError(f"database {src} does not exist: is this the installation's data folder? (flowdock migrate)")
    source = sqlite3.connect(src)
    try:
        target = sqlite3.connect(dst)
        try:
            source.backup(target)
            # A self-contained file: no -wal/-shm beside it (the services turn WAL back on when they open it).
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
    finally:
        source.close()
    with open(dst, "rb+") as f:
        os.fsync(f.fileno())


def _sqlite_query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return list(conn.execute(sql))
    finally:
        conn.close()


_BLOB_IDS = "SELECT blob_id FROM versions UNION SELECT blob_id FROM nodes WHERE blob_id <> ''"
_ALEMBIC = "SELECT version_num FROM alembic_version"


def _pg_snapshot(inst: Installation, name: str, dst: Path) -> tuple[str, list[str]]:
    """pg_dump -Fc of one service's database, and (storage) the blob ids, both read in one exported snapshot."""
    import psycopg

    url, env = _libpq(inst.db_urls[name])
    try:
        conn = psycopg.connect(url, password=env.get("PGPASSWORD"), connect_timeout=10)
    except psycopg.Error as exc:
        raise BackupError(f"cannot connect to {url}: {str(exc).strip()}") from None
    with conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        server = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        tool = check_pg_dump(server)
        snapshot = str(conn.execute("SELECT pg_export_snapshot()").fetchone()[0])  # type: ignore[index]
        revision = str(conn.execute(_ALEMBIC).fetchone()[0])  # type: ignore[index]
        blob_ids = [str(r[0]) for r in conn.execute(_BLOB_IDS)] if name == "storage" else []
        argv = [
            tool,
            "--format=custom",
            "--no-owner",
            "--no-privileges",
            f"--snapshot={snapshot}",
            f"--file={dst}",
            url,
        ]
        result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        conn.rollback()
    if result.returncode != 0:
        raise BackupError(f"pg_dump of {name}'s database failed: {result.stderr.strip()}")
    with open(dst, "rb+") as f:
        os.fsync(f.fileno())
    return revision, blob_ids


def backup(
    settings: ServerSettings, dest: Path, *, with_keys: bool = False, keys_only: bool = False, show: bool = True
) -> Manifest:
    """Write a backup of the installation into `dest` (absent or empty). On failure nothing is left that looks
    complete: the manifest is written last, and what was written is removed."""
    inst = Installation.of(settings)
    if dest.exists() and not _is_empty_dir(dest):
        raise BackupError(f"{dest} exists and is not an empty folder; back up into a new folder")
    if not inst.storage_root.is_dir() and not keys_only:
        raise BackupError(f"no blob store at {inst.storage_root}: is --data-dir the installation's data folder?")
    created = not dest.exists()
    manifest = Manifest(backend=inst.backend, created=datetime.now(UTC).isoformat(timespec="seconds"))
    try:
        dest.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_backup(inst, dest, manifest, with_keys=with_keys, keys_only=keys_only, show=show)
        manifest.write(dest)
    except BaseException as exc:
        _remove_partial(dest, created=created)
        if isinstance(exc, OSError):
            raise BackupError(f"backup failed: {_explain(exc, dest)}; nothing was kept in {dest}") from None
        if isinstance(exc, sqlite3.Error):
            why = f"no space left on the device holding {dest}" if "full" in str(exc) else f"SQLite: {exc}"
            raise BackupError(f"backup failed: {why}; nothing was kept in {dest}") from None
        raise
    return manifest


def _remove_partial(dest: Path, *, created: bool) -> None:
    if not dest.is_dir():
        return
    for child in dest.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                child.unlink()
    if created:
        with contextlib.suppress(OSError):
            dest.rmdir()


def _copy_keys(inst: Installation, dest: Path, manifest: Manifest) -> None:
    for src, rel in ((inst.keyring, "keys/keyring.json"), (inst.auth_key, "keys/auth-secrets.key")):
        if not src.is_file():
            raise BackupError(f"{src} does not exist: nothing to back up as a key (has the installation started once?)")
        manifest.add(rel, *copy_hashed(src, dest / rel))
    manifest.keys_included = True


def _write_backup(
    inst: Installation, dest: Path, manifest: Manifest, *, with_keys: bool, keys_only: bool, show: bool
) -> None:
    if inst.auth_key.is_file():
        manifest.auth_key_sha256 = sha256_file(inst.auth_key)[1]
    if keys_only:
        manifest.keys_only = True
        _copy_keys(inst, dest, manifest)
        manifest.keks_required = sorted(_keyring_ids(inst.keyring))
        return
    from storage_svc.blobstore import kek_of

    (dest / "databases").mkdir(mode=0o700)
    with _Hold(inst.storage_root) as hold:
        blob_ids: list[str] = []
        for name in SNAPSHOT_ORDER:
            rel = inst.db_file(name)
            if name == "dav" and not _has_database(inst, name):  # dav_svc has never run here: nothing of it to keep
                continue
            if inst.backend == "sqlite":
                _sqlite_snapshot(str(inst.db_urls[name].database), dest / rel)
                manifest.alembic[name] = str(_sqlite_query(dest / rel, _ALEMBIC)[0][0])
                if name == "storage":
                    blob_ids = [str(r[0]) for r in _sqlite_query(dest / rel, _BLOB_IDS)]
            else:
                revision, ids = _pg_snapshot(inst, name, dest / rel)
                manifest.alembic[name] = revision
                if name == "storage":
                    blob_ids = ids
            manifest.add(rel, *sha256_file(dest / rel))
        sources: list[tuple[str, Path]] = []
        for blob_id in sorted(set(blob_ids)):
            src = hold.source(blob_id)
            if src is None:
                raise BackupError(
                    f"blob {blob_id}, named by the storage snapshot, is not in {hold.blobs}: the blob store is "
                    "damaged (run flowdock fsck)"
                )
            sources.append((blob_id, src))
        total = sum(src.stat().st_size for _, src in sources)
        free = shutil.disk_usage(dest).free
        if free < total:
            raise BackupError(
                f"{dest} has {free:,} bytes free and the blobs need {total:,}: choose a destination with more space"
            )
        keks: set[str] = set()
        with progress_bar(show, total, "blobs") as advance:
            for blob_id, src in sources:
                rel = _blob_rel(blob_id)
                manifest.add(rel, *copy_hashed(src, dest / rel, advance))
                kek = kek_of(dest / rel)
                if kek:
                    keks.add(kek)
        manifest.blobs = len(sources)
        manifest.keks_required = sorted(keks)
    if with_keys:
        _copy_keys(inst, dest, manifest)
    for folder in {(dest / rel).parent for rel in manifest.artefacts}:
        _fsync_dir(folder)
    _fsync_dir(dest / "databases")


# -- verify ------------------------------------------------------------------------------------------------


def verify(src: Path, *, show: bool = True) -> tuple[Manifest, list[str]]:
    """The manifest and every problem found: artefacts missing, of the wrong size or SHA-256, files not listed,
    keys that do not cover the blobs. Reads everything; writes nothing."""
    manifest = Manifest.read(src)
    problems: list[str] = []
    total = sum(a["size"] for a in manifest.artefacts.values())
    with progress_bar(show, total, "verifying") as advance:
        for rel, want in sorted(manifest.artefacts.items()):
            path = src / rel
            if ".." in Path(rel).parts or Path(rel).is_absolute():
                problems.append(f"{rel}: not a path inside the backup")
                continue
            if not path.is_file():
                problems.append(f"{rel}: missing")
                continue
            if path.stat().st_size != want["size"]:
                problems.append(f"{rel}: {path.stat().st_size} bytes, the manifest says {want['size']}")
                continue
            _, digest = sha256_file(path, advance)
            if digest != want["sha256"]:
                problems.append(f"{rel}: SHA-256 {digest[:16]}…, the manifest says {want['sha256'][:16]}…")
    listed = set(manifest.artefacts) | {MANIFEST}
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = path.relative_to(src).as_posix()
        if rel not in listed:
            problems.append(f"{rel}: not in the manifest")
    if manifest.keys_included and not problems:
        missing = set(manifest.keks_required) - _keyring_ids(src / "keys/keyring.json")
        if missing and not manifest.keys_only:
            problems.append(f"keys/keyring.json lacks the KEKs {', '.join(sorted(missing))} the blobs need")
    return manifest, problems


# -- restore -----------------------------------------------------------------------------------------------


def _has_database(inst: Installation, name: str) -> bool:
    if inst.backend == "sqlite":
        return Path(str(inst.db_urls[name].database)).is_file()
    return _pg_database_in_use(inst, name)


def _pg_database_in_use(inst: Installation, name: str) -> bool:
    """Whether the service's database exists and holds any table."""
    import psycopg

    url, env = _libpq(inst.db_urls[name])
    try:
        with psycopg.connect(url, password=env.get("PGPASSWORD"), connect_timeout=10) as conn:
            row = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
            return bool(row and row[0])
    except psycopg.OperationalError as exc:
        if "does not exist" in str(exc):
            return False
        raise BackupError(f"cannot connect to {url}: {str(exc).strip()}") from None


def _pick_key(option: str | None, in_backup: Path | None, configured: Path, what: str) -> Path | None:
    if option:
        path = Path(option)
        if not path.is_file():
            raise BackupError(f"{what} {path} does not exist")
        return path
    if in_backup is not None and in_backup.is_file():
        return in_backup
    # A key file configured outside the (empty) data folder, e.g. a mounted secret, is used where it is.
    return None if not configured.is_file() else configured


def restore(
    settings: ServerSettings,
    src: Path,
    *,
    keyring: str | None = None,
    auth_key: str | None = None,
    show: bool = True,
) -> Manifest:
    """Restore `src` into the configured (empty) data folder and databases. Everything is checked first — the
    backup's integrity, an empty target, keys that open the backup — so a refusal writes nothing."""
    inst = Installation.of(settings)
    manifest, problems = verify(src, show=show)
    if problems:
        raise BackupError(f"the backup in {src} is damaged; nothing was restored:\n  " + "\n  ".join(problems[:20]))
    if manifest.keys_only:
        raise BackupError(f"{src} holds keys only (--keys-only); restore a full backup and give these with --keyring")
    if manifest.backend != inst.backend:
        raise BackupError(
            f"the backup is of a {manifest.backend} installation and the target is {inst.backend}; "
            f"restore into a {manifest.backend} installation (--db)"
        )
    data = settings.data_dir
    if data.exists() and not _is_empty_dir(data):
        raise BackupError(f"the data folder {data} is not empty; restore into an empty or new folder (--data-dir)")
    if inst.backend == "postgresql":
        used = [str(inst.db_urls[n].database) for n in RUNNING if _pg_database_in_use(inst, n)]
        if used:
            raise BackupError(f"the databases {', '.join(used)} already hold tables; restore into empty databases")
        check_pg_tool_versions(inst)
    ring = _pick_key(keyring, src / "keys/keyring.json" if manifest.keys_included else None, inst.keyring, "keyring")
    missing = set(manifest.keks_required) - (_keyring_ids(ring) if ring else set())
    if missing:
        raise BackupError(
            f"the backup's files are encrypted with the KEKs {', '.join(sorted(missing))}, which "
            f"{'no keyring was given for' if ring is None else f'{ring} does not hold'}; give the installation's "
            "keyring with --keyring (it is not in the backup unless --with-keys)"
        )
    key = _pick_key(
        auth_key, src / "keys/auth-secrets.key" if manifest.keys_included else None, inst.auth_key, "auth secrets key"
    )
    if key is None:
        raise BackupError(
            "auth_svc's secrets key (auth-secrets.key: it opens the token signing keys and TOTP secrets) is not "
            "in the backup; give it with --auth-secrets-key"
        )
    if manifest.auth_key_sha256 and sha256_file(key)[1] != manifest.auth_key_sha256:
        raise BackupError(f"{key} is not the auth secrets key of the backed-up installation")

    from flowdock_kernel.datadir import make_private

    make_private(data)
    marker = data / "RESTORE-IN-PROGRESS"
    marker.write_text(
        f"restore of {src} started {datetime.now(UTC).isoformat()}; if this file stays, start over "
        "with an empty folder\n"
    )
    for name in SNAPSHOT_ORDER:
        rel = inst.db_file(name)
        if rel not in manifest.artefacts:  # dav from a backup older than dav_svc: it starts empty
            continue
        if inst.backend == "sqlite":
            copy_hashed(src / rel, Path(str(inst.db_urls[name].database)))
        else:
            _pg_restore(inst, name, src / rel)
    blobs = sorted(rel for rel in manifest.artefacts if rel.startswith("blobs/"))
    total = sum(manifest.artefacts[rel]["size"] for rel in blobs)
    storage = inst.storage_root
    with progress_bar(show, total, "restoring blobs") as advance:
        for rel in blobs:
            _size, digest = copy_hashed(src / rel, storage / rel, advance)
            if digest != manifest.artefacts[rel]["sha256"]:
                raise BackupError(f"{rel} changed while it was being restored (now {digest[:16]}…)")
    for folder in sorted({(storage / rel).parent for rel in blobs}):
        _fsync_dir(folder)
    for key_src, key_dst in ((ring, inst.keyring), (key, inst.auth_key)):
        if key_src is not None and key_src.resolve() != key_dst.resolve():
            copy_hashed(key_src, key_dst)
    marker.unlink()
    _fsync_dir(data)
    return manifest


def check_pg_tool_versions(inst: Installation) -> None:
    import psycopg

    url, env = _libpq(inst.db_urls["auth"].set(database="postgres"))
    with psycopg.connect(url, password=env.get("PGPASSWORD"), connect_timeout=10) as conn:
        server = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    tool = _pg_tool("pg_restore")
    out = subprocess.run([tool, "--version"], capture_output=True, text=True, check=False).stdout
    if _major(out) < _major(server):
        raise BackupError(f"{out.strip()} is older than the PostgreSQL {server} server; install a matching client")


def _pg_restore(inst: Installation, name: str, dump: Path) -> None:
    from flowdock_kernel import db

    db.ensure_database(inst.db_urls[name].set(drivername="postgresql+psycopg"))
    url, env = _libpq(inst.db_urls[name])
    argv = [
        _pg_tool("pg_restore"),
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "--single-transaction",
        f"--dbname={url}",
        str(dump),
    ]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BackupError(f"pg_restore into {inst.db_urls[name].database} failed: {result.stderr.strip()}")


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n} B"


def elapsed_since(start: float) -> str:
    return f"{time.monotonic() - start:.1f} s"
