"""OpenID Connect login end to end against a real provider (oidc-provider-mock, Authlib-based) running locally:
discovery, authorization code with PKCE S256, state and nonce, ID token verification, account creation on first
login, and the linking rules for an email that already has a local account."""

from __future__ import annotations

import base64
import urllib.parse
import uuid

import httpx

from tests.support.accounts import new_email, register_verified, rest
from tests.support.mailbox import Mailbox
from tests.support.mesh import Running


def set_user(issuer: str, sub: str, **claims: object) -> None:
    r = httpx.put(f"{issuer}/users/{sub}", json=claims)
    assert r.status_code == 204, r.text


def start(mesh: Running, provider: str = "mock") -> tuple[str, str]:
    with rest(mesh) as c:
        r = c.post(f"/api/v1/auth/oidc/{provider}/start", json={})
    assert r.status_code == 200, r.text
    return str(r.json()["authorizationUrl"]), str(r.json()["state"])


def authorize(url: str, sub: str) -> tuple[str, str]:
    """The user approves at the provider: the browser is redirected back with code and state."""
    r = httpx.post(url, data={"sub": sub}, follow_redirects=False)
    assert r.status_code in (302, 303), r.text
    back = urllib.parse.urlparse(r.headers["location"])
    query = urllib.parse.parse_qs(back.query)
    # The app's callback page of the server that started the login (flowdock up's own address by default).
    asked = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)["redirect_uri"][0]
    assert f"{back.scheme}://{back.netloc}{back.path}" == asked
    assert asked.endswith("/oauth/callback")
    return query["code"][0], query["state"][0]


def finish(mesh: Running, state: str, code: str) -> httpx.Response:
    with rest(mesh) as c:
        return c.post("/api/v1/auth/oidc/finish", json={"state": state, "code": code, "device_name": "sso"})


def me(mesh: Running, token: str) -> dict[str, object]:
    with rest(mesh, token) as c:
        data: dict[str, object] = c.get("/api/v1/me").json()
    return data


def test_providers_are_listed(auth_mesh: Running) -> None:
    with rest(auth_mesh) as c:
        assert c.get("/api/v1/auth/oidc/providers").json()["providers"] == ["mock", "trusted"]
        assert c.post("/api/v1/auth/oidc/nope/start", json={}).status_code == 404
        bad = c.post("/api/v1/auth/oidc/mock/start", json={"redirect_uri": "https://evil.example/cb"})
        assert bad.status_code == 400


def test_first_login_creates_the_account_and_the_next_finds_it(auth_mesh: Running, oidc_issuer: str) -> None:
    sub, email = f"sub-{uuid.uuid4().hex[:8]}", new_email()
    set_user(oidc_issuer, sub, email=email, email_verified=True, name="Olga Oidc")
    url, state = start(auth_mesh)
    query = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert len(base64.urlsafe_b64decode(query["code_challenge"][0] + "=")) == 32  # SHA-256 of the verifier
    assert query["state"] == [state] and query["nonce"][0] and query["client_id"] == ["flowdock-test"]
    assert url.startswith(oidc_issuer)  # from the provider's discovery document
    assert query["redirect_uri"] == [f"{auth_mesh.url}/oauth/callback"]
    code, returned_state = authorize(url, sub)
    assert returned_state == state
    r = finish(auth_mesh, state, code)
    assert r.status_code == 200, r.text
    first = me(auth_mesh, r.json()["accessToken"])
    assert first["email"] == email and first["emailVerified"] is True and first["displayName"] == "Olga Oidc"
    # The state is single use; a made-up one is refused.
    assert finish(auth_mesh, state, code).status_code == 401
    assert finish(auth_mesh, "made-up-state", code).status_code == 401
    url, state = start(auth_mesh)
    code, _ = authorize(url, sub)
    # The browser app finishes in cookie mode: the refresh token comes back only as the HttpOnly cookie.
    with rest(auth_mesh) as c:
        again = c.post(
            "/api/v1/auth/oidc/finish",
            json={"state": state, "code": code, "device_name": "sso"},
            headers={"x-flowdock-cookie-session": "1"},
        )
    assert again.status_code == 200
    assert again.json()["refreshToken"] == ""
    assert again.headers["set-cookie"].startswith("fd_refresh=") and "HttpOnly" in again.headers["set-cookie"]
    assert me(auth_mesh, again.json()["accessToken"])["id"] == first["id"]
    # No password works for an account made by OpenID login.
    with rest(auth_mesh) as c:
        assert c.post("/api/v1/auth/login", json={"email": email, "password": "!no-password"}).status_code == 401


def test_an_existing_email_links_only_through_a_trusted_provider(
    auth_mesh: Running, mailbox: Mailbox, oidc_issuer: str
) -> None:
    local = register_verified(auth_mesh, mailbox)
    with rest(auth_mesh) as c:
        r = c.post("/api/v1/auth/login", json={"email": local.email, "password": local.password})
        local_id = me(auth_mesh, r.json()["accessToken"])["id"]
    sub = f"sub-{uuid.uuid4().hex[:8]}"
    set_user(oidc_issuer, sub, email=local.email, email_verified=True)
    url, state = start(auth_mesh, "mock")
    code, _ = authorize(url, sub)
    refused = finish(auth_mesh, state, code)
    assert refused.status_code == 400 and refused.json()["details"][0]["reason"] == "OIDC_EMAIL_IN_USE"
    # An unverified claim is not enough even for the trusted provider.
    set_user(oidc_issuer, sub, email=local.email, email_verified=False)
    url, state = start(auth_mesh, "trusted")
    code, _ = authorize(url, sub)
    assert finish(auth_mesh, state, code).status_code == 400
    set_user(oidc_issuer, sub, email=local.email, email_verified=True)
    url, state = start(auth_mesh, "trusted")
    code, _ = authorize(url, sub)
    linked = finish(auth_mesh, state, code)
    assert linked.status_code == 200, linked.text
    assert me(auth_mesh, linked.json()["accessToken"])["id"] == local_id


def test_an_unverified_provider_email_cannot_log_in(auth_mesh: Running, oidc_issuer: str) -> None:
    sub = f"sub-{uuid.uuid4().hex[:8]}"
    set_user(oidc_issuer, sub, email=new_email(), email_verified=False)
    url, state = start(auth_mesh)
    code, _ = authorize(url, sub)
    r = finish(auth_mesh, state, code)
    assert r.status_code == 400 and r.json()["details"][0]["reason"] == "EMAIL_NOT_VERIFIED"
