"""Operator commands: `flowdock migrate`, `admin create-user`, `keys rotate-signing|rotate|status|rewrap|prune` and
`fsck`. Each runs a service's own module (`python -m auth_svc.manage`, `storage_svc.keys`, ...) with the data folder,
database and config file the service would get under `flowdock up` (flowdock_runtime.settings), so they work
whether or not the system is running. They read configuration only: no port is picked or bound and clamd is not
asked (the supervisor's probes are for starting a mesh, not for looking at its data).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Any

from flowdock_runtime.settings import SERVICES, ServerSettings, SetupError, add_server_options, resolve


def _settings(args: argparse.Namespace, *, private: bool) -> ServerSettings | None:
    """The server's settings, or None once the error is printed. `private`: the command may create files in the
    data folder (databases, key files), which must be owner-only like everything the services write there."""
    try:
        settings = resolve(args)
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    if private:
        from flowdock_kernel.datadir import make_private

        make_private(settings.data_dir)
    return settings


def _run_module(args: argparse.Namespace, module: str, extra: list[str], *, private: bool) -> int:
    settings = _settings(args, private=private)
    if settings is None:
        return 2
    result = subprocess.run([sys.executable, "-m", module, *extra], env=settings.command_env(), check=False)
    return result.returncode


def _migrate(args: argparse.Namespace) -> int:
    settings = _settings(args, private=True)
    if settings is None:
        return 2
    for name in SERVICES:
        result = subprocess.run(
            [sys.executable, "-m", f"{name}_svc", "migrate"], env=settings.command_env(), check=False
        )
        if result.returncode != 0:
            print(f"error: migrating {name}_svc failed (exit code {result.returncode})", file=sys.stderr)
            return 1
        print(f"{name}_svc: database up to date")
    return 0


def _create_user(args: argparse.Namespace) -> int:
    extra = ["--email", args.email]
    if args.display_name:
        extra += ["--display-name", args.display_name]
    if args.admin:
        extra.append("--admin")
    if args.password_stdin:
        extra.append("--password-stdin")
    return _run_module(args, "auth_svc.manage", ["create-user", *extra], private=True)


def _rotate_signing(args: argparse.Namespace) -> int:
    return _run_module(args, "auth_svc.manage", ["rotate-signing-key"], private=True)


def _keys(args: argparse.Namespace) -> int:
    # Not private: the data folder must not be created here, or a mistyped --data-dir would look like an empty store.
    return _run_module(args, "storage_svc.keys", [args.keys_command], private=False)


def _fsck(args: argparse.Namespace) -> int:
    extra = [*(["--deep"] if args.deep else []), *(["--repair"] if args.repair else [])]
    return _run_module(args, "storage_svc.fsck", extra, private=False)


def add_commands(sub: Any) -> None:
    m = sub.add_parser(
        "migrate", help="apply database migrations", description="Create or upgrade every service's database."
    )
    add_server_options(m)
    m.set_defaults(func=_migrate)

    admin = sub.add_parser("admin", help="account administration", description="Account administration.")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True, metavar="COMMAND")
    create = admin_sub.add_parser(
        "create-user",
        help="create a verified account; --admin bootstraps the first administrator",
        description="Create a verified account (asks for the password, or reads it with --password-stdin). "
        "With --admin on an existing account, makes it an administrator.",
    )
    add_server_options(create)
    create.add_argument("--email", required=True)
    create.add_argument("--display-name", default="")
    create.add_argument("--admin", action="store_true", help="give the account the admin role")
    create.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    create.set_defaults(func=_create_user)

    keys = sub.add_parser("keys", help="signing keys", description="Token signing keys.")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    rotate = keys_sub.add_parser(
        "rotate-signing",
        help="rotate the access-token signing key",
        description="Add a new signing key. It is published in the JWKS at once and signs after "
        "FLOWDOCK_AUTH_SIGNING_KEY_PUBLISH_SECONDS; the old key stays published until its tokens have expired.",
    )
    add_server_options(rotate)
    rotate.set_defaults(func=_rotate_signing)
    for name, text in (
        ("rotate", "add a file-encryption KEK and re-wrap every file's data key under it (resumable)"),
        ("status", "list the file-encryption KEKs and how many files each wraps"),
        ("rewrap", "re-wrap files still on an older KEK under the current one"),
        ("prune", "remove KEKs no file uses any more"),
    ):
        p = keys_sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        add_server_options(p)
        p.set_defaults(func=_keys)

    fsck = sub.add_parser(
        "fsck",
        help="check stored bytes against metadata",
        description="Find blobs without rows, rows without blobs, wrong sizes and stray staging files.",
    )
    add_server_options(fsck)
    fsck.add_argument("--deep", action="store_true", help="decrypt and authenticate every blob")
    fsck.add_argument("--repair", action="store_true", help="delete orphans older than an hour")
    fsck.set_defaults(func=_fsck)
