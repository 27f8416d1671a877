"""`flowdock login|logout|whoami|sessions|2fa` and `flowdock admin users …`: the account, over the SDK."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import sys
from typing import Any

import segno

from flowdock_cli.usercli import (
    add,
    credentials_lock,
    credentials_path,
    device,
    human_size,
    parse_size,
    print_json,
    read_credentials,
    say,
    server_of,
    table,
    when,
    write_credentials,
)
from flowdock_sdk import AsyncClient, AuthenticationError, FlowDockError, NotFound, TotpRequired, User


def _ask(prompt: str) -> str:
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        if not line:
            raise FlowDockError(f"{prompt.strip(': ')} needed: no terminal to ask on (see --help)", code="INPUT")
        return line.strip()
    return input(prompt).strip()


def _password(args: argparse.Namespace, prompt: str = "Password: ") -> str:
    if args.password_stdin:
        value = sys.stdin.readline().rstrip("\n")
    elif sys.stdin.isatty():
        value = getpass.getpass(prompt)
    else:
        raise FlowDockError("no terminal to ask for the password on: use --password-stdin", code="INPUT")
    if not value:
        raise FlowDockError("empty password", code="INPUT")
    return value


async def _login(args: argparse.Namespace, _unused: AsyncClient) -> int:
    server = server_of(args)
    email = args.email or _ask("Email: ")
    password = _password(args)

    def totp() -> str:
        if not args.totp_code and not sys.stdin.isatty():
            raise TotpRequired("this account has two-factor authentication on: pass --totp-code")
        return str(args.totp_code or _ask("Two-factor code (or a recovery code): "))

    with credentials_lock():
        async with AsyncClient(server, email=email, password=password, totp=totp, device_name=device()) as client:
            await client.login()
            old = read_credentials()
            write_credentials({"server": server, "email": email, "refresh_token": client.refresh_token})
            if old.get("refresh_token") and old.get("server") == server:
                # The previous login on this machine is replaced: end its session rather than leave it dangling.
                async with AsyncClient(server, refresh_token=old["refresh_token"]) as previous:
                    with contextlib.suppress(FlowDockError):
                        await previous.logout()
            me = await client.me()
    if args.json:
        print_json({"server": server, "user": me})
    else:
        say(f"Logged in to {server} as {me.email} (token stored in {credentials_path()})")
    return 0


async def _logout(args: argparse.Namespace, client: AsyncClient) -> int:
    if client.refresh_token:
        with credentials_lock(), contextlib.suppress(AuthenticationError):
            await client.logout()
    with contextlib.suppress(FileNotFoundError):
        credentials_path().unlink()
    say("Logged out")
    return 0


def _user_rows(users: list[User]) -> list[list[str]]:
    return [
        [
            u.email,
            u.display_name,
            u.role,
            "on" if u.totp_enabled else "off",
            "disabled" if u.disabled else "active",
            when(u.created),
            u.id,
        ]
        for u in users
    ]


_USER_COLUMNS = ["email", "name", "role", "2fa", "status", "created", "id"]


async def _whoami(args: argparse.Namespace, client: AsyncClient) -> int:
    me = await client.me()
    if args.json:
        print_json({"server": client.base_url, "user": me})
    else:
        table(["server", *_USER_COLUMNS], [[client.base_url, *row] for row in _user_rows([me])])
    return 0


async def _sessions_ls(args: argparse.Namespace, client: AsyncClient) -> int:
    sessions = await client.sessions()
    if args.json:
        print_json(sessions)
    else:
        rows = [
            ["*" if s.current else "", s.device, s.kind, s.ip, when(s.created), when(s.last_seen), s.id]
            for s in sessions
        ]
        table(["", "device", "kind", "ip", "created", "last seen", "id"], rows)
    return 0


async def _sessions_revoke(args: argparse.Namespace, client: AsyncClient) -> int:
    if args.others:
        count = await client.revoke_other_sessions()
        say(f"Ended {count} other session(s)")
        return 0
    if not args.session_id:
        raise FlowDockError("name a session id (see `flowdock sessions ls`) or use --others", code="USAGE")
    await client.revoke_session(args.session_id)
    say(f"Ended session {args.session_id}")
    return 0


async def _app_passwords_create(args: argparse.Namespace, client: AsyncClient) -> int:
    made = await client.create_app_password(args.name)
    if args.json:
        print_json({"app_password": made.app_password, "secret": made.secret})
        return 0
    print(f"App password {made.app_password.name!r} created (id {made.app_password.id}):")
    print(f"\n  {made.secret}\n")
    print(
        "Copy it now: it is shown this once and cannot be shown again. Use it with your email instead of your\n"
        "password in WebDAV and other clients without a login page; end it with "
        f"`flowdock app-passwords rm {made.app_password.id}`."
    )
    return 0


async def _app_passwords_ls(args: argparse.Namespace, client: AsyncClient) -> int:
    found = await client.app_passwords()
    if args.json:
        print_json(found)
    else:
        rows = [[a.name, when(a.created), when(a.last_used) if a.last_used else "never", a.id] for a in found]
        table(["name", "created", "last used", "id"], rows)
    return 0


async def _app_passwords_rm(args: argparse.Namespace, client: AsyncClient) -> int:
    await client.revoke_app_password(args.id)
    say(f"Ended app password {args.id}")
    return 0


async def _2fa_enable(args: argparse.Namespace, client: AsyncClient) -> int:
    enrollment = await client.start_2fa()
    if not args.json:
        qr = segno.make(enrollment.uri, error="m")
        qr.terminal(out=sys.stdout, compact=True)
        print(f"Scan this with your authenticator app, or enter the secret by hand:\n  secret: {enrollment.secret}")
        print(f"  uri:    {enrollment.uri}", flush=True)
    else:
        print_json({"secret": enrollment.secret, "uri": enrollment.uri})
        sys.stdout.flush()
    code = args.code or _ask("Code shown by the app: ")
    codes = await client.confirm_2fa(code)
    if args.json:
        print_json({"recovery_codes": codes})
    else:
        print("Two-factor authentication is ON. Recovery codes (each works once; keep them somewhere safe):")
        for c in codes:
            print(f"  {c}")
    return 0


async def _2fa_disable(args: argparse.Namespace, client: AsyncClient) -> int:
    password = _password(args)
    code = args.code or _ask("Current two-factor code: ")
    await client.disable_2fa(password=password, code=code)
    say("Two-factor authentication is OFF")
    return 0


async def _find_user(client: AsyncClient, who: str) -> User:
    if "@" not in who:
        return await client.admin_user(who)
    match = [u for u in await client.admin_users(who) if u.email.lower() == who.lower()]
    if not match:
        raise NotFound(f"no account with email {who}")
    return match[0]


async def _users_ls(args: argparse.Namespace, client: AsyncClient) -> int:
    users = await client.admin_users(args.query)
    if args.json:
        print_json(users)
    else:
        table(_USER_COLUMNS, _user_rows(users))
    return 0


async def _users_show(args: argparse.Namespace, client: AsyncClient) -> int:
    user = await _find_user(client, args.user)
    if args.json:
        print_json(user)
    else:
        table(_USER_COLUMNS, _user_rows([user]))
    return 0


async def _users_role(args: argparse.Namespace, client: AsyncClient) -> int:
    user = await client.admin_set_role((await _find_user(client, args.user)).id, args.role)
    say(f"{user.email} is now {user.role}")
    return 0


def _disabler(disabled: bool) -> Any:
    async def handler(args: argparse.Namespace, client: AsyncClient) -> int:
        user = await client.admin_set_disabled((await _find_user(client, args.user)).id, disabled)
        say(f"{user.email} is {'disabled (its sessions ended)' if user.disabled else 'enabled'}")
        return 0

    return handler


async def _users_quota(args: argparse.Namespace, client: AsyncClient) -> int:
    user = await _find_user(client, args.user)
    if args.set is not None:
        q = await client.admin_set_quota(user.id, parse_size(args.set))
    else:
        q = await client.admin_quota(user.id)
    if args.json:
        print_json({"user": user.email, "used": q.used, "reserved": q.reserved, "limit": q.limit})
    else:
        table(
            ["user", "used", "reserved", "limit"],
            [[user.email, *(human_size(v) for v in (q.used, q.reserved, q.limit))]],
        )
    return 0


async def _users_delete(args: argparse.Namespace, client: AsyncClient) -> int:
    user = await _find_user(client, args.user)
    if not args.yes:
        raise FlowDockError(f"this deletes {user.email} and all their files for good: add --yes", code="USAGE")
    freed = await client.admin_delete_user(user.id)
    say(f"deleted {user.email} ({human_size(freed)} freed)")
    return 0


def add_commands(sub: Any) -> None:
    login = add(
        sub,
        "login",
        _login,
        "log in to a FlowDock server and remember it (refresh token in the config dir, mode 0600)",
        authenticate=False,
        epilog="examples:\n  flowdock login --server http://files.example.org:8080 --email ada@example.org\n"
        '  echo "$PW" | flowdock login --email ada@example.org --password-stdin --totp-code 123456',
    )
    login.add_argument("--email", help="account email (asked when missing)")
    login.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    login.add_argument("--totp-code", metavar="CODE", help="two-factor code (or a recovery code) when 2FA is on")
    add(sub, "logout", _logout, "end this session on the server and forget the stored token", authenticate=False)
    add(sub, "whoami", _whoami, "show the account you are logged in as")

    sessions = sub.add_parser(
        "sessions", help="your logged-in devices", description="List or end your sessions (devices)."
    )
    s_sub = sessions.add_subparsers(dest="sessions_command", required=True, metavar="COMMAND")
    add(s_sub, "ls", _sessions_ls, "list your live sessions (* marks this one)")
    revoke = add(s_sub, "revoke", _sessions_revoke, "end a session (or every other one with --others)")
    revoke.add_argument("session_id", nargs="?", help="id from `flowdock sessions ls`")
    revoke.add_argument("--others", action="store_true", help="end every session but this one")

    app_passwords = sub.add_parser(
        "app-passwords",
        help="passwords for WebDAV and other clients without a login page",
        description="Create, list or end app passwords: what WebDAV clients (file managers, rclone, backup tools) "
        "log in with, with your email, instead of your password. Each is also listed by `flowdock sessions ls`.",
    )
    a_sub = app_passwords.add_subparsers(dest="app_passwords_command", required=True, metavar="COMMAND")
    create = add(
        a_sub,
        "create",
        _app_passwords_create,
        "make a named app password and print its secret (shown this once)",
        epilog='example:\n  flowdock app-passwords create "laptop WebDAV"',
    )
    create.add_argument("name", help='what it is for, e.g. "laptop WebDAV" (1-100 characters)')
    add(a_sub, "ls", _app_passwords_ls, "list your app passwords (name, created, last used, id)")
    rm = add(a_sub, "rm", _app_passwords_rm, "end an app password: the next request made with it is refused")
    rm.add_argument("id", help="id from `flowdock app-passwords ls`")

    twofa = sub.add_parser(
        "2fa", help="two-factor authentication (TOTP)", description="Turn two-factor authentication on or off."
    )
    t_sub = twofa.add_subparsers(dest="twofa_command", required=True, metavar="COMMAND")
    enable = add(t_sub, "enable", _2fa_enable, "show a QR code for an authenticator app, then confirm with a code")
    enable.add_argument("--code", help="the first code (asked for after the QR code otherwise)")
    disable = add(t_sub, "disable", _2fa_disable, "turn 2FA off (password and a current code)")
    disable.add_argument("--code", help="a current code (asked otherwise)")
    disable.add_argument("--password-stdin", action="store_true", help="read the password from standard input")

    admin = sub.choices["admin"]
    admin_sub = next(a for a in admin._actions if isinstance(a, argparse._SubParsersAction))
    users = admin_sub.add_parser(
        "users", help="list and manage accounts over the API (admin role)", description="Manage accounts (admin)."
    )
    u_sub = users.add_subparsers(dest="users_command", required=True, metavar="COMMAND")
    ls = add(u_sub, "ls", _users_ls, "list accounts (optionally matching QUERY in email or name)")
    ls.add_argument("query", nargs="?", default="")
    show = add(u_sub, "show", _users_show, "show one account (by id or email)")
    show.add_argument("user", help="user id or email")
    role = add(u_sub, "role", _users_role, "make an account a user or an admin")
    role.add_argument("user", help="user id or email")
    role.add_argument("role", choices=["user", "admin"])
    quota = add(u_sub, "quota", _users_quota, "show or set an account's storage limit")
    quota.add_argument("user", help="user id or email")
    quota.add_argument("--set", metavar="SIZE", help="new limit: bytes, 500MB, 10GiB; 0 = the server default")
    delete = add(u_sub, "delete", _users_delete, "delete an account and all its files for good")
    delete.add_argument("user", help="user id or email")
    delete.add_argument("--yes", action="store_true", help="yes, really")
    for name, flag in (("disable", True), ("enable", False)):
        p = add(u_sub, name, _disabler(flag), f"{name} an account" + (" (ends its sessions)" if flag else ""))
        p.add_argument("user", help="user id or email")
