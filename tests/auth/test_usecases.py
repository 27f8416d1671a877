"""auth_svc's use cases over its real adapters and migrations (SQLite file), without the network: things the
gateway cannot show directly — the stored hash changing with the Argon2 parameters (rehash-on-login)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from auth_svc import bootstrap
from auth_svc.adapters import (
    Argon2Hasher,
    OutboxMailer,
    PyOtpTotp,
    SigningKeyring,
    SqlAuditLog,
    SqlRateLimiter,
    SqlUnitOfWork,
    users,
)
from auth_svc.config import AuthConfig
from auth_svc.domain import Client
from auth_svc.secretbox import SecretBox
from auth_svc.usecases import Accounts, Policy
from flowdock_kernel import db
from flowdock_kernel.clock import FakeClock

PASSWORD = "correct horse battery staple"


async def test_login_rehashes_when_the_argon2_parameters_change(tmp_path: Path) -> None:
    config = AuthConfig(data_dir=tmp_path)
    bootstrap.migrate(config)
    engine = db.make_engine(db.service_url(config, "auth"))
    box = SecretBox.from_file(config.secrets_key_path)
    keyring = SigningKeyring(engine, box=box, issuer="flowdock", audience="flowdock", ttl_seconds=300)
    await keyring.load()
    factory = db.connections(engine)

    def accounts(time_cost: int) -> Accounts:
        return Accounts(
            uow=lambda: SqlUnitOfWork(factory, box),
            hasher=Argon2Hasher(memory_kib=19456, time_cost=time_cost, parallelism=1),
            issuer=keyring,
            mailer=OutboxMailer(tmp_path / "outbox", "test <t@example.org>"),
            totp=PyOtpTotp("FlowDock"),
            limiter=SqlRateLimiter(engine),
            audit=SqlAuditLog(engine),
            policy=Policy(require_verified_email=False),
        )

    async def stored() -> str:
        async with engine.connect() as conn:
            return str((await conn.execute(sa.select(users.c.password_hash))).scalar_one())

    old = accounts(2)
    client = Client("203.0.113.7", "pytest")
    await old.register("ada@example.org", PASSWORD, "Ada", client)
    await old.drain()
    assert "$argon2id$" in await stored() and ",t=2," in await stored()
    new = accounts(3)
    failed = None
    try:
        await new.login("ada@example.org", "wrong password here", "", client)
    except Exception as exc:
        failed = exc
    assert failed is not None and ",t=2," in await stored()  # a failed login changes nothing
    result = await new.login("ada@example.org", PASSWORD, "", client)
    assert result.tokens is not None
    assert ",t=3," in await stored() and "m=19456" in await stored()
    assert (await new.login("ada@example.org", PASSWORD, "", client)).tokens is not None
    await engine.dispose()


async def test_housekeeping_deletes_only_what_can_never_be_used(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from auth_svc.adapters import SqlHousekeeping, one_time_tokens, refresh_tokens, sessions

    config = AuthConfig(data_dir=tmp_path)
    bootstrap.migrate(config)
    engine = db.make_engine(db.service_url(config, "auth"))
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(
            users.insert().values(
                id="u1", email="a@example.org", display_name="a", role="user", password_hash="x", created_at=now
            )
        )
        for sid, expires, revoked in (
            ("live", now + timedelta(days=1), None),
            ("old", now - timedelta(days=40), None),
            ("revoked-long-ago", now + timedelta(days=1), now - timedelta(days=31)),
            ("revoked-recently", now + timedelta(days=1), now - timedelta(days=1)),
        ):
            await conn.execute(
                sessions.insert().values(
                    id=sid, user_id="u1", device_name="d", created_at=now, expires_at=expires, revoked_at=revoked
                )
            )
            await conn.execute(refresh_tokens.insert().values(token_hash=f"h-{sid}", session_id=sid, created_at=now))
        for name, expires in (("fresh", now + timedelta(hours=1)), ("stale", now - timedelta(days=2))):
            await conn.execute(
                one_time_tokens.insert().values(
                    token_hash=name, purpose="verify_email", user_id="u1", expires_at=expires
                )
            )
    counts = await SqlHousekeeping(engine).run()
    assert counts["sessions"] == 2 and counts["refresh_tokens"] == 2 and counts["one_time_tokens"] == 1
    async with engine.connect() as conn:
        left = set((await conn.execute(sa.select(sessions.c.id))).scalars())
        tokens = set((await conn.execute(sa.select(refresh_tokens.c.session_id))).scalars())
        otts = set((await conn.execute(sa.select(one_time_tokens.c.token_hash))).scalars())
    assert left == tokens == {"live", "revoked-recently"} and otts == {"fresh"}
    await engine.dispose()


async def _accounts_with_clock(tmp_path: Path, clock: FakeClock, policy: Policy) -> tuple[Accounts, Any]:
    config = AuthConfig(data_dir=tmp_path)
    bootstrap.migrate(config)
    engine = db.make_engine(db.service_url(config, "auth"))
    box = SecretBox.from_file(config.secrets_key_path)
    keyring = SigningKeyring(engine, box=box, issuer="flowdock", audience="flowdock", ttl_seconds=300)
    await keyring.load()
    factory = db.connections(engine)
    accounts = Accounts(
        uow=lambda: SqlUnitOfWork(factory, box),
        hasher=Argon2Hasher(memory_kib=19456, time_cost=2, parallelism=1),
        issuer=keyring,
        mailer=OutboxMailer(tmp_path / "outbox", "test <t@example.org>"),
        totp=PyOtpTotp("FlowDock"),
        limiter=SqlRateLimiter(engine),
        audit=SqlAuditLog(engine),
        policy=policy,
        clock=clock,
    )
    return accounts, engine


def _outbox_token(tmp_path: Path, subject: str) -> str:
    import email
    import email.policy
    import re

    for path in sorted((tmp_path / "outbox").glob("*.eml"), reverse=True):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if subject in str(msg["Subject"]):
            found = re.search(r"token=([A-Za-z0-9_-]+)", msg.get_body().get_content())  # type: ignore[union-attr]
            assert found
            return found.group(1)
    raise AssertionError(f"no mail about {subject}")


async def test_sessions_end_after_idle_time_and_absolute_lifetime(tmp_path: Path) -> None:
    import jwt as pyjwt

    from flowdock_kernel.errors import Unauthenticated

    clock = FakeClock()
    policy = Policy(require_verified_email=False, session_idle=timedelta(hours=1), session_max_age=timedelta(hours=3))
    accounts, engine = await _accounts_with_clock(tmp_path, clock, policy)
    client = Client("203.0.113.7", "pytest")
    await accounts.register("ada@example.org", PASSWORD, "Ada", client)
    first = (await accounts.login("ada@example.org", PASSWORD, "", client)).tokens
    assert first is not None
    sid = pyjwt.decode(first.access_token, options={"verify_signature": False})["sid"]
    # Idle: 59 minutes without use is fine, and a refresh counts as use.
    clock.advance(timedelta(minutes=59))
    assert await accounts.session_active(sid)
    second = await accounts.refresh(first.refresh_token, client)
    clock.advance(timedelta(minutes=59))
    third = await accounts.refresh(second.refresh_token, client)
    clock.advance(timedelta(minutes=61))  # idle for longer than an hour
    assert not await accounts.session_active(sid)
    try:
        await accounts.refresh(third.refresh_token, client)
        raise AssertionError("an idle session refreshed")
    except Unauthenticated:
        pass
    # Absolute: kept busy, it still ends 3 hours after login.
    fresh = (await accounts.login("ada@example.org", PASSWORD, "", client)).tokens
    assert fresh is not None
    sid = pyjwt.decode(fresh.access_token, options={"verify_signature": False})["sid"]
    token = fresh.refresh_token
    for _ in range(5):
        clock.advance(timedelta(minutes=35))
        token = (await accounts.refresh(token, client)).refresh_token
    assert await accounts.session_active(sid)
    clock.advance(timedelta(minutes=10))  # 3 h 5 min after login
    assert not await accounts.session_active(sid)
    await engine.dispose()


async def test_mailed_tokens_expire(tmp_path: Path) -> None:
    from flowdock_kernel.errors import Unauthenticated

    clock = FakeClock()
    accounts, engine = await _accounts_with_clock(tmp_path, clock, Policy())
    client = Client("203.0.113.7", "pytest")
    await accounts.register("bob@example.org", PASSWORD, "", client)
    await accounts.drain()
    verify = _outbox_token(tmp_path, "Confirm")
    clock.advance(timedelta(hours=24, seconds=1))
    try:
        await accounts.verify_email(verify, client)
        raise AssertionError("a 24 h verification link worked after 24 h")
    except Unauthenticated:
        pass
    await accounts.request_recovery("bob@example.org", client)
    await accounts.drain()
    reset = _outbox_token(tmp_path, "Reset")
    clock.advance(timedelta(minutes=30, seconds=1))
    try:
        await accounts.reset_password(reset, "a brand new passphrase", client)
        raise AssertionError("a 30 min reset link worked after 30 min")
    except Unauthenticated:
        pass
    await engine.dispose()


async def test_turning_2fa_on_needs_a_recent_login(tmp_path: Path) -> None:
    import jwt as pyjwt

    from flowdock_kernel.errors import FailedPrecondition

    clock = FakeClock()
    accounts, engine = await _accounts_with_clock(tmp_path, clock, Policy(require_verified_email=False))
    client = Client("203.0.113.7", "pytest")
    await accounts.register("cy@example.org", PASSWORD, "", client)
    old = (await accounts.login("cy@example.org", PASSWORD, "", client)).tokens
    assert old is not None
    old_sid = pyjwt.decode(old.access_token, options={"verify_signature": False})["sid"]
    clock.advance(timedelta(minutes=16))
    await accounts.refresh(old.refresh_token, client)  # refreshing keeps the session, not the login time
    with pytest.raises(FailedPrecondition) as refused:
        await accounts.start_totp(await _uid(engine), client, old_sid)
    assert refused.value.reason == "REAUTHENTICATION_REQUIRED"
    fresh = (await accounts.login("cy@example.org", PASSWORD, "", client)).tokens
    assert fresh is not None
    sid = pyjwt.decode(fresh.access_token, options={"verify_signature": False})["sid"]
    started = await accounts.start_totp(await _uid(engine), client, sid)
    assert started.secret and started.qr_svg.startswith("<svg")
    await engine.dispose()


async def _uid(engine: Any) -> str:
    async with engine.connect() as conn:
        return str((await conn.execute(sa.select(users.c.id))).scalar_one())
