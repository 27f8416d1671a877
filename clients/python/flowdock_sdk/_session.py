"""`RpcSession`: one gRPC channel to the gateway, its stubs, the account's tokens, and every call made with them.

`AsyncClient` (the Python face) and `_transfer` (the streaming) both talk to the server only through this object,
so token refresh, rate-limit retries and error mapping live in one place.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf.message import Message

from flowdock.auth.v1 import auth_pb2, auth_pb2_grpc
from flowdock.share.v1 import share_pb2_grpc
from flowdock.storage.v1 import storage_pb2_grpc
from flowdock_sdk._errors import AuthenticationError, FlowDockError, RateLimited, TotpRequired, from_rpc_error

Resp = TypeVar("Resp", bound=Message)
Resp_co = TypeVar("Resp_co", bound=Message, covariant=True)

BIG_MESSAGE = 64 * 1024 * 1024
REFRESH_MARGIN = 60.0  # refresh this long before the access token expires
MAX_RATE_LIMIT_WAIT = 10.0  # a rate limit asking for a longer pause is reported, not waited out


class Unary(Protocol[Resp_co]):
    """A unary stub method (`stub.GetNode`)."""

    def __call__(self, request: Any, *, metadata: Any = ..., timeout: float | None = ...) -> Awaitable[Resp_co]: ...


class Streaming(Protocol[Resp_co]):
    """A stub method answering with a stream (`stub.DownloadFile`, `stub.UploadStream`)."""

    def __call__(self, request: Any, /, *, metadata: Any = ...) -> AsyncIterable[Resp_co]: ...


def target_of(base_url: str) -> tuple[str, bool]:
    """'http://host:8080' -> ('host:8080', False); https means TLS."""
    if "://" not in base_url:
        base_url = "http://" + base_url
    url = urllib.parse.urlsplit(base_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise FlowDockError(f"not a gateway URL: {base_url!r} (expected http://host:port)", code="INVALID_ARGUMENT")
    secure = url.scheme == "https"
    port = url.port or (443 if secure else 80)
    host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
    return f"{host}:{port}", secure


@dataclass
class Tokens:
    """The account's tokens: `access` is good until `access_until` (time.monotonic); `refresh` rotates on use."""

    access: str = ""
    access_until: float = 0.0
    refresh: str = ""


class RpcSession:
    """A channel, its three stubs and the tokens that authenticate calls on it.

    ```python
    session = RpcSession("http://127.0.0.1:8080", email="ada@example.org", password="…")
    me = await session.call(session.auth.GetMe, auth_pb2.GetMeRequest())
    ```
    """

    def __init__(
        self,
        base_url: str,
        *,
        email: str = "",
        password: str = "",
        totp: Callable[[], str] | None = None,
        refresh_token: str = "",
        on_refresh_token: Callable[[str], None] | None = None,
        device_name: str = "flowdock-sdk",
        timeout: float = 60.0,
        retries: int = 3,
    ) -> None:
        self.base_url = base_url
        target, secure = target_of(base_url)
        options = [
            ("grpc.max_send_message_length", BIG_MESSAGE),
            ("grpc.max_receive_message_length", BIG_MESSAGE),
            ("grpc.primary_user_agent", "flowdock-sdk"),
        ]
        self._channel = (
            grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(), options=options)
            if secure
            else grpc.aio.insecure_channel(target, options=options)
        )
        self.auth = auth_pb2_grpc.AuthServiceStub(self._channel)
        self.storage = storage_pb2_grpc.StorageServiceStub(self._channel)
        self.share = share_pb2_grpc.ShareServiceStub(self._channel)
        self.tokens = Tokens(refresh=refresh_token)
        self.timeout = timeout
        self.retries = retries
        self._email = email
        self._password = password
        self._totp = totp
        self._on_refresh_token = on_refresh_token
        self._device = device_name
        self._token_lock = asyncio.Lock()

    async def close(self) -> None:
        await self._channel.close()

    # -- tokens ---------------------------------------------------------------------------------------------------

    async def login(self, totp_code: str = "") -> None:
        """Log in with the email and password given at construction (2FA: `totp_code` or the `totp` callable)."""
        async with self._token_lock:
            await self._login(totp_code)

    async def token(self, *, stale: str = "") -> str:
        """A valid access token; `stale` is one the server just refused (refresh unless someone already did)."""
        async with self._token_lock:
            t = self.tokens
            fresh = t.access and t.access != stale and time.monotonic() < t.access_until - REFRESH_MARGIN
            if not fresh:
                if t.refresh:
                    await self._refresh()
                else:
                    await self._login()
            return self.tokens.access

    def forget(self) -> None:
        """Drop both tokens (the server ended the session)."""
        self.tokens = Tokens()

    def _took(self, resp: auth_pb2.LoginResponse) -> None:
        self.tokens = Tokens(resp.access_token, time.monotonic() + max(resp.expires_in, 1), resp.refresh_token)
        if self._on_refresh_token is not None:
            self._on_refresh_token(resp.refresh_token)

    async def _login(self, totp_code: str = "") -> None:
        if not (self._email and self._password):
            raise AuthenticationError("not logged in: no refresh token, email or password")
        resp = await self.call_anonymous(
            self.auth.Login,
            auth_pb2.LoginRequest(email=self._email, password=self._password, device_name=self._device),
        )
        if resp.mfa_required:
            code = totp_code or (self._totp() if self._totp else "")
            if not code:
                raise TotpRequired("this account has two-factor authentication on: a TOTP code is needed")
            resp = await self.call_anonymous(
                self.auth.LoginTotp, auth_pb2.LoginTotpRequest(mfa_token=resp.mfa_token, code=code)
            )
        self._took(resp)

    async def _refresh(self) -> None:
        try:
            resp = await self.call_anonymous(
                self.auth.Refresh, auth_pb2.RefreshRequest(refresh_token=self.tokens.refresh)
            )
        except AuthenticationError:
            self.tokens.refresh = ""
            if self._email and self._password:
                await self._login()
                return
            raise AuthenticationError("the session expired or was revoked; log in again") from None
        self._took(resp)

    async def metadata(self, stale: str = "") -> tuple[tuple[str, str], ...]:
        """The call metadata carrying a valid access token."""
        return (("authorization", f"Bearer {await self.token(stale=stale)}"),)

    # -- calls ----------------------------------------------------------------------------------------------------

    async def call_anonymous(self, method: Unary[Resp], request: Message) -> Resp:
        """A unary call without a token (register, login, refresh)."""
        try:
            return await method(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None

    async def call(self, method: Unary[Resp], request: Message) -> Resp:
        """One authenticated unary call; on UNAUTHENTICATED the token is refreshed and the call made once more.

        A rate limit (RateLimited: the server did nothing) is waited out and retried, `retries` times at most;
        every other limit (too large, quota, a link's downloads) is raised at once: waiting would not help."""
        for attempt in range(self.retries + 1):
            try:
                return await self._call_once(method, request)
            except RateLimited as exc:
                if attempt >= self.retries or (exc.retry_after or 0) > MAX_RATE_LIMIT_WAIT:
                    raise
                await asyncio.sleep(exc.retry_after or 1.0)
        raise AssertionError("unreachable")

    async def _call_once(self, method: Unary[Resp], request: Message) -> Resp:
        md = await self.metadata()
        try:
            return await method(request, metadata=md, timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAUTHENTICATED:
                raise from_rpc_error(exc) from None
        md = await self.metadata(stale=md[0][1].removeprefix("Bearer "))
        try:
            return await method(request, metadata=md, timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None

    async def stream(self, method: Streaming[Resp], request: Any) -> AsyncIterator[Resp]:
        """An authenticated call answering with a stream (`request` may itself be a stream of messages).

        Not retried here: the caller resumes a broken transfer from the offset it reached."""
        md = await self.metadata()
        try:
            async for msg in method(request, metadata=md):
                yield msg
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None
