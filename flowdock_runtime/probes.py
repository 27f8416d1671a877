"""Looking at the machine before `flowdock up` starts anything: is clamd answering, which loopback ports are free.

Only the supervisor calls these; operator commands read configuration and never probe (`flowdock keys status`
must not wait for clamd or fail because the gateway's port is taken).
"""

from __future__ import annotations

import socket
import sys
import time
from typing import Any

from flowdock_runtime.settings import SetupError


def clamd_answers(address: str) -> bool:
    """PING → PONG on clamd's TCP address or unix socket (one second at most)."""
    try:
        if address.startswith("/") or address.startswith("unix:"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target: Any = address.removeprefix("unix:")
        else:
            host, _, port = address.rpartition(":")
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            target = (host.strip("[]") or "127.0.0.1", int(port))
        with sock:
            sock.settimeout(1.0)
            sock.connect(target)
            sock.sendall(b"zPING\0")
            return sock.recv(16).startswith(b"PONG")
    except (OSError, ValueError):
        return False


def wait_for_clamd(address: str, seconds: float) -> None:
    """Return once clamd answers at `address`; SetupError saying what to do after `seconds`.

    Scanning is on unless switched off explicitly: starting without it because clamd was slow to load its
    database would make every upload of this run visible unscanned without anyone having chosen that.
    """
    deadline = time.monotonic() + seconds
    told = False
    while not clamd_answers(address):
        if time.monotonic() >= deadline:
            raise SetupError(
                f"no clamd answers at {address} after {seconds:g} s (storage_clamd_wait_seconds), and uploads are "
                "virus-scanned before they become visible. Start clamd (Debian: apt install clamav-daemon, then "
                "systemctl start clamav-daemon) or point FLOWDOCK_STORAGE_CLAMD_ADDRESS at yours; to run without "
                "virus scanning, pass --no-scan (or set FLOWDOCK_STORAGE_VIRUS_SCAN=off)."
            )
        if not told:
            print(f"waiting up to {seconds:g} s for clamd at {address}...", file=sys.stderr, flush=True)
            told = True
        time.sleep(0.5)


def free_ports(host: str, count: int, avoid: set[int]) -> list[int]:
    """`count` distinct free ports, none in `avoid` (the gateway's). All are held open until all are chosen: ports
    picked one at a time could repeat, and a service binding port 0 could take the gateway's port before Envoy
    starts (seen once in CI)."""
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(s)
            s.bind((host, 0))
            port = int(s.getsockname()[1])
            if port not in avoid:
                ports.append(port)
        return ports
    finally:
        for s in held:
            s.close()


def ensure_port_free(host: str, port: int) -> None:
    """SetupError naming the port when something already listens on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise SetupError(
                f"port {port} on {host} is already in use ({exc.strerror}); choose another with --port"
            ) from None
