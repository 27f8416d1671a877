"""Lease tokens that name the process holding them, so a lease whose holder died can be taken over at once.

A lease in the database (an upload's writer) normally lapses only when its time runs out. When the process that
held it was killed (kill -9, a crash, the supervisor restarting it), waiting for that is pointless: nobody writes
any more. A token made here names the process incarnation that holds it: a fingerprint of the machine's boot and
the PID namespace, the pid, and the process's start time in clock ticks since boot (so a reused pid is a different
incarnation). `gone(token)` is True only when this process can *prove* the holder is dead: same boot, same PID
namespace, and that pid no longer runs (or runs a process started at another time, or is a zombie) — or the
holder is this very process and gave the token up (`abandon`: a writer that ended but could not release its lease
because the database went away under it; nobody here writes with that token any more). A holder on
another machine or in another namespace (a container) is never "gone": its lease lapses by time, as before. So two
live writers never hold the same lease.

The token fits 32 characters (the `writer` column): "@" and 23 bytes in URL-safe base64 without padding.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

_MARK = "@"  # tokens of this module begin with it (older random hex tokens never do)
_PROC = Path("/proc")
_MAX_ABANDONED = 10_000  # tokens remembered by `abandon` (a lease lapses by time anyway, 60 s after its last write)


def _namespace() -> bytes:
    """8 bytes naming this boot and PID namespace: pids are comparable only within it."""
    try:
        boot = (_PROC / "sys/kernel/random/boot_id").read_text().strip()
        pidns = os.readlink(_PROC / "self/ns/pid")
    except OSError:
        return os.urandom(8)  # no /proc: nothing to compare, every other holder stays "not provably gone"
    return hashlib.sha256(f"{boot}|{pidns}".encode()).digest()[:8]


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot) of a process, or None if there is none."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: fields after it follow the last ")".
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


@dataclass(frozen=True)
class Holder:
    """Who a token names."""

    namespace: bytes
    pid: int
    started: int


class Incarnation:
    """This process, as lease tokens name it; `token()` is unique per call within the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = -1
        self._prefix = b""
        self._namespace = b""
        self._counter = itertools.count(1)
        self._abandoned: OrderedDict[str, None] = OrderedDict()

    def _refresh(self) -> None:
        pid = os.getpid()
        if pid == self._pid:
            return
        stat = _stat(pid)
        started = stat[1] if stat is not None else int.from_bytes(os.urandom(6), "big")
        self._namespace = _namespace()
        self._prefix = self._namespace + pid.to_bytes(4, "big") + (started % (1 << 48)).to_bytes(6, "big")
        self._pid = pid
        self._counter = itertools.count(1)

    def token(self) -> str:
        """A new lease token naming this process (32 characters)."""
        with self._lock:
            self._refresh()
            n = next(self._counter) % (1 << 40)
            raw = self._prefix + n.to_bytes(5, "big")
        return _MARK + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def abandon(self, token: str) -> None:
        """This process no longer writes with `token` (its holder ended without releasing the lease: the database
        was unreachable then), so `gone(token)` is True and the next writer takes the lease over at once."""
        with self._lock:
            self._abandoned[token] = None
            while len(self._abandoned) > _MAX_ABANDONED:
                self._abandoned.popitem(last=False)

    def gone(self, token: str) -> bool:
        """Whether the process that made `token` has provably ended, or abandoned it (see the module docstring)."""
        holder = parse(token)
        if holder is None:
            return False
        with self._lock:
            if token in self._abandoned:
                return True
            self._refresh()
            namespace = self._namespace
        if holder.namespace != namespace:
            return False
        try:
            os.kill(holder.pid, 0)  # ask the kernel, not /proc (which may hide other users' processes)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # it exists, run by another user
        try:
            stat = _stat(holder.pid)
        except OSError:
            stat = None
        if stat is None:
            return False  # a process with that pid exists but cannot be inspected: assume it is the holder
        state, started = stat
        return state in ("Z", "X") or started % (1 << 48) != holder.started


def parse(token: str) -> Holder | None:
    """The holder a token names, or None for a token not made here."""
    if not token.startswith(_MARK) or len(token) != 32:
        return None
    try:
        raw = base64.urlsafe_b64decode(token[1:] + "=")
    except ValueError:
        return None
    if len(raw) != 23:
        return None
    return Holder(raw[:8], int.from_bytes(raw[8:12], "big"), int.from_bytes(raw[12:18], "big"))


#: The incarnation of this process.
PROCESS = Incarnation()
