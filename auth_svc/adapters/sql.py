"""The SQL repositories, the unit of work, the audit trail and housekeeping of auth_svc's database."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from auth_svc.adapters.tables import (
    audit_events,
    aware,
    must,
    oidc_states,
    one_time_tokens,
    recovery_codes,
    refresh_tokens,
    sessions,
    signing_context,
    signing_keys,
    totp_context,
    user_identities,
    users,
)
from auth_svc.domain import (
    Event,
    OidcState,
    OneTimeToken,
    Purpose,
    RefreshToken,
    Role,
    Session,
    SessionKind,
    User,
)
from auth_svc.secretbox import SecretBox, is_sealed
from flowdock_kernel import db
from flowdock_kernel.clock import Clock, SystemClock

log = logging.getLogger("flowdock.auth")


def _user(row: Any) -> User:
    return User(
        id=row.id,
        email=row.email,
        display_name=row.display_name,
        role=Role(row.role),
        password_hash=row.password_hash,
        created_at=must(row.created_at),
        disabled=row.disabled,
        email_verified=row.email_verified,
        totp_secret=row.totp_secret,
        totp_enabled=row.totp_enabled,
        totp_last_step=int(row.totp_last_step),
    )


def _session(row: Any) -> Session:
    return Session(
        id=row.id,
        user_id=row.user_id,
        device_name=row.device_name,
        created_at=must(row.created_at),
        ip=row.ip,
        user_agent=row.user_agent,
        last_seen_at=aware(row.last_seen_at),
        expires_at=aware(row.expires_at),
        revoked_at=aware(row.revoked_at),
        kind=SessionKind(row.kind),
        secret_hash=row.secret_hash or "",
    )


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class SqlUsers:
    """Users; TOTP secrets are sealed with `box` (auth_svc/secretbox.py) on the way in and opened on the way out."""

    def __init__(self, session: AsyncConnection, box: SecretBox) -> None:
        self.s = session
        self.box = box

    def _user(self, row: Any) -> User:
        user = _user(row)
        user.totp_secret = self.box.open(user.totp_secret, totp_context(user.id))
        return user

    def _seal(self, user_id: str, secret: str) -> str:
        return self.box.seal(secret, totp_context(user_id))

    async def by_email(self, email: str) -> User | None:
        row = (await self.s.execute(sa.select(users).where(users.c.email == email))).first()
        return self._user(row) if row else None

    async def by_id(self, user_id: str) -> User | None:
        row = (await self.s.execute(sa.select(users).where(users.c.id == user_id))).first()
        return self._user(row) if row else None

    def _values(self, user: User) -> dict[str, Any]:
        return {
            "email": user.email,
            "display_name": user.display_name,
            "role": user.role.value,
            "password_hash": user.password_hash,
            "disabled": user.disabled,
            "email_verified": user.email_verified,
            "totp_secret": self._seal(user.id, user.totp_secret),
            "totp_enabled": user.totp_enabled,
            "totp_last_step": user.totp_last_step,
        }

    async def add(self, user: User) -> None:
        await self.s.execute(users.insert().values(id=user.id, created_at=user.created_at, **self._values(user)))

    async def _update(self, user_id: str, *conditions: Any, **values: Any) -> bool:
        stmt = users.update().where(users.c.id == user_id, *conditions).values(**values)
        return bool((await self.s.execute(stmt)).rowcount)

    async def set_password_hash(self, user_id: str, password_hash: str, *, expected: str | None = None) -> bool:
        cond = [users.c.password_hash == expected] if expected is not None else []
        return await self._update(user_id, *cond, password_hash=password_hash)

    async def set_email(self, user_id: str, email: str) -> None:
        await self._update(user_id, email=email, email_verified=True)

    async def mark_email_verified(self, user_id: str) -> None:
        await self._update(user_id, email_verified=True)

    async def set_display_name(self, user_id: str, display_name: str) -> None:
        await self._update(user_id, display_name=display_name)

    async def set_role(self, user_id: str, role: Role) -> None:
        await self._update(user_id, role=role.value)

    async def set_disabled(self, user_id: str, disabled: bool) -> None:
        await self._update(user_id, disabled=disabled)

    async def start_totp(self, user_id: str, secret: str) -> bool:
        return await self._update(
            user_id,
            users.c.totp_enabled.is_(False),
            totp_secret=self._seal(user_id, secret),
            totp_enabled=False,
            totp_last_step=0,
        )

    async def enable_totp(self, user_id: str, secret: str, step: int) -> bool:
        return await self._update(
            user_id,
            users.c.totp_enabled.is_(False),
            # Sealing is deterministic; a legacy plaintext row (not yet sealed at start) still matches.
            users.c.totp_secret.in_([self._seal(user_id, secret), secret]),
            totp_enabled=True,
            totp_last_step=step,
        )

    async def disable_totp(self, user_id: str) -> None:
        await self._update(user_id, totp_enabled=False, totp_secret="", totp_last_step=0)

    async def use_totp_step(self, user_id: str, step: int) -> bool:
        return await self._update(
            user_id, users.c.totp_enabled.is_(True), users.c.totp_last_step < step, totp_last_step=step
        )

    async def delete(self, user_id: str) -> None:
        """The account and everything of it here (sessions, tokens, codes, identities cascade); the audit trail
        keeps its entries (they name the id, not the person)."""
        for table in (one_time_tokens, recovery_codes, user_identities):
            await self.s.execute(table.delete().where(table.c.user_id == user_id))
        await self.s.execute(
            refresh_tokens.delete().where(
                refresh_tokens.c.session_id.in_(sa.select(sessions.c.id).where(sessions.c.user_id == user_id))
            )
        )
        await self.s.execute(sessions.delete().where(sessions.c.user_id == user_id))
        await self.s.execute(users.delete().where(users.c.id == user_id))

    async def search(self, query: str, after: str, limit: int) -> list[User]:
        stmt = sa.select(users).order_by(users.c.email).limit(limit)
        if query:
            pattern = _like(query.lower())
            stmt = stmt.where(
                sa.or_(
                    users.c.email.like(pattern, escape="\\"),
                    sa.func.lower(users.c.display_name).like(pattern, escape="\\"),
                )
            )
        if after:
            stmt = stmt.where(users.c.email > after)
        return [self._user(r) for r in (await self.s.execute(stmt)).all()]

    async def count_admins(self) -> int:
        stmt = sa.select(sa.func.count()).select_from(users).where(users.c.role == "admin", users.c.disabled.is_(False))
        return int((await self.s.execute(stmt)).scalar_one())


class SqlSessions:
    def __init__(self, session: AsyncConnection) -> None:
        self.s = session

    async def add(self, session: Session) -> None:
        await self.s.execute(
            sessions.insert().values(
                id=session.id,
                user_id=session.user_id,
                device_name=session.device_name,
                created_at=session.created_at,
                ip=session.ip,
                user_agent=session.user_agent,
                last_seen_at=session.last_seen_at,
                expires_at=session.expires_at,
                kind=session.kind.value,
                secret_hash=session.secret_hash or None,
            )
        )

    async def get(self, session_id: str) -> Session | None:
        row = (await self.s.execute(sa.select(sessions).where(sessions.c.id == session_id))).first()
        return _session(row) if row else None

    async def by_secret(self, secret_hash: str) -> Session | None:
        row = (await self.s.execute(sa.select(sessions).where(sessions.c.secret_hash == secret_hash))).first()
        return _session(row) if row else None

    async def for_user(self, user_id: str) -> list[Session]:
        stmt = sa.select(sessions).where(sessions.c.user_id == user_id).order_by(sessions.c.created_at.desc())
        return [_session(r) for r in (await self.s.execute(stmt)).all()]

    async def touch(self, session_id: str, at: datetime) -> None:
        await self.s.execute(sessions.update().where(sessions.c.id == session_id).values(last_seen_at=at))

    async def revoke(self, session_id: str, at: datetime, reason: str) -> bool:
        result = await self.s.execute(
            sessions.update()
            .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=at, revoke_reason=reason)
        )
        return bool(getattr(result, "rowcount", 0))

    async def revoke_all(self, user_id: str, at: datetime, reason: str, *, keep: str = "") -> int:
        stmt = (
            sessions.update()
            .where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=at, revoke_reason=reason)
        )
        if keep:
            stmt = stmt.where(sessions.c.id != keep)
        result = await self.s.execute(stmt)
        return int(getattr(result, "rowcount", 0))


class SqlRefreshTokens:
    def __init__(self, session: AsyncConnection) -> None:
        self.s = session

    async def add(self, token: RefreshToken) -> None:
        await self.s.execute(
            refresh_tokens.insert().values(
                token_hash=token.token_hash, session_id=token.session_id, created_at=token.created_at
            )
        )

    async def get(self, token_hash: str) -> RefreshToken | None:
        row = (await self.s.execute(sa.select(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash))).first()
        if row is None:
            return None
        return RefreshToken(row.token_hash, row.session_id, must(row.created_at), aware(row.used_at))

    async def use(self, token_hash: str, at: datetime) -> bool:
        result = await self.s.execute(
            refresh_tokens.update()
            .where(refresh_tokens.c.token_hash == token_hash, refresh_tokens.c.used_at.is_(None))
            .values(used_at=at)
        )
        return bool(getattr(result, "rowcount", 0))


class SqlOneTimeTokens:
    def __init__(self, session: AsyncConnection) -> None:
        self.s = session

    async def add(self, token: OneTimeToken) -> None:
        await self.s.execute(
            one_time_tokens.insert().values(
                token_hash=token.token_hash,
                purpose=token.purpose.value,
                user_id=token.user_id,
                expires_at=token.expires_at,
                data=token.data,
            )
        )

    async def get(self, token_hash: str) -> OneTimeToken | None:
        row = (
            await self.s.execute(sa.select(one_time_tokens).where(one_time_tokens.c.token_hash == token_hash))
        ).first()
        if row is None:
            return None
        return OneTimeToken(
            row.token_hash, Purpose(row.purpose), row.user_id, must(row.expires_at), aware(row.used_at), row.data
        )

    async def use(self, token_hash: str, at: datetime) -> bool:
        result = await self.s.execute(
            one_time_tokens.update()
            .where(one_time_tokens.c.token_hash == token_hash, one_time_tokens.c.used_at.is_(None))
            .values(used_at=at)
        )
        return bool(getattr(result, "rowcount", 0))

    async def discard(self, user_id: str, purpose: Purpose) -> None:
        await self.s.execute(
            one_time_tokens.delete().where(
                one_time_tokens.c.user_id == user_id, one_time_tokens.c.purpose == purpose.value
            )
        )


class SqlRecoveryCodes:
    def __init__(self, session: AsyncConnection) -> None:
        self.s = session

    async def replace(self, user_id: str, code_hashes: list[str]) -> None:
        await self.clear(user_id)
        if code_hashes:
            await self.s.execute(recovery_codes.insert(), [{"user_id": user_id, "code_hash": h} for h in code_hashes])

    async def use(self, user_id: str, code_hash: str, at: datetime) -> bool:
        result = await self.s.execute(
            recovery_codes.update()
            .where(
                recovery_codes.c.user_id == user_id,
                recovery_codes.c.code_hash == code_hash,
                recovery_codes.c.used_at.is_(None),
            )
            .values(used_at=at)
        )
        return bool(getattr(result, "rowcount", 0))

    async def clear(self, user_id: str) -> None:
        await self.s.execute(recovery_codes.delete().where(recovery_codes.c.user_id == user_id))


class SqlOidcStates:
    def __init__(self, session: AsyncConnection) -> None:
        self.s = session

    async def add(self, state: OidcState) -> None:
        await self.s.execute(
            oidc_states.insert().values(
                state_hash=state.state_hash,
                provider=state.provider,
                nonce=state.nonce,
                code_verifier=state.code_verifier,
                redirect_uri=state.redirect_uri,
                expires_at=state.expires_at,
            )
        )

    async def take(self, state_hash: str, at: datetime) -> OidcState | None:
        result = await self.s.execute(
            oidc_states.update()
            .where(
                oidc_states.c.state_hash == state_hash,
                oidc_states.c.used_at.is_(None),
                oidc_states.c.expires_at > at,
            )
            .values(used_at=at)
        )
        if not getattr(result, "rowcount", 0):
            return None
        row = (await self.s.execute(sa.select(oidc_states).where(oidc_states.c.state_hash == state_hash))).one()
        return OidcState(
            row.state_hash, row.provider, row.nonce, row.code_verifier, row.redirect_uri, must(row.expires_at), at
        )


class SqlIdentities:
    def __init__(self, session: AsyncConnection) -> None:
        self.s = session

    async def user_for(self, provider: str, subject: str) -> str | None:
        row = (
            await self.s.execute(
                sa.select(user_identities.c.user_id).where(
                    user_identities.c.provider == provider, user_identities.c.subject == subject
                )
            )
        ).first()
        return str(row.user_id) if row else None

    async def link(self, provider: str, subject: str, user_id: str, at: datetime) -> None:
        await self.s.execute(
            user_identities.insert().values(provider=provider, subject=subject, user_id=user_id, created_at=at)
        )


class SqlUnitOfWork(db.SqlUnitOfWork):
    def __init__(self, factory: db.Connections, box: SecretBox, *, read_only: bool = False) -> None:
        super().__init__(factory, read_only=read_only)
        self.box = box

    def _bind(self, session: AsyncConnection) -> None:
        self.users = SqlUsers(session, self.box)
        self.sessions = SqlSessions(session)
        self.refresh_tokens = SqlRefreshTokens(session)
        self.tokens = SqlOneTimeTokens(session)
        self.recovery_codes = SqlRecoveryCodes(session)
        self.oidc_states = SqlOidcStates(session)
        self.identities = SqlIdentities(session)


def _event(row: Any) -> Event:
    return Event(
        id=row.id,
        at=must(row.at),
        kind=row.kind,
        actor_id=row.actor_id,
        subject_id=row.subject_id,
        ip=row.ip,
        user_agent=row.user_agent,
        service=row.service,
        details=json.loads(row.details or "{}"),
        cursor=str(row.seq),
    )


class SqlAuditLog:
    """The audit trail; its own short transactions, so failed attempts are recorded too."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @staticmethod
    def _row(e: Event) -> dict[str, Any]:
        return {
            "id": e.id,
            "at": e.at,
            "kind": e.kind[:64],
            "actor_id": e.actor_id[:36],
            "subject_id": e.subject_id[:36],
            "ip": e.ip[:64],
            "user_agent": e.user_agent[:200],
            "service": e.service[:32],
            "details": json.dumps(e.details, ensure_ascii=False),
        }

    async def record(self, event: Event) -> None:
        await self.record_many([event])

    async def record_many(self, events: list[Event]) -> None:
        """Idempotent by event id (senders retry): ids already stored are skipped."""
        if not events:
            return
        async with self._engine.begin() as conn:
            known = set(
                (
                    await conn.execute(
                        sa.select(audit_events.c.id).where(audit_events.c.id.in_([e.id for e in events]))
                    )
                ).scalars()
            )
            fresh: dict[str, Event] = {e.id: e for e in events if e.id not in known}
            if fresh:
                await conn.execute(audit_events.insert(), [self._row(e) for e in fresh.values()])

    async def list(
        self,
        *,
        subject_id: str = "",
        actor_id: str = "",
        kind_prefix: str = "",
        kind_prefixes: Sequence[str] = (),
        since: datetime | None = None,
        until: datetime | None = None,
        before: str = "",
        limit: int,
    ) -> list[Event]:
        stmt = sa.select(audit_events).order_by(audit_events.c.seq.desc()).limit(limit)
        if subject_id:
            stmt = stmt.where(audit_events.c.subject_id == subject_id)
        if actor_id:
            stmt = stmt.where(audit_events.c.actor_id == actor_id)
        if kind_prefix:
            stmt = stmt.where(audit_events.c.kind.like(_like_prefix(kind_prefix), "\\"))
        if kind_prefixes:
            stmt = stmt.where(sa.or_(*(audit_events.c.kind.like(_like_prefix(p), "\\") for p in kind_prefixes)))
        if since is not None:
            stmt = stmt.where(audit_events.c.at >= since)
        if until is not None:
            stmt = stmt.where(audit_events.c.at < until)
        if before:
            stmt = stmt.where(audit_events.c.seq < int(before))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_event(r) for r in rows]


def _like_prefix(prefix: str) -> str:
    """A LIKE pattern matching what starts with `prefix` (its wildcards taken literally; escape character \\)."""
    return prefix.replace("%", "").replace("_", "\\_") + "%"


async def seal_legacy_rows(engine: AsyncEngine, box: SecretBox) -> int:
    """Seal signing keys and TOTP secrets written in plaintext before encryption at rest (idempotent; run at start).
    Returns how many rows were sealed."""
    sealed = 0
    async with engine.begin() as conn:
        for row in (await conn.execute(sa.select(signing_keys.c.kid, signing_keys.c.private_pem))).all():
            if not is_sealed(row.private_pem):
                await conn.execute(
                    signing_keys.update()
                    .where(signing_keys.c.kid == row.kid, signing_keys.c.private_pem == row.private_pem)
                    .values(private_pem=box.seal(row.private_pem, signing_context(row.kid)))
                )
                sealed += 1
        stmt = sa.select(users.c.id, users.c.totp_secret).where(users.c.totp_secret != "")
        for row in (await conn.execute(stmt)).all():
            if not is_sealed(row.totp_secret):
                await conn.execute(
                    users.update()
                    .where(users.c.id == row.id, users.c.totp_secret == row.totp_secret)
                    .values(totp_secret=box.seal(row.totp_secret, totp_context(row.id)))
                )
                sealed += 1
    return sealed


class SqlHousekeeping:
    """Deletes rows that can never be used again: one-time tokens and OpenID states expired for a day, sessions
    ended (expired or revoked) for `keep_ended` (their refresh tokens go with them). The audit trail is kept."""

    def __init__(
        self, engine: AsyncEngine, *, keep_ended: timedelta = timedelta(days=30), clock: Clock | None = None
    ) -> None:
        self._engine = engine
        self._clock = clock or SystemClock()
        self._keep_ended = keep_ended

    async def run(self) -> dict[str, int]:
        now = self._clock.now()
        day_ago, ended_before = now - timedelta(days=1), now - self._keep_ended
        counts: dict[str, int] = {}
        async with self._engine.begin() as conn:
            for name, stmt in (
                ("one_time_tokens", one_time_tokens.delete().where(one_time_tokens.c.expires_at < day_ago)),
                ("oidc_states", oidc_states.delete().where(oidc_states.c.expires_at < day_ago)),
                (
                    "refresh_tokens",
                    refresh_tokens.delete().where(
                        refresh_tokens.c.session_id.in_(
                            sa.select(sessions.c.id).where(
                                sa.or_(sessions.c.expires_at < ended_before, sessions.c.revoked_at < ended_before)
                            )
                        )
                    ),
                ),
                (
                    "sessions",
                    sessions.delete().where(
                        sa.or_(sessions.c.expires_at < ended_before, sessions.c.revoked_at < ended_before)
                    ),
                ),
            ):
                counts[name] = int(getattr(await conn.execute(stmt), "rowcount", 0))
        if any(counts.values()):
            log.info("housekeeping", extra={"deleted": counts})
        return counts
