"""Concurrent use cases on one account, over auth_svc's real adapters and migrations on SQLite and PostgreSQL
(the engine built as bootstrap builds it): writes are targeted and conditional, so no decision made on a stale read
is undone (an admin's disable survives a concurrent profile edit, one TOTP code is accepted once), and failure
limits are counted before the attempt is evaluated (50 parallel wrong codes: at most the limit are checked).

Each race is forced, not hoped for: the slow side pauses right after it has read the account until the other side
has finished (PostgreSQL) or for a bounded time (SQLite, where the other side queues behind its write lock)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from auth_svc import bootstrap
from auth_svc.adapters import (
    Argon2Hasher,
    OutboxMailer,
    PyOtpTotp,
    SigningKeyring,
    SqlAuditLog,
    SqlRateLimiter,
    SqlUnitOfWork,
    SqlUsers,
    audit_events,
    users,
)
from auth_svc.config import AuthConfig
from auth_svc.domain import Client, Role, User
from auth_svc.secretbox import SecretBox
from auth_svc.usecases import Accounts, Limit, Limits, Policy
from flowdock_kernel import db
from flowdock_kernel.clock import Clock, FakeClock
from flowdock_kernel.errors import PermissionDenied, ResourceExhausted, Unauthenticated
from flowdock_kernel.workers import BoundedPool
from tests.support.mesh import PG_URL, drop_databases, need_postgres

PASSWORD = "correct horse battery staple"
CLIENT = Client("203.0.113.9", "pytest")

Hook = Callable[[], Awaitable[None]]


class PausingUsers(SqlUsers):
    """SqlUsers whose reads of one account by id call `hook` afterwards (the moment a stale read would be used)."""

    hook: Hook | None = None

    async def by_id(self, user_id: str) -> User | None:
        found = await super().by_id(user_id)
        if self.hook is not None:
            await self.hook()
        return found


class PausingUow(SqlUnitOfWork):
    def __init__(self, factory: db.Connections, box: SecretBox, hook: Hook) -> None:
        super().__init__(factory, box)
        self._hook = hook

    def _bind(self, session: AsyncConnection) -> None:
        super()._bind(session)
        paused = PausingUsers(session, self.box)
        paused.hook = self._hook
        self.users = paused


@dataclass
class Backend:
    name: str
    engine: AsyncEngine
    tmp: Path

    def accounts(
        self, *, hook: Hook | None = None, totp_clock: Clock | None = None, limits: Limits | None = None
    ) -> Accounts:
        factory = db.connections(self.engine)
        box = SecretBox.from_file(self.tmp / "auth-secrets.key")
        keyring = SigningKeyring(self.engine, box=box, issuer="flowdock", audience="flowdock", ttl_seconds=300)
        self._keyrings.append(keyring)
        return Accounts(
            uow=(lambda: PausingUow(factory, box, hook)) if hook else (lambda: SqlUnitOfWork(factory, box)),
            hasher=Argon2Hasher(
                memory_kib=19456, time_cost=2, parallelism=1, pool=BoundedPool("t", workers=2, queue=200)
            ),
            issuer=keyring,
            mailer=OutboxMailer(self.tmp / "outbox", "test <t@example.org>"),
            totp=PyOtpTotp("FlowDock", clock=totp_clock),
            limiter=SqlRateLimiter(self.engine),
            audit=SqlAuditLog(self.engine),
            policy=Policy(require_verified_email=False),
            limits=limits or Limits(window_seconds=60),
        )

    def __post_init__(self) -> None:
        self._keyrings: list[SigningKeyring] = []

    async def ready(self) -> None:
        for k in self._keyrings:
            await k.load()

    async def row(self, email: str) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(sa.select(users).where(users.c.email == email))).one()

    async def events(self, kind: str, subject: str) -> int:
        async with self.engine.connect() as conn:
            q = sa.select(sa.func.count()).where(audit_events.c.kind == kind, audit_events.c.subject_id == subject)
            return int((await conn.execute(q)).scalar_one())


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    prefix = ""
    if request.param == "postgres":
        need_postgres()
        prefix = f"fdrace_{uuid.uuid4().hex[:8]}"
        config = AuthConfig(data_dir=tmp_path, db_url=f"{PG_URL}/{prefix}")
    else:
        config = AuthConfig(data_dir=tmp_path)
    bootstrap.migrate(config)
    engine = bootstrap.make_engine(config)
    try:
        yield Backend(request.param, engine, tmp_path)
    finally:
        await engine.dispose()
        if prefix:
            drop_databases(prefix)


async def _user(accounts: Accounts, backend: Backend, email: str, *, admin: bool = False) -> str:
    await accounts.register(email, PASSWORD, "", CLIENT)
    await accounts.drain()
    if admin:
        async with backend.engine.begin() as conn:
            await conn.execute(users.update().where(users.c.email == email).values(role="admin"))
    return str((await backend.row(email)).id)


async def _pause_until(event: asyncio.Event, seconds: float = 1.5) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)


async def test_a_profile_edit_does_not_undo_a_concurrent_disable(backend: Backend) -> None:
    fast = backend.accounts()
    read, disabled = asyncio.Event(), asyncio.Event()

    async def after_read() -> None:
        read.set()
        await _pause_until(disabled)  # the admin disables the account while this edit holds its stale read

    slow = backend.accounts(hook=after_read)
    await backend.ready()
    admin = await _user(fast, backend, "admin@example.org", admin=True)
    victim = await _user(fast, backend, "victim@example.org")
    edit = asyncio.ensure_future(slow.update_profile(victim, "New name", CLIENT))
    await read.wait()
    disable = asyncio.ensure_future(fast.set_disabled(admin, victim, True, CLIENT))
    disable.add_done_callback(lambda _: disabled.set())
    await asyncio.gather(edit, disable)
    row = await backend.row("victim@example.org")
    assert row.disabled is True, "the profile edit wrote back the stale disabled=False"
    assert row.display_name == "New name"
    with pytest.raises(Unauthenticated):
        await fast.login("victim@example.org", PASSWORD, "", CLIENT)


async def test_a_profile_edit_does_not_undo_a_concurrent_demotion(backend: Backend) -> None:
    fast = backend.accounts()
    read, demoted = asyncio.Event(), asyncio.Event()

    async def after_read() -> None:
        read.set()
        await _pause_until(demoted)

    slow = backend.accounts(hook=after_read)
    await backend.ready()
    admin = await _user(fast, backend, "admin@example.org", admin=True)
    other = await _user(fast, backend, "other@example.org", admin=True)
    edit = asyncio.ensure_future(slow.update_profile(other, "Renamed", CLIENT))
    await read.wait()
    demote = asyncio.ensure_future(fast.set_role(admin, other, Role.USER, CLIENT))
    demote.add_done_callback(lambda _: demoted.set())
    await asyncio.gather(edit, demote)
    row = await backend.row("other@example.org")
    assert (row.role, row.display_name) == ("user", "Renamed")


async def _totp_user(backend: Backend, clock: FakeClock) -> tuple[Accounts, str, str]:
    """An account with 2FA on (confirmed at the clock's current step): (accounts, user id, secret)."""
    accounts = backend.accounts(totp_clock=clock)
    await backend.ready()
    uid = await _user(accounts, backend, "totp@example.org")
    tokens = (await accounts.login("totp@example.org", PASSWORD, "", CLIENT)).tokens
    assert tokens is not None
    import jwt as pyjwt

    sid = pyjwt.decode(tokens.access_token, options={"verify_signature": False})["sid"]
    enrol = await accounts.start_totp(uid, CLIENT, sid)
    await accounts.confirm_totp(uid, pyotp.TOTP(enrol.secret).at(clock.time()), CLIENT, sid)
    return accounts, uid, enrol.secret


async def test_one_totp_code_sent_twice_in_parallel_is_accepted_once(backend: Backend) -> None:
    clock = FakeClock()
    accounts, _uid, secret = await _totp_user(backend, clock)
    clock.advance(30)  # the next step's code: never used yet
    code = pyotp.TOTP(secret).at(clock.time())
    mfa = []
    for _ in range(2):
        result = await accounts.login("totp@example.org", PASSWORD, "", CLIENT)
        mfa.append(result.mfa_token)
    both_read = asyncio.Event()
    reads = [0]

    async def after_read() -> None:
        reads[0] += 1
        if reads[0] >= 2:
            both_read.set()
        await _pause_until(both_read)  # both checks hold the same last-used step before either writes

    racing = backend.accounts(hook=after_read, totp_clock=clock)
    await backend.ready()
    results = await asyncio.gather(*(racing.login_totp(m, code, CLIENT) for m in mfa), return_exceptions=True)
    ok = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, Unauthenticated)]
    assert len(ok) == 1 and len(refused) == 1, results
    assert (await backend.row("totp@example.org")).totp_last_step == int(clock.time() // 30)


async def test_fifty_parallel_wrong_totp_codes_evaluate_at_most_the_limit(backend: Backend) -> None:
    clock = FakeClock()
    accounts, uid, secret = await _totp_user(backend, clock)
    mfa = (await accounts.login("totp@example.org", PASSWORD, "", CLIENT)).mfa_token
    right = pyotp.TOTP(secret).at(clock.time() + 30)
    wrong = "000000" if right != "000000" else "111111"
    results = await asyncio.gather(
        *(accounts.login_totp(mfa, wrong, CLIENT) for _ in range(50)), return_exceptions=True
    )
    evaluated = [r for r in results if isinstance(r, Unauthenticated)]
    throttled = [r for r in results if isinstance(r, ResourceExhausted)]
    assert len(evaluated) + len(throttled) == 50, results
    assert 1 <= len(evaluated) <= 5, f"{len(evaluated)} wrong codes were checked (the limit is 5)"
    assert await backend.events("login.totp_failed", uid) == len(evaluated)
    # The right code is refused too now: the account is throttled.
    with pytest.raises(ResourceExhausted):
        await accounts.login_totp(mfa, right, CLIENT)


async def test_fifty_parallel_wrong_current_passwords_evaluate_at_most_the_limit(backend: Backend) -> None:
    """Change-password with a stolen session: guesses are counted first, per account (limit 5 here)."""
    accounts = backend.accounts(limits=Limits(window_seconds=60, password=Limit(5, 1000)))
    await backend.ready()
    uid = await _user(accounts, backend, "pw@example.org")
    results = await asyncio.gather(
        *(
            accounts.change_password(uid, "", f"guess number {i}", "a brand new passphrase", False, CLIENT)
            for i in range(50)
        ),
        return_exceptions=True,
    )
    evaluated = [r for r in results if isinstance(r, PermissionDenied)]
    throttled = [r for r in results if isinstance(r, ResourceExhausted)]
    assert len(evaluated) + len(throttled) == 50, results
    assert 1 <= len(evaluated) <= 5, f"{len(evaluated)} guesses were checked (the limit is 5)"
    assert await backend.events("password.change_failed", uid) == len(evaluated)


class CountingHasher:
    """The real hasher, counting the Argon2 calls made through it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0

    async def hash(self, password: str, *, requester: str = "") -> str:
        self.calls += 1
        return str(await self.inner.hash(password, requester=requester))

    async def verify(self, stored_hash: str, password: str, *, requester: str = "") -> bool:
        self.calls += 1
        return bool(await self.inner.verify(stored_hash, password, requester=requester))

    def needs_rehash(self, stored_hash: str) -> bool:
        return bool(self.inner.needs_rehash(stored_hash))

    def check_capacity(self, *, requester: str = "") -> None:
        self.inner.check_capacity(requester=requester)


async def test_a_garbage_reset_token_costs_no_password_hash_and_is_throttled_per_ip(backend: Backend) -> None:
    accounts = backend.accounts(limits=Limits(window_seconds=60, reset=Limit(0, 5)))
    await backend.ready()
    counting = CountingHasher(accounts.hasher)
    accounts.hasher = counting
    answers = []
    for _ in range(8):
        try:
            await accounts.reset_password(uuid.uuid4().hex * 2, "a fresh long passphrase", CLIENT)
        except (Unauthenticated, ResourceExhausted) as exc:
            answers.append(type(exc).__name__)
    assert counting.calls == 0, "a garbage token made the service hash the new password"
    assert answers == ["Unauthenticated"] * 5 + ["ResourceExhausted"] * 3
