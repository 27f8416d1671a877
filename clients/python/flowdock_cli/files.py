"""`flowdock ls|tree|mkdir|put|get|mv|cp|rm|trash|versions|search|quota|share`: your files, over the SDK.

Remote paths are absolute ("/Docs/a.txt"; a missing leading slash is added), resolved by listing from the root
(cached for the command); "id:<node id>" names a node by id (what others shared with you)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.tree import Tree

from flowdock_cli.usercli import add, human_size, print_json, say, state_path, stdout, table, when
from flowdock_sdk import AsyncClient, FlowDockError, Node, NotFound, TransferProgress


def remote(path: str) -> str:
    """An absolute remote path; "id:<node id>" names a node by id (e.g. one shared with you)."""
    if path.startswith("id:"):
        return path[3:]
    return path if path.startswith("/") else "/" + path


def _node_rows(nodes: list[Node]) -> list[list[str]]:
    return [
        [n.name + ("/" if n.is_folder else ""), "-" if n.is_folder else human_size(n.size), when(n.modified)]
        for n in nodes
    ]


# -- listing --------------------------------------------------------------------------------------------------


async def _ls(args: argparse.Namespace, client: AsyncClient) -> int:
    node = await client.stat(remote(args.path))
    nodes = await client.listdir(node) if node.is_folder else [node]
    if args.json:
        print_json(nodes)
    elif args.long:
        rows = [[*r, n.id] for r, n in zip(_node_rows(nodes), nodes, strict=True)]
        table(["name", "size", "modified", "id"], rows, right=("size",))
    else:
        table(["name", "size", "modified"], _node_rows(nodes), right=("size",))
    return 0


async def _tree(args: argparse.Namespace, client: AsyncClient) -> int:
    top = await client.stat(remote(args.path))
    entries = await client.walk(top) if top.is_folder else []
    if args.json:
        print_json([{"path": rel, **{"kind": n.kind, "size": n.size, "id": n.id}} for rel, n in entries])
        return 0
    root = Tree(f"[bold]{remote(args.path)}[/]")
    branches: dict[str, Tree] = {"": root}
    for rel, n in entries:
        parent, _, name = rel.rpartition("/")
        label = f"[bold blue]{name}/[/]" if n.is_folder else f"{name} [dim]({human_size(n.size)})[/]"
        branches[rel] = branches[parent].add(label)
    files = sum(1 for _, n in entries if not n.is_folder)
    stdout().print(root)
    print(f"{len(entries) - files} folders, {files} files, {human_size(sum(n.size for _, n in entries))}")
    return 0


async def _mkdir(args: argparse.Namespace, client: AsyncClient) -> int:
    made = [await client.mkdir(remote(p), parents=args.parents) for p in args.paths]
    if args.json:
        print_json(made)
    return 0


async def _search(args: argparse.Namespace, client: AsyncClient) -> int:
    nodes = await client.search(args.query, kind=args.kind, limit=args.limit)
    paths = [await client.path_of(n) for n in nodes]
    if args.json:
        print_json([{"path": p, "node": n} for p, n in zip(paths, nodes, strict=True)])
    else:
        rows = [
            [p + ("/" if n.is_folder else ""), "-" if n.is_folder else human_size(n.size), when(n.modified)]
            for p, n in zip(paths, nodes, strict=True)
        ]
        table(["path", "size", "modified"], rows, right=("size",))
    return 0


async def _quota(args: argparse.Namespace, client: AsyncClient) -> int:
    q = await client.quota()
    if args.json:
        print_json(q)
        return 0
    share = f"{100 * q.used / q.limit:.1f}%" if q.limit else "-"
    table(
        ["used", "of which trash", "of which old versions", "reserved by uploads", "limit", "used %"],
        [
            [
                human_size(q.used),
                human_size(q.trash),
                human_size(q.versions),
                human_size(q.reserved),
                human_size(q.limit),
                share,
            ]
        ],
    )
    return 0


# -- changes --------------------------------------------------------------------------------------------------


async def _move_or_copy(args: argparse.Namespace, client: AsyncClient) -> int:
    copy = args.command == "cp"
    *sources, dest = [remote(p) for p in args.paths]
    target: Node | None
    try:
        target = await client.stat(dest)
    except NotFound:
        target = None
    results: list[Node] = []
    if target is not None and target.is_folder:
        for src in sources:
            op = client.copy if copy else client.move
            results.append(await op(src, target))
    elif len(sources) > 1:
        raise NotFound(f"{dest}: no such folder (several sources need an existing folder)")
    elif target is not None:
        raise FlowDockError(f"{dest} already exists", code="ALREADY_EXISTS")
    else:
        parent, _, name = dest.rstrip("/").rpartition("/")
        folder = await client.stat(parent or "/")
        if copy:
            results.append(await client.copy(sources[0], folder, name=name))
        else:
            results.append(await client.move(sources[0], folder, name=name))
    if args.json:
        print_json(results)
    return 0


async def _rm(args: argparse.Namespace, client: AsyncClient) -> int:
    for path in args.paths:
        node = await client.stat(remote(path))
        if node.is_folder and not args.recursive:
            raise FlowDockError(f"{remote(path)} is a folder: use -r to move it and its content to the trash")
        if not node.parent_id:
            raise FlowDockError("the root folder cannot be deleted", code="INVALID_ARGUMENT")
        await client.delete(node)
        say(f"moved {remote(path)} to the trash")
    return 0


async def _trash_ls(args: argparse.Namespace, client: AsyncClient) -> int:
    entries = await client.trash()
    if args.json:
        print_json(entries)
    else:
        rows = [
            [
                e.node.name + ("/" if e.node.is_folder else ""),
                human_size(e.size),
                when(e.deleted),
                when(e.purge_at),
                e.node.id,
            ]
            for e in entries
        ]
        table(["name", "size", "deleted", "purged after", "id"], rows, right=("size",))
    return 0


async def _trash_pick(client: AsyncClient, which: str) -> str:
    entries = await client.trash()
    by_id = [e for e in entries if e.node.id == which]
    if by_id:
        return which
    named = [e for e in entries if e.node.name == which]
    if not named:
        raise NotFound(f"nothing called {which!r} in the trash (see `flowdock trash ls`)")
    if len(named) > 1:
        raise FlowDockError(f"{len(named)} trash entries are called {which!r}: name one by id", code="AMBIGUOUS")
    return named[0].node.id


async def _trash_restore(args: argparse.Namespace, client: AsyncClient) -> int:
    for which in args.entries:
        node = await client.restore(await _trash_pick(client, which))
        say(f"restored {await client.path_of(node)}")
    return 0


async def _trash_rm(args: argparse.Namespace, client: AsyncClient) -> int:
    for which in args.entries:
        freed = await client.purge(await _trash_pick(client, which))
        say(f"deleted {which} for good ({human_size(freed)} freed)")
    return 0


async def _trash_empty(args: argparse.Namespace, client: AsyncClient) -> int:
    freed = await client.empty_trash()
    say(f"trash emptied ({human_size(freed)} freed)")
    return 0


async def _versions(args: argparse.Namespace, client: AsyncClient) -> int:
    node = await client.stat(remote(args.path))
    versions = await client.versions(node)
    if args.restore:
        chosen = [v for v in versions if v.id == args.restore or str(v.number) == args.restore]
        if not chosen:
            raise NotFound(f"{remote(args.path)} has no version {args.restore}")
        await client.restore_version(node, chosen[0].id)
        say(f"version {chosen[0].number} of {remote(args.path)} is current again (as a new version)")
        return 0
    if args.json:
        print_json(versions)
    else:
        rows = [
            [str(v.number), "*" if v.current else "", human_size(v.size), when(v.created), v.sha256[:16], v.id]
            for v in versions
        ]
        table(["version", "current", "size", "created", "sha256", "id"], rows, right=("size",))
    return 0


async def _share_ls(args: argparse.Namespace, client: AsyncClient) -> int:
    shares = await client.shares(direction="incoming" if args.incoming else "outgoing")
    if args.json:
        print_json(shares)
        return 0
    rows = []
    for s in shares:
        if args.incoming:
            where = f"{s.node.name} (id:{s.node_id})" if s.node else f"id:{s.node_id}"
        else:
            try:
                where = await client.path_of(s.node_id)
            except FlowDockError:
                where = s.node_id
        rows.append([where, s.owner_id if args.incoming else s.grantee_email, s.role, when(s.created), s.id])
    table(["node", "owner" if args.incoming else "shared with", "role", "created", "id"], rows)
    return 0


async def _share_add(args: argparse.Namespace, client: AsyncClient) -> int:
    node = await client.stat(remote(args.path))
    made = [await client.share(node, email, role=args.role) for email in args.emails]
    if args.json:
        print_json(made)
    else:
        for s in made:
            say(f"shared {remote(args.path)} with {s.grantee_email} as {s.role} (share {s.id})")
    return 0


async def _share_rm(args: argparse.Namespace, client: AsyncClient) -> int:
    for share_id in args.ids:
        await client.unshare(share_id)
        say(f"share {share_id} revoked")
    return 0


def _expiry(text: str) -> datetime:
    """'7d', '12h', '30m' from now, or an ISO 8601 time."""
    units = {"d": 86400, "h": 3600, "m": 60}
    if text[:-1].isdigit() and text[-1:] in units:
        return datetime.now(UTC) + timedelta(seconds=int(text[:-1]) * units[text[-1]])
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise FlowDockError(f"--expires {text!r}: use 7d, 12h, 30m or an ISO 8601 time", code="USAGE") from None
    return when if when.tzinfo else when.astimezone()


async def _link_create(args: argparse.Namespace, client: AsyncClient) -> int:
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else ""
    link = await client.create_link(
        remote(args.path),
        permission=args.permission,
        password=password,
        expires=_expiry(args.expires) if args.expires else None,
        max_downloads=args.max_downloads,
    )
    if args.json:
        print_json(link)
    else:
        print(link.url)
        say(f"{args.permission} link to {remote(args.path)} (id {link.id})")
    return 0


async def _link_ls(args: argparse.Namespace, client: AsyncClient) -> int:
    links = await client.links()
    if args.json:
        print_json(links)
        return 0
    rows = []
    for link in links:
        try:
            where = await client.path_of(link.node_id)
        except FlowDockError:
            where = link.node_id
        limit = f"{link.download_count}/{link.max_downloads}" if link.max_downloads else str(link.download_count)
        rows.append(
            [where, link.permission, "yes" if link.has_password else "", when(link.expires), limit, link.url, link.id]
        )
    table(["node", "permission", "password", "expires", "downloads", "url", "id"], rows)
    return 0


async def _link_rm(args: argparse.Namespace, client: AsyncClient) -> int:
    for link_id in args.ids:
        await client.delete_link(link_id)
        say(f"link {link_id} revoked")
    return 0


# -- transfers ------------------------------------------------------------------------------------------------


class Bars:
    """rich progress bars (a total and one per file in flight) on a terminal; plain lines otherwise."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.progress = Progress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not enabled,
        )
        self.total = self.progress.add_task("total", total=total)
        self.files: dict[str, tuple[TaskID, int]] = {}
        self.finished: set[str] = set()
        self.bytes = 0
        self.resumed = 0

    def __call__(self, p: TransferProgress) -> None:
        if p.path in self.finished:
            return
        if p.path not in self.files:
            if p.resumed_from:
                self.resumed += p.resumed_from
                message = f"resuming {p.path} from byte {p.resumed_from} of {p.total} (committed on the server)"
                if self.progress.disable:
                    say(message)
                else:
                    self.progress.console.print(message)
            label = f"{p.path} (hashing)" if p.hashing else p.path
            task = self.progress.add_task(label, total=p.total, completed=p.done)
            self.files[p.path] = (task, p.done)
            self.progress.advance(self.total, p.done)
            self.bytes += p.done
        else:
            task, before = self.files[p.path]
            self.files[p.path] = (task, p.done)
            self.progress.update(task, completed=p.done, description=p.path)
            self.progress.advance(self.total, p.done - before)
            self.bytes += p.done - before
        if p.done >= p.total:
            self.finished.add(p.path)
            self.progress.remove_task(self.files[p.path][0])

    def __enter__(self) -> Bars:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)


def _local_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            p = Path(dirpath) / name
            if p.is_file():
                total += p.stat().st_size
    return total


def _show_bars(args: argparse.Namespace) -> bool:
    return sys.stderr.isatty() and not args.no_progress and not args.json


def _summary(verb: str, count: int, total: int, started: float) -> None:
    seconds = max(time.monotonic() - started, 1e-6)
    say(f"{verb} {count} file(s), {human_size(total)} in {seconds:.1f} s ({human_size(int(total / seconds))}/s)")


PATH_RULE = """\
paths: one rule both ways, rclone's `copy`. The destination is the folder that receives what a source holds
(a folder's contents, or the file itself), created if missing, and the result is the same whether or not it
existed: `put X /D` then `get /D Y` gives a Y equal to X. Without a destination a source keeps its own name.
(cp's rule, "inside the destination if it is an existing directory, else as it", nests the same words one
level deeper once the destination exists, so a second run or the way back would not land where the first did.)"""


def _own_name(source: Path) -> str:
    """Where `put SOURCE` goes without a destination: the source keeps its name (`put photos` = `put photos
    /photos`; a file goes into /)."""
    name = Path(os.path.abspath(source)).name  # "." and "dir/.." still have a name
    return f"/{name}" if source.is_dir() and name else "/"


async def _put(args: argparse.Namespace, client: AsyncClient) -> int:
    paths = list(args.paths)
    dest = paths.pop() if len(paths) > 1 else ""
    if dest and not dest.startswith("/"):
        raise FlowDockError(f"the destination {dest!r} must be a remote folder path starting with /", code="USAGE")
    sources = [Path(p) for p in paths]
    for src in sources:
        if not src.exists() and not src.is_symlink():
            raise NotFound(f"{src}: no such local file or directory")
    dest = dest or _own_name(sources[0])
    total = sum(_local_size(s) for s in sources)
    started = time.monotonic()
    nodes: list[Node] = []
    with Bars(total, enabled=_show_bars(args)) as bars:
        for src in sources:
            nodes += await client.upload(
                src,
                dest,
                contents=True,
                overwrite=args.overwrite,
                resume=args.resume,
                progress=bars,
            )
    client.state.remove([k for k, v in client.state.entries().items() if v.get("node_id")])
    if args.json:
        print_json(nodes)
    else:
        _summary("uploaded", len(nodes), bars.bytes - bars.resumed, started)
    return 0


async def _get(args: argparse.Namespace, client: AsyncClient) -> int:
    if args.resume:
        args.interrupted = "interrupted: partial downloads kept; run the same command with --resume to continue"
    paths = list(args.paths)
    dest = paths.pop() if len(paths) > 1 else ""
    started = time.monotonic()
    written: list[Path] = []
    nodes = [await client.stat(remote(p)) for p in paths]
    total = 0
    for node in nodes:
        total += sum(n.size for _, n in await client.walk(node)) if node.is_folder else node.size
    with Bars(total, enabled=_show_bars(args)) as bars:
        for node in nodes:
            # Without DEST the source keeps its name: `get /Backup/photos` is `get /Backup/photos ./photos`.
            written += await client.download(
                node,
                Path(dest or "."),
                contents=bool(dest),
                overwrite=args.overwrite,
                resume=args.resume,
                progress=bars,
            )
    if args.json:
        print_json([str(p) for p in written])
    else:
        _summary("downloaded", len(written), bars.bytes, started)
    return 0


def add_commands(sub: Any) -> None:
    ls = add(sub, "ls", _ls, "list a remote folder")
    ls.add_argument("path", nargs="?", default="/", help="remote path (default /)")
    ls.add_argument("-l", "--long", action="store_true", help="also show ids")
    tree = add(sub, "tree", _tree, "show a remote folder tree")
    tree.add_argument("path", nargs="?", default="/")
    mkdir = add(sub, "mkdir", _mkdir, "create remote folders")
    mkdir.add_argument("paths", nargs="+", metavar="PATH")
    mkdir.add_argument("-p", "--parents", action="store_true", help="create missing parents; no error if it exists")

    put = add(
        sub,
        "put",
        _put,
        "upload files or directory trees; the remote folder becomes a copy of a directory (created if missing)",
        epilog="examples:\n"
        "  flowdock put photos /Backup/photos       # /Backup/photos/... is photos/..., existing or not\n"
        "  flowdock put report.pdf notes.txt /Docs  # /Docs/report.pdf and /Docs/notes.txt\n"
        "  flowdock put photos                      # the same as: flowdock put photos /photos\n"
        "  flowdock put big.iso /ISO --resume       # after an interruption: continues from the committed offset\n"
        "\n" + PATH_RULE,
    )
    put.add_argument(
        "paths", nargs="+", metavar="PATH", help="local files/directories, then the remote folder that receives them"
    )
    put.add_argument("--resume", action="store_true", help="continue uploads an interrupted run left open")
    put.add_argument(
        "--overwrite", action="store_true", help="replace existing files (the old content is kept as a version)"
    )
    put.add_argument("--parallel", type=int, default=4, metavar="N", help="files in flight at once (default 4)")
    put.add_argument("--no-progress", action="store_true", help="no progress bars")
    put.set_defaults(
        interrupted=f"interrupted: upload state saved in {state_path()}; run the same command with --resume to continue"
    )

    get = add(
        sub,
        "get",
        _get,
        "download remote files or folder trees; the local directory becomes a copy of a folder (created if missing)",
        epilog="examples:\n"
        "  flowdock get /Backup/photos ~/restored     # ~/restored/... is /Backup/photos/..., existing or not\n"
        "  flowdock get /Docs/report.pdf ~/Downloads  # ~/Downloads/report.pdf\n"
        "  flowdock get /Backup/photos                # the same as: flowdock get /Backup/photos ./photos\n"
        "\n" + PATH_RULE + "\n\n"
        "Each file is written beside its destination as .NAME.flowdock-part and renamed when complete and checked;\n"
        "without --resume an interrupted download leaves nothing behind.",
    )
    get.add_argument(
        "paths", nargs="+", metavar="PATH", help="remote paths, then the local directory that receives them"
    )
    get.add_argument("--overwrite", action="store_true", help="replace existing local files")
    get.add_argument("--resume", action="store_true", help="keep partial downloads when interrupted, and continue them")
    get.add_argument("--parallel", type=int, default=4, metavar="N", help="files in flight at once (default 4)")
    get.add_argument("--no-progress", action="store_true", help="no progress bars")
    get.set_defaults(interrupted="interrupted: no partial file was left behind")

    for name, text in (("mv", "move or rename remote files and folders"), ("cp", "copy remote files and folders")):
        p = add(
            sub,
            name,
            _move_or_copy,
            text,
            epilog=f"  flowdock {name} /a.txt /Docs/   (into a folder)\n"
            f"  flowdock {name} /a.txt /b.txt   (to a new name)",
        )
        p.add_argument("paths", nargs="+", metavar="PATH", help="sources, then the destination")
        p.set_defaults(command=name)
    rm = add(sub, "rm", _rm, "move remote files and folders to the trash")
    rm.add_argument("paths", nargs="+", metavar="PATH")
    rm.add_argument("-r", "--recursive", action="store_true", help="folders too (with everything in them)")

    trash = sub.add_parser("trash", help="deleted files", description="List, restore or purge deleted files.")
    t_sub = trash.add_subparsers(dest="trash_command", required=True, metavar="COMMAND")
    add(t_sub, "ls", _trash_ls, "list the trash")
    restore = add(t_sub, "restore", _trash_restore, "put trashed entries back where they were")
    restore.add_argument("entries", nargs="+", metavar="ID_OR_NAME")
    purge = add(t_sub, "rm", _trash_rm, "delete trashed entries for good")
    purge.add_argument("entries", nargs="+", metavar="ID_OR_NAME")
    add(t_sub, "empty", _trash_empty, "delete everything in the trash for good")

    versions = add(sub, "versions", _versions, "list a file's versions, or make an older one current")
    versions.add_argument("path")
    versions.add_argument("--restore", metavar="VERSION", help="version number or id to make current again")
    search = add(sub, "search", _search, "find your files and folders by name")
    search.add_argument("query")
    search.add_argument("--kind", choices=["file", "folder"])
    search.add_argument("--limit", type=int, default=200)
    add(sub, "quota", _quota, "show your storage use and limit")

    share = sub.add_parser("share", help="shares with other users", description="Shares with other users.")
    s_sub = share.add_subparsers(dest="share_command", required=True, metavar="COMMAND")
    sls = add(s_sub, "ls", _share_ls, "list what you share (or, with --incoming, what is shared with you)")
    sls.add_argument("--incoming", action="store_true")
    sadd = add(s_sub, "add", _share_add, "share a file or folder you own with other accounts (by email)")
    sadd.add_argument("path")
    sadd.add_argument("emails", nargs="+", metavar="EMAIL")
    sadd.add_argument(
        "--role",
        choices=["viewer", "downloader", "editor"],
        default="viewer",
        help="viewer: list; downloader: also download; editor: also change (default viewer)",
    )
    srm = add(s_sub, "rm", _share_rm, "revoke shares (ids from `flowdock share ls`)")
    srm.add_argument("ids", nargs="+", metavar="SHARE_ID")

    link = sub.add_parser("link", help="public links", description="Public links to your files and folders.")
    l_sub = link.add_subparsers(dest="link_command", required=True, metavar="COMMAND")
    lcreate = add(
        l_sub,
        "create",
        _link_create,
        "make a public link (prints its URL)",
        epilog="examples:\n  flowdock link create /Docs/report.pdf --expires 7d --max-downloads 10\n"
        "  flowdock link create /Inbox --permission upload        # a file drop",
    )
    lcreate.add_argument("path")
    lcreate.add_argument("--permission", choices=["view", "download", "upload"], default="download")
    lcreate.add_argument("--password-stdin", action="store_true", help="protect it with a password read from stdin")
    lcreate.add_argument("--expires", metavar="WHEN", help="7d, 12h, 30m or an ISO 8601 time")
    lcreate.add_argument("--max-downloads", type=int, default=0, metavar="N", help="0: unlimited")
    add(l_sub, "ls", _link_ls, "list your live links")
    lrm = add(l_sub, "rm", _link_rm, "revoke links (their URLs answer 404 from then on)")
    lrm.add_argument("ids", nargs="+", metavar="LINK_ID")
