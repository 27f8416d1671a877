"""Key administration: `python -m storage_svc.keys status|rotate|rewrap|prune`.

- status: the keyring's KEKs and how many stored files (blobs and uploads in progress) each one wraps.
- rotate: add a new KEK, make it current, re-wrap every file's data key under it (header rewrite in place,
  fsynced; content untouched). If interrupted (killed, crashed), running it again resumes the same rotation:
  files already on the new KEK are skipped. Running services pick the new KEK up without a restart.
- rewrap: re-wrap files still on an older KEK under the current one (no new key).
- prune: drop KEKs that no file uses any more (never the current one, never during a rotation).

Settings come from the environment / FLOWDOCK_CONFIG like the service's (data_dir, storage_keyring_path);
--data-dir and --keyring override them. Exit codes: 0 done, 1 some files could not be re-wrapped, 2 bad config.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from flowdock_kernel.config import ConfigError, load
from flowdock_kernel.errors import DataLoss
from storage_svc.blobstore import keyring_path
from storage_svc.blobstores import AnyBlobStore, open_blob_store
from storage_svc.config import StorageConfig
from storage_svc.keyring import Keyring, KeyringError, new_kek

MAX_PASSES = 3


def _store(args: argparse.Namespace) -> AnyBlobStore:
    config = load(StorageConfig)
    if args.data_dir:
        config = replace(config, data_dir=Path(args.data_dir))
    if args.keyring:
        config = replace(config, storage_keyring_path=args.keyring)
    # Never create a keyring here: a mistyped --data-dir must not look like an empty, healthy store.
    return open_blob_store(config, keyring=Keyring(keyring_path(config), create=False))


def usage(store: AnyBlobStore) -> tuple[Counter[str], int]:
    """Files per KEK id, and files whose header is unreadable."""
    counts: Counter[str] = Counter()
    unreadable = 0
    for name in store.key_holders():
        try:
            kek_id = store.kek_of(name)
        except FileNotFoundError:
            continue  # committed or deleted meanwhile
        if kek_id is None:
            unreadable += 1
        else:
            counts[kek_id] += 1
    return counts, unreadable


def _unreadable(store: AnyBlobStore, name: str) -> bool:
    try:
        return store.kek_of(name) is None
    except FileNotFoundError:
        return False


def status(store: AnyBlobStore) -> int:
    ring = store.keyring
    counts, unreadable = usage(store)
    print(f"keyring: {ring.path}")
    print(f"current: {ring.current_id}" + ("  (rotation pending: run `rotate` again)" if ring.rotation_pending else ""))
    print(f"{'KEK':<28} {'created':<26} {'files':>8}")
    known = set()
    for kek in ring.keks():
        known.add(kek.id)
        mark = " *" if kek.id == ring.current_id else ""
        print(f"{kek.id + mark:<28} {kek.created:<26} {counts.get(kek.id, 0):>8}")
    missing = {k: n for k, n in counts.items() if k not in known}
    for kek_id, n in sorted(missing.items()):
        print(f"{kek_id + ' (MISSING)':<28} {'-':<26} {n:>8}")
    if unreadable:
        print(
            f"files without a readable header (uploads interrupted before their first sync, or damaged): {unreadable}"
        )
    return 1 if missing else 0


def _rewrap_all(store: AnyBlobStore, target: str, pause: float) -> tuple[int, int, int]:
    """Re-wrap until a pass finds nothing left (a running service may add files meanwhile)."""
    changed = skipped = failed = 0
    for attempt in range(MAX_PASSES):
        failed = 0
        changed_this_pass = 0
        for path in store.key_holders():
            try:
                if store.rewrap(path, target):
                    changed_this_pass += 1
                    if pause:
                        time.sleep(pause)
                elif attempt == 0:
                    skipped += 1
            except FileNotFoundError:
                continue  # committed (seen again under blobs/) or deleted meanwhile
            except DataLoss as exc:
                if store.is_staging(path) and _unreadable(store, path):
                    continue  # an upload that never synced: it has no key to re-wrap yet
                failed += 1
                print(f"cannot re-wrap {path}: {exc.message}", file=sys.stderr)
        changed += changed_this_pass
        if changed_this_pass == 0:
            break
    return changed, skipped, failed


def rotate(store: AnyBlobStore, pause: float, *, new_key: bool) -> int:
    ring = store.keyring
    with ring.exclusive():
        if ring.rotation_pending:
            target = ring.current_id
            print(f"resuming the rotation to {target}")
        elif new_key:
            kek = new_kek()
            ring.save([*ring.keks(), kek], kek.id, pending=True)
            target = kek.id
            print(f"new key-encryption key {target} is now current; re-wrapping data keys")
        else:
            target = ring.current_id
            ring.save(ring.keks(), target, pending=True)
        changed, skipped, failed = _rewrap_all(store, target, pause)
        if failed:
            print(f"re-wrapped {changed}, {failed} failed: fix them and run `rotate` again to finish", file=sys.stderr)
            return 1
        ring.save(ring.keks(), target, pending=False)
    print(f"re-wrapped {changed} data keys under {target} ({skipped} already were)")
    print("older keys stay in the keyring until `prune` finds no file using them")
    return 0


def prune(store: AnyBlobStore) -> int:
    ring = store.keyring
    with ring.exclusive():
        if ring.rotation_pending:
            print("a rotation is unfinished: run `rotate` first", file=sys.stderr)
            return 1
        counts, _ = usage(store)
        keep = [k for k in ring.keks() if k.id == ring.current_id or counts.get(k.id, 0) > 0]
        dropped = [k.id for k in ring.keks() if k not in keep]
        if dropped:
            ring.save(keep, ring.current_id, pending=False)
    print(f"removed {', '.join(dropped)}" if dropped else "no unused key to remove")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m storage_svc.keys", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="", help="overrides FLOWDOCK_DATA_DIR")
    parser.add_argument("--keyring", default="", help="overrides FLOWDOCK_STORAGE_KEYRING_PATH")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="KEKs and the files each one wraps")
    for name, text in (("rotate", "new KEK, then re-wrap every data key"), ("rewrap", "re-wrap under the current KEK")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--pause-ms", type=float, default=0.0, help="sleep after each file (throttle on a busy disk)")
    sub.add_parser("prune", help="remove KEKs no file uses")
    args = parser.parse_args(argv)
    try:
        store = _store(args)
        if args.command == "status":
            return status(store)
        if args.command in ("rotate", "rewrap"):
            return rotate(store, args.pause_ms / 1000, new_key=args.command == "rotate")
        return prune(store)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyringError as exc:
        print(f"keyring: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
