"""`flowdock keys rotate|status|rewrap|prune` (file encryption keys) and `flowdock fsck`: operator commands on
storage_svc's data, run as `python -m storage_svc.*` with the environment `flowdock up` gives storage_svc."""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Any

from flowdock_cli.up import UpError, _common_options, make_plan


def _run(args: argparse.Namespace, module: str, extra: list[str]) -> int:
    try:
        plan = make_plan(args)
    except UpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = subprocess.run([sys.executable, "-m", module, *extra], env=plan.service_env("storage"), check=False)
    return result.returncode


def _keys(args: argparse.Namespace) -> int:
    return _run(args, "storage_svc.keys", [args.keys_command])


def _fsck(args: argparse.Namespace) -> int:
    return _run(args, "storage_svc.fsck", [*(["--deep"] if args.deep else []), *(["--repair"] if args.repair else [])])


def add_commands(sub: Any) -> None:
    keys = sub.choices["keys"]
    keys_sub = next(a for a in keys._actions if isinstance(a, argparse._SubParsersAction))
    for name, text in (
        ("rotate", "add a file-encryption KEK and re-wrap every file's data key under it (resumable)"),
        ("status", "list the file-encryption KEKs and how many files each wraps"),
        ("rewrap", "re-wrap files still on an older KEK under the current one"),
        ("prune", "remove KEKs no file uses any more"),
    ):
        p = keys_sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        _common_options(p)
        p.set_defaults(func=_keys)
    fsck = sub.add_parser(
        "fsck",
        help="check stored bytes against metadata",
        description="Find blobs without rows, rows without blobs, wrong sizes and stray staging files.",
    )
    _common_options(fsck)
    fsck.add_argument("--deep", action="store_true", help="decrypt and authenticate every blob")
    fsck.add_argument("--repair", action="store_true", help="delete orphans older than an hour")
    fsck.set_defaults(func=_fsck)
