"""`flowdock up`: run the whole mesh on one machine as separate processes.

The three services get free loopback ports (so two instances can run side by side), Envoy is the only
entry point. Children die with this process (PR_SET_PDEATHSIG) and stop in order on Ctrl-C/SIGTERM. Once
everything is up, a child that crashes (a service replica or the gateway) is restarted on its own ports with
exponential backoff (`Backoff`) while the others keep serving: one crash costs one service a few seconds, not
the installation. A crash during start-up still ends the run with the child's log tail.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from flowdock_kernel.clock import Clock, SystemClock
from flowdock_runtime.probes import ensure_port_free, free_ports, wait_for_clamd
from flowdock_runtime.settings import HTTP_SERVICES, RUNNING, SERVICES, SetupError, add_server_options, server_env

# glibc maps and unmaps every 1 MiB message buffer by default; these keep them (performance-ceilings.md). Two
# arenas at most: with one per thread, each kept its own freed buffers (+185 MiB RSS in a 4 GiB upload; bench/).
MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=67108864:glibc.malloc.trim_threshold=1073741824:glibc.malloc.arena_max=2"
READY_TIMEOUT = 90.0
POLL_SECONDS = 0.1  # how often the running supervisor looks at its children


class UpError(SetupError):
    """`up` cannot continue; the message says why."""


def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def replica_name(name: str, replica: int) -> str:
    return name if replica == 0 else f"{name}-{replica}"


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = field(default=None, repr=False)
    #: What the supervisor runs instead of `argv` to restart it (the gateway: Envoy on the config it rendered).
    restart_argv: list[str] | None = None

    def start(self) -> None:
        argv = self.argv if self.proc is None or self.restart_argv is None else self.restart_argv
        self.log = open(self.log_path, "ab")  # noqa: SIM115 (kept open for the child's lifetime)
        self.proc = subprocess.Popen(
            argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def ended(self) -> bool:
        """Whether the process has ended, without reaping it: until it is reaped its process group id stays
        taken, so `reap` can kill what it left behind without hitting an unrelated group."""
        if self.proc is None or self.proc.returncode is not None:
            return True
        try:
            return os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True

    def reap(self) -> int:
        """After `ended`: kill anything left in its process group (Envoy under a killed gateway wrapper), reap it,
        close its log; returns its exit code (negative: the signal that ended it)."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        code = self.proc.wait()
        if self.log:
            self.log.close()
            self.log = None
        return code

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join("    " + line for line in text[-lines:])

    def stop(self, grace: float) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.log:
            self.log.close()
            self.log = None


def describe_exit(code: int) -> str:
    """'exit code 2' or 'killed by SIGKILL'."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


@dataclass
class Backoff:
    """Restart delays of one child: `initial` seconds after a crash, doubling with each crash in a row up to `cap`;
    a run of `reset_after` seconds forgives the crashes before it. A child crashing in a loop is retried forever
    (a port held by something else, the database down: causes that go away), just ever less often."""

    initial: float = 0.5
    cap: float = 30.0
    reset_after: float = 60.0
    #: Crashes in a row (no run of `reset_after` seconds between them).
    crashes: int = 0

    def crashed(self, ran_for: float) -> float:
        """Count a crash after `ran_for` seconds of running; the delay before the next start."""
        if ran_for >= self.reset_after:
            self.crashes = 0
        self.crashes += 1
        return min(self.cap, self.initial * 2.0 ** min(self.crashes - 1, 32))

    @property
    def looping(self) -> bool:
        """Three crashes in a row: say so, the operator has a cause to find."""
        return self.crashes >= 3


@dataclass
class Watched:
    """A child under supervision: when it (re)started, and when it restarts next while it is down."""

    child: Child
    #: The file it writes once serving (a service), or None (the gateway: up once started).
    ready_file: Path | None
    backoff: Backoff = field(default_factory=Backoff)
    started_at: float = 0.0
    crashed_at: float = 0.0
    restart_at: float | None = None  # None: running
    awaiting_ready: bool = False


class Supervisor:
    """Keeps the running children running: a crashed one is reported, restarted after its backoff, and reported
    again once it serves. `tick` does one round; `run_up` calls it until Ctrl-C/SIGTERM (never during shutdown)."""

    def __init__(
        self,
        watched: list[Watched],
        clock: Clock,
        say: Callable[[str], None] | None = None,
        on_restart: Callable[[], None] | None = None,
    ) -> None:
        self.watched = watched
        self.clock = clock
        self._say = say or (lambda line: print(line, file=sys.stderr, flush=True))
        self._on_restart = on_restart or (lambda: None)
        now = clock.monotonic()
        for w in watched:
            w.started_at = now

    def tick(self) -> None:
        for w in self.watched:
            now = self.clock.monotonic()
            if w.restart_at is None:
                if w.child.ended():
                    self._crashed(w, now)
                elif w.awaiting_ready and w.ready_file is not None and w.ready_file.exists():
                    w.awaiting_ready = False
                    pid = w.child.proc.pid if w.child.proc else 0
                    back = now - w.crashed_at
                    self._say(f"flowdock: {w.child.name} is back (pid {pid}), {back:.1f} s after the crash")
            elif now >= w.restart_at:
                self._restart(w, now)

    def _crashed(self, w: Watched, now: float, why: str = "") -> None:
        if not why:
            why = describe_exit(w.child.reap())
        delay = w.backoff.crashed(now - w.started_at)
        w.crashed_at, w.restart_at, w.awaiting_ready = now, now + delay, False
        line = f"flowdock: {w.child.name} crashed ({why}); restarting it in {delay:g} s"
        if w.backoff.looping:
            line += (
                f" (crash-looping: {w.backoff.crashes} crashes in a row; retried with backoff up to "
                f"{w.backoff.cap:g} s, see {w.child.log_path})"
            )
        self._say(line)

    def _restart(self, w: Watched, now: float) -> None:
        if w.ready_file is not None:
            with contextlib.suppress(OSError):
                w.ready_file.unlink()
        w.started_at, w.restart_at = now, None
        try:
            w.child.start()
        except OSError as exc:  # no process at all (out of processes or file descriptors): a crash like any other
            if w.child.log:
                w.child.log.close()
                w.child.log = None
            self._crashed(w, now, f"could not start: {exc}")
            return
        w.awaiting_ready = True
        if w.ready_file is None:
            w.awaiting_ready = False
            pid = w.child.proc.pid if w.child.proc else 0
            self._say(f"flowdock: {w.child.name} restarted (pid {pid})")
        self._on_restart()

    @property
    def pids(self) -> dict[str, int]:
        return {w.child.name: w.child.proc.pid for w in self.watched if w.child.proc is not None}


@dataclass
class Plan:
    data_dir: Path
    host: str
    port: int
    db_url: str
    admin_port: int
    ports: dict[str, list[int]]
    metrics_ports: dict[str, list[int]]
    log_format: str
    base_env: dict[str, str]
    web_dir: Path
    web_built: bool
    warnings: list[str] = field(default_factory=list)
    #: clamd's address when uploads are scanned ("" with --no-scan), and how long start waits for it.
    scan_address: str = ""
    scan_wait_seconds: float = 30.0
    # Mutual TLS between the services and from Envoy (certificates in data_dir/mesh); off only by FLOWDOCK_MESH_TLS.
    mesh_tls: bool = True
    tls_cert: Path | None = None
    tls_key: Path | None = None
    hsts_max_age: int = 31536000
    xff_trusted_hops: int = 0

    @property
    def mesh_dir(self) -> Path:
        return self.data_dir / "mesh"

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"

    def address(self, name: str) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.ports[name])

    def service_env(self, name: str, replica: int = 0) -> dict[str, str]:
        env = dict(self.base_env)
        env.update(
            {
                "FLOWDOCK_DATA_DIR": str(self.data_dir),
                "FLOWDOCK_DB_URL": self.db_url,
                "FLOWDOCK_LISTEN_HOST": "127.0.0.1",
                "FLOWDOCK_GRPC_PORT": str(self.ports[name][replica]),
                "FLOWDOCK_METRICS_PORT": str(self.metrics_ports[name][replica]),
                "FLOWDOCK_READY_FILE": str(self.run_dir / f"{replica_name(name, replica)}.json"),
                "FLOWDOCK_LOG_FORMAT": self.log_format,
                "FLOWDOCK_AUTH_ADDRESS": self.address("auth"),
                "FLOWDOCK_SHARE_ADDRESS": self.address("share"),
                "FLOWDOCK_STORAGE_ADDRESS": self.address("storage"),
                "GLIBC_TUNABLES": MALLOC_TUNABLES,
            }
        )
        return env

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    def gateway_argv(self) -> list[str]:
        argv = [
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--listen-host",
            self.host,
            "--port",
            str(self.port),
            "--admin-host",
            "127.0.0.1",
            "--admin-port",
            str(self.admin_port),
            "--run-dir",
            str(self.run_dir),
            "--xff-trusted-hops",
            str(self.xff_trusted_hops),
            "--web-dir",
            str(self.web_dir),
        ]
        if self.mesh_tls:
            from flowdock_kernel.mesh import CA_CERT, GATEWAY, cert_path, key_path

            argv += ["--mesh-ca", str(self.mesh_dir / CA_CERT)]
            argv += ["--mesh-cert", str(cert_path(self.mesh_dir, GATEWAY))]
            argv += ["--mesh-key", str(key_path(self.mesh_dir, GATEWAY))]
        if self.tls_cert and self.tls_key:
            argv += ["--tls-cert", str(self.tls_cert), "--tls-key", str(self.tls_key)]
            argv += ["--hsts-max-age", str(self.hsts_max_age)]
        for name in (n for n in RUNNING if n in self.ports):
            argv += ["--upstream", f"{name}={self.address(name)}"]
        return argv


def _url_host(host: str) -> str:
    """How a browser on this machine reaches a listener bound to `host`."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _configured(env: dict[str, str], key: str) -> bool:
    """Whether the environment or the TOML file (FLOWDOCK_CONFIG) sets `key`."""
    if "FLOWDOCK_" + key.upper() in env:
        return True
    path = env.get("FLOWDOCK_CONFIG", "")
    if not path:
        return False
    try:
        return key in tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return False  # load() has already reported an unreadable file


def make_plan(args: argparse.Namespace) -> Plan:
    from flowdock_kernel.config import ConfigError, load
    from gateway.config import GatewayConfig
    from gateway.webapp import BUILD_HINT, resolve_web_dir, scan
    from storage_svc.config import StorageConfig

    env = server_env(args)
    for flag, key in (("tls_cert", "GATEWAY_TLS_CERT"), ("tls_key", "GATEWAY_TLS_KEY")):
        if getattr(args, flag):
            env[f"FLOWDOCK_{key}"] = str(Path(getattr(args, flag)).resolve())
    if args.xff_trusted_hops is not None:
        env["FLOWDOCK_GATEWAY_XFF_TRUSTED_HOPS"] = str(args.xff_trusted_hops)
    if args.web_dir:
        env["FLOWDOCK_GATEWAY_WEB_DIR"] = str(Path(args.web_dir).resolve())
    try:
        common = load(GatewayConfig, env)
        web_dir = resolve_web_dir(common.gateway_web_dir)
    except ConfigError as exc:
        raise UpError(str(exc)) from None
    web_built = scan(web_dir) is not None
    data_dir = common.data_dir.resolve()
    if bool(common.gateway_tls_cert) != bool(common.gateway_tls_key):
        raise UpError("--tls-cert and --tls-key (FLOWDOCK_GATEWAY_TLS_CERT/_KEY) go together")
    for path in (common.gateway_tls_cert, common.gateway_tls_key):
        if path and not Path(path).is_file():
            raise UpError(f"TLS file {path} does not exist")
    warnings: list[str] = []
    scan_address = ""
    if args.no_scan:
        env["FLOWDOCK_STORAGE_VIRUS_SCAN"] = "off"
    try:
        storage = load(StorageConfig, env)
    except ConfigError as exc:
        raise UpError(str(exc)) from None
    if storage.storage_virus_scan == "off":
        # Never silent: the operator asked for it (--no-scan or storage_virus_scan=off), and is told what it means.
        warnings.append(
            "virus scanning is OFF (--no-scan / FLOWDOCK_STORAGE_VIRUS_SCAN=off): uploads become visible unscanned."
        )
    else:
        scan_address = storage.storage_clamd_address
    if not web_built:
        warnings.append(f"no web app build in {web_dir}: serving the API only.\n{BUILD_HINT}")
    # Links in mails (verification, reset, "shared with you") and OIDC's callback point at the app this run serves,
    # unless the deployment says otherwise.
    scheme = "https" if common.gateway_tls_cert else "http"  # https also makes the refresh cookie Secure
    served = f"{scheme}://{_url_host(args.host)}:{args.port}"
    for key in ("auth_public_url", "share_public_url"):
        if not _configured(env, key):
            env["FLOWDOCK_" + key.upper()] = served
    replicas = {name: 1 for name in RUNNING}
    for item in args.replicas or []:
        name, _, count = item.partition("=")
        if name not in replicas or not count.isdigit() or not 1 <= int(count) <= 16:
            raise UpError(f"--replicas {item!r}: expected NAME=N with NAME one of {', '.join(RUNNING)} and N in 1..16")
        replicas[name] = int(count)
    gateway_port, admin_port = args.port, args.admin_port
    picked = iter(free_ports("127.0.0.1", 2 * sum(replicas.values()) + 1, {gateway_port, admin_port}))
    ports = {name: [next(picked) for _ in range(n)] for name, n in replicas.items()}
    metrics_ports = {name: [next(picked) for _ in range(n)] for name, n in replicas.items()}
    return Plan(
        data_dir=data_dir,
        host=args.host,
        port=gateway_port,
        db_url=common.db_url,
        admin_port=admin_port or next(picked),
        ports=ports,
        metrics_ports=metrics_ports,
        log_format=common.log_format,
        base_env=env,
        web_dir=web_dir,
        web_built=web_built,
        warnings=warnings,
        scan_address=scan_address,
        scan_wait_seconds=storage.storage_clamd_wait_seconds,
        mesh_tls=common.mesh_tls,
        tls_cert=Path(common.gateway_tls_cert).resolve() if common.gateway_tls_cert else None,
        tls_key=Path(common.gateway_tls_key).resolve() if common.gateway_tls_key else None,
        hsts_max_age=common.gateway_hsts_max_age,
        xff_trusted_hops=common.gateway_xff_trusted_hops,
    )


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived while starting."""


def _check_signal() -> None:
    if _stop_requested:
        raise Interrupted


_stop_requested = False


def _wait_ready(children: list[Child], ready: dict[str, Path], deadline: float) -> None:
    pending = dict(ready)
    while pending:
        _check_signal()
        for child in children:
            code = child.exited()
            if code is not None:
                raise UpError(f"{child.name} exited with code {code} while starting; its log:\n{child.tail()}")
        for name, path in list(pending.items()):
            if path.exists():
                del pending[name]
        if time.monotonic() > deadline:
            raise UpError(f"timed out waiting for {', '.join(pending)} to start")
        time.sleep(0.05)


def _gateway_ready(admin_port: int, gateway: Child, expected: dict[str, int], deadline: float) -> None:
    url = f"http://127.0.0.1:{admin_port}/clusters"
    while True:
        _check_signal()
        code = gateway.exited()
        if code is not None:
            raise UpError(f"the gateway (Envoy) exited with code {code}; its log:\n{gateway.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                text = resp.read().decode()
            healthy = {
                name: sum(
                    line.startswith(f"{name}::") and line.endswith("::health_flags::healthy")
                    for line in text.splitlines()
                )
                for name in expected
            }
            if healthy == expected and _jwks_fetched(admin_port):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise UpError(f"timed out waiting for the gateway; its log:\n{gateway.tail()}")
        time.sleep(0.05)


def _jwks_fetched(admin_port: int) -> bool:
    """Whether Envoy holds auth_svc's signing keys (its background JWKS fetch succeeded once). Until then a worker
    fetches them on demand for a request, which fails while auth_svc is down (401): ready means it holds them."""
    url = f"http://127.0.0.1:{admin_port}/stats?filter=jwks_fetch_success"
    with urllib.request.urlopen(url, timeout=1) as resp:
        lines = resp.read().decode().splitlines()
    return any(int(line.rsplit(":", 1)[1]) > 0 for line in lines if ":" in line)


def run_up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        plan = make_plan(args)
        ensure_port_free(plan.host, plan.port)
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for warning in plan.warnings:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    if plan.scan_address:
        try:
            wait_for_clamd(plan.scan_address, plan.scan_wait_seconds)
        except SetupError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    # Owner-only from here on: every database, key, log and run file the children create inherits the umask.
    from flowdock_kernel.datadir import make_private

    make_private(plan.data_dir)
    for folder in (plan.run_dir, plan.log_dir):
        folder.mkdir(parents=True, exist_ok=True)
    if plan.mesh_tls:
        from flowdock_kernel.mesh import ensure_mesh

        # First start: the mesh CA and every identity's certificate; later starts keep them.
        ensure_mesh(plan.mesh_dir)
    for stale in plan.run_dir.glob("*.json"):
        stale.unlink()

    services = [
        Child(
            replica_name(name, i),
            [sys.executable, "-m", f"{name}_svc", "serve"],
            plan.service_env(name, i),
            plan.log_dir / f"{replica_name(name, i)}.log",
        )
        for name in RUNNING
        for i in range(len(plan.ports[name]))
    ]
    from gateway.runner import envoy_command

    gateway = Child(
        "gateway",
        plan.gateway_argv(),
        plan.service_env("auth"),
        plan.log_dir / "gateway.log",
        # A restart runs Envoy itself on the config the first start rendered and validated (run/envoy.json): the
        # wrapper's imports, rendering and validation cost ~3 s of CPU, >10 s of waiting on a busy machine.
        restart_argv=envoy_command(plan.run_dir / "envoy.json"),
    )

    def on_signal(signum: int, _frame: Any) -> None:
        global _stop_requested
        _stop_requested = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    code = 0
    try:
        # First replicas start together (each migrates its own database), further replicas once those are up.
        first = [c for c in services if "-" not in c.name]
        for wave in (first, [c for c in services if c not in first]):
            for child in wave:
                child.start()
            _wait_ready(services, {c.name: plan.run_dir / f"{c.name}.json" for c in wave}, started + READY_TIMEOUT)
        gateway.start()
        expected = {name: len(plan.ports[name]) for name in RUNNING}
        _gateway_ready(plan.admin_port, gateway, expected, started + READY_TIMEOUT)
        elapsed = time.monotonic() - started
        info: dict[str, Any] = {
            "url": f"{plan.scheme}://{plan.host}:{plan.port}",
            "mesh_dir": str(plan.mesh_dir) if plan.mesh_tls else "",
            "admin_url": f"http://127.0.0.1:{plan.admin_port}",
            # gRPC services (clients and tests talk gRPC to these); dav_svc and other HTTP services apart.
            "services": {name: plan.address(name) for name in SERVICES},
            "http_services": {name: plan.address(name) for name in HTTP_SERVICES},
            "data_dir": str(plan.data_dir),
            "web_dir": str(plan.web_dir),
            "web_built": plan.web_built,
            "logs": str(plan.log_dir),
            "startup_seconds": round(elapsed, 2),
        }

        def publish() -> None:
            # Atomically: a reader polling for the file (tests, scripts) must never see it half-written.
            info["pids"] = supervisor.pids
            partial = plan.run_dir / "up.json.tmp"
            partial.write_text(json.dumps(info))
            partial.replace(plan.run_dir / "up.json")

        supervisor = Supervisor(
            [Watched(c, plan.run_dir / f"{c.name}.json") for c in services] + [Watched(gateway, None)],
            SystemClock(),
            on_restart=publish,
        )
        publish()
        print(
            f"FlowDock is up at {plan.scheme}://{plan.host}:{plan.port} (native gRPC, grpc-web and REST) "
            f"in {elapsed:.1f}s\n"
            + (
                f"  web app: {plan.scheme}://{plan.host}:{plan.port}/ (from {plan.web_dir})\n"
                if plan.web_built
                else f"  web app: not built (see the warning above; {plan.web_dir})\n"
            )
            + f"  data: {plan.data_dir}\n  logs: {plan.log_dir}\n"
            f"  Envoy admin and stats: http://127.0.0.1:{plan.admin_port}/stats/prometheus\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )
        while not _stop_requested:
            supervisor.tick()
            time.sleep(POLL_SECONDS)
        print("stopping FlowDock...", file=sys.stderr, flush=True)
    except Interrupted:
        print("interrupted while starting; stopping FlowDock...", file=sys.stderr, flush=True)
    except UpError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        gateway.stop(10)
        for child in reversed(services):
            child.stop(15)
        with contextlib.suppress(OSError):
            (plan.run_dir / "up.json").unlink()
    return code


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "up",
        help="run the whole system (three services + Envoy gateway)",
        description="Start auth_svc, storage_svc, share_svc and the Envoy gateway; Ctrl-C stops them all.",
    )
    add_server_options(p)
    p.add_argument("--port", type=int, default=8080, help="gateway port (default 8080)")
    p.add_argument("--host", default="127.0.0.1", help="gateway address (default 127.0.0.1)")
    p.add_argument("--admin-port", type=int, default=0, help="Envoy admin port on 127.0.0.1 (default: a free port)")
    p.add_argument("--tls-cert", help="serve TLS on the gateway port with this certificate chain (PEM)")
    p.add_argument("--tls-key", help="the private key (PEM) of --tls-cert")
    p.add_argument(
        "--xff-trusted-hops",
        type=int,
        help="proxies in front of the gateway whose X-Forwarded-For is trusted (default 0)",
    )
    p.add_argument(
        "--no-scan",
        action="store_true",
        help="run without virus scanning (uploads become visible unscanned); without it, start waits for clamd "
        "(storage_clamd_wait_seconds) and stops if none answers",
    )
    p.add_argument(
        "--web-dir",
        help="built browser app served at / (default: $FLOWDOCK_GATEWAY_WEB_DIR, else clients/web/dist of the source)",
    )
    p.add_argument(
        "--replicas",
        action="append",
        metavar="NAME=N",
        help="run N processes of a service behind the gateway, e.g. --replicas storage=2 (repeatable)",
    )
    p.set_defaults(func=run_up)
