"""Account use cases: each reads like the feature, talks only to ports."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import secrets
import uuid
from collections.abc import Callable, Collection, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from auth_svc import domain
from auth_svc.ports import (
    AuditLog,
    Mailer,
    OidcClient,
    PasswordHasher,
    RateLimiter,
    TokenIssuer,
    Totp,
    UnitOfWork,
    UserData,
    UserShares,
)
from flowdock_kernel import pagetoken
from flowdock_kernel.clock import Clock, SystemClock
from flowdock_kernel.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)

log = logging.getLogger("flowdock.auth")

NO_PASSWORD = "!no-password"  # stored for accounts made by an OpenID login: no password verifies against it
# The same message for unknown email and wrong password: login must not reveal which accounts exist.
BAD_CREDENTIALS = "email or password is incorrect"
BAD_TOKEN = "this link or token is not valid (it may have expired or been used already)"
BAD_CODE = "the code is not valid"
SESSION_ENDED = "this session has ended; log in again"
# HTTP Basic refusals say what to use, never which part was wrong (or whether the account exists).
BASIC_REFUSED = (
    "email or app password is incorrect: WebDAV and other clients without a login page log in with the account's "
    "email and an app password (create one in the web app's Settings or with `flowdock app-passwords create NAME`)"
)
BASIC_REFUSED_PASSWORD_ALLOWED = (
    "email or password is incorrect (an account with two-factor authentication must use an app password here: "
    "create one in the web app's Settings or with `flowdock app-passwords create NAME`)"
)
TOUCH_EVERY = timedelta(seconds=60)
NO_CLIENT = domain.Client()


def new_secret_token() -> str:
    """256 bits from the OS CSPRNG, URL-safe."""
    return secrets.token_urlsafe(32)


def new_app_password() -> str:
    """160 bits from the OS CSPRNG as lower-case base32 (no padding: 160 is a multiple of 5), in groups of 4."""
    chars = base64.b32encode(secrets.token_bytes(20)).decode("ascii").lower()
    return domain.format_app_password(chars)


def app_password_hash(normalised: str) -> str:
    """What is stored of an app password. Its 160 random bits make guessing hopeless, so one fast hash (no Argon2)
    is as safe as a slow one here, and lets every WebDAV request be checked with one indexed lookup."""
    return token_hash(normalised)


def token_hash(token: str) -> str:
    """Tokens are high-entropy randoms: a plain SHA-256 is enough to store them (no password hashing needed)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Tokens:
    access_token: str
    expires_in: int
    refresh_token: str


@dataclass(frozen=True)
class BasicLogin:
    """A successful HTTP Basic authentication: whose, which session, and a short access token for it."""

    user_id: str
    session_id: str
    access_token: str
    expires_at: datetime


@dataclass(frozen=True)
class NewAppPassword:
    """A created app password (its session) and its secret, which is never available again."""

    session: domain.Session
    secret: str


@dataclass(frozen=True)
class LoginResult:
    tokens: Tokens | None = None
    mfa_token: str = ""


@dataclass(frozen=True)
class Limit:
    """Attempts allowed per account and per client IP within the sliding window."""

    per_account: int
    per_ip: int


@dataclass(frozen=True)
class Limits:
    window_seconds: float = 300.0
    login: Limit = Limit(10, 100)
    # per_account: "someone tried to sign up with your address" mails per address.
    register: Limit = Limit(3, 20)
    recovery: Limit = Limit(3, 20)
    totp: Limit = Limit(5, 50)
    resend: Limit = Limit(3, 20)
    reset: Limit = Limit(0, 20)
    # Re-authentication of a signed-in caller (current password to change password or email, disable 2FA).
    password: Limit = Limit(5, 50)


@dataclass(frozen=True)
class Policy:
    session_max_age: timedelta = timedelta(days=30)
    session_idle: timedelta = timedelta(days=7)
    require_verified_email: bool = True
    verify_ttl: timedelta = timedelta(hours=24)
    reset_ttl: timedelta = timedelta(minutes=30)
    mfa_ttl: timedelta = timedelta(minutes=5)
    public_url: str = "http://127.0.0.1:8080"
    page_size: int = 50
    max_page_size: int = 200
    oidc_redirect_uris: tuple[str, ...] = ("http://127.0.0.1:8080/oauth/callback",)
    oidc_state_ttl: timedelta = timedelta(minutes=10)
    reauth_window: timedelta = timedelta(minutes=15)
    # HTTP Basic (WebDAV) with the account password instead of an app password, for accounts without 2FA.
    basic_account_password: bool = False
    app_passwords_per_account: int = 50


class _OidcRefused(Exception):
    def __init__(self, user_id: str) -> None:
        super().__init__(user_id)
        self.user_id = user_id


@dataclass(frozen=True)
class TotpEnrollment:
    secret: str
    uri: str
    qr_svg: str


def _page_size(requested: int, policy: Policy) -> int:
    if requested < 0:
        raise InvalidArgument("page_size", "must be 0 or more")
    return min(requested or policy.page_size, policy.max_page_size)


_DIGITS = re.compile(r"[0-9]{1,19}")


def _encode_cursor(value: str) -> str:
    return pagetoken.encode_text(value)


def _decode_cursor(token: str) -> str:
    return pagetoken.decode_text(token)


def _email_cursor(token: str) -> str:
    """The last email of the previous page of users."""
    after = _decode_cursor(token)
    if after and ("@" not in after or len(after) > 254):
        raise pagetoken.bad_token()
    return after


@dataclass
class Accounts:
    uow: Callable[[], UnitOfWork]
    hasher: PasswordHasher
    issuer: TokenIssuer
    mailer: Mailer
    totp: Totp
    limiter: RateLimiter
    audit: AuditLog
    policy: Policy = field(default_factory=Policy)
    limits: Limits = field(default_factory=Limits)
    common_passwords: Collection[str] = frozenset()
    oidc: OidcClient | None = None
    user_data: UserData | None = None
    user_shares: UserShares | None = None
    clock: Clock = field(default_factory=SystemClock)
    # A unit of work that only reads (on SQLite it takes no write lock, so lookups never queue behind writers);
    # None: `uow`.
    reader: Callable[[], UnitOfWork] | None = None
    # A real hash to verify against when the email is unknown, so both paths cost one Argon2 verification.
    dummy_hash: str = ""
    _background: set[asyncio.Task[None]] = field(default_factory=set)

    def _read(self) -> UnitOfWork:
        return self.reader() if self.reader is not None else self.uow()

    async def _verify_dummy(self, password: str, client: domain.Client) -> None:
        """The cost of a real verification when there is no account to check against."""
        if not self.dummy_hash:
            self.dummy_hash = await self.hasher.hash(uuid.uuid4().hex)
        await self.hasher.verify(self.dummy_hash, password, requester=client.ip)

    # -- helpers ---------------------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Mail is sent in the background: the answer does not wait for (or reveal) the mail server."""

        async def guarded() -> None:
            try:
                await coro
            except Exception:
                log.exception("sending mail failed")

        task = asyncio.get_running_loop().create_task(guarded())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for background mail (tests, shutdown)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    def _mail(self, to: str, subject: str, body: str) -> None:
        self._spawn(self.mailer.send(to, subject, body))

    async def _event(
        self, kind: str, client: domain.Client, *, actor: str = "", subject: str = "", **details: str
    ) -> None:
        await self.audit.record(
            domain.Event(
                id=str(uuid.uuid4()),
                at=self.clock.now(),
                kind=kind,
                actor_id=actor,
                subject_id=subject,
                ip=client.ip,
                user_agent=client.user_agent,
                details=details,
            )
        )

    async def _throttle(self, action: str, limit: int, key: str) -> None:
        if limit <= 0 or not key:
            return
        wait = await self.limiter.hit(f"{action}:{key}", limit=limit, window_seconds=self.limits.window_seconds)
        if wait is not None:
            raise ResourceExhausted(
                f"too many {action} attempts; try again in {int(wait) + 1} s",
                limit=f"auth.{action}",
                retry_after_seconds=wait,
            )

    async def _reserve_failure(self, action: str, limit: int, key: str) -> str:
        """Per-account limits count failures only (so nobody locks an owner out by trying once). An attempt is
        counted as a failure BEFORE it is evaluated and uncounted (`_release`) if it succeeds: parallel guesses
        cannot all see a count under the limit. Returns the attempt's id ("" when the limit is off)."""
        if limit <= 0 or not key:
            return ""
        attempt, wait = await self.limiter.reserve(
            f"{action}-failed:{key}", limit=limit, window_seconds=self.limits.window_seconds
        )
        if wait is not None:
            raise ResourceExhausted(
                f"too many failed {action} attempts; try again in {int(wait) + 1} s",
                limit=f"auth.{action}.account",
                retry_after_seconds=wait,
            )
        return attempt

    async def _release(self, action: str, key: str, attempt: str) -> None:
        if attempt:
            await self.limiter.release(f"{action}-failed:{key}", attempt)

    async def _verify(self, action: str, key: str, attempt: str, stored: str, password: str, ip: str) -> bool:
        """A password verification inside a reserved attempt: one refused by a full hashing pool was never
        evaluated, so it is uncounted before the refusal goes out."""
        try:
            return await self.hasher.verify(stored, password, requester=ip)
        except ResourceExhausted:
            await self._release(action, key, attempt)
            raise

    def _link(self, path: str, token: str) -> str:
        return f"{self.policy.public_url.rstrip('/')}/{path}?token={token}"

    async def _new_one_time(
        self, uow: UnitOfWork, purpose: domain.Purpose, user_id: str, ttl: timedelta, data: str = ""
    ) -> str:
        token = new_secret_token()
        await uow.tokens.add(
            domain.OneTimeToken(token_hash(token), purpose, user_id, self.clock.now() + ttl, data=data)
        )
        return token

    async def _peek(self, uow: UnitOfWork, token: str, purposes: Collection[domain.Purpose]) -> domain.OneTimeToken:
        """The token if it is usable now (not consumed)."""
        if not token or len(token) > 200:
            raise Unauthenticated(BAD_TOKEN)
        found = await uow.tokens.get(token_hash(token))
        if (
            found is None
            or found.purpose not in purposes
            or found.used_at is not None
            or found.expires_at <= self.clock.now()
        ):
            raise Unauthenticated(BAD_TOKEN)
        return found

    async def _consume(self, uow: UnitOfWork, token: str, purposes: Collection[domain.Purpose]) -> domain.OneTimeToken:
        found = await self._peek(uow, token, purposes)
        now = self.clock.now()
        if not await uow.tokens.use(found.token_hash, now):
            raise Unauthenticated(BAD_TOKEN)
        return found

    async def _start_session(
        self, uow: UnitOfWork, user: domain.User, device_name: str, client: domain.Client
    ) -> Tokens:
        now = self.clock.now()
        session = domain.Session(
            id=str(uuid.uuid4()),
            user_id=user.id,
            device_name=domain.clean_device_name(device_name, client.user_agent),
            created_at=now,
            ip=client.ip,
            user_agent=client.user_agent[: domain.MAX_USER_AGENT],
            last_seen_at=now,
            expires_at=now + self.policy.session_max_age,
        )
        await uow.sessions.add(session)
        refresh = new_secret_token()
        await uow.refresh_tokens.add(domain.RefreshToken(token_hash(refresh), session.id, now))
        await uow.commit()
        return Tokens(self.issuer.issue_access(user, session.id), self.issuer.ttl_seconds, refresh)

    async def _user(self, uow: UnitOfWork, user_id: str) -> domain.User:
        user = await uow.users.by_id(user_id)
        if user is None or user.disabled:
            raise Unauthenticated(SESSION_ENDED)
        return user

    # -- registration and email ------------------------------------------------------------------------------

    async def register(self, email: str, password: str, display_name: str, client: domain.Client) -> None:
        """Create an account. An existing email gives the same answer; its owner is told by mail instead."""
        email = domain.normalise_email(email)
        domain.check_password(password, self.common_passwords)
        name = domain.clean_display_name(display_name, email)
        self.hasher.check_capacity(requester=client.ip)
        await self._throttle("register", self.limits.register.per_ip, client.ip)
        password_hash = await self.hasher.hash(password, requester=client.ip)
        async with self._read() as uow:
            existing = await uow.users.by_email(email)
        if existing is not None:
            # At most N such mails per address and window (no mail-bombing an owner through the sign-up form);
            # the answer is the same either way, so it tells nothing about the address.
            wait = None
            if self.limits.register.per_account > 0:
                wait = await self.limiter.hit(
                    f"register-mail:{email}",
                    limit=self.limits.register.per_account,
                    window_seconds=self.limits.window_seconds,
                )
            if wait is None:
                self._mail(
                    email,
                    "Someone tried to sign up with your address",
                    "Somebody (maybe you) tried to create a FlowDock account with this email address, which "
                    "already has one. If it was you, log in or reset your password. Otherwise, ignore this mail.",
                )
            await self._event("register.existing", client, subject=existing.id, mailed="no" if wait else "yes")
            return
        async with self.uow() as uow:
            user = domain.User(
                id=str(uuid.uuid4()),
                email=email,
                display_name=name,
                role=domain.Role.USER,
                password_hash=password_hash,
                created_at=self.clock.now(),
            )
            await uow.users.add(user)
            token = await self._new_one_time(uow, domain.Purpose.VERIFY_EMAIL, user.id, self.policy.verify_ttl)
            try:
                await uow.commit()
            except AlreadyExists:
                return  # a concurrent registration of the same email won; same answer
        self._mail(email, "Confirm your FlowDock email address", self._verify_body(token))
        await self._event("register", client, actor=user.id, subject=user.id)

    def _verify_body(self, token: str) -> str:
        hours = int(self.policy.verify_ttl.total_seconds() // 3600)
        return (
            "Open this link to confirm your email address for FlowDock:\n\n"
            f"{self._link('verify-email', token)}\n\nThe link works once and expires in {hours} hours."
        )

    async def verify_email(self, token: str, client: domain.Client) -> None:
        async with self.uow() as uow:
            found = await self._consume(uow, token, (domain.Purpose.VERIFY_EMAIL, domain.Purpose.CHANGE_EMAIL))
            user = await uow.users.by_id(found.user_id)
            if user is None:
                raise Unauthenticated(BAD_TOKEN)
            old = user.email
            if found.purpose == domain.Purpose.CHANGE_EMAIL:
                if await uow.users.by_email(found.data) is not None:
                    raise AlreadyExists("that email address is already in use")
                user.email = found.data
                await uow.users.set_email(user.id, user.email)
            else:
                await uow.users.mark_email_verified(user.id)
            user.email_verified = True
            try:
                await uow.commit()
            except AlreadyExists:
                raise AlreadyExists("that email address is already in use") from None
        if found.purpose == domain.Purpose.CHANGE_EMAIL:
            self._mail(old, "Your FlowDock email address changed", f"Your account now uses {user.email}.")
            await self._event("email.changed", client, actor=user.id, subject=user.id)
        else:
            await self._event("email.verified", client, actor=user.id, subject=user.id)

    async def resend_verification(self, email: str, client: domain.Client) -> None:
        try:
            email = domain.normalise_email(email)
        except InvalidArgument:
            return
        await self._throttle("resend", self.limits.resend.per_ip, client.ip)
        await self._throttle("resend", self.limits.resend.per_account, email)
        async with self.uow() as uow:
            user = await uow.users.by_email(email)
            if user is None or user.email_verified or user.disabled:
                return
            await uow.tokens.discard(user.id, domain.Purpose.VERIFY_EMAIL)
            token = await self._new_one_time(uow, domain.Purpose.VERIFY_EMAIL, user.id, self.policy.verify_ttl)
            await uow.commit()
        self._mail(email, "Confirm your FlowDock email address", self._verify_body(token))

    # -- login, 2FA, tokens ------------------------------------------------------------------------------------

    async def login(self, email: str, password: str, device_name: str, client: domain.Client) -> LoginResult:
        self.hasher.check_capacity(requester=client.ip)  # a busy pool refuses before any database work
        await self._throttle("login", self.limits.login.per_ip, client.ip)
        try:
            email = domain.normalise_email(email)
        except InvalidArgument:
            await self._verify_dummy(password, client)
            raise Unauthenticated(BAD_CREDENTIALS) from None
        attempt = await self._reserve_failure("login", self.limits.login.per_account, email)
        async with self._read() as uow:
            user = await uow.users.by_email(email)
        if user is None:
            try:
                await self._verify_dummy(password, client)
            except ResourceExhausted:
                await self._release("login", email, attempt)
                raise
            ok = False
        else:
            ok = await self._verify("login", email, attempt, user.password_hash, password, client.ip)
            ok = ok and not user.disabled
        if user is None or not ok:
            await self._event("login.failed", client, subject=user.id if user else "")
            raise Unauthenticated(BAD_CREDENTIALS)
        await self._release("login", email, attempt)
        if self.policy.require_verified_email and not user.email_verified:
            raise FailedPrecondition(
                "this email address is not verified yet: open the link we mailed you (or ask for a new one)",
                reason="EMAIL_NOT_VERIFIED",
            )
        new_hash = ""
        if self.hasher.needs_rehash(user.password_hash):
            new_hash = await self.hasher.hash(password, requester=client.ip)
        async with self.uow() as uow:
            if new_hash and await uow.users.set_password_hash(user.id, new_hash, expected=user.password_hash):
                user.password_hash = new_hash
            result = await self._finish_first_factor(uow, user, device_name, client)
        if result.tokens is not None:
            await self._event("login.ok", client, actor=user.id, subject=user.id)
        return result

    async def _finish_first_factor(
        self, uow: UnitOfWork, user: domain.User, device_name: str, client: domain.Client
    ) -> LoginResult:
        """After a password or an OpenID login: a 2FA challenge if TOTP is on, else a new session."""
        if user.totp_enabled:
            data = json.dumps({"device_name": device_name[: domain.MAX_DEVICE_NAME]})
            mfa = await self._new_one_time(uow, domain.Purpose.MFA, user.id, self.policy.mfa_ttl, data)
            await uow.commit()
            await self._event("login.mfa_required", client, actor=user.id, subject=user.id)
            return LoginResult(mfa_token=mfa)
        return LoginResult(tokens=await self._start_session(uow, user, device_name, client))

    # -- OpenID Connect ------------------------------------------------------------------------------------------

    def _provider(self, name: str) -> domain.OidcProvider:
        for p in self.oidc.providers() if self.oidc else []:
            if p.name == name:
                return p
        raise NotFound("no such login provider")

    def oidc_providers(self) -> list[str]:
        return [p.name for p in self.oidc.providers()] if self.oidc else []

    async def oidc_start(self, provider_name: str, redirect_uri: str) -> tuple[str, str]:
        provider = self._provider(provider_name)
        assert self.oidc is not None
        redirect_uri = redirect_uri or self.policy.oidc_redirect_uris[0]
        if redirect_uri not in self.policy.oidc_redirect_uris:
            raise InvalidArgument("redirect_uri", "is not one of this server's configured redirect URIs")
        state, nonce = new_secret_token(), new_secret_token()
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        async with self.uow() as uow:
            await uow.oidc_states.add(
                domain.OidcState(
                    token_hash(state),
                    provider.name,
                    nonce,
                    verifier,
                    redirect_uri,
                    self.clock.now() + self.policy.oidc_state_ttl,
                )
            )
            await uow.commit()
        url = await self.oidc.authorization_url(
            provider, redirect_uri=redirect_uri, state=state, nonce=nonce, code_challenge=challenge
        )
        return url, state

    async def oidc_finish(self, state: str, code: str, device_name: str, client: domain.Client) -> LoginResult:
        await self._throttle("login", self.limits.login.per_ip, client.ip)
        if not state or len(state) > 200 or not code or len(code) > 2048:
            raise Unauthenticated(BAD_TOKEN)
        async with self.uow() as uow:
            taken = await uow.oidc_states.take(token_hash(state), self.clock.now())
            await uow.commit()
        if taken is None:
            raise Unauthenticated(BAD_TOKEN)
        provider = self._provider(taken.provider)
        assert self.oidc is not None
        claims = await self.oidc.exchange(
            provider, code=code, redirect_uri=taken.redirect_uri, code_verifier=taken.code_verifier, nonce=taken.nonce
        )
        try:
            return await self._oidc_login(provider, claims, device_name, client)
        except _OidcRefused as refused:
            # Recorded once the transaction is over (the audit trail is written on its own connection).
            await self._event("login.oidc_refused", client, subject=refused.user_id)
            raise FailedPrecondition(
                "an account with this email address already exists: log in with its password",
                reason="OIDC_EMAIL_IN_USE",
            ) from None

    async def _oidc_login(
        self, provider: domain.OidcProvider, claims: domain.OidcClaims, device_name: str, client: domain.Client
    ) -> LoginResult:
        created = linked = False
        async with self.uow() as uow:
            user_id = await uow.identities.user_for(provider.name, claims.subject)
            if user_id is None:
                if not claims.email:
                    raise FailedPrecondition("the provider did not share an email address", reason="OIDC_NO_EMAIL")
                email = domain.normalise_email(claims.email)
                existing = await uow.users.by_email(email)
                decision = domain.oidc_link_decision(provider, claims, existing)
                if decision == "refuse":
                    raise _OidcRefused(existing.id if existing else "")
                if existing is not None:
                    user_id, linked = existing.id, True
                else:
                    user_id, created = str(uuid.uuid4()), True
                    await uow.users.add(
                        domain.User(
                            id=user_id,
                            email=email,
                            display_name=domain.clean_display_name(claims.name[: domain.MAX_DISPLAY_NAME], email),
                            role=domain.Role.USER,
                            password_hash=NO_PASSWORD,
                            created_at=self.clock.now(),
                            email_verified=claims.email_verified,
                        )
                    )
                await uow.identities.link(provider.name, claims.subject, user_id, self.clock.now())
                await uow.commit()
            user = await uow.users.by_id(user_id)
            if user is None or user.disabled:
                raise Unauthenticated(BAD_CREDENTIALS)
            if self.policy.require_verified_email and not user.email_verified:
                raise FailedPrecondition(
                    "the provider has not verified this email address", reason="EMAIL_NOT_VERIFIED"
                )
            result = await self._finish_first_factor(uow, user, device_name, client)
        if created:
            await self._event("oidc.account_created", client, actor=user.id, subject=user.id, provider=provider.name)
        if linked:
            await self._event("oidc.linked", client, actor=user.id, subject=user.id, provider=provider.name)
        if result.tokens is not None:
            await self._event("login.ok", client, actor=user.id, subject=user.id, provider=provider.name)
        return result

    async def _check_second_factor(self, uow: UnitOfWork, user: domain.User, code: str) -> str:
        """Accept a TOTP code once (its step is recorded only if newer than the last accepted one, in one
        conditional write: the same code sent twice in parallel passes once) or a recovery code."""
        code = code.strip()
        if domain.is_totp_code(code):
            step = self.totp.matching_step(user.totp_secret, code)
            if step is None or step <= user.totp_last_step or not await uow.users.use_totp_step(user.id, step):
                return ""
            user.totp_last_step = step
            return "totp"
        normalised = domain.normalise_recovery_code(code)
        if (
            normalised
            and len(normalised) <= 64
            and await uow.recovery_codes.use(user.id, token_hash(normalised), self.clock.now())
        ):
            return "recovery_code"
        return ""

    async def login_totp(self, mfa_token: str, code: str, client: domain.Client) -> Tokens:
        await self._throttle("totp", self.limits.totp.per_ip, client.ip)
        if not mfa_token or len(mfa_token) > 200:
            raise Unauthenticated(BAD_TOKEN)
        async with self._read() as uow:
            found = await uow.tokens.get(token_hash(mfa_token))
        now = self.clock.now()
        if found is None or found.purpose != domain.Purpose.MFA or found.used_at or found.expires_at <= now:
            raise Unauthenticated(BAD_TOKEN)
        # Counted as a failure before it is checked (and uncounted if right): parallel guesses cannot all pass.
        attempt = await self._reserve_failure("totp", self.limits.totp.per_account, found.user_id)
        async with self.uow() as uow:
            user = await self._user(uow, found.user_id)
            method = await self._check_second_factor(uow, user, code)
            tokens = None
            if method:
                if not await uow.tokens.use(found.token_hash, now):
                    raise Unauthenticated(BAD_TOKEN)
                device = str(json.loads(found.data or "{}").get("device_name", ""))
                tokens = await self._start_session(uow, user, device, client)
        # Recorded after the transaction is over (the audit trail is written on its own connection).
        if tokens is None:
            await self._event("login.totp_failed", client, subject=user.id)
            raise Unauthenticated(BAD_CODE)
        await self._release("totp", user.id, attempt)
        await self._event("login.ok", client, actor=user.id, subject=user.id, second_factor=method)
        return tokens

    async def refresh(self, refresh_token: str, client: domain.Client) -> Tokens:
        if not refresh_token or len(refresh_token) > 200:
            raise Unauthenticated("refresh token not valid")
        async with self.uow() as uow:
            now = self.clock.now()
            found = await uow.refresh_tokens.get(token_hash(refresh_token))
            if found is None:
                raise Unauthenticated("refresh token not valid")
            session = await uow.sessions.get(found.session_id)
            if session is None:
                raise Unauthenticated("refresh token not valid")
            if found.used_at is not None or not await uow.refresh_tokens.use(found.token_hash, now):
                # Replayed: whoever holds the newer token may be a thief, or the thief is replaying. Kill both.
                revoked = await uow.sessions.revoke(session.id, now, "refresh_reuse")
                await uow.commit()
                if revoked:
                    await self._event("session.refresh_reused", client, subject=session.user_id, session_id=session.id)
                raise Unauthenticated("refresh token already used; the session has been ended")
            if not session.is_active(now, self.policy.session_idle):
                raise Unauthenticated(SESSION_ENDED)
            user = await self._user(uow, session.user_id)
            new = new_secret_token()
            await uow.refresh_tokens.add(domain.RefreshToken(token_hash(new), session.id, now))
            await uow.sessions.touch(session.id, now)
            await uow.commit()
        return Tokens(self.issuer.issue_access(user, session.id), self.issuer.ttl_seconds, new)

    async def session_active(self, session_id: str) -> bool:
        """The revocation check every service makes (through a short cache) on every call."""
        return await self.session_role(session_id) is not None

    async def session_role(self, session_id: str) -> domain.Role | None:
        """The role the session's account holds now (its record, whatever its tokens claim); None if the session
        cannot be used (ended, idle, unknown, or its account disabled)."""
        if not session_id or len(session_id) > 64:
            return None
        async with self._read() as uow:
            now = self.clock.now()
            session = await uow.sessions.get(session_id)
            if session is None or not session.is_active(now, self.policy.session_idle):
                return None
            user = await uow.users.by_id(session.user_id)
        if user is None or user.disabled:
            return None
        if now - (session.last_seen_at or session.created_at) > TOUCH_EVERY:
            async with self.uow() as uow:
                await uow.sessions.touch(session.id, now)
                await uow.commit()
        return user.role

    async def logout(self, user_id: str, session_id: str, client: domain.Client) -> None:
        async with self.uow() as uow:
            revoked = await uow.sessions.revoke(session_id, self.clock.now(), "logout")
            await uow.commit()
        if revoked:
            await self._event("logout", client, actor=user_id, subject=user_id, session_id=session_id)

    # -- sessions ----------------------------------------------------------------------------------------------

    async def list_sessions(self, user_id: str) -> list[domain.Session]:
        async with self._read() as uow:
            all_sessions = await uow.sessions.for_user(user_id)
        now = self.clock.now()
        return [s for s in all_sessions if s.is_active(now, self.policy.session_idle)]

    async def revoke_session(self, user_id: str, session_id: str, client: domain.Client) -> None:
        async with self.uow() as uow:
            session = await uow.sessions.get(session_id) if len(session_id) <= 64 else None
            if session is None or session.user_id != user_id:
                raise NotFound("session not found")
            revoked = await uow.sessions.revoke(session.id, self.clock.now(), "revoked")
            await uow.commit()
        if revoked and session.kind == domain.SessionKind.APP_PASSWORD:
            await self._app_password_revoked(session, client)
        elif revoked:
            await self._event("session.revoked", client, actor=user_id, subject=user_id, session_id=session_id)

    async def revoke_other_sessions(self, user_id: str, current: str, client: domain.Client) -> int:
        async with self.uow() as uow:
            count = await uow.sessions.revoke_all(user_id, self.clock.now(), "revoked", keep=current)
            await uow.commit()
        await self._event("session.revoked_others", client, actor=user_id, subject=user_id, count=str(count))
        return count

    # -- app passwords and HTTP Basic ----------------------------------------------------------------------------

    async def create_app_password(
        self, user_id: str, session_id: str, name: str, client: domain.Client
    ) -> NewAppPassword:
        """A named app password: a session of its own (so the sessions list shows it and ending sessions ends it)
        holding the hash of a 160-bit secret, which is returned this once. Only a login session may make one: an
        app password cannot mint more of itself."""
        name = domain.clean_app_password_name(name)
        secret = new_app_password()
        now = self.clock.now()
        async with self.uow() as uow:
            await self._user(uow, user_id)
            await self._require_login_session(uow, session_id)
            live = [
                s
                for s in await uow.sessions.for_user(user_id)
                if s.kind == domain.SessionKind.APP_PASSWORD and s.is_active(now, self.policy.session_idle)
            ]
            limit = self.policy.app_passwords_per_account
            if len(live) >= limit:
                raise ResourceExhausted(
                    f"an account may have at most {limit} app passwords; revoke one it no longer needs",
                    limit="auth.app_passwords_per_account",
                )
            session = domain.Session(
                id=str(uuid.uuid4()),
                user_id=user_id,
                device_name=name,
                created_at=now,
                ip=client.ip,
                user_agent=client.user_agent[: domain.MAX_USER_AGENT],
                kind=domain.SessionKind.APP_PASSWORD,
                secret_hash=app_password_hash(domain.normalise_app_password(secret)),
            )
            await uow.sessions.add(session)
            await uow.commit()
        await self._event(
            "app_password.created", client, actor=user_id, subject=user_id, app_password_id=session.id, name=name
        )
        return NewAppPassword(session, secret)

    async def _require_login_session(self, uow: UnitOfWork, session_id: str) -> None:
        current = await uow.sessions.get(session_id) if session_id else None
        if current is not None and current.kind != domain.SessionKind.LOGIN:
            raise PermissionDenied("app passwords are managed from a login (the web app or `flowdock login`)")

    async def list_app_passwords(self, user_id: str) -> list[domain.Session]:
        """The app passwords that still work, newest first."""
        async with self._read() as uow:
            found = await uow.sessions.for_user(user_id)
        now = self.clock.now()
        live = [
            s for s in found if s.kind == domain.SessionKind.APP_PASSWORD and s.is_active(now, self.policy.session_idle)
        ]
        return sorted(live, key=lambda s: s.created_at, reverse=True)

    async def revoke_app_password(
        self, user_id: str, session_id: str, app_password_id: str, client: domain.Client
    ) -> None:
        """Ends it at once: the next HTTP Basic request with it is refused (AuthenticateBasic reads the database on
        every call), and the access tokens it was given die with its session (the services' revocation check)."""
        async with self.uow() as uow:
            found = await uow.sessions.get(app_password_id) if len(app_password_id) <= 64 else None
            if (
                found is None
                or found.user_id != user_id
                or found.kind != domain.SessionKind.APP_PASSWORD
                or found.revoked_at is not None
            ):
                raise NotFound("app password not found (revoked already, or never one of yours)")
            await self._require_login_session(uow, session_id)
            revoked = await uow.sessions.revoke(found.id, self.clock.now(), "revoked")
            await uow.commit()
        if revoked:
            await self._app_password_revoked(found, client)

    async def _app_password_revoked(self, session: domain.Session, client: domain.Client) -> None:
        await self._event(
            "app_password.revoked",
            client,
            actor=session.user_id,
            subject=session.user_id,
            app_password_id=session.id,
            name=session.device_name,
        )

    async def _basic_gate(self, email: str, client: domain.Client) -> None:
        """Refuse before any check when the address or the account has used up its failed attempts (Login's limits).
        Successes count nothing here: a WebDAV client makes one call per file, and counting every call would
        throttle honest clients. A read per key, no write: the success path stays cheap."""
        window = self.limits.window_seconds
        for key, limit, name in (
            (f"login:{client.ip}" if client.ip else "", self.limits.login.per_ip, "auth.login"),
            (f"login-failed:{email}" if email else "", self.limits.login.per_account, "auth.login.account"),
        ):
            if limit <= 0 or not key or await self.limiter.count(key, window_seconds=window) < limit:
                continue
            attempt, wait = await self.limiter.reserve(key, limit=limit, window_seconds=window)
            if wait is None:  # an old failure slid out of the window meanwhile: not refused after all
                await self.limiter.release(key, attempt)
                continue
            raise ResourceExhausted(
                f"too many failed login attempts; try again in {int(wait) + 1} s", limit=name, retry_after_seconds=wait
            )

    async def _basic_failed(
        self, email: str, user: domain.User | None, client: domain.Client, *, account_counted: bool = False
    ) -> Unauthenticated:
        """Count a failure against the address and the account (as a failed Login is), record it, and say what to
        use instead."""
        window = self.limits.window_seconds
        if self.limits.login.per_ip > 0 and client.ip:
            await self.limiter.hit(f"login:{client.ip}", limit=self.limits.login.per_ip, window_seconds=window)
        if self.limits.login.per_account > 0 and email and not account_counted:
            await self.limiter.hit(f"login-failed:{email}", limit=self.limits.login.per_account, window_seconds=window)
        await self._event("login.failed", client, subject=user.id if user else "", via="basic")
        return Unauthenticated(BASIC_REFUSED_PASSWORD_ALLOWED if self.policy.basic_account_password else BASIC_REFUSED)

    async def authenticate_basic(self, email: str, password: str, client: domain.Client) -> BasicLogin:
        """HTTP Basic credentials (the WebDAV service asks on every request): the account email and an app password,
        checked with one indexed lookup of the secret's hash; the account password only if the server allows it
        and the account has no 2FA (then Argon2, as Login). Failures count against Login's per-address and
        per-account limits. Answers with a fresh access token of the app password's session."""
        try:
            email = domain.normalise_email(email)
        except InvalidArgument:
            email = ""
        await self._basic_gate(email, client)
        secret = domain.normalise_app_password(password)
        now = self.clock.now()
        user: domain.User | None = None
        session: domain.Session | None = None
        if email:
            async with self._read() as uow:
                user = await uow.users.by_email(email)
                if user is not None and secret:
                    session = await uow.sessions.by_secret(app_password_hash(secret))
        active = user if user is not None and not user.disabled else None
        if (
            active is not None
            and session is not None
            and session.user_id == active.id
            and session.kind == domain.SessionKind.APP_PASSWORD
            and session.is_active(now, self.policy.session_idle)
        ):
            # last_used: one write a minute at most, not one per request.
            if session.last_seen_at is None or now - session.last_seen_at >= TOUCH_EVERY:
                async with self.uow() as uow:
                    await uow.sessions.touch(session.id, now)
                    await uow.commit()
            return self._basic_login(active, session.id, now)
        if not self.policy.basic_account_password:
            raise await self._basic_failed(email, user, client)
        return await self._basic_with_account_password(email, password, active, client)

    def _basic_login(self, user: domain.User, session_id: str, now: datetime) -> BasicLogin:
        token = self.issuer.issue_access(user, session_id)
        return BasicLogin(user.id, session_id, token, now + timedelta(seconds=self.issuer.ttl_seconds))

    async def _basic_with_account_password(
        self, email: str, password: str, user: domain.User | None, client: domain.Client
    ) -> BasicLogin:
        """The account password over HTTP Basic (allowed by setting): never for an account with 2FA. Costs one
        Argon2 verification either way (a dummy one when there is nothing to check), so timing tells nothing."""
        usable = (
            user is not None
            and not user.totp_enabled
            and user.password_hash != NO_PASSWORD
            and 0 < len(password) <= domain.MAX_PASSWORD
        )
        attempt = await self._reserve_failure("login", self.limits.login.per_account, email)
        if user is None or not usable:
            try:
                await self._verify_dummy(password[: domain.MAX_PASSWORD], client)
            except ResourceExhausted:
                await self._release("login", email, attempt)
                raise
            raise await self._basic_failed(email, user, client, account_counted=True)
        if not await self._verify("login", email, attempt, user.password_hash, password, client.ip):
            raise await self._basic_failed(email, user, client, account_counted=True)
        await self._release("login", email, attempt)
        if self.policy.require_verified_email and not user.email_verified:
            raise FailedPrecondition(
                "this email address is not verified yet: open the link we mailed you (or ask for a new one)",
                reason="EMAIL_NOT_VERIFIED",
            )
        now = self.clock.now()
        async with self.uow() as uow:
            # One session per account and client address, reused while it lives (not one per request).
            mine = [
                s
                for s in await uow.sessions.for_user(user.id)
                if s.kind == domain.SessionKind.BASIC_PASSWORD
                and s.ip == client.ip
                and s.is_active(now, self.policy.session_idle)
            ]
            if mine:
                session = mine[0]
                if session.last_seen_at is None or now - session.last_seen_at >= TOUCH_EVERY:
                    await uow.sessions.touch(session.id, now)
            else:
                session = domain.Session(
                    id=str(uuid.uuid4()),
                    user_id=user.id,
                    device_name=domain.clean_device_name(f"HTTP Basic: {client.user_agent}", ""),
                    created_at=now,
                    ip=client.ip,
                    user_agent=client.user_agent[: domain.MAX_USER_AGENT],
                    last_seen_at=now,
                    expires_at=now + self.policy.session_max_age,
                    kind=domain.SessionKind.BASIC_PASSWORD,
                )
                await uow.sessions.add(session)
            await uow.commit()
        if not mine:
            await self._event("login.ok", client, actor=user.id, subject=user.id, via="basic")
        return self._basic_login(user, session.id, now)

    # -- passwords ---------------------------------------------------------------------------------------------

    async def request_recovery(self, email: str, client: domain.Client) -> None:
        """Always the same answer; a mail goes out only if the account exists."""
        try:
            email = domain.normalise_email(email)
        except InvalidArgument:
            return
        await self._throttle("recovery", self.limits.recovery.per_ip, client.ip)
        await self._throttle("recovery", self.limits.recovery.per_account, email)
        async with self.uow() as uow:
            user = await uow.users.by_email(email)
            if user is not None and not user.disabled:
                await uow.tokens.discard(user.id, domain.Purpose.RESET_PASSWORD)
                token = await self._new_one_time(uow, domain.Purpose.RESET_PASSWORD, user.id, self.policy.reset_ttl)
                await uow.commit()
        if user is None or user.disabled:
            await self._event("recovery.requested_unknown", client)
            return
        minutes = int(self.policy.reset_ttl.total_seconds() // 60)
        self._mail(
            email,
            "Reset your FlowDock password",
            "Open this link to choose a new password:\n\n"
            f"{self._link('reset-password', token)}\n\nThe link works once and expires in {minutes} minutes. "
            "If you did not ask for it, ignore this mail: your password stays as it is.",
        )
        await self._event("recovery.requested", client, subject=user.id)

    async def reset_password(self, token: str, new_password: str, client: domain.Client) -> None:
        """Sets the password and ends every session. It logs nobody in: 2FA still applies at the next login.

        Cheap checks first: the token is looked up (one SHA-256 and one indexed read) before the new password is
        hashed, so garbage tokens cost no Argon2; attempts are throttled per client IP."""
        await self._throttle("reset", self.limits.reset.per_ip, client.ip)
        domain.check_password(new_password, self.common_passwords, field_name="new_password")
        async with self._read() as uow:
            await self._peek(uow, token, (domain.Purpose.RESET_PASSWORD,))
        password_hash = await self.hasher.hash(new_password, requester=client.ip)
        async with self.uow() as uow:
            found = await self._consume(uow, token, (domain.Purpose.RESET_PASSWORD,))
            user = await uow.users.by_id(found.user_id)
            if user is None or user.disabled:
                raise Unauthenticated(BAD_TOKEN)
            await uow.users.set_password_hash(user.id, password_hash)
            await uow.users.mark_email_verified(user.id)  # the mailed link proves the address
            count = await uow.sessions.revoke_all(user.id, self.clock.now(), "password_reset")
            await uow.commit()
        await self._event("password.reset", client, subject=user.id, sessions_revoked=str(count))

    async def _check_current_password(
        self, user_id: str, password: str, client: domain.Client, *, failed_event: str = ""
    ) -> domain.User:
        """The re-authentication of a signed-in caller (change password or email, disable 2FA): throttled per
        client IP and, counting failures first, per account (a stolen session cannot guess on)."""
        await self._throttle("password", self.limits.password.per_ip, client.ip)
        attempt = await self._reserve_failure("password", self.limits.password.per_account, user_id)
        async with self._read() as uow:
            user = await self._user(uow, user_id)
        if not await self._verify("password", user_id, attempt, user.password_hash, password, client.ip):
            if failed_event:
                await self._event(failed_event, client, actor=user_id, subject=user_id)
            raise PermissionDenied("the current password is not correct")
        await self._release("password", user_id, attempt)
        return user

    async def change_password(
        self, user_id: str, session_id: str, current: str, new: str, revoke_others: bool, client: domain.Client
    ) -> None:
        domain.check_password(new, self.common_passwords, field_name="new_password")
        user = await self._check_current_password(user_id, current, client, failed_event="password.change_failed")
        new_hash = await self.hasher.hash(new, requester=client.ip)
        async with self.uow() as uow:
            # Only if the password is still the one just verified (a concurrent change or reset wins).
            if not await uow.users.set_password_hash(user_id, new_hash, expected=user.password_hash):
                raise Aborted("the password was changed meanwhile; try again with the current one")
            count = 0
            if revoke_others:
                count = await uow.sessions.revoke_all(user_id, self.clock.now(), "password_changed", keep=session_id)
            await uow.commit()
        await self._event("password.changed", client, actor=user_id, subject=user_id, sessions_revoked=str(count))

    # -- profile -------------------------------------------------------------------------------------------------

    async def get(self, user_id: str) -> domain.User:
        async with self._read() as uow:
            user = await uow.users.by_id(user_id)
        if user is None:
            raise NotFound("account not found")
        return user

    async def update_profile(self, user_id: str, display_name: str, client: domain.Client) -> domain.User:
        async with self.uow() as uow:
            user = await self._user(uow, user_id)
            user.display_name = domain.clean_display_name(display_name, user.email)
            await uow.users.set_display_name(user_id, user.display_name)
            await uow.commit()
        await self._event("profile.updated", client, actor=user_id, subject=user_id)
        return user

    async def change_email(self, user_id: str, new_email: str, current_password: str, client: domain.Client) -> None:
        email = domain.normalise_email(new_email)
        await self._throttle("resend", self.limits.resend.per_account, user_id)
        user = await self._check_current_password(user_id, current_password, client)
        if email == user.email:
            raise InvalidArgument("new_email", "is the current address")
        async with self.uow() as uow:
            if await uow.users.by_email(email) is not None:
                return  # same answer: the address's owner does not need telling, the link is never sent
            await uow.tokens.discard(user.id, domain.Purpose.CHANGE_EMAIL)
            token = await self._new_one_time(
                uow, domain.Purpose.CHANGE_EMAIL, user.id, self.policy.verify_ttl, data=email
            )
            await uow.commit()
        self._mail(email, "Confirm your new FlowDock email address", self._verify_body(token))
        await self._event("email.change_requested", client, actor=user_id, subject=user_id)

    # -- TOTP ----------------------------------------------------------------------------------------------------

    async def _require_recent_login(self, uow: UnitOfWork, session_id: str) -> None:
        """Changing 2FA needs a session whose password (or OpenID) login is recent: a stolen, long-lived session
        cannot turn 2FA on and lock the owner out."""
        session = await uow.sessions.get(session_id) if session_id else None
        if session is None or self.clock.now() - session.created_at > self.policy.reauth_window:
            minutes = int(self.policy.reauth_window.total_seconds() // 60)
            raise FailedPrecondition(
                f"log in again first: changing 2FA needs a login from the last {minutes} minutes",
                reason="REAUTHENTICATION_REQUIRED",
            )

    async def start_totp(self, user_id: str, client: domain.Client, session_id: str = "") -> TotpEnrollment:
        async with self.uow() as uow:
            user = await self._user(uow, user_id)
            await self._require_recent_login(uow, session_id)
            user.totp_secret = self.totp.new_secret()
            user.totp_last_step = 0
            if user.totp_enabled or not await uow.users.start_totp(user_id, user.totp_secret):
                raise FailedPrecondition("2FA is already on; disable it first", reason="TOTP_ALREADY_ENABLED")
            await uow.commit()
        uri = self.totp.uri(user.totp_secret, user.email)
        return TotpEnrollment(user.totp_secret, uri, self.totp.qr_svg(uri))

    async def confirm_totp(self, user_id: str, code: str, client: domain.Client, session_id: str = "") -> list[str]:
        attempt = await self._reserve_failure("totp", self.limits.totp.per_account, user_id)
        async with self._read() as uow:
            user = await self._user(uow, user_id)
            problem: FailedPrecondition | None = None
            try:
                await self._require_recent_login(uow, session_id)
            except FailedPrecondition as exc:
                problem = exc
            if problem is None and user.totp_enabled:
                problem = FailedPrecondition("2FA is already on", reason="TOTP_ALREADY_ENABLED")
            elif problem is None and not user.totp_secret:
                problem = FailedPrecondition(
                    "start the enrolment first (POST /api/v1/me/totp)", reason="TOTP_NOT_STARTED"
                )
        if problem is not None:  # not a wrong code: uncounted
            await self._release("totp", user_id, attempt)
            raise problem
        async with self.uow() as uow:
            step = self.totp.matching_step(user.totp_secret, code.strip()) if domain.is_totp_code(code) else None
            if step is None:
                raise InvalidArgument("code", "is not the current code of the authenticator")
            codes = [secrets.token_hex(5) for _ in range(domain.RECOVERY_CODES)]
            if not await uow.users.enable_totp(user_id, user.totp_secret, step):
                raise FailedPrecondition("2FA changed meanwhile; start the enrolment again", reason="TOTP_CHANGED")
            await uow.recovery_codes.replace(user_id, [token_hash(c) for c in codes])
            await uow.commit()
        await self._release("totp", user_id, attempt)
        await self._event("totp.enabled", client, actor=user_id, subject=user_id)
        return [f"{c[:5]}-{c[5:]}" for c in codes]

    async def disable_totp(self, user_id: str, password: str, code: str, client: domain.Client) -> None:
        async with self._read() as uow:
            user = await self._user(uow, user_id)
        if not user.totp_enabled:
            raise FailedPrecondition("2FA is not on", reason="TOTP_NOT_ENABLED")
        await self._check_current_password(user_id, password, client)
        attempt = await self._reserve_failure("totp", self.limits.totp.per_account, user_id)
        async with self.uow() as uow:
            user = await self._user(uow, user_id)
            ok = user.totp_enabled and bool(await self._check_second_factor(uow, user, code))
            if ok:
                await uow.users.disable_totp(user_id)
                await uow.recovery_codes.clear(user_id)
                await uow.commit()
        if not ok:
            raise PermissionDenied(BAD_CODE)
        await self._release("totp", user_id, attempt)
        await self._event("totp.disabled", client, actor=user_id, subject=user_id)

    # -- activity ------------------------------------------------------------------------------------------------

    async def my_activity(
        self,
        user_id: str,
        page_size: int,
        page_token: str,
        *,
        kind_prefixes: Sequence[str] = (),
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> tuple[list[domain.Event], str]:
        """The caller's trail, filtered in the database (a filter over loaded pages would show empty pages)."""
        if len(kind_prefixes) > 10 or any(len(p) > 64 for p in kind_prefixes):
            raise InvalidArgument("kind_prefixes", "at most 10 prefixes of up to 64 characters each")
        if since is not None and until is not None and until <= since:
            raise InvalidArgument("end_time", "must be after start_time")
        return await self._activity(
            page_size, page_token, subject_id=user_id, kind_prefixes=kind_prefixes, since=since, until=until
        )

    async def _activity(
        self,
        page_size: int,
        page_token: str,
        *,
        subject_id: str = "",
        actor_id: str = "",
        kind_prefix: str = "",
        kind_prefixes: Sequence[str] = (),
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> tuple[list[domain.Event], str]:
        size = _page_size(page_size, self.policy)
        before = _decode_cursor(page_token)
        # A position in the trail: ASCII digits of a 64-bit number (str.isdigit() also takes "²", which int() does not).
        if before and not (_DIGITS.fullmatch(before) and int(before) < 2**63):
            raise pagetoken.bad_token()
        events = await self.audit.list(
            subject_id=subject_id,
            actor_id=actor_id,
            kind_prefix=kind_prefix,
            kind_prefixes=kind_prefixes,
            since=since,
            until=until,
            before=before,
            limit=size + 1,
        )
        more = len(events) > size
        events = events[:size]
        return events, (_encode_cursor(events[-1].cursor) if more and events else "")

    async def lookup_user(self, email: str) -> domain.User:
        """An active account by email, for other services (share_svc resolving a grantee); NotFound otherwise."""
        email = domain.normalise_email(email)
        async with self._read() as uow:
            user = await uow.users.by_email(email)
        if user is None or user.disabled:
            raise NotFound(f"no FlowDock account uses {email}; ask them to sign up first")
        return user

    async def lookup_user_id(self, user_id: str) -> domain.User:
        """An active account by id, for other services (share_svc naming who shared); NotFound otherwise."""
        async with self._read() as uow:
            user = await uow.users.by_id(user_id[:64])
        if user is None or user.disabled:
            raise NotFound(f"no account {user_id[:64]}")
        return user

    async def notify_user(self, user_id: str, subject: str, body: str) -> None:
        """Mail an account on another service's behalf (in the background; the address never leaves auth_svc)."""
        if not subject.strip() or len(subject) > 200 or any(c in subject for c in "\r\n"):
            raise InvalidArgument("subject", "must be one line of 1-200 characters")
        if len(body) > 10_000:
            raise InvalidArgument("body", "must be at most 10000 characters")
        async with self._read() as uow:
            user = await uow.users.by_id(user_id) if len(user_id) <= 64 else None
        if user is None or user.disabled:
            raise NotFound("account not found")
        self._mail(user.email, subject, body)

    async def record_external(self, events: list[domain.Event]) -> None:
        for e in events:
            if not e.id or len(e.id) > 64 or not e.kind:
                raise InvalidArgument("events", "every event needs an id (at most 64 characters) and a kind")
        await self.audit.record_many(events)

    # -- admin ---------------------------------------------------------------------------------------------------

    async def require_admin(
        self, user_id: str, action: str = "admin", client: domain.Client = NO_CLIENT
    ) -> domain.User:
        """Checked against the database, not the token's `role` claim (which may be minutes old). A refusal is
        recorded in the audit trail (denied authorisations are logged)."""
        async with self._read() as uow:
            user = await uow.users.by_id(user_id)
        if user is None or user.disabled or user.role != domain.Role.ADMIN:
            await self._event("authz.denied", client, actor=user_id, subject=user_id, action=action)
            raise PermissionDenied("this needs an administrator")
        return user

    async def list_users(
        self, admin_id: str, query: str, page_size: int, page_token: str, client: domain.Client = NO_CLIENT
    ) -> tuple[list[domain.User], str]:
        await self.require_admin(admin_id, "list_users", client)
        if len(query) > 254:
            raise InvalidArgument("query", "must be at most 254 characters")
        size = _page_size(page_size, self.policy)
        async with self._read() as uow:
            found = await uow.users.search(query.strip(), _email_cursor(page_token), size + 1)
        more = len(found) > size
        found = found[:size]
        return found, (_encode_cursor(found[-1].email) if more and found else "")

    async def get_user(self, admin_id: str, user_id: str, client: domain.Client = NO_CLIENT) -> tuple[domain.User, int]:
        """The account and how many of its sessions are in use (the admin's view of one account)."""
        await self.require_admin(admin_id, "get_user", client)
        async with self._read() as uow:
            user = await uow.users.by_id(user_id) if len(user_id) <= 64 else None
            sessions = await uow.sessions.for_user(user_id) if user is not None else []
        if user is None:
            raise NotFound("account not found")
        now = self.clock.now()
        return user, sum(1 for s in sessions if s.is_active(now, self.policy.session_idle))

    async def set_role(self, admin_id: str, user_id: str, role: domain.Role, client: domain.Client) -> domain.User:
        await self.require_admin(admin_id, "set_role", client)
        async with self.uow() as uow:
            user = await uow.users.by_id(user_id) if len(user_id) <= 64 else None
            if user is None:
                raise NotFound("account not found")
            if user.role == domain.Role.ADMIN and role != domain.Role.ADMIN and await uow.users.count_admins() <= 1:
                raise FailedPrecondition("this is the last administrator", reason="LAST_ADMIN")
            user.role = role
            await uow.users.set_role(user_id, role)
            await uow.commit()
        await self._event("admin.role_changed", client, actor=admin_id, subject=user_id, role=role.value)
        return user

    async def set_disabled(self, admin_id: str, user_id: str, disabled: bool, client: domain.Client) -> domain.User:
        """Disabling ends every session of the account at once (the revocation check sees it)."""
        await self.require_admin(admin_id, "set_disabled", client)
        if user_id == admin_id and disabled:
            raise FailedPrecondition("administrators cannot disable themselves", reason="SELF_DISABLE")
        async with self.uow() as uow:
            user = await uow.users.by_id(user_id) if len(user_id) <= 64 else None
            if user is None:
                raise NotFound("account not found")
            user.disabled = disabled
            await uow.users.set_disabled(user_id, disabled)
            count = await uow.sessions.revoke_all(user_id, self.clock.now(), "disabled") if disabled else 0
            await uow.commit()
        kind = "admin.user_disabled" if disabled else "admin.user_enabled"
        await self._event(kind, client, actor=admin_id, subject=user_id, sessions_revoked=str(count))
        return user

    def _storage(self) -> UserData:
        if self.user_data is None:
            raise FailedPrecondition("storage_svc is not configured (FLOWDOCK_STORAGE_ADDRESS)", reason="NO_STORAGE")
        return self.user_data

    async def _existing(self, user_id: str) -> domain.User:
        async with self._read() as uow:
            user = await uow.users.by_id(user_id) if len(user_id) <= 64 else None
        if user is None:
            raise NotFound("account not found")
        return user

    async def user_quota(self, admin_id: str, user_id: str, client: domain.Client = NO_CLIENT) -> domain.Quota:
        await self.require_admin(admin_id, "get_quota", client)
        await self._existing(user_id)
        return await self._storage().quota(user_id)

    async def set_user_quota(
        self, admin_id: str, user_id: str, limit_bytes: int, client: domain.Client
    ) -> domain.Quota:
        await self.require_admin(admin_id, "set_quota", client)
        if limit_bytes < 0:
            raise InvalidArgument("limit_bytes", "must be 0 (the default limit) or more")
        await self._existing(user_id)
        quota = await self._storage().set_quota(user_id, limit_bytes)
        await self._event(
            "admin.quota_set", client, actor=admin_id, subject=user_id, limit_bytes=str(quota.limit_bytes)
        )
        return quota

    async def delete_user(self, admin_id: str, user_id: str, client: domain.Client) -> int:
        """Disable and end every session first (nothing new gets written), then storage_svc deletes the files,
        then the account goes. A failure part-way leaves the account disabled; repeating the call finishes."""
        await self.require_admin(admin_id, "delete_user", client)
        if user_id == admin_id:
            raise FailedPrecondition("administrators cannot delete themselves", reason="SELF_DELETE")
        storage = self._storage()
        async with self.uow() as uow:
            user = await uow.users.by_id(user_id) if len(user_id) <= 64 else None
            if user is None:
                raise NotFound("account not found")
            if user.role == domain.Role.ADMIN and not user.disabled and await uow.users.count_admins() <= 1:
                raise FailedPrecondition("this is the last administrator", reason="LAST_ADMIN")
            user.disabled = True
            await uow.users.set_disabled(user_id, True)
            await uow.sessions.revoke_all(user_id, self.clock.now(), "deleted")
            await uow.commit()
        if self.user_shares is None:
            raise FailedPrecondition("share_svc is not configured (FLOWDOCK_SHARE_ADDRESS)", reason="NO_SHARE")
        # Shares and links first (nobody reaches the files through them any more), then the files, then the account.
        await self.user_shares.delete(user_id)
        freed = await storage.delete(user_id)
        async with self.uow() as uow:
            await uow.users.delete(user_id)
            await uow.commit()
        await self._event("admin.user_deleted", client, actor=admin_id, subject=user_id, freed_bytes=str(freed))
        return freed

    async def list_activity(
        self,
        admin_id: str,
        page_size: int,
        page_token: str,
        *,
        subject_id: str,
        actor_id: str,
        kind_prefix: str,
        since: datetime | None = None,
        until: datetime | None = None,
        client: domain.Client = NO_CLIENT,
    ) -> tuple[list[domain.Event], str]:
        await self.require_admin(admin_id, "list_activity", client)
        if since is not None and until is not None and until <= since:
            raise InvalidArgument("end_time", "must be after start_time")
        return await self._activity(
            page_size,
            page_token,
            subject_id=subject_id[:64],
            actor_id=actor_id[:64],
            kind_prefix=kind_prefix[:64],
            since=since,
            until=until,
        )
