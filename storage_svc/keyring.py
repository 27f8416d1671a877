"""The key-encryption keys (KEKs) that wrap every blob's data key: a JSON file, mode 0600.

    {"format": "flowdock-keyring-v1", "current": "kek-...", "rotation_pending": false,
     "keys": [{"id": "kek-...", "created": "2026-11-26T16:00:00+00:00", "key": "<base64url, 32 bytes>"}]}

New blobs are wrapped with `current`. `python -m storage_svc.keys rotate` adds a key, makes it current and
re-wraps every blob (see storage_svc.keys); a service reloads the file when it changes or when a blob names a
KEK it does not know yet, so rotation needs no restart.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from flowdock_kernel.errors import DataLoss
from storage_svc.envelope import KEY_BYTES, check_kek_id

log = logging.getLogger("flowdock.storage.keyring")

FORMAT = "flowdock-keyring-v1"


class KeyringError(Exception):
    """The keyring file is unreadable or malformed; the message names the file."""


class MissingKek(DataLoss):
    """A blob's data key is wrapped by a KEK that is not in the keyring."""

    def __init__(self, kek_id: str) -> None:
        super().__init__(
            f"the encryption key {kek_id!r} that protects this file is missing from the server's keyring; "
            "an administrator must restore the keyring (nothing was returned)"
        )
        self.kek_id = kek_id


@dataclass(frozen=True)
class Kek:
    id: str
    created: str
    key: bytes


def new_kek(now: datetime | None = None) -> Kek:
    now = now or datetime.now(UTC)
    kek_id = f"kek-{now:%Y%m%d}-{secrets.token_hex(4)}"
    return Kek(kek_id, now.isoformat(timespec="seconds"), AESGCM.generate_key(bit_length=256))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.encode("ascii"))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Keyring:
    """Thread-safe view of the keyring file, reloaded when the file changes."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._keys: dict[str, Kek] = {}
        self._aeads: dict[str, AESGCM] = {}
        self.current_id = ""
        self.rotation_pending = False
        if not path.exists():
            if not create:
                raise KeyringError(f"no keyring at {path}")
            self._create()
        self._load()

    # -- reading ------------------------------------------------------------------------------------------

    def _file_stamp(self) -> tuple[int, int, int]:
        st = os.stat(self.path)
        return st.st_ino, st.st_size, st.st_mtime_ns

    def _load(self) -> None:
        try:
            stamp = self._file_stamp()
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            raise KeyringError(f"the keyring {self.path} has disappeared; restore it from backup") from None
        except (OSError, ValueError) as exc:
            raise KeyringError(f"cannot read the keyring {self.path}: {exc}") from exc
        keys = self._parse(data)
        mode = os.stat(self.path).st_mode & 0o777
        if mode & 0o077:
            log.warning("keyring %s is readable by others (mode %o); it should be 0600", self.path, mode)
        with self._lock:
            self._keys = keys
            self._aeads = {k: v for k, v in self._aeads.items() if k in keys}
            self.current_id = data["current"]
            self.rotation_pending = bool(data.get("rotation_pending", False))
            self._stamp = stamp

    def _parse(self, data: Any) -> dict[str, Kek]:
        where = f"keyring {self.path}"
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("keys"), list):
            raise KeyringError(f"{where} is not a {FORMAT} file")
        keys: dict[str, Kek] = {}
        for entry in data["keys"]:
            try:
                kek = Kek(check_kek_id(str(entry["id"])), str(entry["created"]), _unb64(str(entry["key"])))
            except (KeyError, TypeError, ValueError) as exc:
                raise KeyringError(f"{where} has a malformed key entry: {exc}") from None
            if len(kek.key) != KEY_BYTES or kek.id in keys:
                raise KeyringError(f"{where}: key {kek.id!r} is duplicated or not {KEY_BYTES} bytes")
            keys[kek.id] = kek
        if data.get("current") not in keys:
            raise KeyringError(f"{where}: its current key {data.get('current')!r} is not among its keys")
        return keys

    def refresh(self) -> None:
        """Reload if the file changed (another process rotated); cheap enough to call per upload."""
        try:
            stamp = self._file_stamp()
        except FileNotFoundError:
            raise KeyringError(f"the keyring {self.path} has disappeared; restore it from backup") from None
        if stamp != self._stamp:
            self._load()

    def keks(self) -> list[Kek]:
        with self._lock:
            return list(self._keys.values())

    def current(self) -> tuple[str, AESGCM]:
        self.refresh()
        with self._lock:
            kek_id = self.current_id
        return kek_id, self.aead(kek_id)

    def aead(self, kek_id: str) -> AESGCM:
        """The cipher of one KEK; MissingKek (naming it) if the keyring, reloaded if it changed, lacks it."""
        self.refresh()
        with self._lock:
            aead = self._aeads.get(kek_id)
            if aead is not None:
                return aead
            kek = self._keys.get(kek_id)
        if kek is None:
            log.error("key-encryption key %r is not in the keyring %s", kek_id, self.path)
            raise MissingKek(kek_id)
        aead = AESGCM(kek.key)
        with self._lock:
            self._aeads[kek_id] = aead
        return aead

    # -- writing ------------------------------------------------------------------------------------------

    def _document(self, keys: list[Kek], current: str, pending: bool) -> bytes:
        doc = {
            "format": FORMAT,
            "current": current,
            "rotation_pending": pending,
            "keys": [{"id": k.id, "created": k.created, "key": _b64(k.key)} for k in keys],
        }
        return (json.dumps(doc, indent=2) + "\n").encode()

    def _write_temp(self, content: bytes) -> Path:
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(6)}.tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            os.write(fd, content)
            os.fsync(fd)
        finally:
            os.close(fd)
        return tmp

    def _create(self) -> None:
        """First use: a keyring with one fresh KEK. Two processes racing both end up with the same file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kek = new_kek()
        tmp = self._write_temp(self._document([kek], kek.id, False))
        try:
            os.link(tmp, self.path)  # fails if another process created it first: then we use theirs
        except FileExistsError:
            return
        finally:
            tmp.unlink()
        _fsync_dir(self.path.parent)
        log.warning(
            "created a new encryption keyring at %s (mode 0600) with key %s; back it up and keep it apart from "
            "the blobs: without it the stored files cannot be decrypted",
            self.path,
            kek.id,
        )

    def save(self, keys: list[Kek], current: str, pending: bool) -> None:
        """Replace the file atomically (temp, fsync, rename, directory fsync) and reload it."""
        tmp = self._write_temp(self._document(keys, current, pending))
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)
        self._load()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Serialise administrative changes (rotation) across processes."""
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise KeyringError(f"another process is changing the keyring {self.path} (a rotation?)") from None
            self._load()
            yield
        finally:
            os.close(fd)
