"""TOTP 2FA (RFC 6238 via pyotp) through the gateway: enrol (secret, otpauth URI, QR), confirm, login
challenge, ±1 step, replay refused, codes from two steps ago refused, recovery codes single use, throttling,
disable with password + code, and password reset never bypassing 2FA."""

from __future__ import annotations

import time

import grpc
import pyotp
import pytest

from flowdock.auth.v1 import auth_pb2
from tests.e2e.protocols import GrpcWeb, Native, native_channel
from tests.support.accounts import answer, challenge, enable_totp, rest, user
from tests.support.mailbox import Mailbox, link_token
from tests.support.mesh import Running


def test_enrol_confirm_and_log_in_with_a_code_once(auth_mesh: Running, mailbox: Mailbox) -> None:
    me = user(auth_mesh, mailbox)
    enable_totp(auth_mesh, me)
    # The confirming code's step is spent: the next step's code (within the ±1 window) logs in, once.
    code = me.totp(+1)
    mfa = challenge(auth_mesh, me)
    with rest(auth_mesh) as c:
        r = c.post("/api/v1/auth/login/totp", json={"mfa_token": mfa, "code": code})
        assert r.status_code == 200, r.text
        assert r.json()["accessToken"] and r.json()["refreshToken"]
        # The mfa_token is spent, and the same code on a new challenge is a replay.
        assert c.post("/api/v1/auth/login/totp", json={"mfa_token": mfa, "code": code}).status_code == 401
    assert answer(auth_mesh, challenge(auth_mesh, me), code) == 401


def test_codes_outside_the_window_and_garbage_are_refused(auth_mesh: Running, mailbox: Mailbox) -> None:
    me = user(auth_mesh, mailbox)
    enable_totp(auth_mesh, me)
    mfa = challenge(auth_mesh, me)
    # Two steps away is the edge of the ±1 window; if a step boundary passed between computing the codes and the
    # server checking them, "two ahead" would become "one ahead" and rightly be accepted. Start well inside a step.
    if time.time() % 30 > 20:
        time.sleep(30.5 - time.time() % 30)
    now_step = int(time.time() // 30)
    two_ago = pyotp.TOTP(me.totp_secret).at((now_step - 2) * 30)
    two_ahead = pyotp.TOTP(me.totp_secret).at((now_step + 2) * 30)
    for code in {two_ago, two_ahead} - {me.totp(-1), me.totp(0), me.totp(1)}:
        assert answer(auth_mesh, mfa, code) == 401
    assert answer(auth_mesh, mfa, "abc") == 401
    assert answer(auth_mesh, "not-an-mfa-token", me.totp(1)) == 401


def test_recovery_codes_work_once_each(auth_mesh: Running, mailbox: Mailbox) -> None:
    me = user(auth_mesh, mailbox)
    codes = enable_totp(auth_mesh, me)
    assert answer(auth_mesh, challenge(auth_mesh, me), codes[0]) == 200
    assert answer(auth_mesh, challenge(auth_mesh, me), codes[0]) == 401
    assert answer(auth_mesh, challenge(auth_mesh, me), f"  {codes[1].upper()} ") == 200  # as typed, case-insensitive


def test_totp_attempts_are_throttled_per_account(auth_mesh: Running, mailbox: Mailbox) -> None:
    me = user(auth_mesh, mailbox)
    enable_totp(auth_mesh, me)
    mfa = challenge(auth_mesh, me)
    wrong = next(c for c in ("123456", "654321", "111111") if c not in {me.totp(-1), me.totp(0), me.totp(1)})
    # Limit 5 per window; the wrong code tried during enrolment was the first.
    statuses = [answer(auth_mesh, mfa, wrong) for _ in range(4)]
    assert statuses == [401] * 4
    with rest(auth_mesh) as c:
        r = c.post("/api/v1/auth/login/totp", json={"mfa_token": mfa, "code": me.totp(1)})
    assert r.status_code == 429  # even the right code, until the window passes
    assert any(d["@type"].endswith("RetryInfo") for d in r.json()["details"])


def test_disable_needs_password_and_a_code(auth_mesh: Running, mailbox: Mailbox) -> None:
    me = user(auth_mesh, mailbox)
    codes = enable_totp(auth_mesh, me)
    with rest(auth_mesh, me.access_token) as c:
        r = c.request("DELETE", "/api/v1/me/totp", json={"password": "wrong password!", "code": codes[0]})
        assert r.status_code == 403
        r = c.request("DELETE", "/api/v1/me/totp", json={"password": me.password, "code": "000000"})
        assert r.status_code == 403
        r = c.request("DELETE", "/api/v1/me/totp", json={"password": me.password, "code": codes[0]})
        assert r.status_code == 200, r.text
        assert c.get("/api/v1/me").json()["totpEnabled"] is False
    with rest(auth_mesh) as c:
        r = c.post("/api/v1/auth/login", json={"email": me.email, "password": me.password})
    assert r.json()["mfaRequired"] is False and r.json()["accessToken"]


def test_password_reset_does_not_bypass_2fa(auth_mesh: Running, mailbox: Mailbox) -> None:
    me = user(auth_mesh, mailbox)
    enable_totp(auth_mesh, me)
    before = mailbox.count()
    with rest(auth_mesh) as c:
        c.post("/api/v1/auth/password-recovery", json={"email": me.email})
        token = link_token(mailbox.wait(me.email, "Reset", after=before))
        r = c.post("/api/v1/auth/reset-password", json={"token": token, "new_password": "a whole new passphrase"})
        assert r.status_code == 200 and "accessToken" not in r.json()
    me.password = "a whole new passphrase"
    mfa = challenge(auth_mesh, me)  # still asks for the second factor
    assert answer(auth_mesh, mfa, me.totp(1)) == 200


def test_two_factor_login_on_native_grpc_and_grpc_web(auth_mesh: Running, mailbox: Mailbox) -> None:
    me = user(auth_mesh, mailbox)
    codes = enable_totp(auth_mesh, me)
    native = Native(native_channel(auth_mesh.host_port))
    first = native.auth.Login(auth_pb2.LoginRequest(email=me.email, password=me.password))
    assert first.mfa_required and not first.access_token
    done = native.auth.LoginTotp(auth_pb2.LoginTotpRequest(mfa_token=first.mfa_token, code=me.totp(1)))
    assert done.access_token and done.refresh_token
    with pytest.raises(grpc.RpcError) as exc:
        native.auth.LoginTotp(auth_pb2.LoginTotpRequest(mfa_token=first.mfa_token, code=me.totp(1)))
    assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
    web = GrpcWeb(auth_mesh.url)
    svc = "flowdock.auth.v1.AuthService"
    again = web.call(
        f"{svc}/Login", auth_pb2.LoginRequest(email=me.email, password=me.password), auth_pb2.LoginResponse
    )
    assert again.mfa_required
    done = web.call(
        f"{svc}/LoginTotp", auth_pb2.LoginTotpRequest(mfa_token=again.mfa_token, code=codes[5]), auth_pb2.LoginResponse
    )
    assert done.access_token
