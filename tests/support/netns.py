"""Several hosts on one machine, simulated with Linux network namespaces (issue 18: the multi-host suite).

    with simulated_hosts(["db", "app1", "app2", "edge"]) as hosts:   # skips where `ip netns` is not permitted
        db = hosts["db"]
        db.address                              # 10.213.0.11: its one address on the virtual LAN
        proc = db.popen(argv, env=..., log=path)  # a process on that host (`ip netns exec`, own PID namespace)
        with db.entered():                      # this thread's sockets are opened on that host (setns)
            httpx.get(f"http://{db.address}:8080/")
        db.kill_all()                           # kill -9 of every process on it, as a machine dying

Each host is a network namespace (`fd<pid>-<name>`, unique per test run) with `lo` up and one veth interface
(`eth0`, 10.213.0.<11+i>/24). The other ends of the veths sit on a bridge inside a further namespace of the run
(`fd<pid>-lan`), so nothing of this is created in the machine's own namespace: no address, route or interface
there, and the hosts reach only each other. Processes are started as
`ip netns exec <ns> unshare --pid --fork --mount-proc`: each host has its own PID namespace and /proc too, so a
process on one host cannot see (or prove dead) a process on another, as on separate machines. Teardown (even on
failure) kills every process in the namespaces (`ip netns pids`) and deletes them, which removes the links.

Needs root (CAP_SYS_ADMIN) and iproute2; elsewhere the tests skip with the reason, unless
FLOWDOCK_REQUIRE_SERVERS=1, which turns that into a failure.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from tests.support.mesh import REQUIRE_SERVERS

SUBNET = "10.213.0"  # a private /24 that exists only inside the namespaces below
NETWORK = f"{SUBNET}.0/24"
FIRST_HOST = 11
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return done


def missing() -> str | None:
    """None if network namespaces can be made here, else why not."""
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            return f"{tool} not found (apt-get install -y iproute2 util-linux)"
    if os.geteuid() != 0:
        return "network namespaces (`ip netns add`) need root"
    probe = f"fd{os.getpid()}-probe"
    made = _run("ip", "netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` is not permitted here: {made.stderr.strip()}"
    _run("ip", "netns", "del", probe, check=False)
    return None


def need_netns() -> None:
    problem = missing()
    if problem:
        if REQUIRE_SERVERS:
            pytest.fail(f"{problem} (FLOWDOCK_REQUIRE_SERVERS=1 forbids skipping)")
        pytest.skip(problem)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(Exception):
        _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: a dead test run leaves no host process behind


@dataclass
class Host:
    """One simulated machine: its namespace, its address, and the processes the test started on it."""

    name: str
    netns: str
    address: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _logs: list[IO[bytes]] = field(default_factory=list, repr=False)

    def argv(self, argv: Sequence[str]) -> list[str]:
        """`argv` as run on this host: its network namespace, a PID namespace and /proc of its own."""
        return ["ip", "netns", "exec", self.netns, "unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
                *argv]  # fmt: skip

    def run(self, argv: Sequence[str], *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a command on this host to its end (only the network namespace: it needs no PID namespace)."""
        return subprocess.run(
            ["ip", "netns", "exec", self.netns, *argv], capture_output=True, text=True, timeout=timeout, check=False
        )

    def popen(self, argv: Sequence[str], *, env: dict[str, str] | None = None, log: Path) -> subprocess.Popen[bytes]:
        """Start a long-running process on this host, output appended to `log`."""
        out = open(log, "ab")  # noqa: SIM115 (kept open for the child's lifetime, closed at teardown)
        self._logs.append(out)
        proc = subprocess.Popen(
            self.argv(argv),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self.procs.append(proc)
        return proc

    def pids(self) -> list[int]:
        """Every process in this host's network namespace (whoever started it), as the machine's PID namespace
        numbers them."""
        done = _run("ip", "netns", "pids", self.netns, check=False)
        return [int(p) for p in done.stdout.split()]

    def find(self, word: str) -> int:
        """The pid (as the machine numbers it) of the one process on this host whose command line holds `word`,
        the `ip netns exec` / `unshare` wrappers aside: what to signal to pause or kill one service of the host."""
        found = []
        for pid in self.pids():
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if Path(argv[0].decode()).name not in ("ip", "unshare") and word.encode() in b" ".join(argv):
                found.append(pid)
        assert len(found) == 1, f"{len(found)} processes on {self.name} match {word!r}: {found}"
        return found[0]

    def kill_all(self, timeout: float = 30) -> list[int]:
        """kill -9 of every process on this host, as a machine losing power; returns once they are all gone."""
        deadline = time.monotonic() + timeout
        killed: list[int] = []
        while pids := self.pids():
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            for proc in self.procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(0.05)  # reap our own children, else they linger as zombies in the list
            if time.monotonic() > deadline:
                raise AssertionError(f"processes on {self.name} outlived SIGKILL: {pids}")
            time.sleep(0.05)
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        self.procs.clear()
        return sorted(set(killed))

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Sockets this thread opens inside the block are opened on this host (setns of the calling thread only;
        the thread goes back to its own namespace afterwards). Make every call to a host inside such a block: a
        client that reconnects outside it would reach for 10.213.0.x through the machine's own network."""
        with open("/proc/thread-self/ns/net", "rb") as own, open(f"/run/netns/{self.netns}", "rb") as target:
            _setns(target.fileno())
            try:
                yield
            finally:
                _setns(own.fileno())

    def close_logs(self) -> None:
        for out in self._logs:
            out.close()
        self._logs.clear()


class Hosts(dict[str, Host]):
    """The simulated hosts of one test, by name; `lan` is the namespace holding the bridge."""

    lan: str = ""


def _teardown(hosts: Hosts, namespaces: list[str]) -> None:
    for host in hosts.values():
        with contextlib.suppress(Exception):
            host.kill_all()
        host.close_logs()
    for ns in namespaces:
        _run("ip", "netns", "del", ns, check=False)  # deleting a namespace deletes its interfaces and veth peers


@contextlib.contextmanager
def simulated_hosts(names: Sequence[str]) -> Iterator[Hosts]:
    """A namespace per name, all on one bridge (10.213.0.0/24); everything removed on leaving."""
    need_netns()
    prefix = f"fd{os.getpid()}"
    hosts = Hosts()
    hosts.lan = f"{prefix}-lan"
    made: list[str] = []
    try:
        _run("ip", "netns", "add", hosts.lan)
        made.append(hosts.lan)
        lan = ["ip", "-n", hosts.lan]
        _run(*lan, "link", "add", "br0", "type", "bridge")
        _run(*lan, "link", "set", "br0", "up")
        for i, name in enumerate(names):
            ns = f"{prefix}-{name}"
            _run("ip", "netns", "add", ns)
            made.append(ns)
            address = f"{SUBNET}.{FIRST_HOST + i}"
            # Both ends are created directly in their namespaces: nothing appears in the machine's own.
            _run("ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", f"p{i}", "netns", hosts.lan)
            _run(*lan, "link", "set", f"p{i}", "master", "br0")
            _run(*lan, "link", "set", f"p{i}", "up")
            inside = ["ip", "-n", ns]
            _run(*inside, "link", "set", "lo", "up")
            _run(*inside, "addr", "add", f"{address}/24", "dev", "eth0")
            _run(*inside, "link", "set", "eth0", "up")
            hosts[name] = Host(name, ns, address)
        yield hosts
    finally:
        _teardown(hosts, made)
