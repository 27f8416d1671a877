"""Rate limits (sliding window in auth_svc's database): per account and per client IP; the answer is
RESOURCE_EXHAUSTED / 429 with the retry delay, never a 5xx."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from flowdock.auth.v1 import auth_pb2
from tests.e2e.protocols import Native, native_channel
from tests.support.accounts import login, new_email, register_verified, rest
from tests.support.mailbox import Mailbox
from tests.support.mesh import Running


def test_twenty_wrong_passwords_in_a_minute_are_throttled_never_5xx(auth_mesh: Running, mailbox: Mailbox) -> None:
    victim = register_verified(auth_mesh, mailbox)
    bystander = register_verified(auth_mesh, mailbox)
    statuses = []
    with rest(auth_mesh) as c:
        for _ in range(20):
            r = c.post("/api/v1/auth/login", json={"email": victim.email, "password": "guess guess guess"})
            statuses.append(r.status_code)
        last = r.json()
        # The right password is refused too while the account is throttled (nothing learnt by guessing on).
        right = c.post("/api/v1/auth/login", json={"email": victim.email, "password": victim.password})
    assert statuses[:10] == [401] * 10
    assert statuses[10:] == [429] * 10
    assert right.status_code == 429
    assert all(s < 500 for s in statuses)
    retry = next(d for d in last["details"] if d["@type"].endswith("RetryInfo"))
    assert float(retry["retryDelay"].rstrip("s")) > 0
    native = Native(native_channel(auth_mesh.host_port))
    try:
        native.auth.Login(auth_pb2.LoginRequest(email=victim.email, password="guess guess guess"))
    except grpc.RpcError as exc:
        code, status = exc.code(), rpc_status.from_call(exc)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert status is not None
    info = error_details_pb2.RetryInfo()
    assert any(d.Unpack(info) for d in status.details) and info.retry_delay.seconds > 0
    # Another account from the same client is not affected (per account, not global).
    login(auth_mesh, bystander)


def test_unknown_accounts_are_throttled_the_same_way(auth_mesh: Running) -> None:
    email = new_email()
    with rest(auth_mesh) as c:
        statuses = [
            c.post("/api/v1/auth/login", json={"email": email, "password": "guess guess guess"}).status_code
            for _ in range(12)
        ]
    assert statuses == [401] * 10 + [429] * 2


def test_recovery_is_throttled_per_account(auth_mesh: Running, mailbox: Mailbox) -> None:
    me = register_verified(auth_mesh, mailbox)
    with rest(auth_mesh) as c:
        statuses = [c.post("/api/v1/auth/password-recovery", json={"email": me.email}).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_per_ip_limit_counts_every_account(auth_mesh: Running) -> None:
    """Resend is limited to 6 per IP in the test mesh; each request names a different address."""
    statuses = []
    with rest(auth_mesh) as c:
        for _ in range(8):
            statuses.append(c.post("/api/v1/auth/verify-email/resend", json={"email": new_email()}).status_code)
            if statuses[-1] == 429:
                break
    assert statuses[-1] == 429, statuses
    assert 1 <= len(statuses) <= 7 and set(statuses[:-1]) <= {200}
