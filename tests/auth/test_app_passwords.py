"""App passwords through the gateway (REST, native gRPC, grpc-web) and HTTP Basic as the WebDAV service checks it
(AuthInternalService.AuthenticateBasic, straight to auth_svc with the `dav_svc` mesh identity), on SQLite and
PostgreSQL (issue 20, item 2).

Covers: the three REST routes; the secret shown once and never listed; each app password a session (listed with
its kind, ended by RevokeSession and by RevokeOtherSessions); a revoked one refused at the next request and its
access token at every service within the revocation bound; the account password refused (default setting, and
always with 2FA when allowed); wrong app passwords throttled like logins; AuthenticateBasic unreachable from
outside (REST, grpc-web, native through Envoy) and refused to mesh identities other than the WebDAV service's.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from flowdock.auth.v1 import auth_pb2, auth_pb2_grpc
from tests.e2e.protocols import GrpcWeb, GrpcWebError, Native, native_channel
from tests.support.accounts import Account, enable_totp, login, register_verified, rest, user
from tests.support.mailbox import Mailbox
from tests.support.mesh import Running, flowdock_up

SECRET = re.compile(r"^[a-z2-7]{4}(-[a-z2-7]{4}){7}$")
REVOCATION_BOUND_SECONDS = 5.0
DAV_CLIENT = "192.0.2.44"


def create(mesh: Running, me: Account, name: str) -> dict[str, Any]:
    with rest(mesh, me.access_token) as c:
        r = c.post("/api/v1/me/app-passwords", json={"name": name})
    assert r.status_code == 200, r.text
    made: dict[str, Any] = r.json()
    assert SECRET.match(made["secret"]), made
    return made


def basic(mesh: Running, email: str, password: str, address: str = DAV_CLIENT) -> auth_pb2.AuthenticateBasicResponse:
    """AuthenticateBasic as the WebDAV service calls it: to auth_svc directly, as `dav_svc`."""
    with mesh.channel("auth", "dav_svc") as channel:
        stub = auth_pb2_grpc.AuthInternalServiceStub(channel)
        request = auth_pb2.AuthenticateBasicRequest(
            email=email, password=password, client_address=address, user_agent="litmus/0.13"
        )
        return stub.AuthenticateBasic(request, timeout=30)  # type: ignore[no-any-return]


def refused(mesh: Running, email: str, password: str, address: str = DAV_CLIENT) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        basic(mesh, email, password, address)
    return caught.value


def listed(mesh: Running, me: Account) -> list[dict[str, Any]]:
    with rest(mesh, me.access_token) as c:
        r = c.get("/api/v1/me/app-passwords")
    assert r.status_code == 200, r.text
    return list(r.json().get("appPasswords", []))


def test_create_list_and_revoke_over_rest(auth_mesh: Running, mailbox: Mailbox) -> None:
    me = user(auth_mesh, mailbox, device="laptop")
    made = create(auth_mesh, me, "laptop WebDAV")
    app = made["appPassword"]
    assert app["name"] == "laptop WebDAV" and app["id"] and app["createTime"] and "lastUsedTime" not in app
    second = create(auth_mesh, me, "rclone backup")
    assert second["secret"] != made["secret"]
    shown = listed(auth_mesh, me)
    assert [a["name"] for a in shown] == ["rclone backup", "laptop WebDAV"]  # newest first
    assert made["secret"] not in str(shown) and made["secret"].replace("-", "") not in str(shown)

    done = basic(auth_mesh, me.email, made["secret"].upper())  # case and dashes do not matter
    assert done.session_id == app["id"] and done.user_id and done.access_token.count(".") == 2
    assert done.access_token_expire_time.seconds > time.time()
    used = {a["id"]: a for a in listed(auth_mesh, me)}[app["id"]]
    assert used["lastUsedTime"]  # first use recorded

    with rest(auth_mesh, me.access_token) as c:
        assert c.delete(f"/api/v1/me/app-passwords/{app['id']}").status_code == 200
        assert c.delete(f"/api/v1/me/app-passwords/{app['id']}").status_code == 404  # already gone
        assert c.post("/api/v1/me/app-passwords", json={"name": ""}).status_code == 400
        kinds = [e["kind"] for e in c.get("/api/v1/me/activity", params={"page_size": 50}).json()["events"]]
    assert kinds.count("app_password.created") == 2 and kinds.count("app_password.revoked") == 1
    assert [a["name"] for a in listed(auth_mesh, me)] == ["rclone backup"]
    gone = refused(auth_mesh, me.email, made["secret"])  # at the next request: no cache in between
    assert gone.code() == grpc.StatusCode.UNAUTHENTICATED and "app password" in (gone.details() or "")


def test_an_app_password_token_works_at_the_services_and_dies_with_it(auth_mesh: Running, mailbox: Mailbox) -> None:
    me = user(auth_mesh, mailbox)
    made = create(auth_mesh, me, "dav")
    token = basic(auth_mesh, me.email, made["secret"]).access_token
    with rest(auth_mesh, token) as c:
        assert c.get("/api/v1/folders/root/children").status_code == 200  # storage_svc takes it as any token
        assert c.get("/api/v1/me").json()["email"] == me.email
    with rest(auth_mesh, me.access_token) as c:
        assert c.delete(f"/api/v1/me/app-passwords/{made['appPassword']['id']}").status_code == 200
    deadline = time.monotonic() + REVOCATION_BOUND_SECONDS
    with rest(auth_mesh, token) as c:
        while c.get("/api/v1/folders/root/children").status_code != 401:
            if time.monotonic() > deadline:
                pytest.fail("a revoked app password's access token still worked after 5 s")
            time.sleep(0.1)


def test_an_app_password_cannot_manage_app_passwords(auth_mesh: Running, mailbox: Mailbox) -> None:
    me = user(auth_mesh, mailbox)
    made = create(auth_mesh, me, "dav")
    token = basic(auth_mesh, me.email, made["secret"]).access_token
    with rest(auth_mesh, token) as c:
        assert c.post("/api/v1/me/app-passwords", json={"name": "more"}).status_code == 403
    assert len(listed(auth_mesh, me)) == 1


def test_app_passwords_are_sessions_and_revoke_others_ends_them(auth_mesh: Running, mailbox: Mailbox) -> None:
    me = user(auth_mesh, mailbox, device="laptop")
    one = create(auth_mesh, me, "one")
    two = create(auth_mesh, me, "two")
    with rest(auth_mesh, me.access_token) as c:
        sessions = c.get("/api/v1/me/sessions").json()["sessions"]
        kinds = {s["deviceName"]: s["kind"] for s in sessions}
        assert kinds == {
            "laptop": "SESSION_KIND_LOGIN",
            "one": "SESSION_KIND_APP_PASSWORD",
            "two": "SESSION_KIND_APP_PASSWORD",
        }
        # RevokeSession on an app password ends it like RevokeAppPassword.
        assert c.delete(f"/api/v1/me/sessions/{one['appPassword']['id']}").status_code == 200
        assert refused(auth_mesh, me.email, one["secret"]).code() == grpc.StatusCode.UNAUTHENTICATED
        assert basic(auth_mesh, me.email, two["secret"]).session_id == two["appPassword"]["id"]
        ended = c.post("/api/v1/me/sessions/revoke-others", json={})
        assert ended.status_code == 200 and ended.json()["revoked"] == 1
        assert [s["deviceName"] for s in c.get("/api/v1/me/sessions").json()["sessions"]] == ["laptop"]
    assert refused(auth_mesh, me.email, two["secret"]).code() == grpc.StatusCode.UNAUTHENTICATED
    assert listed(auth_mesh, me) == []


def test_the_account_password_is_refused_by_default(auth_mesh: Running, mailbox: Mailbox) -> None:
    me = register_verified(auth_mesh, mailbox)
    no = refused(auth_mesh, me.email, me.password)
    assert no.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "app password" in (no.details() or "") and "flowdock app-passwords create" in (no.details() or "")
    # The same answer for an account that does not exist.
    assert refused(auth_mesh, "nobody-" + me.email, me.password).details() == no.details()


def test_wrong_app_passwords_are_throttled_like_logins(auth_mesh: Running, mailbox: Mailbox) -> None:
    me = user(auth_mesh, mailbox)
    made = create(auth_mesh, me, "dav")
    for _ in range(5):  # successes are not counted
        basic(auth_mesh, me.email, made["secret"])
    codes = []
    for i in range(12):
        guess = f"{i:04d}".translate(str.maketrans("0123456789", "abcdefghij")) + made["secret"][4:]
        codes.append(refused(auth_mesh, me.email, guess, address=f"198.51.100.{i}").code())
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 10 + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2
    throttled = refused(auth_mesh, me.email, made["secret"])  # even the right one, for the window
    assert throttled.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    status = rpc_status.from_call(throttled)  # type: ignore[arg-type]
    assert status is not None
    retry, quota = error_details_pb2.RetryInfo(), error_details_pb2.QuotaFailure()
    assert any(d.Unpack(retry) for d in status.details) and retry.retry_delay.seconds > 0
    assert any(d.Unpack(quota) for d in status.details)
    assert quota.violations[0].subject == "auth.login.account"
    with rest(auth_mesh) as c:  # the same limit as Login's
        r = c.post("/api/v1/auth/login", json={"email": me.email, "password": me.password})
    assert r.status_code == 429


def test_authenticate_basic_is_not_reachable_from_outside(auth_mesh: Running, mailbox: Mailbox) -> None:
    me = user(auth_mesh, mailbox)
    secret = create(auth_mesh, me, "dav")["secret"]
    request = auth_pb2.AuthenticateBasicRequest(email=me.email, password=secret)
    assert basic(auth_mesh, me.email, secret).access_token  # the request would succeed where it is allowed

    path = "flowdock.auth.v1.AuthInternalService/AuthenticateBasic"
    native = Native(native_channel(auth_mesh.host_port))
    internal = auth_pb2_grpc.AuthInternalServiceStub(native.channel)
    for metadata in ([], [("authorization", f"Bearer {me.access_token}")]):
        with pytest.raises(grpc.RpcError) as through_envoy:
            internal.AuthenticateBasic(request, metadata=metadata, timeout=30)
        assert through_envoy.value.code() == grpc.StatusCode.UNIMPLEMENTED
    for token in ("", me.access_token):
        with pytest.raises(GrpcWebError) as web:
            GrpcWeb(auth_mesh.url, token).call(path, request, auth_pb2.AuthenticateBasicResponse)
        assert web.value.status == grpc.StatusCode.UNIMPLEMENTED.value[0]
    body = {"email": me.email, "password": secret}
    with rest(auth_mesh, me.access_token) as c:
        for url in (f"/{path}", "/api/v1/auth/basic", "/api/v1/auth/authenticate-basic", "/api/v1/me/basic"):
            r = c.post(url, json=body)
            assert r.status_code == 404, (url, r.status_code, r.text)
            assert "accessToken" not in r.text and "access_token" not in r.text
        spec = c.get("/api/v1/openapi.json").text
    assert "AuthenticateBasic" not in spec and "/api/v1/me/app-passwords" in spec

    # Inside the mesh, only the WebDAV service's identity may ask.
    for identity in ("gateway", "storage_svc", "share_svc"):
        with auth_mesh.channel("auth", identity) as channel, pytest.raises(grpc.RpcError) as stranger:
            auth_pb2_grpc.AuthInternalServiceStub(channel).AuthenticateBasic(request, timeout=30)
        assert stranger.value.code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.fixture(scope="module")
def lenient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """`flowdock up` (SQLite) letting accounts without 2FA use their password over HTTP Basic (the setting
    auth_basic_allow_account_password)."""
    env = {"FLOWDOCK_AUTH_BASIC_ALLOW_ACCOUNT_PASSWORD": "true", "FLOWDOCK_AUTH_RATE_LOGIN_PER_ACCOUNT": "50"}
    with flowdock_up(tmp_path_factory.mktemp("lenient"), env=env) as running:
        yield running


def test_an_allowed_account_password_is_never_accepted_with_2fa(lenient: Running) -> None:
    email = f"basic{int(time.time() * 1000)}@example.org"
    me = Account(email, "correct horse battery")
    with httpx.Client(base_url=lenient.url, timeout=30) as c:
        assert c.post("/api/v1/auth/register", json={"email": email, "password": me.password}).status_code == 200
    first = basic(lenient, email, me.password)
    assert basic(lenient, email, me.password).session_id == first.session_id  # one session, not one per request
    login(lenient, me, device="browser")
    with rest(lenient, me.access_token) as c:
        kinds = {s["id"]: s["kind"] for s in c.get("/api/v1/me/sessions").json()["sessions"]}
    assert kinds[first.session_id] == "SESSION_KIND_BASIC_PASSWORD"
    wrong = refused(lenient, email, "not the password")
    assert wrong.code() == grpc.StatusCode.UNAUTHENTICATED

    enable_totp(lenient, me)
    no = refused(lenient, email, me.password)  # the right password, but 2FA is on
    assert no.code() == grpc.StatusCode.UNAUTHENTICATED and "two-factor" in (no.details() or "")
    made = create(lenient, me, "webdav")
    assert basic(lenient, email, made["secret"]).session_id == made["appPassword"]["id"]
