"""Lease tokens naming their process (flowdock_kernel.incarnation), against real processes: a token of a process
that ended is "gone", of a live one (this one, a running child) never, nor of a holder this process cannot see."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time

from flowdock_kernel.incarnation import PROCESS, Incarnation, parse

MAKE_TOKEN = "from flowdock_kernel.incarnation import PROCESS; print(PROCESS.token(), flush=True); input()"


def child_token() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", MAKE_TOKEN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def test_tokens_fit_the_writer_column_are_unique_and_name_this_process() -> None:
    tokens = {PROCESS.token() for _ in range(1000)}
    assert len(tokens) == 1000 and all(len(t) == 32 for t in tokens)
    holder = parse(next(iter(tokens)))
    assert holder is not None and holder.pid == os.getpid()
    assert not any(PROCESS.gone(t) for t in tokens)  # this process lives


def test_a_live_process_is_not_gone_and_a_dead_one_is() -> None:
    proc, token = child_token()
    try:
        assert parse(token) is not None and parse(token).pid == proc.pid  # type: ignore[union-attr]
        assert not PROCESS.gone(token)
    finally:
        proc.kill()
        proc.wait()
    assert PROCESS.gone(token)
    # Another incarnation (an instance as a restarted process would build it) agrees.
    assert Incarnation().gone(token)


def test_a_zombie_is_gone_but_a_holder_in_another_namespace_or_an_old_token_is_never() -> None:
    proc, token = child_token()
    try:
        proc.kill()
        deadline = time.monotonic() + 10
        while os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:  # a zombie, not reaped
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert PROCESS.gone(token)
    finally:
        proc.wait()
    raw = bytearray(base64.urlsafe_b64decode(token[1:] + "="))
    raw[0] ^= 0xFF  # another machine or PID namespace: its pids mean nothing here
    assert not PROCESS.gone("@" + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("="))
    assert not PROCESS.gone("0123456789abcdef0123456789abcdef")  # a token from before tokens named holders
    assert not PROCESS.gone("")


def test_a_token_this_process_abandoned_is_gone_and_no_other_is() -> None:
    """A writer that ended without releasing its lease (the database went away under it) gives its token up: the
    next writer takes the upload over at once, though this process (its holder) lives on."""
    mine = Incarnation()
    abandoned, held = mine.token(), mine.token()
    assert not mine.gone(abandoned) and not mine.gone(held)
    mine.abandon(abandoned)
    assert mine.gone(abandoned)
    assert not mine.gone(held)  # a live writer's token of the same process stays held
