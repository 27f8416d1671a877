"""Server interceptors (grpc-interceptor): call context + metrics + logs, domain-error mapping, authentication.

Order (outermost first): CallContext → ErrorMapping → Authentication → handler, so an authentication failure
is mapped like any other domain error and every outcome is counted and logged once.
"""

from __future__ import annotations

import contextvars
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc_interceptor.server import AsyncServerInterceptor

from flowdock_kernel import errors, grpc_errors, logs, metrics
from flowdock_kernel.tokens import (
    KeyCache,
    KeyMap,
    Principal,
    SessionCache,
    principal_var,
    unverified_kid,
    verify_access_token,
)

log = logging.getLogger("flowdock.access")

ALWAYS_PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


@dataclass
class _CallState:
    code: grpc.StatusCode = grpc.StatusCode.OK


_state_var: contextvars.ContextVar[_CallState | None] = contextvars.ContextVar("call_state", default=None)


def _metadata(context: grpc.aio.ServicerContext[Any, Any], key: str) -> str:
    for k, v in context.invocation_metadata() or ():
        if k == key:
            return v if isinstance(v, str) else v.decode("latin-1")
    return ""


def _is_stream(result: Any) -> bool:
    return hasattr(result, "__aiter__")


class CallContextInterceptor(AsyncServerInterceptor):
    """Request id, one access log line and the request metrics per call."""

    def __init__(self, service: str) -> None:
        self.service = service

    async def intercept(
        self, method: Callable[..., Any], request: Any, context: grpc.aio.ServicerContext[Any, Any], name: str
    ) -> Any:
        rid = _metadata(context, "x-request-id") or uuid.uuid4().hex
        logs.request_id_var.set(rid)
        logs.client_var.set(logs.client_from(context.invocation_metadata() or (), context.peer() or ""))
        state = _CallState()
        _state_var.set(state)
        start = time.perf_counter()
        result = method(request, context)
        if _is_stream(result):
            return self._stream(result, state, start, name)
        try:
            return await result
        finally:
            self._done(state, start, name)

    async def _stream(self, it: AsyncIterator[Any], state: _CallState, start: float, name: str) -> AsyncIterator[Any]:
        gauge = metrics.STREAMS_IN_FLIGHT.labels(self.service, name)
        gauge.inc()
        try:
            async for item in it:
                yield item
        finally:
            gauge.dec()
            self._done(state, start, name)

    def _done(self, state: _CallState, start: float, name: str) -> None:
        elapsed = time.perf_counter() - start
        code = state.code.name
        metrics.REQUESTS.labels(self.service, name, code).inc()
        metrics.LATENCY.labels(self.service, name).observe(elapsed)
        if not name.startswith(ALWAYS_PUBLIC_PREFIXES):
            log.info("call", extra={"method": name, "code": code, "ms": round(elapsed * 1000, 2)})


class _Undecodable:
    """Stands in for a request message that could not be parsed (e.g. a string field that is not UTF-8)."""


UNDECODABLE = _Undecodable()


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError:
            return UNDECODABLE

    return parse


class ErrorMappingInterceptor(AsyncServerInterceptor):
    """Domain errors → their status; anything else → a generic INTERNAL, logged with its traceback.

    A request that does not parse (bad UTF-8 in a string field, truncated bytes) is INVALID_ARGUMENT here, rather
    than grpc's UNKNOWN naming a Python exception class."""

    async def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = await super().intercept_service(continuation, handler_call_details)  # type: ignore[no-untyped-call]
        if handler is None or handler.request_streaming:
            return handler
        return handler._replace(request_deserializer=_tolerant(handler.request_deserializer))

    async def intercept(
        self, method: Callable[..., Any], request: Any, context: grpc.aio.ServicerContext[Any, Any], name: str
    ) -> Any:
        try:
            if request is UNDECODABLE:
                raise errors.InvalidArgument("request", "is not a valid message (is every string field UTF-8?)")
            result = method(request, context)
            if _is_stream(result):
                return self._stream(result, context)
            return await result
        except Exception as exc:
            await self._handle(exc, context)
            raise  # unreachable: _handle aborts

    async def _stream(self, it: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        try:
            async for item in it:
                yield item
        except Exception as exc:
            await self._handle(exc, context)

    async def _handle(self, exc: Exception, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        state = _state_var.get() or _CallState()
        if isinstance(exc, errors.DomainError):
            status = grpc_errors.to_status(exc)
            state.code = status.code
            await context.abort_with_status(status)
        code = context.code()
        if isinstance(code, grpc.StatusCode) and code != grpc.StatusCode.OK:
            # The handler aborted by itself (e.g. the client cancelled); keep its status.
            state.code = code
            raise exc
        if isinstance(exc, grpc.aio.AbortError) or type(exc).__name__ == "AbortError":
            state.code = grpc.StatusCode.UNKNOWN
            raise exc
        state.code = grpc.StatusCode.INTERNAL
        log.exception("unhandled error")
        await context.abort_with_status(grpc_errors.internal_status())


class AuthenticationInterceptor(AsyncServerInterceptor):
    """Verifies the bearer token on every method not declared public in the contract."""

    def __init__(
        self,
        public_methods: Collection[str],
        keys: KeyCache,
        *,
        issuer: str,
        audience: str,
        sessions: SessionCache | None = None,
        max_verified: int = 10_000,
    ) -> None:
        self.public_methods = frozenset(public_methods)
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        # The revocation check (see tokens.SESSION_CHECK_SECONDS for its bound); services get it with their keys.
        self.sessions = sessions if sessions is not None else keys.sessions
        # Tokens whose signature and claims were verified, with the key map they were verified against: a hit
        # skips the signature check (~0.2 ms) while that key map is current and the token has not expired.
        self._verified: OrderedDict[str, tuple[Principal, KeyMap]] = OrderedDict()
        self._max_verified = max_verified

    async def _principal(self, token: str) -> Principal:
        hit = self._verified.get(token)
        if hit is not None:
            principal, verified_with = hit
            if time.time() < principal.expires_at and await self.keys.get(principal.kid) is verified_with:
                self._verified.move_to_end(token)
                return principal
            del self._verified[token]
        keys = await self.keys.get(unverified_kid(token))
        principal = verify_access_token(token, keys, issuer=self.issuer, audience=self.audience)
        self._verified[token] = (principal, keys)
        if len(self._verified) > self._max_verified:
            self._verified.popitem(last=False)
        return principal

    async def intercept(
        self, method: Callable[..., Any], request: Any, context: grpc.aio.ServicerContext[Any, Any], name: str
    ) -> Any:
        principal_var.set(None)
        header = _metadata(context, "authorization")
        if name not in self.public_methods and not name.startswith(ALWAYS_PUBLIC_PREFIXES):
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise errors.Unauthenticated("this call needs an access token (Authorization: Bearer ...)")
            principal = await self._principal(token)
            if self.sessions is not None and not await self.sessions.active(principal.session_id):
                raise errors.Unauthenticated("this session has ended; log in again")
            principal_var.set(principal)
        result = method(request, context)
        if _is_stream(result):
            return result
        return await result
