"""Request headers HTTP allows but gRPC metadata does not are no 500 (found by the schemathesis run).

A header name such as `foo^`, a `-bin` header whose value is not base64 or a malformed `grpc-timeout` made the
upstream's gRPC core answer INTERNAL; the gateway now drops them, on REST, grpc-web and native gRPC alike.
"""

from __future__ import annotations

import httpx
import pytest

from flowdock.auth.v1 import auth_pb2
from tests.e2e.protocols import _frame, _parse_frames
from tests.support.accounts import register_and_login
from tests.support.mesh import Running

ODD = [
    {"foo^": "x"},
    {"&^rtnk": "x"},
    {"x~y|z": "x"},
    {"X-Upper!": "x"},
    {"x-trace-bin": "!!!"},
    {"x-trace-bin": "a=b"},
    {"x-trace-bin": "abcde"},
    {"grpc-timeout": "zzz"},
    {"grpc-timeout": "99999999999S"},
]


@pytest.mark.parametrize("header", ODD, ids=lambda h: next(iter(h)) + "=" + next(iter(h.values())))
def test_odd_request_headers_are_dropped_not_500(mesh: Running, header: dict[str, str]) -> None:
    token = register_and_login(mesh)
    public = httpx.get(f"{mesh.url}/api/v1/auth/oidc/providers", headers=header)
    assert public.status_code == 200, public.text
    r = httpx.get(f"{mesh.url}/api/v1/quota", headers={**header, "authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    web = httpx.post(
        f"{mesh.url}/flowdock.auth.v1.AuthService/GetMe",
        content=_frame(auth_pb2.GetMeRequest().SerializeToString()),
        headers={**header, "content-type": "application/grpc-web+proto", "authorization": f"Bearer {token}"},
    )
    messages, trailers = _parse_frames(web.content)
    assert trailers.get("grpc-status", web.headers.get("grpc-status")) == "0", (web.headers, trailers)
    assert auth_pb2.User.FromString(messages[0]).id


def test_valid_binary_and_timeout_headers_still_pass(mesh: Running) -> None:
    token = register_and_login(mesh)
    headers = {"x-trace-bin": "AAEC", "grpc-timeout": "5S", "authorization": f"Bearer {token}"}
    assert httpx.get(f"{mesh.url}/api/v1/quota", headers=headers).status_code == 200
