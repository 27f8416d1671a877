"""The gateway's limits through a real `flowdock up`: per-client buckets, Retry-After, body bounds per route.

The limits live in Envoy and do not depend on the database, so one backend (SQLite) is enough here. Clients are
told apart by their source address: all of 127/8 is the loopback on Linux, so 127.0.0.2, .3 ... are other clients.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.mesh import Running, mesh_fixture

PASSWORD = "correct horse battery staple"
PER_CLIENT = 5  # per second; bucket of 10


@pytest.fixture(scope="module", params=["sqlite"])
def limited(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    env = {
        "FLOWDOCK_GATEWAY_RATE_LIMIT_PER_SECOND": str(PER_CLIENT),
        "FLOWDOCK_GATEWAY_RATE_LIMIT_BURST": str(2 * PER_CLIENT),
    }
    yield from mesh_fixture(request, tmp_path_factory, "limited", env=env, db_prefix="fdst")


def client(mesh: Running, source: str, token: str = "") -> httpx.Client:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(
        base_url=mesh.url, headers=headers, timeout=30, transport=httpx.HTTPTransport(local_address=source)
    )


def account(mesh: Running, source: str) -> str:
    email = f"g{uuid.uuid4().hex[:10]}@example.org"
    with client(mesh, source) as c:
        assert c.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD}).status_code == 200
        r = c.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return str(r.json()["accessToken"])


def test_one_flooding_address_gets_429_while_another_keeps_200(limited: Running) -> None:
    with client(limited, "127.0.0.1") as flooder, client(limited, "127.0.0.2") as other:
        answers = [flooder.get("/api/v1/auth/oidc/providers") for _ in range(6 * PER_CLIENT)]
        refused = [r for r in answers if r.status_code == 429]
        assert refused, [r.status_code for r in answers]
        assert {r.status_code for r in answers} <= {200, 429}  # never a 5xx
        assert all(r.headers.get("retry-after") == "1" for r in refused)
        assert refused[0].json()["code"] == 8  # RESOURCE_EXHAUSTED
        # Meanwhile another client is served.
        assert [other.get("/api/v1/auth/oidc/providers").status_code for _ in range(PER_CLIENT)] == [200] * PER_CLIENT


def test_a_signed_in_user_is_limited_across_addresses(limited: Running) -> None:
    flooder = account(limited, "127.0.0.3")
    bystander = account(limited, "127.0.0.4")
    # The same user from two addresses: each address stays within its own bucket, the user's bucket runs out.
    sources = ["127.0.0.5", "127.0.0.6"]
    clients = [client(limited, s, flooder) for s in sources]
    try:
        codes = [clients[i % 2].get("/api/v1/me").status_code for i in range(4 * PER_CLIENT)]
    finally:
        for c in clients:
            c.close()
    assert 429 in codes, codes
    with client(limited, "127.0.0.7", bystander) as c:
        assert c.get("/api/v1/me").status_code == 200


def test_an_oversized_login_body_is_refused_with_413(limited: Running) -> None:
    with client(limited, "127.0.0.8") as c:
        r = c.post("/api/v1/auth/login", json={"email": "a@example.org", "password": "x" * 20_000})
        assert r.status_code == 413, r.text
        assert r.json()["code"] == 8
        # A normal wrong login is an ordinary 401.
        r = c.post("/api/v1/auth/login", json={"email": "a@example.org", "password": "x" * 20})
        assert r.status_code == 401, r.text
