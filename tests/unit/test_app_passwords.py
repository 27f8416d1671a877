"""App passwords and HTTP Basic (auth_svc/usecases.py) over the in-memory fakes (tests/support/fakes_auth.py): what
WebDAV and other non-interactive clients log in with. The same through the real databases, gateway and CLI:
tests/auth/test_app_passwords.py."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest

from auth_svc.domain import Client, Role, SessionKind
from auth_svc.usecases import (
    BASIC_REFUSED,
    BASIC_REFUSED_PASSWORD_ALLOWED,
    Accounts,
    Limit,
    Limits,
    Policy,
)
from flowdock_kernel.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)
from tests.support.fakes_auth import AuthFakes

PASSWORD = "correct horse battery staple"
CLIENT = Client("203.0.113.7", "pytest")
DAV = Client("198.51.100.9", "rclone/v1.60")
EMAIL = "ada@example.org"
SECRET_FORMAT = re.compile(r"^[a-z2-7]{4}(-[a-z2-7]{4}){7}$")


@pytest.fixture
def fakes() -> AuthFakes:
    return AuthFakes()


@pytest.fixture
def accounts(fakes: AuthFakes) -> Accounts:
    return fakes.accounts()


async def registered(fakes: AuthFakes, accounts: Accounts, email: str = EMAIL) -> str:
    """A verified account (through the mailed link); its id."""
    await accounts.register(email, PASSWORD, "Ada", CLIENT)
    await accounts.drain()
    await accounts.verify_email(fakes.mailer.last_token(email, "Confirm"), CLIENT)
    return fakes.user(email).id


async def logged_in(accounts: Accounts, email: str = EMAIL) -> str:
    """The session id of a new password login."""
    result = await accounts.login(email, PASSWORD, "laptop", CLIENT)
    assert result.tokens is not None
    return result.tokens.access_token.split(":")[2]


async def with_app_password(fakes: AuthFakes, accounts: Accounts, name: str = "rclone") -> tuple[str, str, str]:
    """(user id, app password id, secret) of a new account with one app password."""
    user_id = await registered(fakes, accounts)
    made = await accounts.create_app_password(user_id, await logged_in(accounts), name, CLIENT)
    return user_id, made.session.id, made.secret


# -- creating, listing, revoking --------------------------------------------------------------------------------


async def test_an_app_password_is_a_random_secret_shown_once_and_stored_hashed(
    fakes: AuthFakes, accounts: Accounts
) -> None:
    user_id, app_id, secret = await with_app_password(fakes, accounts, "  laptop WebDAV ")
    assert SECRET_FORMAT.match(secret), secret  # 32 base32 characters: 160 bits
    stored = fakes.store.state.sessions[app_id]
    assert stored.kind == SessionKind.APP_PASSWORD and stored.device_name == "laptop WebDAV"
    assert stored.secret_hash == hashlib.sha256(secret.replace("-", "").encode()).hexdigest()
    assert secret not in repr(fakes.store.state) and secret.replace("-", "") not in repr(fakes.store.state)
    assert stored.expires_at is None and stored.last_seen_at is None
    listed = await accounts.list_app_passwords(user_id)
    assert [(a.id, a.device_name, a.last_seen_at) for a in listed] == [(app_id, "laptop WebDAV", None)]
    created = fakes.audit.last("app_password.created")
    assert created.subject_id == user_id and created.details == {"app_password_id": app_id, "name": "laptop WebDAV"}
    assert secret not in repr(fakes.audit.events)
    fakes.clock.advance(seconds=1)
    other = await accounts.create_app_password(user_id, await logged_in(accounts), "phone", CLIENT)
    assert other.secret != secret
    assert [a.device_name for a in await accounts.list_app_passwords(user_id)] == ["phone", "laptop WebDAV"]


@pytest.mark.parametrize(
    ("name", "problem"), [("", "is required"), ("   ", "is required"), ("x" * 101, "at most 100"), ("a\nb", "control")]
)
async def test_an_app_password_needs_a_usable_name(
    fakes: AuthFakes, accounts: Accounts, name: str, problem: str
) -> None:
    user_id = await registered(fakes, accounts)
    with pytest.raises(InvalidArgument) as refused:
        await accounts.create_app_password(user_id, await logged_in(accounts), name, CLIENT)
    assert refused.value.field == "name" and problem in refused.value.description
    assert await accounts.list_app_passwords(user_id) == []


async def test_an_account_has_a_bounded_number_of_app_passwords(fakes: AuthFakes) -> None:
    accounts = fakes.accounts(policy=Policy(app_passwords_per_account=2))
    user_id = await registered(fakes, accounts)
    session = await logged_in(accounts)
    first = await accounts.create_app_password(user_id, session, "one", CLIENT)
    await accounts.create_app_password(user_id, session, "two", CLIENT)
    with pytest.raises(ResourceExhausted) as full:
        await accounts.create_app_password(user_id, session, "three", CLIENT)
    assert full.value.limit == "auth.app_passwords_per_account" and "at most 2" in full.value.message
    await accounts.revoke_app_password(user_id, session, first.session.id, CLIENT)
    await accounts.create_app_password(user_id, session, "three", CLIENT)  # revoked ones do not count


async def test_an_app_password_cannot_make_or_revoke_app_passwords(fakes: AuthFakes, accounts: Accounts) -> None:
    user_id, app_id, secret = await with_app_password(fakes, accounts)
    dav_session = (await accounts.authenticate_basic(EMAIL, secret, DAV)).session_id
    with pytest.raises(PermissionDenied):
        await accounts.create_app_password(user_id, dav_session, "more", DAV)
    with pytest.raises(PermissionDenied):
        await accounts.revoke_app_password(user_id, dav_session, app_id, DAV)
    assert [a.id for a in await accounts.list_app_passwords(user_id)] == [app_id]


async def test_revoking_an_app_password_refuses_it_at_the_next_request(fakes: AuthFakes, accounts: Accounts) -> None:
    user_id, app_id, secret = await with_app_password(fakes, accounts)
    session = await logged_in(accounts)
    assert (await accounts.authenticate_basic(EMAIL, secret, DAV)).session_id == app_id
    await accounts.revoke_app_password(user_id, session, app_id, CLIENT)
    with pytest.raises(Unauthenticated) as refused:
        await accounts.authenticate_basic(EMAIL, secret, DAV)
    assert refused.value.message == BASIC_REFUSED
    assert not await accounts.session_active(app_id)  # its access tokens die with it at every service
    assert await accounts.list_app_passwords(user_id) == []
    revoked = fakes.audit.last("app_password.revoked")
    assert revoked.details == {"app_password_id": app_id, "name": "rclone"} and revoked.actor_id == user_id


async def test_only_the_owner_can_revoke_an_app_password(fakes: AuthFakes, accounts: Accounts) -> None:
    _, app_id, secret = await with_app_password(fakes, accounts)
    eve = await registered(fakes, accounts, "eve@example.org")
    eve_session = await logged_in(accounts, "eve@example.org")
    for target in (app_id, "no-such-id", eve_session):  # someone else's, unknown, a login session
        with pytest.raises(NotFound):
            await accounts.revoke_app_password(eve, eve_session, target, CLIENT)
    assert (await accounts.authenticate_basic(EMAIL, secret, DAV)).session_id == app_id


# -- app passwords are sessions ---------------------------------------------------------------------------------


async def test_app_passwords_are_listed_as_sessions_and_revoke_session_ends_one(
    fakes: AuthFakes, accounts: Accounts
) -> None:
    user_id, app_id, secret = await with_app_password(fakes, accounts)
    kinds = {s.id: s.kind for s in await accounts.list_sessions(user_id)}
    assert kinds[app_id] == SessionKind.APP_PASSWORD and list(kinds.values()).count(SessionKind.LOGIN) == 1
    await accounts.revoke_session(user_id, app_id, CLIENT)
    assert fakes.audit.last("app_password.revoked").details["app_password_id"] == app_id
    with pytest.raises(Unauthenticated):
        await accounts.authenticate_basic(EMAIL, secret, DAV)


async def test_ending_the_other_sessions_ends_app_passwords(fakes: AuthFakes, accounts: Accounts) -> None:
    user_id, _app_id, secret = await with_app_password(fakes, accounts)
    current = await logged_in(accounts)
    assert await accounts.revoke_other_sessions(user_id, current, CLIENT) == 2  # the first login and the app password
    assert [s.id for s in await accounts.list_sessions(user_id)] == [current]
    with pytest.raises(Unauthenticated):
        await accounts.authenticate_basic(EMAIL, secret, DAV)


async def test_a_password_change_ending_other_sessions_a_reset_and_disabling_end_app_passwords(
    fakes: AuthFakes, accounts: Accounts
) -> None:
    user_id, _, secret = await with_app_password(fakes, accounts)
    session = await logged_in(accounts)
    await accounts.change_password(user_id, session, PASSWORD, "another long password", False, CLIENT)
    await accounts.authenticate_basic(EMAIL, secret, DAV)  # kept: the user chose to keep the other sessions
    await accounts.change_password(user_id, session, "another long password", PASSWORD, True, CLIENT)
    with pytest.raises(Unauthenticated):
        await accounts.authenticate_basic(EMAIL, secret, DAV)

    made = await accounts.create_app_password(user_id, session, "again", CLIENT)
    await accounts.request_recovery(EMAIL, CLIENT)
    await accounts.drain()
    await accounts.reset_password(fakes.mailer.last_token(EMAIL, "Reset"), "a third long password", CLIENT)
    with pytest.raises(Unauthenticated):
        await accounts.authenticate_basic(EMAIL, made.secret, DAV)

    root = await registered(fakes, accounts, "root@example.org")
    fakes.store.state.users[root].role = Role.ADMIN
    fresh = await accounts.login(EMAIL, "a third long password", "", CLIENT)
    assert fresh.tokens is not None
    last = await accounts.create_app_password(user_id, fresh.tokens.access_token.split(":")[2], "last", CLIENT)
    await accounts.set_disabled(root, user_id, True, CLIENT)
    with pytest.raises(Unauthenticated) as refused:
        await accounts.authenticate_basic(EMAIL, last.secret, DAV)
    assert refused.value.message == BASIC_REFUSED


async def test_an_app_password_does_not_end_when_idle_or_old(fakes: AuthFakes, accounts: Accounts) -> None:
    user_id, app_id, secret = await with_app_password(fakes, accounts)
    fakes.clock.advance(Policy().session_max_age + timedelta(days=1))
    assert (await accounts.authenticate_basic(EMAIL, secret, DAV)).session_id == app_id
    assert [s.id for s in await accounts.list_sessions(user_id)] == [app_id]  # the logins ended


# -- HTTP Basic ---------------------------------------------------------------------------------------------------


async def test_basic_with_an_app_password_gives_a_short_token_of_its_session(
    fakes: AuthFakes, accounts: Accounts
) -> None:
    user_id, app_id, secret = await with_app_password(fakes, accounts)
    # Typed in any case, with or without the dashes, with spaces: the same secret.
    for typed in (secret, secret.upper(), secret.replace("-", ""), secret.replace("-", " ")):
        done = await accounts.authenticate_basic(" Ada@Example.org ", typed, DAV)
        assert (done.user_id, done.session_id) == (user_id, app_id)
        assert done.access_token.startswith(f"at:{user_id}:{app_id}:user:")
        assert done.expires_at == fakes.clock.now() + timedelta(seconds=fakes.issuer.ttl_seconds)
    assert fakes.hasher.verified == 1  # the login's: no Argon2 per request
    assert await accounts.session_active(app_id)


async def test_last_use_is_written_at_most_once_a_minute(fakes: AuthFakes, accounts: Accounts) -> None:
    user_id, _app_id, secret = await with_app_password(fakes, accounts)
    first_use = fakes.clock.now()
    await accounts.authenticate_basic(EMAIL, secret, DAV)
    commits = fakes.store.commits
    for _ in range(20):
        fakes.clock.advance(seconds=2)
        await accounts.authenticate_basic(EMAIL, secret, DAV)
    assert fakes.store.commits == commits  # 40 s of requests: no write
    assert (await accounts.list_app_passwords(user_id))[0].last_seen_at == first_use
    fakes.clock.advance(seconds=21)
    await accounts.authenticate_basic(EMAIL, secret, DAV)
    assert fakes.store.commits == commits + 1
    assert (await accounts.list_app_passwords(user_id))[0].last_seen_at == fakes.clock.now()


async def test_basic_refusals_say_to_use_an_app_password_and_reveal_nothing(
    fakes: AuthFakes, accounts: Accounts
) -> None:
    user_id, _, secret = await with_app_password(fakes, accounts)
    await registered(fakes, accounts, "eve@example.org")
    eve_secret = (
        await accounts.create_app_password(
            fakes.user("eve@example.org").id, await logged_in(accounts, "eve@example.org"), "eve's", CLIENT
        )
    ).secret
    cases = [
        (EMAIL, PASSWORD),  # the account password: not accepted by default
        (EMAIL, "aaaa-bbbb-cccc-dddd-eeee-ffff-gggg-hhhh"),  # app-password-shaped, unknown
        (EMAIL, eve_secret),  # someone else's app password
        ("nobody@example.org", secret),  # unknown account
        ("not an email", secret),
        (EMAIL, ""),
        (EMAIL, "x" * 5000),
    ]
    for email, password in cases:
        with pytest.raises(Unauthenticated) as refused:
            await accounts.authenticate_basic(email, password, DAV)
        assert refused.value.message == BASIC_REFUSED, (email, password)
        assert "app password" in refused.value.message
    assert fakes.hasher.verified == 2  # the two logins: no Argon2 for any of these
    failed = [e for e in fakes.audit.events if e.kind == "login.failed"]
    assert len(failed) == len(cases) and all(e.details == {"via": "basic"} and e.ip == DAV.ip for e in failed)
    assert failed[0].subject_id == user_id and failed[3].subject_id == ""


async def test_the_account_password_is_accepted_only_when_allowed_and_never_with_2fa(fakes: AuthFakes) -> None:
    accounts = fakes.accounts(policy=Policy(basic_account_password=True))
    user_id = await registered(fakes, accounts)
    first = await accounts.authenticate_basic(EMAIL, PASSWORD, DAV)
    again = await accounts.authenticate_basic(EMAIL, PASSWORD, DAV)
    assert first.user_id == user_id and again.session_id == first.session_id  # one session, not one per request
    kinds = {s.id: s.kind for s in await accounts.list_sessions(user_id)}
    assert kinds == {first.session_id: SessionKind.BASIC_PASSWORD}
    assert fakes.audit.last("login.ok").details == {"via": "basic"}
    with pytest.raises(Unauthenticated) as wrong:
        await accounts.authenticate_basic(EMAIL, "not the password", DAV)
    assert wrong.value.message == BASIC_REFUSED_PASSWORD_ALLOWED

    session = await logged_in(accounts)
    enrolment = await accounts.start_totp(user_id, CLIENT, session)
    await accounts.confirm_totp(user_id, fakes.totp.code(enrolment.secret), CLIENT, session)
    verified = fakes.hasher.verified
    with pytest.raises(Unauthenticated) as refused:
        await accounts.authenticate_basic(EMAIL, PASSWORD, DAV)  # the right password, but 2FA is on
    assert "two-factor" in refused.value.message and "app password" in refused.value.message
    assert fakes.hasher.verified == verified + 1  # a dummy verification: the same cost as a wrong password
    made = await accounts.create_app_password(user_id, session, "webdav", CLIENT)
    assert (await accounts.authenticate_basic(EMAIL, made.secret, DAV)).session_id == made.session.id


async def test_the_account_password_over_basic_needs_a_verified_email(fakes: AuthFakes) -> None:
    accounts = fakes.accounts(policy=Policy(basic_account_password=True))
    await accounts.register(EMAIL, PASSWORD, "Ada", CLIENT)
    await accounts.drain()
    with pytest.raises(FailedPrecondition) as unverified:
        await accounts.authenticate_basic(EMAIL, PASSWORD, DAV)
    assert unverified.value.reason == "EMAIL_NOT_VERIFIED"


# -- throttling ---------------------------------------------------------------------------------------------------


async def test_wrong_app_passwords_lock_the_account_like_failed_logins(fakes: AuthFakes) -> None:
    accounts = fakes.accounts(limits=Limits(window_seconds=300, login=Limit(3, 1000)))
    _, app_id, secret = await with_app_password(fakes, accounts)
    for _ in range(20):  # successes are not counted
        await accounts.authenticate_basic(EMAIL, secret, DAV)
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            await accounts.authenticate_basic(EMAIL, "aaaa-bbbb-cccc-dddd-eeee-ffff-gggg-hhhh", DAV)
    for password in ("aaaa-bbbb-cccc-dddd-eeee-ffff-gggg-hhhh", secret):  # even the right one, for the window
        with pytest.raises(ResourceExhausted) as locked:
            await accounts.authenticate_basic(EMAIL, password, DAV)
        assert locked.value.limit == "auth.login.account"
        assert locked.value.retry_after_seconds is not None and 0 < locked.value.retry_after_seconds <= 300
    with pytest.raises(ResourceExhausted):
        await accounts.login(EMAIL, PASSWORD, "", CLIENT)  # the same limit as Login's
    fakes.clock.advance(seconds=301)
    assert (await accounts.authenticate_basic(EMAIL, secret, DAV)).session_id == app_id


async def test_failed_logins_and_failed_basic_share_the_per_address_limit(fakes: AuthFakes) -> None:
    accounts = fakes.accounts(limits=Limits(window_seconds=300, login=Limit(0, 4)))
    _, _, secret = await with_app_password(fakes, accounts)  # its two logins came from CLIENT, not DAV
    for i in range(4):
        with pytest.raises(Unauthenticated):
            await accounts.authenticate_basic(f"guess{i}@example.org", secret, DAV)
    with pytest.raises(ResourceExhausted) as throttled:
        await accounts.authenticate_basic(EMAIL, secret, DAV)
    assert throttled.value.limit == "auth.login"
    with pytest.raises(ResourceExhausted):
        await accounts.login(EMAIL, PASSWORD, "", DAV)
    assert (await accounts.authenticate_basic(EMAIL, secret, CLIENT)).user_id  # another address is not held back
    fakes.clock.advance(seconds=301)
    await accounts.authenticate_basic(EMAIL, secret, DAV)
    assert fakes.limiter.counted(f"login:{DAV.ip}") == 0  # successes add nothing to the window
