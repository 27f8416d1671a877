"""What every user command shares: the config dir and stored login, the client, output (tables or --json), and
errors turned into one line and an exit code."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import fcntl
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from flowdock_sdk import (
    AlreadyExists,
    AsyncClient,
    AuthenticationError,
    FailedPrecondition,
    FlowDockError,
    InvalidArgument,
    LocalFileError,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    TransferInterrupted,
    Unavailable,
)

DEFAULT_SERVER = "http://127.0.0.1:8080"

# Exit codes (docs/cli.md): 0 ok, 1 other error, 2 usage, 3 log in again, 4 not found, 5 already exists,
# 6 permission denied, 7 server unreachable / transfer interrupted, 8 quota or limit exceeded, 130 Ctrl-C.
EXIT_CODES: list[tuple[type[FlowDockError], int]] = [
    (AuthenticationError, 3),
    (NotFound, 4),
    (LocalFileError, 4),
    (AlreadyExists, 5),
    (PermissionDenied, 6),
    (Unavailable, 7),
    (TransferInterrupted, 7),
    (QuotaExceeded, 8),
]

Handler = Callable[[argparse.Namespace, AsyncClient], Awaitable[int]]


def config_dir() -> Path:
    """$FLOWDOCK_CONFIG_DIR, else $XDG_CONFIG_HOME/flowdock, else ~/.config/flowdock."""
    if os.environ.get("FLOWDOCK_CONFIG_DIR"):
        return Path(os.environ["FLOWDOCK_CONFIG_DIR"])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "flowdock"


def credentials_path() -> Path:
    return config_dir() / "credentials.json"


def state_path() -> Path:
    return config_dir() / "uploads.json"


@contextlib.contextmanager
def credentials_lock() -> Iterator[None]:
    """Serialises token refreshes between concurrent `flowdock` processes (a reused refresh token kills the
    session, so two processes must never refresh the same one)."""
    directory = config_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(directory / "credentials.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_credentials() -> dict[str, str]:
    try:
        data = json.loads(credentials_path().read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def write_credentials(data: dict[str, str]) -> None:
    """Atomically, mode 0600 from the first byte."""
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".credentials.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def server_of(args: argparse.Namespace) -> str:
    return str(
        getattr(args, "server", None)
        or os.environ.get("FLOWDOCK_SERVER")
        or read_credentials().get("server")
        or DEFAULT_SERVER
    ).rstrip("/")


def common_options() -> argparse.ArgumentParser:
    """--server and --json, accepted by every user command."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--server",
        metavar="URL",
        help=f"gateway URL (default: $FLOWDOCK_SERVER, else the one you logged in to, else {DEFAULT_SERVER})",
    )
    parent.add_argument("--json", action="store_true", help="print JSON for scripts instead of a table")
    return parent


def make_client(args: argparse.Namespace, **options: Any) -> AsyncClient:
    """A client for the stored login; every new refresh token goes straight back to the credentials file."""
    server = server_of(args)
    creds = read_credentials()
    token = creds.get("refresh_token", "") if creds.get("server", "").rstrip("/") == server else ""

    def keep(new: str) -> None:
        write_credentials({**read_credentials(), "server": server, "refresh_token": new})

    return AsyncClient(
        server, refresh_token=token, on_refresh_token=keep, state_file=state_path(), device_name=device(), **options
    )


def device() -> str:
    return f"flowdock-cli on {os.uname().nodename}"


def error_line(exc: FlowDockError, server: str) -> tuple[str, int]:
    code = next((c for cls, c in EXIT_CODES if isinstance(exc, cls)), 1)
    message = exc.message.replace("overwrite=True", "--overwrite")
    if isinstance(exc, AuthenticationError) and "incorrect" not in message and "code" not in message.lower():
        message = f"{message.rstrip('.')} (run `flowdock login`)"
    if isinstance(exc, Unavailable):
        message = f"FlowDock at {server} is unavailable: {message}"
    if isinstance(exc, FailedPrecondition) and exc.reason == "REAUTHENTICATION_REQUIRED":
        message = f"{message.rstrip('.')} (run `flowdock login`, then try again)"
    if isinstance(exc, InvalidArgument) and exc.violations:
        message += " (" + "; ".join(f"{v.field}: {v.description}" for v in exc.violations) + ")"
    return f"error: {message}", code


def run(handler: Handler, *, authenticate: bool = True) -> Callable[[argparse.Namespace], int]:
    """An argparse `func` running `handler` with a logged-in client; errors become one line and an exit code."""

    def func(args: argparse.Namespace) -> int:
        server = server_of(args)

        async def main() -> int:
            parallel = getattr(args, "parallel", 4)
            if authenticate:
                with credentials_lock():  # read the newest token and refresh it while no other flowdock does
                    client = make_client(args, max_parallel=parallel)
                    if not client.refresh_token:
                        await client.close()
                        raise AuthenticationError(f"not logged in to {server}")
                    try:
                        await client.authenticate()
                    except BaseException:
                        await client.close()
                        raise
            else:
                client = make_client(args, max_parallel=parallel)
            async with client:
                return await handler(args, client)

        try:
            return asyncio.run(main())
        except FlowDockError as exc:
            line, code = error_line(exc, server)
            print(line, file=sys.stderr)
            return code
        except KeyboardInterrupt:
            print(getattr(args, "interrupted", "interrupted"), file=sys.stderr)
            return 130
        except BrokenPipeError:  # `flowdock tree | head`: the reader is gone, nothing to say
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141
        except OSError as exc:
            print(f"error: {exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}", file=sys.stderr)
            return 1
        except Exception as exc:
            if os.environ.get("FLOWDOCK_DEBUG"):
                raise
            print(
                f"error: unexpected {type(exc).__name__}: {exc} (FLOWDOCK_DEBUG=1 shows the traceback)", file=sys.stderr
            )
            return 1

    return func


# -- output ---------------------------------------------------------------------------------------------------


def stdout() -> Console:
    return Console(width=None if sys.stdout.isatty() else 200, highlight=False, soft_wrap=True)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def print_json(value: Any) -> None:
    print(json.dumps(_plain(value), indent=2))


def table(columns: list[str], rows: list[list[str]], *, right: tuple[str, ...] = ()) -> None:
    out = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for name in columns:
        out.add_column(name, justify="right" if name in right else "left", no_wrap=True)
    for row in rows:
        out.add_row(*row)
    stdout().print(out)


def when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M") if value else "-"


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def parse_size(text: str) -> int:
    """'1048576', '500MB', '10GiB', '1.5 TiB' -> bytes."""
    units = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
    units |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
    number = text.strip().rstrip("bBiIkKmMgGtT ")
    unit = text.strip()[len(number) :].strip().lower()
    try:
        return int(float(number) * units[unit])
    except (KeyError, ValueError):
        raise FlowDockError(f"not a size: {text!r} (e.g. 500MB, 10GiB, or bytes)", code="USAGE") from None


def say(message: str) -> None:
    """A status line for people (stderr, so stdout stays clean for --json)."""
    print(message, file=sys.stderr, flush=True)


def add(
    sub: Any, name: str, handler: Handler, text: str, *, authenticate: bool = True, epilog: str = ""
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=text,
        description=text[0].upper() + text[1:] + ".",
        parents=[common_options()],
        epilog=epilog or None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=run(handler, authenticate=authenticate))
    return parser
