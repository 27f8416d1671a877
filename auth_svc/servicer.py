"""gRPC entrypoint of auth_svc: translates messages to use-case calls and back. No rules live here."""

from __future__ import annotations

from typing import Any

import grpc
from google.api import httpbody_pb2
from google.protobuf import timestamp_pb2

from auth_svc import domain
from auth_svc.adapters import SigningKeyring
from auth_svc.usecases import Accounts
from flowdock.auth.v1 import auth_pb2, auth_pb2_grpc
from flowdock_kernel.tokens import current_principal

_ROLES = {domain.Role.USER: auth_pb2.ROLE_USER, domain.Role.ADMIN: auth_pb2.ROLE_ADMIN}

Ctx = grpc.aio.ServicerContext[Any, Any]


def _peer_device(context: Ctx, requested: str) -> str:
    if requested:
        return requested
    for key, value in context.invocation_metadata() or ():
        if key == "user-agent":
            return str(value)[:100]
    return ""


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, accounts: Accounts, keyring: SigningKeyring) -> None:
        self.accounts = accounts
        self.keyring = keyring

    async def Register(self, request: auth_pb2.RegisterRequest, context: Ctx) -> auth_pb2.RegisterResponse:
        await self.accounts.register(request.email, request.password, request.display_name)
        return auth_pb2.RegisterResponse()

    async def Login(self, request: auth_pb2.LoginRequest, context: Ctx) -> auth_pb2.LoginResponse:
        tokens = await self.accounts.login(request.email, request.password, _peer_device(context, request.device_name))
        return auth_pb2.LoginResponse(
            access_token=tokens.access_token, expires_in=tokens.expires_in, token_type="Bearer"
        )

    async def GetJwks(self, request: auth_pb2.GetJwksRequest, context: Ctx) -> httpbody_pb2.HttpBody:
        return httpbody_pb2.HttpBody(content_type="application/json", data=self.keyring.jwks().encode())

    async def GetMe(self, request: auth_pb2.GetMeRequest, context: Ctx) -> auth_pb2.User:
        user = await self.accounts.get(current_principal().user_id)
        created = timestamp_pb2.Timestamp()
        created.FromDatetime(user.created_at)
        return auth_pb2.User(
            id=user.id,
            email=user.email,
            display_name=user.display_name,
            role=_ROLES[user.role],
            create_time=created,
        )
