"""In-memory fakes of auth_svc's ports (auth_svc/ports.py), for use-case tests that run in milliseconds.

They keep the contracts the SQL and Redis adapters keep, where a use case relies on them: a unit of work is a
transaction (its writes are seen by others only once committed; a clash on a unique email at commit is
AlreadyExists; a read-only one cannot commit), targeted writes answer False when their condition no longer holds,
single-use things (tokens, TOTP steps, recovery codes, OIDC states) are used once, and rate-limit windows slide
on the test's clock. Repositories hand out copies: a use case that changes a returned object without writing it
back changes nothing, as with a database.

One transaction at a time: a commit replaces the whole state with the transaction's copy (the tests here are
sequential; concurrency is tested against the real databases in tests/auth/test_races.py).

    fakes = AuthFakes()
    accounts = fakes.accounts(policy=Policy(require_verified_email=False))
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from auth_svc.domain import (
    Event,
    OidcClaims,
    OidcProvider,
    OidcState,
    OneTimeToken,
    Purpose,
    Quota,
    RefreshToken,
    Role,
    Session,
    User,
)
from auth_svc.usecases import Accounts, Limits, Policy
from flowdock_kernel.errors import AlreadyExists, ResourceExhausted, Unauthenticated, Unavailable
from tests.support.clock import FakeClock

# -- the database --------------------------------------------------------------------------------------------


@dataclass
class AuthState:
    """What auth_svc's database holds."""

    users: dict[str, User] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    session_revoke_reasons: dict[str, str] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    tokens: dict[str, OneTimeToken] = field(default_factory=dict)
    # user id -> code hash -> used at (None: unused)
    recovery_codes: dict[str, dict[str, datetime | None]] = field(default_factory=dict)
    oidc_states: dict[str, OidcState] = field(default_factory=dict)
    identities: dict[tuple[str, str], str] = field(default_factory=dict)


class FakeUsers:
    def __init__(self, state: AuthState) -> None:
        self._s = state

    def _row(self, user_id: str) -> User | None:
        return self._s.users.get(user_id)

    async def by_email(self, email: str) -> User | None:
        found = next((u for u in self._s.users.values() if u.email == email), None)
        return replace(found) if found else None

    async def by_id(self, user_id: str) -> User | None:
        found = self._row(user_id)
        return replace(found) if found else None

    async def add(self, user: User) -> None:
        if user.id in self._s.users:
            raise AlreadyExists("already exists")
        self._s.users[user.id] = replace(user)

    async def delete(self, user_id: str) -> None:
        self._s.users.pop(user_id, None)
        for sid in [s.id for s in self._s.sessions.values() if s.user_id == user_id]:
            del self._s.sessions[sid]

    async def set_password_hash(self, user_id: str, password_hash: str, *, expected: str | None = None) -> bool:
        row = self._row(user_id)
        if row is None or (expected is not None and row.password_hash != expected):
            return False
        row.password_hash = password_hash
        return True

    async def set_email(self, user_id: str, email: str) -> None:
        if row := self._row(user_id):
            row.email, row.email_verified = email, True

    async def mark_email_verified(self, user_id: str) -> None:
        if row := self._row(user_id):
            row.email_verified = True

    async def set_display_name(self, user_id: str, display_name: str) -> None:
        if row := self._row(user_id):
            row.display_name = display_name

    async def set_role(self, user_id: str, role: Role) -> None:
        if row := self._row(user_id):
            row.role = role

    async def set_disabled(self, user_id: str, disabled: bool) -> None:
        if row := self._row(user_id):
            row.disabled = disabled

    async def start_totp(self, user_id: str, secret: str) -> bool:
        row = self._row(user_id)
        if row is None or row.totp_enabled:
            return False
        row.totp_secret, row.totp_last_step = secret, 0
        return True

    async def enable_totp(self, user_id: str, secret: str, step: int) -> bool:
        row = self._row(user_id)
        if row is None or row.totp_enabled or row.totp_secret != secret:
            return False
        row.totp_enabled, row.totp_last_step = True, step
        return True

    async def disable_totp(self, user_id: str) -> None:
        if row := self._row(user_id):
            row.totp_enabled, row.totp_secret, row.totp_last_step = False, "", 0

    async def use_totp_step(self, user_id: str, step: int) -> bool:
        row = self._row(user_id)
        if row is None or step <= row.totp_last_step:
            return False
        row.totp_last_step = step
        return True

    async def search(self, query: str, after: str, limit: int) -> list[User]:
        q = query.lower()
        found = [
            u
            for u in self._s.users.values()
            if (not q or q in u.email or q in u.display_name.lower()) and (not after or u.email > after)
        ]
        return [replace(u) for u in sorted(found, key=lambda u: u.email)[:limit]]

    async def count_admins(self) -> int:
        return sum(1 for u in self._s.users.values() if u.role == Role.ADMIN and not u.disabled)


class FakeSessions:
    def __init__(self, state: AuthState) -> None:
        self._s = state

    async def add(self, session: Session) -> None:
        if session.secret_hash and any(s.secret_hash == session.secret_hash for s in self._s.sessions.values()):
            raise AlreadyExists("already exists")  # the unique index on sessions.secret_hash
        self._s.sessions[session.id] = replace(session)

    async def get(self, session_id: str) -> Session | None:
        found = self._s.sessions.get(session_id)
        return replace(found) if found else None

    async def by_secret(self, secret_hash: str) -> Session | None:
        found = next((s for s in self._s.sessions.values() if secret_hash and s.secret_hash == secret_hash), None)
        return replace(found) if found else None

    async def for_user(self, user_id: str) -> list[Session]:
        mine = [replace(s) for s in self._s.sessions.values() if s.user_id == user_id]
        return sorted(mine, key=lambda s: s.created_at, reverse=True)

    async def touch(self, session_id: str, at: datetime) -> None:
        if row := self._s.sessions.get(session_id):
            row.last_seen_at = at

    async def revoke(self, session_id: str, at: datetime, reason: str) -> bool:
        row = self._s.sessions.get(session_id)
        if row is None or row.revoked_at is not None:
            return False
        row.revoked_at = at
        self._s.session_revoke_reasons[session_id] = reason
        return True

    async def revoke_all(self, user_id: str, at: datetime, reason: str, *, keep: str = "") -> int:
        ids = [s.id for s in self._s.sessions.values() if s.user_id == user_id and s.id != keep]
        return sum([await self.revoke(sid, at, reason) for sid in ids])


class FakeRefreshTokens:
    def __init__(self, state: AuthState) -> None:
        self._s = state

    async def add(self, token: RefreshToken) -> None:
        self._s.refresh_tokens[token.token_hash] = token

    async def get(self, token_hash: str) -> RefreshToken | None:
        return self._s.refresh_tokens.get(token_hash)

    async def use(self, token_hash: str, at: datetime) -> bool:
        found = self._s.refresh_tokens.get(token_hash)
        if found is None or found.used_at is not None:
            return False
        self._s.refresh_tokens[token_hash] = replace(found, used_at=at)
        return True


class FakeOneTimeTokens:
    def __init__(self, state: AuthState) -> None:
        self._s = state

    async def add(self, token: OneTimeToken) -> None:
        self._s.tokens[token.token_hash] = token

    async def get(self, token_hash: str) -> OneTimeToken | None:
        return self._s.tokens.get(token_hash)

    async def use(self, token_hash: str, at: datetime) -> bool:
        found = self._s.tokens.get(token_hash)
        if found is None or found.used_at is not None:
            return False
        self._s.tokens[token_hash] = replace(found, used_at=at)
        return True

    async def discard(self, user_id: str, purpose: Purpose) -> None:
        for h in [h for h, t in self._s.tokens.items() if t.user_id == user_id and t.purpose == purpose]:
            del self._s.tokens[h]


class FakeRecoveryCodes:
    def __init__(self, state: AuthState) -> None:
        self._s = state

    async def replace(self, user_id: str, code_hashes: list[str]) -> None:
        self._s.recovery_codes[user_id] = dict.fromkeys(code_hashes)

    async def use(self, user_id: str, code_hash: str, at: datetime) -> bool:
        codes = self._s.recovery_codes.get(user_id, {})
        if code_hash not in codes or codes[code_hash] is not None:
            return False
        codes[code_hash] = at
        return True

    async def clear(self, user_id: str) -> None:
        self._s.recovery_codes.pop(user_id, None)


class FakeOidcStates:
    def __init__(self, state: AuthState) -> None:
        self._s = state

    async def add(self, state: OidcState) -> None:
        self._s.oidc_states[state.state_hash] = state

    async def take(self, state_hash: str, at: datetime) -> OidcState | None:
        found = self._s.oidc_states.get(state_hash)
        if found is None or found.used_at is not None or found.expires_at <= at:
            return None
        self._s.oidc_states[state_hash] = replace(found, used_at=at)
        return found


class FakeIdentities:
    def __init__(self, state: AuthState) -> None:
        self._s = state

    async def user_for(self, provider: str, subject: str) -> str | None:
        return self._s.identities.get((provider, subject))

    async def link(self, provider: str, subject: str, user_id: str, at: datetime) -> None:
        self._s.identities[(provider, subject)] = user_id


class AuthStore:
    """The committed state, and the units of work over it."""

    def __init__(self) -> None:
        self.state = AuthState()
        self.commits = 0

    def uow(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)

    def reader(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self, read_only=True)


class FakeUnitOfWork:
    """A transaction over a copy of the store's state: rolled back unless committed."""

    def __init__(self, store: AuthStore, *, read_only: bool = False) -> None:
        self._store = store
        self.read_only = read_only

    async def __aenter__(self) -> Self:
        self._work = copy.deepcopy(self._store.state)
        self.users = FakeUsers(self._work)
        self.sessions = FakeSessions(self._work)
        self.refresh_tokens = FakeRefreshTokens(self._work)
        self.tokens = FakeOneTimeTokens(self._work)
        self.recovery_codes = FakeRecoveryCodes(self._work)
        self.oidc_states = FakeOidcStates(self._work)
        self.identities = FakeIdentities(self._work)
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        del self._work  # uncommitted changes are gone

    async def commit(self) -> None:
        if self.read_only:
            raise RuntimeError("a read-only unit of work cannot commit")
        emails = [u.email for u in self._work.users.values()]
        if len(emails) != len(set(emails)):
            self._work = copy.deepcopy(self._store.state)  # the database rolls the transaction back
            raise AlreadyExists("already exists")
        self._store.state = copy.deepcopy(self._work)
        self._store.commits += 1


# -- services around the database ----------------------------------------------------------------------------


class FastHasher:
    """A password hasher without the cost: `fake$<version>$<sha256>`. Hashes of an older `version` need a rehash;
    `full = True` makes it refuse like a busy Argon2 pool; `meanwhile` runs at the start of the next hash (what
    another request does while this one hashes)."""

    def __init__(self, version: int = 1) -> None:
        self.version = version
        self.full = False
        self.meanwhile: Callable[[], None] | None = None
        self.hashed = 0
        self.verified = 0

    def _digest(self, password: str) -> str:
        return hashlib.sha256(password.encode("utf-8", "surrogatepass")).hexdigest()

    def check_capacity(self, *, requester: str = "") -> None:
        if self.full:
            raise ResourceExhausted("password hashing is busy", limit="auth.hashing", retry_after_seconds=1.0)

    async def hash(self, password: str, *, requester: str = "") -> str:
        self.check_capacity(requester=requester)
        if self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
            meanwhile()
        self.hashed += 1
        return f"fake${self.version}${self._digest(password)}"

    async def verify(self, stored_hash: str, password: str, *, requester: str = "") -> bool:
        self.check_capacity(requester=requester)
        self.verified += 1
        parts = stored_hash.split("$")
        return len(parts) == 3 and parts[0] == "fake" and parts[2] == self._digest(password)

    def needs_rehash(self, stored_hash: str) -> bool:
        return stored_hash.startswith("fake$") and stored_hash.split("$")[1] != str(self.version)


class FakeIssuer:
    """Access tokens that say what they were issued for: `at:<user>:<session>:<role>:<n>`."""

    ttl_seconds = 300

    def __init__(self) -> None:
        self.issued: list[tuple[str, str]] = []

    def issue_access(self, user: User, session_id: str) -> str:
        self.issued.append((user.id, session_id))
        return f"at:{user.id}:{session_id}:{user.role.value}:{len(self.issued)}"


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    body: str


_TOKEN = re.compile(r"[?&]token=([A-Za-z0-9_-]+)")


class FakeMailer:
    def __init__(self) -> None:
        self.sent: list[Mail] = []
        self.fail = False

    async def send(self, to: str, subject: str, body: str) -> None:
        if self.fail:
            raise ConnectionError("the mail server is down")
        self.sent.append(Mail(to, subject, body))

    def to(self, address: str) -> list[Mail]:
        return [m for m in self.sent if m.to == address]

    def last_token(self, address: str, subject: str = "") -> str:
        """The token of the newest mailed link to `address` (whose subject contains `subject`)."""
        for mail in reversed(self.to(address)):
            if subject in mail.subject and (found := _TOKEN.search(mail.body)):
                return found.group(1)
        raise AssertionError(f"no mailed link to {address} about {subject!r}: {self.sent}")


class FakeTotp:
    """Time-step codes on the test's clock (30 s steps, ±1 accepted, as PyOtpTotp): `code(secret)` is the code an
    authenticator shows now, `code(secret, +1)` the next one."""

    STEP = 30

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._made = 0

    def step_now(self) -> int:
        return int(self._clock().timestamp()) // self.STEP

    def code_at(self, secret: str, step: int) -> str:
        return f"{int(hashlib.sha256(f'{secret}:{step}'.encode()).hexdigest(), 16) % 1_000_000:06d}"

    def code(self, secret: str, offset_steps: int = 0) -> str:
        return self.code_at(secret, self.step_now() + offset_steps)

    def new_secret(self) -> str:
        self._made += 1
        return f"SECRET{self._made:04d}" + "A" * 26

    def uri(self, secret: str, account: str) -> str:
        return f"otpauth://totp/FlowDock:{account}?secret={secret}&issuer=FlowDock"

    def qr_svg(self, uri: str) -> str:
        return f"<svg><!-- {uri} --></svg>"

    def matching_step(self, secret: str, code: str) -> int | None:
        now = self.step_now()
        for step in (now - 1, now, now + 1):
            if self.code_at(secret, step) == code:
                return step
        return None


class FakeRateLimiter:
    """Sliding windows on the test's clock, like SqlRateLimiter/RedisRateLimiter."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._hits: dict[str, list[tuple[str, float]]] = {}
        self._ids = 0

    def _live(self, key: str, window_seconds: float) -> list[tuple[str, float]]:
        now = self._clock().timestamp()
        hits = [h for h in self._hits.get(key, []) if h[1] > now - window_seconds]
        self._hits[key] = hits
        return hits

    async def reserve(self, key: str, *, limit: int, window_seconds: float) -> tuple[str, float | None]:
        hits = self._live(key, window_seconds)
        now = self._clock().timestamp()
        if len(hits) >= limit:
            return "", hits[len(hits) - limit][1] + window_seconds - now
        self._ids += 1
        hits.append((str(self._ids), now))
        return str(self._ids), None

    async def hit(self, key: str, *, limit: int, window_seconds: float) -> float | None:
        return (await self.reserve(key, limit=limit, window_seconds=window_seconds))[1]

    async def release(self, key: str, attempt_id: str) -> None:
        self._hits[key] = [h for h in self._hits.get(key, []) if h[0] != attempt_id]

    async def count(self, key: str, *, window_seconds: float) -> int:
        return len(self._live(key, window_seconds))

    def counted(self, key: str) -> int:
        """Attempts held under `key` (expired ones included until the next call on the key)."""
        return len(self._hits.get(key, []))


class FakeAuditLog:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def record(self, event: Event) -> None:
        self.events.append(replace(event, cursor=str(len(self.events) + 1)))

    async def record_many(self, events: list[Event]) -> None:
        for e in events:
            if all(e.id != old.id for old in self.events):  # idempotent by id, as the real intake
                await self.record(e)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def last(self, kind: str) -> Event:
        for e in reversed(self.events):
            if e.kind == kind:
                return e
        raise AssertionError(f"no {kind} event in {self.kinds()}")

    # Last in the class: its name shadows the builtin `list` for the annotations after it.
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
        found = [
            e
            for e in reversed(self.events)
            if (not subject_id or e.subject_id == subject_id)
            and (not actor_id or e.actor_id == actor_id)
            and e.kind.startswith(kind_prefix)
            and (not kind_prefixes or e.kind.startswith(tuple(kind_prefixes)))
            and (since is None or e.at >= since)
            and (until is None or e.at < until)
            and (not before or int(e.cursor) < int(before))
        ]
        return found[:limit]


class FakeOidcClient:
    """A provider that answers `exchange` with the claims registered for a code (`codes[code] = claims`)."""

    def __init__(self, providers: list[OidcProvider]) -> None:
        self._providers = providers
        self.codes: dict[str, OidcClaims] = {}
        self.requests: list[dict[str, str]] = []

    def providers(self) -> list[OidcProvider]:
        return list(self._providers)

    async def authorization_url(
        self, provider: OidcProvider, *, redirect_uri: str, state: str, nonce: str, code_challenge: str
    ) -> str:
        self.requests.append({"state": state, "nonce": nonce, "code_challenge": code_challenge})
        return f"{provider.issuer}/authorize?state={state}&redirect_uri={redirect_uri}"

    async def exchange(
        self, provider: OidcProvider, *, code: str, redirect_uri: str, code_verifier: str, nonce: str
    ) -> OidcClaims:
        if code not in self.codes:
            raise Unauthenticated("the provider refused the code")
        return self.codes[code]


class FakeUserData:
    """storage_svc's admin API: quotas and per-user bytes."""

    def __init__(self, default_limit: int = 1 << 30) -> None:
        self.default_limit = default_limit
        self.used: dict[str, int] = {}
        self.limits: dict[str, int] = {}
        self.deleted: list[str] = []

    async def quota(self, user_id: str) -> Quota:
        return Quota(self.used.get(user_id, 0), 0, self.limits.get(user_id) or self.default_limit)

    async def set_quota(self, user_id: str, limit_bytes: int) -> Quota:
        self.limits[user_id] = limit_bytes
        return await self.quota(user_id)

    async def delete(self, user_id: str) -> int:
        self.deleted.append(user_id)
        return self.used.pop(user_id, 0)


class FakeUserShares:
    """share_svc's admin API."""

    def __init__(self) -> None:
        self.deleted: list[str] = []
        self.fail = False

    async def delete(self, user_id: str) -> int:
        if self.fail:
            raise Unavailable("share_svc is not reachable")
        self.deleted.append(user_id)
        return 0


@dataclass
class AuthFakes:
    """Every port of `Accounts`, faked, on one clock."""

    clock: FakeClock = field(default_factory=FakeClock)
    store: AuthStore = field(default_factory=AuthStore)
    hasher: FastHasher = field(default_factory=FastHasher)
    issuer: FakeIssuer = field(default_factory=FakeIssuer)
    mailer: FakeMailer = field(default_factory=FakeMailer)
    audit: FakeAuditLog = field(default_factory=FakeAuditLog)
    user_data: FakeUserData = field(default_factory=FakeUserData)
    user_shares: FakeUserShares = field(default_factory=FakeUserShares)
    totp: FakeTotp = field(init=False)
    limiter: FakeRateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.totp = FakeTotp(self.clock)
        self.limiter = FakeRateLimiter(self.clock)

    def accounts(self, **options: Any) -> Accounts:
        """`Accounts` over these fakes; `options` as Accounts takes them (policy, limits, oidc, ...)."""
        options.setdefault("policy", Policy())
        options.setdefault("limits", Limits())
        return Accounts(
            uow=self.store.uow,
            reader=self.store.reader,
            hasher=self.hasher,
            issuer=self.issuer,
            mailer=self.mailer,
            totp=self.totp,
            limiter=self.limiter,
            audit=self.audit,
            user_data=self.user_data,
            user_shares=self.user_shares,
            clock=self.clock,
            **options,
        )

    def user(self, email: str) -> User:
        """The committed account with this email."""
        found = next((u for u in self.store.state.users.values() if u.email == email), None)
        assert found is not None, f"no account {email}"
        return found
