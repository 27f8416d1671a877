"""Signing in to /dav/ (issue 20, items 1-2 and "Bad input"): HTTP Basic with the account email and an app password
(auth_svc's AuthenticateBasic on every request), revoked at once, throttled like logins; the account password is
refused (auth_basic_allow_account_password is off by default)."""

from __future__ import annotations

import httpx

from tests.support.accounts import MESH_PASSWORD
from tests.support.dav import Dav
from tests.support.mesh import Running
from tests.support.storage_client import Client


def basic(mesh: Running, email: str, password: str) -> httpx.Client:
    return httpx.Client(base_url=mesh.url, auth=httpx.BasicAuth(email, password), timeout=60)


def test_an_app_password_signs_in_and_acts_as_its_user(dav_mesh: Running) -> None:
    me = Dav(dav_mesh)
    _, secret = me.app_password("laptop")
    with basic(dav_mesh, me.email, secret) as c:
        assert c.put("/dav/from-basic.txt", content=b"via Basic").status_code == 201
        r = c.request("PROPFIND", "/dav/", headers={"Depth": "1"})
        assert r.status_code == 207
        assert b"from-basic.txt" in r.content
    # The same file, as the REST API sees it.
    names = [n["name"] for n in me.rest.ok("GET", "/api/v1/folders/root/children")["nodes"]]
    assert "from-basic.txt" in names
    # Typed in with other case and spaces for dashes: still the same secret.
    with basic(dav_mesh, me.email, secret.upper().replace("-", " ")) as c:
        assert c.request("PROPFIND", "/dav/", headers={"Depth": "0"}).status_code == 207


def test_a_revoked_app_password_is_refused_at_once(dav_mesh: Running) -> None:
    me = Dav(dav_mesh)
    app_id, secret = me.app_password("old phone")
    with basic(dav_mesh, me.email, secret) as c:
        assert c.request("PROPFIND", "/dav/", headers={"Depth": "0"}).status_code == 207
        assert me.rest.http.delete(f"/api/v1/me/app-passwords/{app_id}").status_code == 200
        r = c.request("PROPFIND", "/dav/", headers={"Depth": "0"})
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith('Basic realm="FlowDock"')


def test_the_account_password_is_refused(dav_mesh: Running) -> None:
    me = Client(dav_mesh)
    email = me.ok("GET", "/api/v1/me")["email"]
    with basic(dav_mesh, email, MESH_PASSWORD) as c:
        assert c.request("PROPFIND", "/dav/", headers={"Depth": "0"}).status_code == 401


def test_wrong_app_passwords_are_throttled(dav_mesh: Running) -> None:
    me = Dav(dav_mesh)
    _, secret = me.app_password("dav")
    statuses = []
    with basic(dav_mesh, me.email, "wxyz" + secret[4:]) as wrong:
        for _ in range(14):
            r = wrong.request("PROPFIND", "/dav/", headers={"Depth": "0"})
            statuses.append(r.status_code)
            if r.status_code == 429:
                assert int(r.headers["retry-after"]) > 0
    assert statuses[0] == 401
    assert 429 in statuses, statuses
    assert set(statuses) <= {401, 429}
    # For the window, the right one too (auth_svc's per-account limit, as for logins).
    with basic(dav_mesh, me.email, secret) as right:
        assert right.request("PROPFIND", "/dav/", headers={"Depth": "0"}).status_code == 429
