"""`flowdock admin create-user` and `flowdock keys rotate-signing`: operator commands on auth_svc's database.

They take the same --data-dir / --db / --config as `flowdock up` and run `python -m auth_svc.manage` with the
environment `up` would give auth_svc, so they work whether or not the system is running."""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Any

from flowdock_cli.up import UpError, _common_options, make_plan


def _run(args: argparse.Namespace, manage_args: list[str]) -> int:
    try:
        plan = make_plan(args)
    except UpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from flowdock_kernel.datadir import make_private

    make_private(plan.data_dir)  # the key files manage.py may create are owner-only
    result = subprocess.run(
        [sys.executable, "-m", "auth_svc.manage", *manage_args], env=plan.service_env("auth"), check=False
    )
    return result.returncode


def _create_user(args: argparse.Namespace) -> int:
    extra = ["--email", args.email]
    if args.display_name:
        extra += ["--display-name", args.display_name]
    if args.admin:
        extra.append("--admin")
    if args.password_stdin:
        extra.append("--password-stdin")
    return _run(args, ["create-user", *extra])


def _rotate(args: argparse.Namespace) -> int:
    return _run(args, ["rotate-signing-key"])


def add_commands(sub: Any) -> None:
    admin = sub.add_parser("admin", help="account administration", description="Account administration.")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True, metavar="COMMAND")
    create = admin_sub.add_parser(
        "create-user",
        help="create a verified account; --admin bootstraps the first administrator",
        description="Create a verified account (asks for the password, or reads it with --password-stdin). "
        "With --admin on an existing account, makes it an administrator.",
    )
    _common_options(create)
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
    _common_options(rotate)
    rotate.set_defaults(func=_rotate)
