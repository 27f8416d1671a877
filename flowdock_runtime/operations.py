"""Operator commands: `flowdock migrate`, `admin create-user`, `keys rotate-signing|rotate|status|rewrap|prune`,
`fsck`, `scrub`, and `backup`/`restore` (flowdock_runtime.backup, in this process: they read the databases and the blob
store themselves). The others run a service's own module (`python -m auth_svc.manage`, `storage_svc.keys`, ...)
with the data folder, database and config file the service would get under `flowdock up`
(flowdock_runtime.settings), so they work whether or not the system is running. They read configuration only: no
port is picked or bound and clamd is not asked (the supervisor's probes are for starting a mesh, not for looking
at its data).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from flowdock_runtime.settings import RUNNING, ServerSettings, SetupError, add_server_options, resolve


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
    for name in RUNNING:
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


def _scrub(args: argparse.Namespace) -> int:
    extra = [*(["--all"] if args.all else []), *(["--no-progress"] if args.no_progress else [])]
    if args.bytes_per_second is not None:
        extra += ["--bytes-per-second", str(args.bytes_per_second)]
    return _run_module(args, "storage_svc.scrub", extra, private=False)


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

    scrub = sub.add_parser(
        "scrub",
        help="authenticate stored blobs now (the background scrub's pass, at once)",
        description="Decrypt and authenticate every segment of the stored blobs from the scrub's saved position to "
        "the end of its pass (--all: a new pass over every blob), at FLOWDOCK_STORAGE_SCRUB_BYTES_PER_SECOND, "
        "sharing the lease of the storage replicas' background scrub. Damage is logged as DATA_LOSS, listed, and "
        "recorded in the owner's activity. Exit code 1 when damage was found.",
    )
    add_server_options(scrub)
    scrub.add_argument("--all", action="store_true", help="a new pass over every blob")
    scrub.add_argument("--bytes-per-second", type=int, help="read budget for this run")
    scrub.add_argument("--no-progress", action="store_true", help="no progress bar")
    scrub.set_defaults(func=_scrub)

    add_backup_commands(sub)


def _backup(args: argparse.Namespace) -> int:
    from flowdock_runtime import backup as bk

    show = not args.no_progress
    if args.verify:
        try:
            manifest, problems = bk.verify(Path(args.path), show=show)
        except bk.BackupError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        if problems:
            print(f"error: the backup in {args.path} is damaged ({len(problems)} problem(s))", file=sys.stderr)
            return 1
        size = sum(a["size"] for a in manifest.artefacts.values())
        print(
            f"backup of {manifest.created} is complete and intact: {len(manifest.artefacts)} files, "
            f"{bk.human(size)}, {manifest.blobs} blobs, {manifest.backend}, keys "
            f"{'included' if manifest.keys_included else 'not included'}"
        )
        return 0
    settings = _settings(args, private=False)
    if settings is None:
        return 2
    start = time.monotonic()
    try:
        manifest = bk.backup(settings, Path(args.path), with_keys=args.with_keys, keys_only=args.keys_only, show=show)
    except bk.BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    size = sum(a["size"] for a in manifest.artefacts.values())
    what = "keys" if manifest.keys_only else f"{manifest.blobs} blobs, {len(manifest.alembic)} databases"
    print(f"backup complete in {bk.elapsed_since(start)}: {what}, {bk.human(size)} in {args.path}")
    if not manifest.keys_included:
        print(
            "note: the keys are not in this backup; keep the keyring and auth-secrets.key apart from it "
            "(flowdock backup --keys-only KEYDEST), or no restore can read the files",
            file=sys.stderr,
        )
    return 0


def _restore(args: argparse.Namespace) -> int:
    from flowdock_runtime import backup as bk

    settings = _settings(args, private=False)
    if settings is None:
        return 2
    start = time.monotonic()
    try:
        manifest = bk.restore(
            settings,
            Path(args.path),
            keyring=args.keyring,
            auth_key=args.auth_secrets_key,
            show=not args.no_progress,
        )
    except bk.BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"error: restore failed: {exc}; empty {settings.data_dir} (and the databases) before retrying",
            file=sys.stderr,
        )
        return 1
    print(
        f"restored the backup of {manifest.created} in {bk.elapsed_since(start)}: {manifest.blobs} blobs into "
        f"{settings.data_dir}; start it with flowdock up"
    )
    return 0


def add_backup_commands(sub: Any) -> None:
    b = sub.add_parser(
        "backup",
        help="back up a running installation (databases, blobs; keys on request), or --verify a backup",
        description="Write a consistent backup of the installation into PATH (a new or empty folder) without "
        "stopping it: each service's database, the encrypted blobs, and a manifest with every file's SHA-256, "
        "written last. The keys are not included unless --with-keys (see docs/backup.md). With --verify, check "
        "the backup in PATH instead.",
    )
    add_server_options(b)
    b.add_argument("path", metavar="PATH", help="backup folder (new or empty); with --verify, the backup to check")
    b.add_argument("--verify", action="store_true", help="check the backup in PATH against its manifest")
    mode = b.add_mutually_exclusive_group()
    mode.add_argument("--with-keys", action="store_true", help="also copy the keyring and auth-secrets.key")
    mode.add_argument("--keys-only", action="store_true", help="copy only the keyring and auth-secrets.key")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.set_defaults(func=_backup)

    r = sub.add_parser(
        "restore",
        help="restore a backup into an empty data folder (and empty databases)",
        description="Check the backup in PATH, then restore it into the configured data folder, which must be "
        "empty (PostgreSQL: databases without tables). Nothing is written when the backup is damaged.",
    )
    add_server_options(r)
    r.add_argument("path", metavar="PATH", help="the backup folder")
    r.add_argument("--keyring", help="the storage keyring (keyring.json) when the backup has no keys")
    r.add_argument("--auth-secrets-key", help="auth_svc's auth-secrets.key when the backup has no keys")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(func=_restore)
