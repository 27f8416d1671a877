"""`flowdock doctor`: look at an installation and say what is wrong and how to fix it; exit 0 only when all is well.

Unlike the other operator commands it does contact things — that is its job: each service's database (reachable,
migrated to the code's Alembic head, clock against the database server's), the blob store (writable, free space),
clamd, the SMTP server, and, when `flowdock up` runs for this data folder, Envoy and each service's health as
Envoy's active health checks see them. Every check is bounded by a few seconds' timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowdock_runtime.settings import RUNNING, ServerSettings, SetupError, add_server_options, resolve

TIMEOUT = 3.0
#: Largest tolerated difference between this machine's clock and the database server's: token expiry, link
#: expiry and upload leases are compared across both.
MAX_SKEW_SECONDS = 2.0


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


@dataclass
class Context:
    settings: ServerSettings
    configs: dict[str, Any]
    min_free_bytes: int


def _configs(settings: ServerSettings) -> dict[str, Any]:
    from auth_svc.config import AuthConfig
    from dav_svc.config import DavConfig
    from flowdock_kernel.config import load
    from gateway.config import GatewayConfig
    from share_svc.config import ShareConfig
    from storage_svc.config import StorageConfig

    env = settings.command_env()
    return {
        "auth": load(AuthConfig, env),
        "share": load(ShareConfig, env),
        "storage": load(StorageConfig, env),
        "dav": load(DavConfig, env),
        "gateway": load(GatewayConfig, env),
    }


def _head(service: str) -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    module = __import__(f"{service}_svc")
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(str(module.__file__)).parent / "migrations"))
    return str(ScriptDirectory.from_config(cfg).get_current_head())


def check_databases(ctx: Context) -> list[Check]:
    import sqlalchemy as sa

    from flowdock_kernel import db

    checks: list[Check] = []
    skew_done = False
    for name in RUNNING:
        url = db.service_url(ctx.configs[name], name, driver_async=False)
        title = f"database {name}"
        if url.get_backend_name() == "sqlite":
            if not Path(str(url.database)).is_file():
                checks.append(
                    Check(title, False, f"{url.database} does not exist", "run `flowdock migrate` (or `flowdock up`)")
                )
                continue
            engine = sa.create_engine(url)
            where = str(url.database)
        else:
            url = url.set(drivername="postgresql+psycopg")
            engine = sa.create_engine(url, connect_args={"connect_timeout": int(TIMEOUT)})
            where = url.render_as_string(hide_password=True)
        try:
            with engine.connect() as conn:
                try:
                    current = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
                except sa.exc.DBAPIError:
                    current = None
                if url.get_backend_name() != "sqlite" and not skew_done:
                    skew_done = True
                    before = time.time()
                    server_now = float(
                        conn.execute(sa.text("SELECT extract(epoch FROM clock_timestamp())")).scalar_one()
                    )
                    after = time.time()
                    skew = server_now - (before + after) / 2
                    checks.append(
                        Check(
                            "clock",
                            abs(skew) <= MAX_SKEW_SECONDS,
                            f"this machine's clock is {-skew:+.2f} s from the database server's",
                            "synchronise both clocks with NTP (Debian: apt install systemd-timesyncd or chrony; "
                            "timedatectl set-ntp true)",
                        )
                    )
        except sa.exc.OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            checks.append(
                Check(
                    title,
                    False,
                    f"cannot connect to {where}: {reason}",
                    "start PostgreSQL (systemctl start postgresql) or correct --db / FLOWDOCK_DB_URL",
                )
            )
            continue
        finally:
            engine.dispose()
        head = _head(name)
        if current == head:
            checks.append(Check(title, True, f"{where} reachable, migrated to the head ({head})"))
        elif current is None:
            checks.append(Check(title, False, f"{where} has no migrations applied", "run `flowdock migrate`"))
        else:
            checks.append(
                Check(
                    title,
                    False,
                    f"{where} is at revision {current}, this FlowDock's head is {head}",
                    "run `flowdock migrate` (if the revision is unknown, the database is newer than this FlowDock: "
                    "upgrade FlowDock)",
                )
            )
    if not skew_done and db.service_url(ctx.configs["auth"], "auth").get_backend_name() == "sqlite":
        checks.append(Check("clock", True, "SQLite: the database uses this machine's clock"))
    elif not skew_done:
        checks.append(Check("clock", False, "not compared: the database server did not answer", "see above"))
    return checks


def check_blob_store(ctx: Context) -> list[Check]:
    root = ctx.settings.data_dir / "storage"
    if ctx.configs["storage"].storage_blob_backend == "s3":
        return [*_check_object_store(ctx), *_check_keyring(ctx)]
    if not root.is_dir():
        return [Check("blob store", False, f"{root} does not exist", "check --data-dir, or start with `flowdock up`")]
    checks: list[Check] = []
    probe = root / f".doctor-{os.getpid()}"
    try:
        with open(probe, "wb") as f:
            f.write(b"x")
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
        checks.append(Check("blob store writable", True, f"{root}"))
    except OSError as exc:
        checks.append(
            Check(
                "blob store writable",
                False,
                f"cannot write in {root}: {exc.strerror}",
                "give the service's user write access and make sure the file system is mounted read-write",
            )
        )
    usage = shutil.disk_usage(root)
    ok = usage.free >= ctx.min_free_bytes
    checks.append(
        Check(
            "blob store free space",
            ok,
            f"{usage.free / 2**30:.1f} GiB free of {usage.total / 2**30:.1f} GiB "
            f"(minimum {ctx.min_free_bytes / 2**30:.1f} GiB)",
            "free space or move the data folder to a larger disk (uploads fail with RESOURCE_EXHAUSTED when full)",
        )
    )
    return checks + _check_keyring(ctx)


def _check_keyring(ctx: Context) -> list[Check]:
    from storage_svc.blobstore import keyring_path

    ring = keyring_path(ctx.configs["storage"])
    return [
        Check("keyring", True, f"{ring}")
        if ring.is_file()
        else Check(
            "keyring",
            False,
            f"{ring} is missing",
            "restore the keyring from its backup (without it no stored file can be read)",
        )
    ]


def _check_object_store(ctx: Context) -> list[Check]:
    """storage_blob_backend = s3: a small object written, read back and deleted (the secret is never shown)."""
    import obstore

    from storage_svc.s3store import S3Settings

    settings = S3Settings.from_config(ctx.configs["storage"])
    where = f"bucket {settings.bucket!r} at {settings.endpoint or 'AWS'}"
    key = f"{settings.prefix.strip('/') + '/' if settings.prefix.strip('/') else ''}doctor/{os.getpid()}"
    try:
        store = settings.store()
        obstore.put(store, key, b"x")
        ok = bytes(obstore.get(store, key).bytes()) == b"x"
        obstore.delete(store, key)
    except Exception as exc:
        return [
            Check(
                "object store writable",
                False,
                f"{where}: {type(exc).__name__}",
                "check storage_s3_endpoint, the bucket (it must exist) and the access key's rights",
            )
        ]
    return [Check("object store writable", ok, where)]


def check_clamd(ctx: Context) -> list[Check]:
    from flowdock_runtime.probes import clamd_answers

    storage = ctx.configs["storage"]
    if storage.storage_virus_scan == "off":
        return [Check("clamd", True, "virus scanning is off (FLOWDOCK_STORAGE_VIRUS_SCAN=off)")]
    address = storage.storage_clamd_address
    if clamd_answers(address):
        return [Check("clamd", True, f"answers PING at {address}")]
    return [
        Check(
            "clamd",
            False,
            f"no answer at {address} (uploads fail closed while it is down)",
            "start clamd (systemctl start clamav-daemon) or point FLOWDOCK_STORAGE_CLAMD_ADDRESS at it",
        )
    ]


def check_smtp(ctx: Context) -> list[Check]:
    auth = ctx.configs["auth"]
    if not auth.auth_smtp_host:
        return [Check("smtp", True, f"no SMTP server configured: mails are written to {auth.data_dir}/outbox")]
    where = f"{auth.auth_smtp_host}:{auth.auth_smtp_port}"
    try:
        context = ssl.create_default_context(cafile=auth.auth_smtp_ca_file or None)
        client: smtplib.SMTP
        if auth.auth_smtp_security == "tls":
            client = smtplib.SMTP_SSL(auth.auth_smtp_host, auth.auth_smtp_port, timeout=TIMEOUT, context=context)
        else:
            client = smtplib.SMTP(auth.auth_smtp_host, auth.auth_smtp_port, timeout=TIMEOUT)
        with client:
            client.ehlo()
            if auth.auth_smtp_security == "starttls":
                client.starttls(context=context)
                client.ehlo()
            if auth.auth_smtp_username:
                client.login(auth.auth_smtp_username, auth.auth_smtp_password)
    except (OSError, smtplib.SMTPException) as exc:
        return [
            Check(
                "smtp",
                False,
                f"{where}: {exc}",
                "start the SMTP server or correct FLOWDOCK_AUTH_SMTP_HOST/PORT/SECURITY/USERNAME/PASSWORD "
                "(verification and reset mails are not sent meanwhile)",
            )
        ]
    return [Check("smtp", True, f"{where} answers ({auth.auth_smtp_security})")]


def check_running(ctx: Context) -> list[Check]:
    info_path = ctx.settings.data_dir / "run" / "up.json"
    if not info_path.is_file():
        return [Check("running", False, f"FlowDock is not running for {ctx.settings.data_dir}", "start `flowdock up`")]
    info = json.loads(info_path.read_text())
    checks: list[Check] = []
    dead = [name for name, pid in info.get("pids", {}).items() if not _alive(int(pid))]
    if dead:
        checks.append(Check("processes", False, f"not running: {', '.join(dead)}", "restart `flowdock up`"))
    admin = info["admin_url"]
    try:
        with urllib.request.urlopen(f"{admin}/ready", timeout=TIMEOUT) as resp:  # noqa: S310 (http from up.json)
            state = resp.read().decode().strip()
        with urllib.request.urlopen(f"{admin}/clusters", timeout=TIMEOUT) as resp:  # noqa: S310
            clusters = resp.read().decode()
    except OSError as exc:
        return [
            *checks,
            Check(
                "envoy", False, f"admin {admin} does not answer: {exc}", "restart `flowdock up`; see logs/gateway.log"
            ),
        ]
    checks.append(Check("envoy", state == "LIVE", f"admin {admin}: {state}", "see logs/gateway.log"))
    for name in RUNNING:
        flags = [
            line.rsplit("::", 1)[-1]
            for line in clusters.splitlines()
            if line.startswith(f"{name}::") and "::health_flags::" in line
        ]
        healthy = sum(f == "healthy" for f in flags)
        checks.append(
            Check(
                f"service {name}",
                bool(flags) and healthy == len(flags),
                f"{healthy} of {len(flags)} replica(s) healthy in Envoy's health checks",
                f"see logs/{name}.log; restart `flowdock up`",
            )
        )
    try:
        with urllib.request.urlopen(info["url"] + "/", timeout=TIMEOUT) as resp:  # noqa: S310
            code = resp.status
    except urllib.error.HTTPError as exc:
        code = exc.code
    except OSError as exc:
        checks.append(Check("gateway", False, f"{info['url']} does not answer: {exc}", "see logs/gateway.log"))
        return checks
    checks.append(Check("gateway", code < 500, f"{info['url']} answers HTTP {code}", "see logs/gateway.log"))
    return checks


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


CHECKS: tuple[Callable[[Context], list[Check]], ...] = (
    check_databases,
    check_blob_store,
    check_clamd,
    check_smtp,
    check_running,
)


def diagnose(settings: ServerSettings, min_free_bytes: int) -> list[Check]:
    from flowdock_kernel.config import ConfigError

    try:
        configs = _configs(settings)
    except ConfigError as exc:
        return [Check("configuration", False, str(exc), "correct the setting (docs/configuration.md)")]
    ctx = Context(settings, configs, min_free_bytes)
    results = [Check("configuration", True, f"data folder {settings.data_dir}")]
    for check in CHECKS:
        try:
            results += check(ctx)
        except Exception as exc:  # a check that breaks is a finding, not a traceback
            results.append(Check(check.__name__.removeprefix("check_"), False, f"{type(exc).__name__}: {exc}"))
    return results


def run_doctor(args: argparse.Namespace) -> int:
    try:
        settings = resolve(args)
    except SetupError as exc:
        print(f"FAIL configuration: {exc}\n     fix: correct the setting (docs/configuration.md)")
        return 1
    results = diagnose(settings, int(args.min_free_gib * 2**30))
    if args.json:
        print(json.dumps([r.__dict__ for r in results], indent=1))
    else:
        for r in results:
            print(f"{'ok  ' if r.ok else 'FAIL'} {r.name}: {r.detail}")
            if not r.ok and r.fix:
                print(f"     fix: {r.fix}")
    failed = [r.name for r in results if not r.ok]
    if not args.json:
        print("all is well" if not failed else f"{len(failed)} problem(s): {', '.join(failed)}")
    return 0 if not failed else 1


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "doctor",
        help="check configuration, databases, blob store, clamd, SMTP, Envoy and services; say how to fix",
        description="Check the installation (configuration, each database's reachability and migration state, the "
        "clock against the database server's, the blob store's writability and free space, clamd, SMTP, and when "
        "it runs, Envoy and each service's health). Exit code 0 only when all is well.",
    )
    add_server_options(p)
    p.add_argument("--min-free-gib", type=float, default=1.0, help="free space the blob store needs (default 1)")
    p.add_argument("--json", action="store_true", help="the findings as JSON")
    p.set_defaults(func=run_doctor)
