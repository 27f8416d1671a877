"""Operator commands that act on auth_svc's database directly (the service may be running):

    python -m auth_svc.manage rotate-signing-key
    python -m auth_svc.manage create-user --email EMAIL [--admin] [--display-name NAME] [--password-stdin]

`flowdock keys rotate-signing` and `flowdock admin create-user` run these with the same configuration as
`flowdock up` (data dir, database URL, config file)."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import uuid

import sqlalchemy as sa

from auth_svc import bootstrap, domain
from auth_svc.adapters.hashing import common_passwords
from auth_svc.adapters.signing import rotate_signing_key
from auth_svc.adapters.tables import audit_events, users
from auth_svc.config import AuthConfig
from auth_svc.secretbox import SecretBox
from flowdock_kernel import config, db
from flowdock_kernel.clock import Clock, SystemClock
from flowdock_kernel.errors import InvalidArgument


def _engine(cfg: AuthConfig) -> sa.Engine:
    url = db.service_url(cfg, bootstrap.NAME, driver_async=False)
    if url.get_backend_name() == "sqlite":
        return sa.create_engine(url, connect_args={"timeout": 30})
    return sa.create_engine(url)


def rotate(cfg: AuthConfig, clock: Clock) -> int:
    engine = _engine(cfg)
    with engine.begin() as conn:
        kid, activate = rotate_signing_key(
            conn,
            publish_seconds=cfg.auth_signing_key_publish_seconds,
            access_ttl_seconds=cfg.auth_access_token_ttl_seconds,
            box=SecretBox.from_file(cfg.secrets_key_path),
            clock=clock,
        )
    engine.dispose()
    print(
        f"new signing key {kid}: published now, signs from {activate.isoformat(timespec='seconds')}; "
        "the previous key stays in the JWKS until the last token it signed has expired"
    )
    return 0


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise InvalidArgument("password", "the two entries differ")
    return first


def create_user(cfg: AuthConfig, args: argparse.Namespace, clock: Clock) -> int:
    email = domain.normalise_email(args.email)
    role = domain.Role.ADMIN if args.admin else domain.Role.USER
    engine = _engine(cfg)
    try:
        with engine.begin() as conn:
            existing = conn.execute(sa.select(users.c.id, users.c.role).where(users.c.email == email)).first()
            if existing is not None:
                if not args.admin:
                    print(f"error: an account with email {email} already exists", file=sys.stderr)
                    return 1
                conn.execute(users.update().where(users.c.id == existing.id).values(role="admin", disabled=False))
                user_id, what = existing.id, "admin.role_changed"
                print(f"{email} already existed; it is now an administrator")
            else:
                password = _read_password(args.password_stdin)
                domain.check_password(password, common_passwords(cfg.auth_common_passwords))
                user_id, what = str(uuid.uuid4()), "admin.user_created"
                conn.execute(
                    users.insert().values(
                        id=user_id,
                        email=email,
                        display_name=domain.clean_display_name(args.display_name or "", email),
                        role=role.value,
                        password_hash=bootstrap.make_hasher(cfg).hash_now(password),
                        created_at=clock.now(),
                        disabled=False,
                        email_verified=True,
                    )
                )
                print(f"created {'administrator' if args.admin else 'user'} {email} ({user_id})")
            conn.execute(
                audit_events.insert().values(
                    id=str(uuid.uuid4()),
                    at=clock.now(),
                    kind=what,
                    actor_id="",
                    subject_id=user_id,
                    service="cli",
                    details=json.dumps({"role": role.value, "via": "flowdock admin create-user"}),
                )
            )
    finally:
        engine.dispose()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m auth_svc.manage", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("rotate-signing-key", help="add a new signing key; the old one retires when its tokens expire")
    create = sub.add_parser("create-user", help="create a verified account (or make an existing one admin)")
    create.add_argument("--email", required=True)
    create.add_argument("--display-name", default="")
    create.add_argument("--admin", action="store_true", help="give the account the admin role")
    create.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    args = parser.parse_args(argv)
    try:
        cfg = config.load(AuthConfig)
        bootstrap.migrate(cfg)
        clock = SystemClock()
        if args.command == "rotate-signing-key":
            return rotate(cfg, clock)
        return create_user(cfg, args, clock)
    except config.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except InvalidArgument as exc:
        print(f"error: {exc.field} {exc.description}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
