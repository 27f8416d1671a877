"""auth_svc's use cases (auth_svc/usecases.py) over in-memory fakes of their ports (tests/support/fakes_auth.py):
the rules themselves, in milliseconds, with the clock in the test's hand. The same features through the real
adapters, databases and gateway: tests/auth/."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from auth_svc.domain import Client, OidcClaims, OidcProvider, Purpose, Role
from auth_svc.usecases import BAD_CODE, BAD_CREDENTIALS, BAD_TOKEN, SESSION_ENDED, Accounts, Limit, Limits, Policy
from flowdock_kernel.errors import (
    Aborted,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)
from tests.support.fakes_auth import AuthFakes, FakeOidcClient

PASSWORD = "correct horse battery staple"
CLIENT = Client("203.0.113.7", "pytest")


@pytest.fixture
def fakes() -> AuthFakes:
    return AuthFakes()


@pytest.fixture
def accounts(fakes: AuthFakes) -> Accounts:
    return fakes.accounts()


async def registered(fakes: AuthFakes, accounts: Accounts, email: str = "ada@example.org") -> str:
    """A verified account (through the mailed link); its id."""
    await accounts.register(email, PASSWORD, "Ada", CLIENT)
    await accounts.drain()
    await accounts.verify_email(fakes.mailer.last_token(email, "Confirm"), CLIENT)
    return fakes.user(email).id


async def logged_in(accounts: Accounts, email: str = "ada@example.org", device: str = "") -> tuple[str, str]:
    """(session id, refresh token) of a new login."""
    result = await accounts.login(email, PASSWORD, device, CLIENT)
    assert result.tokens is not None and not result.mfa_token
    _, _, session_id, _, _ = result.tokens.access_token.split(":")
    return session_id, result.tokens.refresh_token


# -- registration and verification ---------------------------------------------------------------------------


async def test_register_stores_a_hash_mails_a_link_and_verification_uses_it_once(
    fakes: AuthFakes, accounts: Accounts
) -> None:
    await accounts.register("  Ada@Example.org ", PASSWORD, "", CLIENT)
    await accounts.drain()
    user = fakes.user("ada@example.org")
    assert user.display_name == "ada" and user.role == Role.USER and not user.email_verified
    assert user.password_hash.startswith("fake$") and PASSWORD not in user.password_hash
    token = fakes.mailer.last_token("ada@example.org", "Confirm")
    assert fakes.audit.last("register").subject_id == user.id

    await accounts.verify_email(token, CLIENT)
    assert fakes.user("ada@example.org").email_verified
    with pytest.raises(Unauthenticated, match="not valid"):
        await accounts.verify_email(token, CLIENT)


async def test_a_verification_link_expires(fakes: AuthFakes, accounts: Accounts) -> None:
    await accounts.register("ada@example.org", PASSWORD, "Ada", CLIENT)
    await accounts.drain()
    fakes.clock.advance(Policy().verify_ttl)
    with pytest.raises(Unauthenticated) as refused:
        await accounts.verify_email(fakes.mailer.last_token("ada@example.org"), CLIENT)
    assert refused.value.message == BAD_TOKEN
    assert not fakes.user("ada@example.org").email_verified


@pytest.mark.parametrize(
    ("email", "password", "field"),
    [
        ("not-an-address", PASSWORD, "email"),
        ("", PASSWORD, "email"),
        ("ada@example.org", "short", "password"),
        ("ada@example.org", "x" * 129, "password"),
        ("ada@example.org", "password123", "password"),  # among the most common
    ],
)
async def test_registration_input_is_refused_naming_the_field(
    fakes: AuthFakes, email: str, password: str, field: str
) -> None:
    accounts = fakes.accounts(common_passwords=frozenset({"password123"}))
    with pytest.raises(InvalidArgument) as refused:
        await accounts.register(email, password, "Ada", CLIENT)
    assert refused.value.field == field
    assert fakes.store.state.users == {} and fakes.hasher.hashed == 0


async def test_registering_a_taken_email_answers_the_same_and_mails_its_owner_a_bounded_number_of_times(
    fakes: AuthFakes,
) -> None:
    accounts = fakes.accounts(limits=Limits(register=Limit(2, 100)))
    owner = await registered(fakes, accounts)
    for _ in range(3):
        await accounts.register("ada@example.org", "another password 42", "Eve", CLIENT)  # no error either
    await accounts.drain()
    assert len(fakes.store.state.users) == 1 and fakes.user("ada@example.org").id == owner
    warnings = [m for m in fakes.mailer.to("ada@example.org") if "tried to sign up" in m.subject]
    assert len(warnings) == 2
    assert [e.details["mailed"] for e in fakes.audit.events if e.kind == "register.existing"] == ["yes", "yes", "no"]


async def test_resend_verification_replaces_the_earlier_link(fakes: AuthFakes, accounts: Accounts) -> None:
    await accounts.register("ada@example.org", PASSWORD, "Ada", CLIENT)
    await accounts.drain()
    first = fakes.mailer.last_token("ada@example.org")
    await accounts.resend_verification("ada@example.org", CLIENT)
    await accounts.drain()
    second = fakes.mailer.last_token("ada@example.org")
    assert second != first
    with pytest.raises(Unauthenticated):
        await accounts.verify_email(first, CLIENT)
    await accounts.verify_email(second, CLIENT)
    assert fakes.user("ada@example.org").email_verified


# -- login, lockout, 2FA -------------------------------------------------------------------------------------


async def test_login_needs_a_verified_email_then_opens_a_session(fakes: AuthFakes, accounts: Accounts) -> None:
    await accounts.register("ada@example.org", PASSWORD, "Ada", CLIENT)
    with pytest.raises(FailedPrecondition) as refused:
        await accounts.login("ada@example.org", PASSWORD, "", CLIENT)
    assert refused.value.reason == "EMAIL_NOT_VERIFIED"
    await accounts.drain()
    await accounts.verify_email(fakes.mailer.last_token("ada@example.org"), CLIENT)

    session_id, refresh = await logged_in(accounts, device="laptop")
    session = fakes.store.state.sessions[session_id]
    assert session.device_name == "laptop" and session.ip == CLIENT.ip
    assert session.expires_at == fakes.clock.now() + Policy().session_max_age
    assert refresh and fakes.audit.last("login.ok").actor_id == session.user_id


async def test_wrong_password_and_unknown_email_get_the_same_answer_and_cost(
    fakes: AuthFakes, accounts: Accounts
) -> None:
    user_id = await registered(fakes, accounts)
    answers = []
    for email, password in (("ada@example.org", "wrong password!"), ("nobody@example.org", PASSWORD)):
        before = fakes.hasher.verified
        with pytest.raises(Unauthenticated) as refused:
            await accounts.login(email, password, "", CLIENT)
        answers.append(refused.value.message)
        assert fakes.hasher.verified == before + 1  # one verification either way (the unknown: a dummy hash)
    assert answers == [BAD_CREDENTIALS, BAD_CREDENTIALS]
    assert [e.subject_id for e in fakes.audit.events if e.kind == "login.failed"] == [user_id, ""]
    assert fakes.store.state.sessions == {}


async def test_failed_logins_lock_the_account_for_the_window_and_successes_do_not_count(fakes: AuthFakes) -> None:
    accounts = fakes.accounts(limits=Limits(window_seconds=300, login=Limit(3, 1000)))
    await registered(fakes, accounts)
    for _ in range(5):  # successes are uncounted
        await logged_in(accounts)
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            await accounts.login("ada@example.org", "wrong password!", "", CLIENT)
    with pytest.raises(ResourceExhausted) as locked:
        await accounts.login("ada@example.org", PASSWORD, "", CLIENT)  # even the right password
    assert locked.value.limit == "auth.login.account"
    assert locked.value.retry_after_seconds is not None and 0 < locked.value.retry_after_seconds <= 300
    fakes.clock.advance(seconds=301)
    await logged_in(accounts)


async def test_a_busy_hashing_pool_refuses_before_counting_a_failure(fakes: AuthFakes) -> None:
    accounts = fakes.accounts(limits=Limits(login=Limit(1, 1000)))
    await registered(fakes, accounts)
    fakes.hasher.full = True
    for _ in range(3):
        with pytest.raises(ResourceExhausted) as busy:
            await accounts.login("ada@example.org", PASSWORD, "", CLIENT)
        assert busy.value.limit == "auth.hashing"
    fakes.hasher.full = False
    await logged_in(accounts)  # none of the refused attempts was counted against the account


async def test_login_rehashes_a_password_stored_with_old_parameters(fakes: AuthFakes, accounts: Accounts) -> None:
    await registered(fakes, accounts)
    old = fakes.user("ada@example.org").password_hash
    fakes.hasher.version = 2
    with pytest.raises(Unauthenticated):
        await accounts.login("ada@example.org", "wrong password!", "", CLIENT)
    assert fakes.user("ada@example.org").password_hash == old  # a failed login changes nothing
    await logged_in(accounts)
    assert fakes.user("ada@example.org").password_hash.startswith("fake$2$")
    await logged_in(accounts)


async def enable_2fa(fakes: AuthFakes, accounts: Accounts, user_id: str, session_id: str) -> tuple[str, list[str]]:
    enrolment = await accounts.start_totp(user_id, CLIENT, session_id)
    assert enrolment.uri.endswith("issuer=FlowDock") and enrolment.qr_svg.startswith("<svg")
    codes = await accounts.confirm_totp(user_id, fakes.totp.code(enrolment.secret), CLIENT, session_id)
    return enrolment.secret, codes


async def test_two_factor_login_accepts_each_code_once_and_recovery_codes_once(
    fakes: AuthFakes, accounts: Accounts
) -> None:
    user_id = await registered(fakes, accounts)
    session_id, _ = await logged_in(accounts)
    secret, codes = await enable_2fa(fakes, accounts, user_id, session_id)
    assert len(set(codes)) == 10 and fakes.user("ada@example.org").totp_enabled

    first = await accounts.login("ada@example.org", PASSWORD, "phone", CLIENT)
    assert first.tokens is None and first.mfa_token
    with pytest.raises(Unauthenticated) as refused:  # the confirming code's step is spent
        await accounts.login_totp(first.mfa_token, fakes.totp.code(secret), CLIENT)
    assert refused.value.message == BAD_CODE
    tokens = await accounts.login_totp(first.mfa_token, fakes.totp.code(secret, +1), CLIENT)
    session = fakes.store.state.sessions[tokens.access_token.split(":")[2]]
    assert session.device_name == "phone"  # carried through the challenge
    with pytest.raises(Unauthenticated) as spent:
        await accounts.login_totp(first.mfa_token, fakes.totp.code(secret, +1), CLIENT)
    assert spent.value.message in (BAD_TOKEN, BAD_CODE)

    again = await accounts.login("ada@example.org", PASSWORD, "", CLIENT)
    with pytest.raises(Unauthenticated):  # the same code on a new challenge is a replay
        await accounts.login_totp(again.mfa_token, fakes.totp.code(secret, +1), CLIENT)
    await accounts.login_totp(again.mfa_token, codes[0].upper(), CLIENT)
    third = await accounts.login("ada@example.org", PASSWORD, "", CLIENT)
    with pytest.raises(Unauthenticated):
        await accounts.login_totp(third.mfa_token, codes[0], CLIENT)
    assert fakes.audit.last("login.ok").details == {"second_factor": "recovery_code"}


async def test_a_two_factor_challenge_expires(fakes: AuthFakes, accounts: Accounts) -> None:
    user_id = await registered(fakes, accounts)
    session_id, _ = await logged_in(accounts)
    secret, _ = await enable_2fa(fakes, accounts, user_id, session_id)
    challenge = await accounts.login("ada@example.org", PASSWORD, "", CLIENT)
    fakes.clock.advance(Policy().mfa_ttl)
    with pytest.raises(Unauthenticated) as refused:
        await accounts.login_totp(challenge.mfa_token, fakes.totp.code(secret), CLIENT)
    assert refused.value.message == BAD_TOKEN


async def test_wrong_second_factors_lock_the_account_for_the_window(fakes: AuthFakes) -> None:
    accounts = fakes.accounts(limits=Limits(totp=Limit(3, 1000)))
    user_id = await registered(fakes, accounts)
    session_id, _ = await logged_in(accounts)
    secret, _ = await enable_2fa(fakes, accounts, user_id, session_id)
    challenge = await accounts.login("ada@example.org", PASSWORD, "", CLIENT)
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            await accounts.login_totp(challenge.mfa_token, "000000", CLIENT)
    with pytest.raises(ResourceExhausted) as locked:
        await accounts.login_totp(challenge.mfa_token, fakes.totp.code(secret, +1), CLIENT)
    assert locked.value.limit == "auth.totp.account"


async def test_changing_2fa_needs_a_recent_login(fakes: AuthFakes, accounts: Accounts) -> None:
    user_id = await registered(fakes, accounts)
    session_id, _ = await logged_in(accounts)
    fakes.clock.advance(Policy().reauth_window + timedelta(seconds=1))
    with pytest.raises(FailedPrecondition) as refused:
        await accounts.start_totp(user_id, CLIENT, session_id)
    assert refused.value.reason == "REAUTHENTICATION_REQUIRED"
    assert not fakes.user("ada@example.org").totp_secret


async def test_confirming_2fa_with_a_wrong_code_leaves_it_off(fakes: AuthFakes, accounts: Accounts) -> None:
    user_id = await registered(fakes, accounts)
    session_id, _ = await logged_in(accounts)
    enrolment = await accounts.start_totp(user_id, CLIENT, session_id)
    wrong = "000000" if fakes.totp.code(enrolment.secret) != "000000" else "111111"
    with pytest.raises(InvalidArgument) as refused:
        await accounts.confirm_totp(user_id, wrong, CLIENT, session_id)
    assert refused.value.field == "code"
    assert not fakes.user("ada@example.org").totp_enabled
    with pytest.raises(FailedPrecondition) as not_started:
        await accounts.disable_totp(user_id, PASSWORD, "123456", CLIENT)
    assert not_started.value.reason == "TOTP_NOT_ENABLED"


async def test_disabling_2fa_needs_the_password_and_a_code(fakes: AuthFakes, accounts: Accounts) -> None:
    user_id = await registered(fakes, accounts)
    session_id, _ = await logged_in(accounts)
    secret, _ = await enable_2fa(fakes, accounts, user_id, session_id)
    with pytest.raises(PermissionDenied, match="current password"):
        await accounts.disable_totp(user_id, "wrong password!", fakes.totp.code(secret, +1), CLIENT)
    with pytest.raises(PermissionDenied) as refused:
        await accounts.disable_totp(user_id, PASSWORD, "000000", CLIENT)
    assert refused.value.message == BAD_CODE and fakes.user("ada@example.org").totp_enabled
    await accounts.disable_totp(user_id, PASSWORD, fakes.totp.code(secret, +1), CLIENT)
    user = fakes.user("ada@example.org")
    assert not user.totp_enabled and user_id not in fakes.store.state.recovery_codes
    assert (await accounts.login("ada@example.org", PASSWORD, "", CLIENT)).tokens is not None


# -- refresh tokens and sessions -----------------------------------------------------------------------------


async def test_refresh_rotates_and_a_reused_token_ends_the_session(fakes: AuthFakes, accounts: Accounts) -> None:
    user_id = await registered(fakes, accounts)
    session_id, first = await logged_in(accounts)
    fakes.clock.advance(minutes=10)
    second = (await accounts.refresh(first, CLIENT)).refresh_token
    assert second != first
    assert fakes.store.state.sessions[session_id].last_seen_at == fakes.clock.now()
    third = (await accounts.refresh(second, CLIENT)).refresh_token

    with pytest.raises(Unauthenticated, match="already used"):
        await accounts.refresh(first, CLIENT)  # replayed: the thief or the owner, the session ends for both
    assert fakes.store.state.session_revoke_reasons[session_id] == "refresh_reuse"
    assert await accounts.session_role(session_id) is None
    with pytest.raises(Unauthenticated):
        await accounts.refresh(third, CLIENT)
    reused = fakes.audit.last("session.refresh_reused")
    assert reused.subject_id == user_id and reused.details == {"session_id": session_id}


async def test_refresh_of_an_idle_or_unknown_session_is_refused(fakes: AuthFakes, accounts: Accounts) -> None:
    await registered(fakes, accounts)
    _, refresh = await logged_in(accounts)
    with pytest.raises(Unauthenticated, match="not valid"):
        await accounts.refresh("x" * 43, CLIENT)
    with pytest.raises(Unauthenticated, match="not valid"):
        await accounts.refresh("x" * 201, CLIENT)
    fakes.clock.advance(Policy().session_idle)
    with pytest.raises(Unauthenticated) as ended:
        await accounts.refresh(refresh, CLIENT)
    assert ended.value.message == SESSION_ENDED


async def test_session_role_follows_the_account_not_the_token(fakes: AuthFakes, accounts: Accounts) -> None:
    user_id = await registered(fakes, accounts)
    session_id, _ = await logged_in(accounts)
    assert await accounts.session_role(session_id) == Role.USER
    fakes.store.state.users[user_id].role = Role.ADMIN
    assert await accounts.session_role(session_id) == Role.ADMIN
    fakes.store.state.users[user_id].disabled = True
    assert await accounts.session_role(session_id) is None
    assert await accounts.session_role("") is None and await accounts.session_role("x" * 65) is None


async def test_session_checks_touch_the_session_at_most_once_a_minute(fakes: AuthFakes, accounts: Accounts) -> None:
    await registered(fakes, accounts)
    session_id, _ = await logged_in(accounts)
    started = fakes.clock.now()
    fakes.clock.advance(seconds=30)
    assert await accounts.session_active(session_id)
    assert fakes.store.state.sessions[session_id].last_seen_at == started
    fakes.clock.advance(seconds=31)
    assert await accounts.session_active(session_id)
    assert fakes.store.state.sessions[session_id].last_seen_at == fakes.clock.now()


async def test_sessions_list_revoke_one_revoke_others_and_logout(fakes: AuthFakes, accounts: Accounts) -> None:
    user_id = await registered(fakes, accounts)
    other_id = await registered(fakes, accounts, "bob@example.org")
    current, _ = await logged_in(accounts, device="laptop")
    phone, _ = await logged_in(accounts, device="phone")
    tablet, _ = await logged_in(accounts, device="tablet")
    bobs, _ = await logged_in(accounts, "bob@example.org")
    assert {s.id for s in await accounts.list_sessions(user_id)} == {current, phone, tablet}

    with pytest.raises(NotFound):  # someone else's session looks missing
        await accounts.revoke_session(user_id, bobs, CLIENT)
    assert await accounts.session_active(bobs)
    await accounts.revoke_session(user_id, phone, CLIENT)
    assert {s.id for s in await accounts.list_sessions(user_id)} == {current, tablet}
    assert await accounts.revoke_other_sessions(user_id, current, CLIENT) == 1
    assert [s.id for s in await accounts.list_sessions(user_id)] == [current]
    await accounts.logout(user_id, current, CLIENT)
    assert await accounts.list_sessions(user_id) == [] and await accounts.list_sessions(other_id) != []
    assert fakes.audit.kinds().count("logout") == 1
    await accounts.logout(user_id, current, CLIENT)  # again: nothing to end, nothing recorded
    assert fakes.audit.kinds().count("logout") == 1


async def test_sessions_end_at_their_maximum_age_however_active(fakes: AuthFakes, accounts: Accounts) -> None:
    user_id = await registered(fakes, accounts)
    session_id, refresh = await logged_in(accounts)
    for _ in range(Policy().session_max_age.days - 1):  # never idle
        fakes.clock.advance(days=1)
        refresh = (await accounts.refresh(refresh, CLIENT)).refresh_token
    assert await accounts.session_active(session_id)
    fakes.clock.advance(days=1)
    with pytest.raises(Unauthenticated) as ended:
        await accounts.refresh(refresh, CLIENT)
    assert ended.value.message == SESSION_ENDED
    assert not await accounts.session_active(session_id)
    assert await accounts.list_sessions(user_id) == []


# -- passwords -----------------------------------------------------------------------------------------------


async def test_password_reset_sets_the_password_ends_every_session_and_works_once(
    fakes: AuthFakes, accounts: Accounts
) -> None:
    user_id = await registered(fakes, accounts)
    session_id, _ = await logged_in(accounts)
    await accounts.request_recovery("ada@example.org", CLIENT)
    await accounts.drain()
    token = fakes.mailer.last_token("ada@example.org", "Reset")

    with pytest.raises(InvalidArgument) as weak:
        await accounts.reset_password(token, "short", CLIENT)
    assert weak.value.field == "new_password"
    await accounts.reset_password(token, "a brand new passphrase", CLIENT)
    assert not await accounts.session_active(session_id)
    assert fakes.audit.last("password.reset").details == {"sessions_revoked": "1"}
    with pytest.raises(Unauthenticated):
        await accounts.reset_password(token, "yet another passphrase", CLIENT)
    with pytest.raises(Unauthenticated):
        await accounts.login("ada@example.org", PASSWORD, "", CLIENT)
    assert (await accounts.login("ada@example.org", "a brand new passphrase", "", CLIENT)).tokens is not None
    assert fakes.user("ada@example.org").id == user_id


async def test_password_reset_links_expire_and_unknown_addresses_get_no_mail(
    fakes: AuthFakes, accounts: Accounts
) -> None:
    await registered(fakes, accounts)
    await accounts.request_recovery("nobody@example.org", CLIENT)
    await accounts.request_recovery("not an address", CLIENT)
    await accounts.drain()
    assert fakes.mailer.to("nobody@example.org") == []
    assert "recovery.requested_unknown" in fakes.audit.kinds()
    await accounts.request_recovery("ada@example.org", CLIENT)
    await accounts.drain()
    token = fakes.mailer.last_token("ada@example.org", "Reset")
    fakes.clock.advance(Policy().reset_ttl)
    hashed = fakes.hasher.hashed
    with pytest.raises(Unauthenticated):
        await accounts.reset_password(token, "a brand new passphrase", CLIENT)
    assert fakes.hasher.hashed == hashed  # a dead token costs no hashing


async def test_a_password_reset_verifies_the_address_it_was_mailed_to(fakes: AuthFakes, accounts: Accounts) -> None:
    await accounts.register("ada@example.org", PASSWORD, "Ada", CLIENT)
    await accounts.request_recovery("ada@example.org", CLIENT)
    await accounts.drain()
    await accounts.reset_password(fakes.mailer.last_token("ada@example.org", "Reset"), "new passphrase 1", CLIENT)
    assert fakes.user("ada@example.org").email_verified


async def test_change_password_checks_the_current_one_and_can_end_other_sessions(
    fakes: AuthFakes, accounts: Accounts
) -> None:
    user_id = await registered(fakes, accounts)
    current, _ = await logged_in(accounts)
    other, _ = await logged_in(accounts)
    with pytest.raises(PermissionDenied):
        await accounts.change_password(user_id, current, "wrong password!", "new passphrase 1", True, CLIENT)
    assert "password.change_failed" in fakes.audit.kinds()
    await accounts.change_password(user_id, current, PASSWORD, "new passphrase 1", True, CLIENT)
    assert await accounts.session_active(current) and not await accounts.session_active(other)
    assert (await accounts.login("ada@example.org", "new passphrase 1", "", CLIENT)).tokens is not None


async def test_change_password_loses_to_a_change_made_meanwhile(fakes: AuthFakes, accounts: Accounts) -> None:
    """The new hash is written only over the hash that was verified (a conditional write)."""
    user_id = await registered(fakes, accounts)
    elsewhere = await fakes.hasher.hash("set by a reset meanwhile")

    def reset_meanwhile() -> None:
        fakes.store.state.users[user_id].password_hash = elsewhere

    fakes.hasher.meanwhile = reset_meanwhile
    with pytest.raises(Aborted):
        await accounts.change_password(user_id, "", PASSWORD, "new passphrase 1", False, CLIENT)
    assert fakes.user("ada@example.org").password_hash == elsewhere


# -- administration ------------------------------------------------------------------------------------------


async def admin(fakes: AuthFakes, accounts: Accounts, email: str = "root@example.org") -> str:
    user_id = await registered(fakes, accounts, email)
    fakes.store.state.users[user_id].role = Role.ADMIN
    return user_id


async def test_admin_calls_check_the_role_in_the_database_and_record_refusals(
    fakes: AuthFakes, accounts: Accounts
) -> None:
    user_id = await registered(fakes, accounts)
    with pytest.raises(PermissionDenied):
        await accounts.list_users(user_id, "", 0, "", CLIENT)
    denied = fakes.audit.last("authz.denied")
    assert denied.actor_id == user_id and denied.details == {"action": "list_users"}


async def test_the_last_admin_cannot_be_demoted_deleted_or_disable_themselves(
    fakes: AuthFakes, accounts: Accounts
) -> None:
    root = await admin(fakes, accounts)
    user_id = await registered(fakes, accounts)
    with pytest.raises(FailedPrecondition) as last:
        await accounts.set_role(root, root, Role.USER, CLIENT)
    assert last.value.reason == "LAST_ADMIN"
    with pytest.raises(FailedPrecondition) as self_disable:
        await accounts.set_disabled(root, root, True, CLIENT)
    assert self_disable.value.reason == "SELF_DISABLE"
    await accounts.set_role(root, user_id, Role.ADMIN, CLIENT)
    await accounts.set_role(root, root, Role.USER, CLIENT)  # another admin now exists
    assert fakes.user("root@example.org").role == Role.USER
    with pytest.raises(PermissionDenied):
        await accounts.set_role(root, user_id, Role.USER, CLIENT)


async def test_disabling_an_account_ends_its_sessions_and_refuses_its_logins(
    fakes: AuthFakes, accounts: Accounts
) -> None:
    root = await admin(fakes, accounts)
    user_id = await registered(fakes, accounts)
    session_id, refresh = await logged_in(accounts)
    await accounts.set_disabled(root, user_id, True, CLIENT)
    assert not await accounts.session_active(session_id)
    assert fakes.audit.last("admin.user_disabled").details == {"sessions_revoked": "1"}
    with pytest.raises(Unauthenticated) as refused:
        await accounts.login("ada@example.org", PASSWORD, "", CLIENT)
    assert refused.value.message == BAD_CREDENTIALS
    with pytest.raises(Unauthenticated):
        await accounts.refresh(refresh, CLIENT)


async def test_deleting_an_account_drops_shares_then_files_then_the_account(
    fakes: AuthFakes, accounts: Accounts
) -> None:
    root = await admin(fakes, accounts)
    user_id = await registered(fakes, accounts)
    session_id, _ = await logged_in(accounts)
    fakes.user_data.used[user_id] = 1234
    fakes.user_shares.fail = True
    with pytest.raises(Exception, match="not reachable"):
        await accounts.delete_user(root, user_id, CLIENT)
    # Part-way: disabled and signed out, files and account still there; repeating the call finishes.
    assert fakes.user("ada@example.org").disabled and not await accounts.session_active(session_id)
    assert fakes.user_data.deleted == []
    fakes.user_shares.fail = False
    assert await accounts.delete_user(root, user_id, CLIENT) == 1234
    assert fakes.user_shares.deleted == [user_id] and fakes.user_data.deleted == [user_id]
    assert user_id not in fakes.store.state.users
    with pytest.raises(NotFound):
        await accounts.delete_user(root, user_id, CLIENT)


async def test_listing_users_pages_by_email(fakes: AuthFakes, accounts: Accounts) -> None:
    root = await admin(fakes, accounts)
    for name in ("carol", "bob", "dave"):
        await registered(fakes, accounts, f"{name}@example.org")
    page, token = await accounts.list_users(root, "", 2, "", CLIENT)
    assert [u.email for u in page] == ["bob@example.org", "carol@example.org"] and token
    page, token = await accounts.list_users(root, "", 2, token, CLIENT)
    assert [u.email for u in page] == ["dave@example.org", "root@example.org"] and token == ""
    found, _ = await accounts.list_users(root, "CAR", 0, "", CLIENT)
    assert [u.email for u in found] == ["carol@example.org"]
    with pytest.raises(InvalidArgument) as bad:
        await accounts.list_users(root, "", -1, "", CLIENT)
    assert bad.value.field == "page_size"


async def test_activity_pages_newest_first(fakes: AuthFakes, accounts: Accounts) -> None:
    user_id = await registered(fakes, accounts)
    for _ in range(3):
        await logged_in(accounts)
    first, token = await accounts.my_activity(user_id, 2, "")
    assert [e.kind for e in first] == ["login.ok", "login.ok"] and token
    rest, token = await accounts.my_activity(user_id, 10, token)
    assert [e.kind for e in rest] == ["login.ok", "email.verified", "register"] and token == ""


async def test_activity_filters_by_kind_and_dates_in_the_store(fakes: AuthFakes, accounts: Accounts) -> None:
    user_id = await registered(fakes, accounts)
    await logged_in(accounts)
    start = fakes.clock.advance(hours=1)
    await logged_in(accounts)
    end = fakes.clock.advance(hours=1)
    await logged_in(accounts)
    logins, _ = await accounts.my_activity(user_id, 10, "", kind_prefixes=["login.", "email."])
    assert [e.kind for e in logins] == ["login.ok"] * 3 + ["email.verified"]
    between, _ = await accounts.my_activity(user_id, 10, "", since=start, until=end)
    assert [(e.kind, e.at) for e in between] == [("login.ok", start)]
    # Filters apply before paging: a page of one still finds the one match among older events.
    page, token = await accounts.my_activity(user_id, 1, "", kind_prefixes=["register"])
    assert [e.kind for e in page] == ["register"] and token == ""
    with pytest.raises(InvalidArgument) as backwards:
        await accounts.my_activity(user_id, 10, "", since=end, until=start)
    assert backwards.value.field == "end_time"


async def test_admin_view_of_an_account_counts_its_sessions_in_use(fakes: AuthFakes, accounts: Accounts) -> None:
    root = await admin(fakes, accounts)
    user_id = await registered(fakes, accounts)
    user, sessions = await accounts.get_user(root, user_id, CLIENT)
    assert user.id == user_id and sessions == 0
    first, _ = await logged_in(accounts)
    await logged_in(accounts)
    assert (await accounts.get_user(root, user_id, CLIENT))[1] == 2
    await accounts.revoke_session(user_id, first, CLIENT)
    assert (await accounts.get_user(root, user_id, CLIENT))[1] == 1
    fakes.clock.advance(Policy().session_idle + timedelta(seconds=1))  # idle past the limit: no longer in use
    assert (await accounts.get_user(root, user_id, CLIENT))[1] == 0
    with pytest.raises(PermissionDenied):
        await accounts.get_user(user_id, root, CLIENT)


async def test_admin_activity_filters_by_time_range_start_inclusive_end_exclusive(
    fakes: AuthFakes, accounts: Accounts
) -> None:
    root = await admin(fakes, accounts)
    user_id = await registered(fakes, accounts)
    day1 = fakes.clock.now()
    await logged_in(accounts)
    fakes.clock.advance(timedelta(days=1))
    day2 = fakes.clock.now()
    await logged_in(accounts)
    await logged_in(accounts)
    fakes.clock.advance(timedelta(days=1))
    await logged_in(accounts)

    async def logins(**window: datetime) -> int:
        events, _ = await accounts.list_activity(
            root, 50, "", subject_id=user_id, actor_id="", kind_prefix="login.", client=CLIENT, **window
        )
        return len(events)

    assert await logins() == 4
    assert await logins(since=day2) == 3
    assert await logins(since=day2, until=day2 + timedelta(days=1)) == 2
    assert await logins(until=day2) == 1  # the end is exclusive: events at day2 itself are left out
    assert await logins(since=day1 + timedelta(days=3)) == 0
    # Paging keeps the window: the second page holds the rest of the same day only.
    first, token = await accounts.list_activity(
        root, 1, "", subject_id=user_id, actor_id="", kind_prefix="login.", since=day2, until=day2 + timedelta(hours=1)
    )
    rest, last = await accounts.list_activity(
        root,
        5,
        token,
        subject_id=user_id,
        actor_id="",
        kind_prefix="login.",
        since=day2,
        until=day2 + timedelta(hours=1),
    )
    assert len(first) == 1 and token and len(rest) == 1 and last == ""


# -- email change and OpenID Connect -------------------------------------------------------------------------


async def test_changing_the_email_takes_effect_when_the_new_address_confirms(
    fakes: AuthFakes, accounts: Accounts
) -> None:
    user_id = await registered(fakes, accounts)
    await registered(fakes, accounts, "taken@example.org")
    with pytest.raises(InvalidArgument) as same:
        await accounts.change_email(user_id, "ADA@example.org", PASSWORD, CLIENT)
    assert same.value.field == "new_email"
    await accounts.change_email(user_id, "taken@example.org", PASSWORD, CLIENT)  # same answer, no link
    await accounts.change_email(user_id, "ada.new@example.org", PASSWORD, CLIENT)
    await accounts.drain()
    assert [m.subject for m in fakes.mailer.to("taken@example.org")] == ["Confirm your FlowDock email address"]
    assert fakes.user("ada@example.org").id == user_id  # nothing changes before the link is opened
    await accounts.verify_email(fakes.mailer.last_token("ada.new@example.org"), CLIENT)
    await accounts.drain()
    assert fakes.user("ada.new@example.org").id == user_id
    assert "changed" in fakes.mailer.to("ada@example.org")[-1].subject


def with_oidc(fakes: AuthFakes, *, trusted: bool) -> tuple[Accounts, FakeOidcClient]:
    provider = OidcProvider("corp", "https://idp.example.org", "flowdock", "s3cret", link_verified_email=trusted)
    client = FakeOidcClient([provider])
    policy = Policy(oidc_redirect_uris=("https://files.example.org/cb",))
    return fakes.accounts(oidc=client, policy=policy), client


async def test_oidc_login_creates_an_account_and_its_state_is_single_use(fakes: AuthFakes) -> None:
    accounts, oidc = with_oidc(fakes, trusted=False)
    oidc.codes["c1"] = OidcClaims("sub-1", "New@Example.org", True, "New Person")
    with pytest.raises(InvalidArgument) as bad:
        await accounts.oidc_start("corp", "https://evil.example.org/cb")
    assert bad.value.field == "redirect_uri"
    with pytest.raises(NotFound):
        await accounts.oidc_start("nope", "")
    _, state = await accounts.oidc_start("corp", "")
    result = await accounts.oidc_finish(state, "c1", "", CLIENT)
    assert result.tokens is not None
    user = fakes.user("new@example.org")
    assert user.email_verified and user.display_name == "New Person" and user.password_hash == "!no-password"
    with pytest.raises(Unauthenticated):
        await accounts.oidc_finish(state, "c1", "", CLIENT)
    _, late = await accounts.oidc_start("corp", "")
    fakes.clock.advance(Policy().oidc_state_ttl)
    with pytest.raises(Unauthenticated):
        await accounts.oidc_finish(late, "c1", "", CLIENT)


@pytest.mark.parametrize("trusted", [False, True])
async def test_oidc_links_an_existing_account_only_from_a_trusted_provider(fakes: AuthFakes, trusted: bool) -> None:
    accounts, oidc = with_oidc(fakes, trusted=trusted)
    user_id = await registered(fakes, accounts)
    oidc.codes["c"] = OidcClaims("sub-9", "ada@example.org", True)
    _, state = await accounts.oidc_start("corp", "")
    if not trusted:
        with pytest.raises(FailedPrecondition) as refused:
            await accounts.oidc_finish(state, "c", "", CLIENT)
        assert refused.value.reason == "OIDC_EMAIL_IN_USE"
        assert fakes.store.state.identities == {} and fakes.audit.last("login.oidc_refused").subject_id == user_id
        return
    assert (await accounts.oidc_finish(state, "c", "", CLIENT)).tokens is not None
    assert fakes.store.state.identities == {("corp", "sub-9"): user_id}


async def test_notify_user_mails_an_active_account_and_checks_the_subject(fakes: AuthFakes, accounts: Accounts) -> None:
    user_id = await registered(fakes, accounts)
    with pytest.raises(InvalidArgument) as bad:
        await accounts.notify_user(user_id, "two\nlines", "body")
    assert bad.value.field == "subject"
    with pytest.raises(NotFound):
        await accounts.notify_user("no-such-user", "Hello", "body")
    await accounts.notify_user(user_id, "Shared with you", "A file.")
    await accounts.drain()
    assert fakes.mailer.to("ada@example.org")[-1].body == "A file."


async def test_one_time_tokens_are_bound_to_their_purpose(fakes: AuthFakes, accounts: Accounts) -> None:
    """A reset link is no verification link (and the other way round)."""
    await accounts.register("ada@example.org", PASSWORD, "Ada", CLIENT)
    await accounts.drain()
    verify = fakes.mailer.last_token("ada@example.org", "Confirm")
    with pytest.raises(Unauthenticated):
        await accounts.reset_password(verify, "a brand new passphrase", CLIENT)
    stored = list(fakes.store.state.tokens.values())
    assert [t.purpose for t in stored] == [Purpose.VERIFY_EMAIL] and stored[0].used_at is None
