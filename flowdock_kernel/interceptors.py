"""The server interceptor every service runs (grpc-interceptor): call context + metrics + logs, authentication and
domain-error mapping, in one layer (see CallInterceptor)."""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message
from grpc_interceptor.server import AsyncServerInterceptor

from flowdock_kernel import errors, grpc_errors, logs, metrics, wire
from flowdock_kernel.db import database_unavailable_error, disk_full_error
from flowdock_kernel.mesh import GATEWAY
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
    #: The refusal's message (a domain error's), so the call's log line says why, not only the code.
    why: str = ""


def _is_stream(result: Any) -> bool:
    return hasattr(result, "__aiter__")


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


def nul_field(message: Any, prefix: str = "") -> str:
    """The path of the first string field (map keys and values included) holding a NUL character, or "".

    No field of ours may carry one (names refuse control characters) and PostgreSQL cannot store one: a NUL in a
    search query or an id reached the driver and came back as INTERNAL. Refused once here, for every unary call.
    """
    for fd, value in message.ListFields():
        name = f"{prefix}{fd.name}"
        if fd.type == fd.TYPE_STRING:
            if any("\x00" in v for v in (value if fd.is_repeated else (value,))):
                return name
        elif fd.type == fd.TYPE_MESSAGE:
            if fd.message_type.GetOptions().map_entry:
                for key, item in value.items():
                    if (isinstance(key, str) and "\x00" in key) or (isinstance(item, str) and "\x00" in item):
                        return name
                    if not isinstance(item, str | int | float | bool | bytes) and (
                        found := nul_field(item, f"{name}.")
                    ):
                        return found
            else:
                for item in value if fd.is_repeated else (value,):
                    if found := nul_field(item, f"{name}."):
                        return found
    return ""


def _peer_identities(context: grpc.aio.ServicerContext[Any, Any]) -> frozenset[str]:
    """The SANs of the caller's verified client certificate (empty without one)."""
    found = context.peer_identities() or ()
    return frozenset(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in found)


class CallInterceptor(AsyncServerInterceptor):
    """What every call passes through around its handler, in this order:

    1. call context: the request id, the client as the gateway saw it (X-Forwarded-For only from the gateway's
       mesh identity); at the end one access log line and the request metrics, with the final status;
    2. the caller's mesh identity (its certificate's SAN, mutual TLS): an internal method answers only the
       identities declared for it next to the service (PERMISSION_DENIED otherwise);
    3. authentication: the bearer token, on every method the contract does not declare public;
    4. error mapping: a domain error (an authentication failure included) becomes its status; anything else a
       generic INTERNAL, logged with its traceback. A request that does not parse (bad UTF-8 in a string field,
       truncated bytes) is INVALID_ARGUMENT rather than grpc's UNKNOWN naming a Python exception class.

    One layer, not one interceptor per concern: every layer costs an `intercept_service` per call, which builds a
    new method handler, and an async generator around every streamed message. With the metric children cached
    too, the chain's own cost per call, measured in-process as grpc.aio runs it on a trivial handler, went from
    31-49 to 18-28 µs for a unary call and from 55-103 to 28-31 µs for a 10-message stream (this VM)."""

    def __init__(
        self,
        service: str,
        public_methods: Collection[str],
        keys: KeyCache,
        *,
        issuer: str,
        audience: str,
        sessions: SessionCache | None = None,
        max_verified: int = 10_000,
        internal_callers: Mapping[str, Collection[str]] | None = None,
        mesh: bool = False,
        database: str = "",
    ) -> None:
        self.service = service
        # Where this service's database lives (a SQLite file's folder, or the PostgreSQL server), for the message of
        # a write refused for lack of space.
        self.database = database
        # method -> the mesh identities that may call it (internal methods only).
        self.internal_callers = {k: frozenset(v) for k, v in (internal_callers or {}).items()}
        # True when the server runs mutual TLS: identities come from the peer certificate. False (plaintext, a
        # service run on its own) trusts every caller, as there is no identity to check.
        self.mesh = mesh
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
        # Metric children by label values: prometheus_client's labels() validates and locks on every call.
        self._counters: dict[tuple[str, str], Any] = {}
        self._histograms: dict[str, Any] = {}

    async def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = await super().intercept_service(continuation, handler_call_details)  # type: ignore[no-untyped-call]
        if handler is None or handler.request_streaming:
            return handler
        return wire.rebuilt(handler, request_deserializer=_tolerant(handler.request_deserializer))

    async def intercept(
        self, method: Callable[..., Any], request: Any, context: grpc.aio.ServicerContext[Any, Any], name: str
    ) -> Any:
        metadata = context.invocation_metadata() or ()
        rid = auth = ""
        for k, v in metadata:
            if k == "x-request-id" and not rid:
                rid = v if isinstance(v, str) else v.decode("latin-1")
            elif k == "authorization" and not auth:
                auth = v if isinstance(v, str) else v.decode("latin-1")
        logs.request_id_var.set(rid or os.urandom(16).hex())
        identities = _peer_identities(context) if self.mesh else frozenset()
        trusted_hop = not self.mesh or GATEWAY in identities
        logs.client_var.set(logs.client_from(metadata, context.peer() or "", trust_forwarded=trusted_hop))
        principal_var.set(None)
        state = _CallState()
        start = time.perf_counter()
        streaming = False
        try:
            if request is UNDECODABLE:
                raise errors.InvalidArgument("request", "is not a valid message (is every string field UTF-8?)")
            if isinstance(request, Message) and (bad := nul_field(request)):
                raise errors.InvalidArgument(bad, "must not contain NUL characters")
            allowed = self.internal_callers.get(name)
            if allowed is not None and self.mesh and not identities & allowed:
                raise errors.PermissionDenied(
                    f"{name} is internal: only {', '.join(sorted(allowed))} may call it "
                    f"(caller: {', '.join(sorted(identities)) or 'no mesh identity'})"
                )
            if name not in self.public_methods and not name.startswith(ALWAYS_PUBLIC_PREFIXES):
                await self._authenticate(auth)
            result = method(request, context)
            if _is_stream(result):
                streaming = True
                return self._stream(result, context, state, start, name)
            return await result
        except Exception as exc:
            await self._handle(exc, context, state)
            raise  # unreachable: _handle aborts or raises
        finally:
            if not streaming:
                self._done(state, start, name)

    async def _stream(
        self,
        it: AsyncIterator[Any],
        context: grpc.aio.ServicerContext[Any, Any],
        state: _CallState,
        start: float,
        name: str,
    ) -> AsyncIterator[Any]:
        gauge = metrics.STREAMS_IN_FLIGHT.labels(self.service, name)
        gauge.inc()
        try:
            async for item in it:
                yield item
        except Exception as exc:
            await self._handle(exc, context, state)
        finally:
            gauge.dec()
            self._done(state, start, name)

    # -- authentication

    async def _authenticate(self, header: str) -> None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise errors.Unauthenticated("this call needs an access token (Authorization: Bearer ...)")
        principal = await self._principal(token)
        if self.sessions is not None and not await self.sessions.active(principal.session_id):
            raise errors.Unauthenticated("this session has ended; log in again")
        principal_var.set(principal)

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

    # -- outcome

    async def _handle(self, exc: Exception, context: grpc.aio.ServicerContext[Any, Any], state: _CallState) -> None:
        full = exc if isinstance(exc, errors.DiskFull) else None
        if not isinstance(exc, errors.DomainError):
            full = disk_full_error(exc, self.database)
        if full is not None:
            # A write refused for lack of space anywhere below (a database, a file): the operator's problem, said
            # as such (RESOURCE_EXHAUSTED, DISK_FULL), never an INTERNAL; logged once per call without a traceback.
            log.warning("disk full: a write was refused", extra={"path": full.path, "error": repr(exc)[:300]})
            exc = full
        elif not isinstance(exc, errors.DomainError) and (gone := database_unavailable_error(exc)) is not None:
            # The database server is restarting or went away: retryable, said once per call without a traceback.
            log.warning("database unavailable: the call was refused", extra={"error": repr(exc)[:300]})
            exc = gone
        if isinstance(exc, errors.DomainError):
            status = grpc_errors.to_status(exc)
            state.code = status.code
            state.why = str(getattr(exc, "message", exc))[:200]
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

    def _done(self, state: _CallState, start: float, name: str) -> None:
        elapsed = time.perf_counter() - start
        code = state.code.name
        counter = self._counters.get((name, code))
        if counter is None:
            counter = self._counters[name, code] = metrics.REQUESTS.labels(self.service, name, code)
        counter.inc()
        histogram = self._histograms.get(name)
        if histogram is None:
            histogram = self._histograms[name] = metrics.LATENCY.labels(self.service, name)
        histogram.observe(elapsed)
        if not name.startswith(ALWAYS_PUBLIC_PREFIXES):
            # The caller's user id, never the token: with request_id it joins this line to the gateway's.
            principal = principal_var.get()
            extra: dict[str, object] = {"method": name, "code": code, "ms": round(elapsed * 1000, 2)}
            if principal is not None:
                extra["user_id"] = principal.user_id
            if state.why:
                extra["why"] = state.why
            log.info("call", extra=extra)
