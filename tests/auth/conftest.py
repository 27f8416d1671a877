"""Fixtures of the auth suites: a real SMTP server and a `flowdock up` mesh configured to use it.

The mesh is the shipped product with auth's production defaults (verification required, real limits), except
what the tests must reach quickly: short windows and a few small per-IP limits (documented per setting below).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from tests.support.mailbox import Mailbox, smtp_server
from tests.support.mesh import BACKENDS, Running, free_port, mesh_fixture

# Limits the suites exercise; everything else keeps its default.
AUTH_TEST_ENV = {
    "FLOWDOCK_AUTH_REQUIRE_VERIFIED_EMAIL": "true",
    "FLOWDOCK_AUTH_SMTP_SECURITY": "none",
    "FLOWDOCK_AUTH_RATE_WINDOW_SECONDS": "60",
    "FLOWDOCK_AUTH_RATE_LOGIN_PER_ACCOUNT": "10",
    "FLOWDOCK_AUTH_RATE_TOTP_PER_ACCOUNT": "5",
    "FLOWDOCK_AUTH_RATE_RECOVERY_PER_ACCOUNT": "3",
    "FLOWDOCK_AUTH_RATE_RESEND_PER_ACCOUNT": "2",
    # Every test client is one IP: registration and login per IP stay high so the suites do not trip them;
    # the per-IP limit is exercised on resends (test_limits), which only that test sends from many addresses.
    "FLOWDOCK_AUTH_RATE_REGISTER_PER_IP": "100000",
    "FLOWDOCK_AUTH_RATE_LOGIN_PER_IP": "100000",
    "FLOWDOCK_AUTH_RATE_RESEND_PER_IP": "6",
}


@pytest.fixture(scope="session")
def mailbox() -> Iterator[Mailbox]:
    with smtp_server() as box:
        yield box


@pytest.fixture(scope="session")
def oidc_issuer() -> Iterator[str]:
    """A real OpenID Connect provider (PyPI oidc-provider-mock: Authlib's authorization server in Flask) on a free
    local port. It accepts any client id/secret and redirect URI, and lets the test pick the user (`sub`)."""
    os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")  # plain http on localhost
    import oidc_provider_mock

    with oidc_provider_mock.run_server_in_thread(port=free_port(), require_nonce=True) as server:
        yield f"http://localhost:{server.server_port}"


def oidc_env(issuer: str) -> dict[str, str]:
    providers = [
        {"name": "mock", "issuer": issuer, "client_id": "flowdock-test", "client_secret": "s3cret-client"},
        {
            "name": "trusted",
            "issuer": issuer,
            "client_id": "flowdock-trusted",
            "client_secret": "s3cret-client-2",
            "link_verified_email": True,
        },
    ]
    return {"FLOWDOCK_AUTH_OIDC_PROVIDERS": json.dumps(providers)}


@pytest.fixture(scope="session", params=BACKENDS)
def auth_mesh(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, mailbox: Mailbox, oidc_issuer: str
) -> Iterator[Running]:
    """`flowdock up` with auth_svc mailing through the test SMTP server, once per database backend."""
    env = {
        **AUTH_TEST_ENV,
        **oidc_env(oidc_issuer),
        "FLOWDOCK_AUTH_SMTP_HOST": "127.0.0.1",
        "FLOWDOCK_AUTH_SMTP_PORT": str(mailbox.port),
    }
    yield from mesh_fixture(request, tmp_path_factory, "auth", env=env, db_prefix="fdauth")
