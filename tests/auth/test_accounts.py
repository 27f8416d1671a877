"""Registration, email verification, password policy, recovery/reset, password and email change, profile —
through the gateway with a real SMTP server, on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import grpc
import pytest

from flowdock.auth.v1 import auth_pb2
from tests.e2e.protocols import GrpcWeb, GrpcWebError, Native, native_channel
from tests.support.accounts import PASSWORD, Account, login, new_email, register_verified, rest
from tests.support.accounts import user as new_user
from tests.support.mailbox import Mailbox, body, link_token
from tests.support.mesh import Running


def test_registration_normalises_the_email_and_requires_verification(auth_mesh: Running, mailbox: Mailbox) -> None:
    local = new_email().split("@")[0]
    before = mailbox.count()
    with rest(auth_mesh) as c:
        r = c.post("/api/v1/auth/register", json={"email": f"  {local.upper()}@Example.ORG ", "password": PASSWORD})
        assert r.status_code == 200 and r.json() == {}
        email = f"{local}@example.org"
        mail = mailbox.wait(email, "Confirm", after=before)
        # Not verified yet: login says so (only after the right password), and nothing is issued.
        r = c.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 400 and r.json()["details"][0]["reason"] == "EMAIL_NOT_VERIFIED"
        token = link_token(mail)
        assert c.post("/api/v1/auth/verify-email", json={"token": token}).status_code == 200
        # Single use.
        assert c.post("/api/v1/auth/verify-email", json={"token": token}).status_code == 401
        r = c.post("/api/v1/auth/login", json={"email": email.upper(), "password": PASSWORD})
        assert r.status_code == 200, r.text
        me = c.get("/api/v1/me", headers={"authorization": f"Bearer {r.json()['accessToken']}"}).json()
    assert me["email"] == email and me["emailVerified"] is True and me["role"] == "ROLE_USER"
    assert "24 hours" in body(mail)


def test_registering_an_existing_email_answers_the_same_and_tells_the_owner(
    auth_mesh: Running, mailbox: Mailbox
) -> None:
    owner = register_verified(auth_mesh, mailbox)
    before = mailbox.count()
    with rest(auth_mesh) as c:
        fresh = c.post("/api/v1/auth/register", json={"email": new_email(), "password": PASSWORD})
        again = c.post("/api/v1/auth/register", json={"email": owner.email, "password": "another fine password"})
    assert fresh.status_code == again.status_code == 200
    assert fresh.content == again.content
    mail = mailbox.wait(owner.email, "tried to sign up", after=before)
    assert "token=" not in body(mail)
    login(auth_mesh, owner)  # the old password still works; nothing was overwritten


def test_registering_an_existing_email_again_and_again_does_not_mail_bomb_its_owner(
    auth_mesh: Running, mailbox: Mailbox
) -> None:
    """At most 3 "someone tried to sign up" mails per address and window (the auth default); every answer is the
    same as for a fresh address, so the limit tells nothing about whether the address has an account."""
    owner = register_verified(auth_mesh, mailbox)
    before = mailbox.count()
    with rest(auth_mesh) as c:
        answers = [
            c.post("/api/v1/auth/register", json={"email": owner.email, "password": f"another fine password {i}"})
            for i in range(8)
        ]
        fresh = c.post("/api/v1/auth/register", json={"email": new_email(), "password": PASSWORD})
    assert {(r.status_code, r.content) for r in answers} == {(fresh.status_code, fresh.content)}
    assert fresh.status_code == 200
    mailbox.wait(owner.email, "tried to sign up", after=before)
    time.sleep(2)  # mail goes out in the background: give any extra ones time to arrive
    sent = [m for m in mailbox.to(owner.email) if "tried to sign up" in str(m["Subject"])]
    assert len(sent) == 3, f"{len(sent)} mails for 8 sign-up attempts"


@pytest.mark.parametrize(
    ("password", "why"),
    [("short", "at least 8"), ("x" * 129, "at most 128"), ("12345678", "common"), ("Password1", "common")],
)
def test_password_policy(auth_mesh: Running, password: str, why: str) -> None:
    with rest(auth_mesh) as c:
        r = c.post("/api/v1/auth/register", json={"email": new_email(), "password": password})
    assert r.status_code == 400
    violation = r.json()["details"][0]["fieldViolations"][0]
    assert violation["field"] == "password" and why in violation["description"]


def test_long_unicode_passwords_are_accepted_exactly_as_typed(auth_mesh: Running, mailbox: Mailbox) -> None:
    password = "  Ünïcödé pässwörd with spaces 🙂  " + "x" * 90  # 128 characters, leading/trailing spaces kept
    password = password[:128]
    acct = register_verified(auth_mesh, mailbox, password=password)
    login(auth_mesh, acct)
    with rest(auth_mesh) as c:
        r = c.post("/api/v1/auth/login", json={"email": acct.email, "password": password.strip()})
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "a" * 300 + "@example.org", "password": PASSWORD}, "email"),
        ({"email": "not-an-email", "password": PASSWORD}, "email"),
        ({"email": "x\u0000y@example.org", "password": PASSWORD}, "email"),
        ({"email": "ok@example.org", "password": PASSWORD, "display_name": "n" * 101}, "display_name"),
        ({"email": "ok@example.org", "password": PASSWORD, "display_name": "evil\u202e"}, "display_name"),
    ],
)
def test_oversize_and_malformed_fields_are_400_naming_the_field(
    auth_mesh: Running, payload: dict[str, str], field: str
) -> None:
    with rest(auth_mesh) as c:
        r = c.post("/api/v1/auth/register", json=payload)
    assert r.status_code == 400, r.text
    assert r.json()["details"][0]["fieldViolations"][0]["field"] == field


def test_non_utf8_input_is_refused_cleanly_on_every_protocol(auth_mesh: Running) -> None:
    raw = b'{"email": "\xff\xfe@example.org", "password": "correct horse battery staple"}'
    with rest(auth_mesh) as c:
        r = c.post("/api/v1/auth/register", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400
    # Native gRPC: a string field with invalid UTF-8 (hand-encoded protobuf: field 1, length-delimited).
    payload = b"\x0a\x04\xff\xfe@x" + b"\x12\x08" + b"abcdefgh"
    channel = native_channel(auth_mesh.host_port)
    call = channel.unary_unary(
        "/flowdock.auth.v1.AuthService/Register",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    with pytest.raises(grpc.RpcError) as exc:
        call(payload, timeout=10)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "DecodeError" not in (exc.value.details() or "")
    # The service is fine afterwards.
    with rest(auth_mesh) as c:
        assert c.get("/.well-known/jwks.json").status_code == 200


def test_unknown_and_known_email_get_the_same_login_and_recovery_answers(auth_mesh: Running, mailbox: Mailbox) -> None:
    known = register_verified(auth_mesh, mailbox)
    with rest(auth_mesh) as c:
        timings: dict[str, list[float]] = {"known": [], "unknown": []}
        answers = {}
        unknown = new_email()
        for _ in range(3):
            for label, email in (("known", known.email), ("unknown", unknown)):
                started = time.perf_counter()
                r = c.post("/api/v1/auth/login", json={"email": email, "password": "wrong password here"})
                timings[label].append(time.perf_counter() - started)
                answers[label] = (r.status_code, r.json()["message"])
        for label, email in (("known", known.email), ("unknown", unknown)):
            rec = c.post("/api/v1/auth/password-recovery", json={"email": email})
            answers[label + "-recovery"] = (rec.status_code, rec.text)
    assert answers["known"] == answers["unknown"] == (401, "email or password is incorrect")
    assert answers["known-recovery"] == answers["unknown-recovery"] == (200, "{}")
    # Both paths verify one Argon2 hash: similar timing (generous bound for a busy 2-core machine).
    known_s, unknown_s = sorted(timings["known"])[1], sorted(timings["unknown"])[1]  # medians of 3
    assert abs(known_s - unknown_s) < 0.25, timings
    native = Native(native_channel(auth_mesh.host_port))
    with pytest.raises(grpc.RpcError) as a:
        native.auth.Login(auth_pb2.LoginRequest(email=known.email, password="wrong password here"))
    with pytest.raises(grpc.RpcError) as b:
        native.auth.Login(auth_pb2.LoginRequest(email=new_email(), password="wrong password here"))
    assert (a.value.code(), a.value.details()) == (b.value.code(), b.value.details())
    web = GrpcWeb(auth_mesh.url)
    errors = []
    for email in (known.email, new_email()):
        with pytest.raises(GrpcWebError) as e:
            web.call(
                "flowdock.auth.v1.AuthService/Login",
                auth_pb2.LoginRequest(email=email, password="wrong password here"),
                auth_pb2.LoginResponse,
            )
        errors.append((e.value.status, e.value.message))
    assert errors[0] == errors[1]


def test_password_reset_is_single_use_revokes_every_session_and_never_logs_in(
    auth_mesh: Running, mailbox: Mailbox
) -> None:
    me = new_user(auth_mesh, mailbox, device="old laptop")
    before = mailbox.count()
    with rest(auth_mesh) as c:
        assert c.post("/api/v1/auth/password-recovery", json={"email": me.email}).status_code == 200
        mail = mailbox.wait(me.email, "Reset", after=before)
        assert "30 minutes" in body(mail)
        token = link_token(mail)
        weak = c.post("/api/v1/auth/reset-password", json={"token": token, "new_password": "password"})
        assert weak.status_code == 400  # policy applies; the token is not spent by a refused password
        r = c.post("/api/v1/auth/reset-password", json={"token": token, "new_password": "a brand new passphrase"})
        assert r.status_code == 200 and r.json() == {}  # no tokens: reset logs nobody in
        again = c.post("/api/v1/auth/reset-password", json={"token": token, "new_password": "yet another phrase"})
        assert again.status_code == 401
        # Every session is gone: refresh refused, access token refused within the bound.
        assert c.post("/api/v1/auth/refresh", json={"refresh_token": me.refresh_token}).status_code == 401
    deadline = time.monotonic() + 5
    with rest(auth_mesh, me.access_token) as c:
        while c.get("/api/v1/me").status_code != 401:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    login(auth_mesh, Account(me.email, "a brand new passphrase"))
    with rest(auth_mesh) as c:
        assert c.post("/api/v1/auth/login", json={"email": me.email, "password": me.password}).status_code == 401


def test_change_password_needs_the_current_one_and_can_end_other_sessions(auth_mesh: Running, mailbox: Mailbox) -> None:
    me = new_user(auth_mesh, mailbox, device="here")
    other = login(auth_mesh, Account(me.email, me.password), device="there")
    with rest(auth_mesh, me.access_token) as c:
        wrong = c.post(
            "/api/v1/me/password", json={"current_password": "nope nope nope", "new_password": "fresh passphrase 1"}
        )
        assert wrong.status_code == 403
        ok = c.post(
            "/api/v1/me/password",
            json={
                "current_password": me.password,
                "new_password": "fresh passphrase 1",
                "revoke_other_sessions": True,
            },
        )
        assert ok.status_code == 200
        assert [s["deviceName"] for s in c.get("/api/v1/me/sessions").json()["sessions"]] == ["here"]
    with rest(auth_mesh) as c:
        assert c.post("/api/v1/auth/refresh", json={"refresh_token": other.refresh_token}).status_code == 401
        assert c.post("/api/v1/auth/refresh", json={"refresh_token": me.refresh_token}).status_code == 200
    login(auth_mesh, Account(me.email, "fresh passphrase 1"))


def test_profile_update_and_email_change_with_reverification(auth_mesh: Running, mailbox: Mailbox) -> None:
    me = new_user(auth_mesh, mailbox)
    with rest(auth_mesh, me.access_token) as c:
        r = c.patch("/api/v1/me", json={"display_name": "  Ada Lovelace "})
        assert r.status_code == 200 and r.json()["displayName"] == "Ada Lovelace"
        assert c.get("/api/v1/me").json()["displayName"] == "Ada Lovelace"
        target = new_email()
        bad = c.post("/api/v1/me/email", json={"new_email": target, "current_password": "not my password"})
        assert bad.status_code == 403
        before = mailbox.count()
        r = c.post("/api/v1/me/email", json={"new_email": target, "current_password": me.password})
        assert r.status_code == 200
        token = link_token(mailbox.wait(target, "new FlowDock email", after=before))
        assert c.get("/api/v1/me").json()["email"] == me.email  # unchanged until confirmed
        assert c.post("/api/v1/auth/verify-email", json={"token": token}).status_code == 200
        assert c.get("/api/v1/me").json()["email"] == target
    mailbox.wait(me.email, "email address changed", after=before)
    login(auth_mesh, Account(target, me.password))


def test_resend_verification_is_throttled_per_account(auth_mesh: Running, mailbox: Mailbox) -> None:
    email = new_email()
    with rest(auth_mesh) as c:
        assert c.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD}).status_code == 200
        codes = [c.post("/api/v1/auth/verify-email/resend", json={"email": email}).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
