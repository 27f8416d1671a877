"""The WSGI layers in front of WsgiDAV: health, authentication, request metrics.

Authentication is the dav service's own (Envoy's JWT filter lets `/dav/` through): `Authorization: Bearer <access
token>` (the JWT REST clients use), or HTTP Basic with the account email and an app password, checked by auth_svc's
`AuthenticateBasic` when an `Authenticator` for it is configured (Basic with an access token as the password is
taken as that token). The token is then checked by the first call to
storage_svc (GetNode "root", which also gives the user's id); a request without valid credentials gets 401 with
`WWW-Authenticate: Basic realm="FlowDock"`.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from prometheus_client import Counter, Histogram
from wsgidav.dav_error import DAVError

from dav_svc.backend import Backend
from dav_svc.provider import CREATED_FLAG, SNAPSHOT_KEY

log = logging.getLogger("flowdock.dav")

REALM = "FlowDock"
HEALTH_PATH = "/healthz"

#: Methods counted by name; anything else is "other" (bounded label values).
METHODS = frozenset(
    ("OPTIONS", "GET", "HEAD", "PUT", "DELETE", "MKCOL", "COPY", "MOVE", "PROPFIND", "PROPPATCH", "LOCK", "UNLOCK")
)
REQUESTS = Counter(
    "flowdock_dav_requests_total", "WebDAV requests handled, by method and status.", ["method", "status"]
)
LATENCY = Histogram(
    "flowdock_dav_request_seconds",
    "WebDAV request duration until the response's first byte.",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)

StartResponse = Callable[..., Any]
App = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class Authenticator(Protocol):
    """Email + app password -> an access token for the account (None when refused)."""

    def basic(self, email: str, password: str, client_ip: str, user_agent: str = "") -> str | None: ...


def _challenge(start_response: StartResponse, message: str) -> list[bytes]:
    body = (message + "\n").encode()
    start_response(
        "401 Unauthorized",
        [
            ("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"'),
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
        ],
    )
    return [body]


def _token(header: str, authenticator: Authenticator | None, client_ip: str, user_agent: str = "") -> str | None:
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic":
        try:
            email, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        if not sep or not email:
            return None
        if _looks_like_token(password):
            # A client that speaks only Basic (litmus, scripts) may send an access token as the password: it is a
            # credential on its own, verified by storage_svc like a Bearer token.
            return password
        if authenticator is None:
            return None
        return authenticator.basic(email, password, client_ip, user_agent)
    return None


def _looks_like_token(password: str) -> bool:
    """A JWT (three base64url parts), never a password a person chose: app passwords have no dots."""
    parts = password.split(".")
    return (
        len(password) > 40
        and len(parts) == 3
        and all(p and p.replace("-", "").replace("_", "").isalnum() for p in parts)
    )


class Snapshot(Protocol):
    """Reads of the stores answered from one load per request (stores.RequestSnapshot)."""

    def begin(self, user: str) -> None: ...

    def holds(self, namespace: str) -> bool: ...

    def end(self) -> None: ...


class DavFront:
    """Health, then credentials, then WsgiDAV; every request counted."""

    def __init__(
        self,
        dav: App,
        backend: Backend,
        authenticator: Authenticator | None = None,
        snapshot: Snapshot | None = None,
    ) -> None:
        self.dav = dav
        self.backend = backend
        self.authenticator = authenticator
        self.snapshot = snapshot

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "")
        label = method if method in METHODS else "other"
        started = time.perf_counter()
        seen: dict[str, str] = {}

        def counted(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if status.startswith("204") and environ.get(CREATED_FLAG) and method in ("COPY", "MOVE"):
                status = "201 Created"
            seen["status"] = status.split(" ", 1)[0]
            closing = any(k.lower() == "connection" and v.lower() == "close" for k, v in headers)
            if status[:1] in "45" and not closing and _body_unread(environ):
                # Refused before its body was read (507 over quota, 411, 401...): close rather than drain it.
                headers = [*headers, ("Connection", "close")]
            LATENCY.labels(label).observe(time.perf_counter() - started)
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        try:
            return self._handle(environ, counted)
        finally:
            REQUESTS.labels(label, seen.get("status", "none")).inc()

    def _handle(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == HEALTH_PATH:
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
            return [b"ok\n"]
        bad = _bad_url(environ)
        if bad:
            return _plain(start_response, 400, bad)
        client_ip = environ.get("HTTP_X_FLOWDOCK_CLIENT_IP") or environ.get("REMOTE_ADDR", "")
        try:
            token = _token(
                environ.get("HTTP_AUTHORIZATION", ""), self.authenticator, client_ip, environ.get("HTTP_USER_AGENT", "")
            )
        except DAVError as exc:
            return _refused(start_response, exc)
        if token is None:
            return _challenge(start_response, "sign in with your account email and an app password")
        session = self.backend.session(token, environ.get("HTTP_X_REQUEST_ID", ""))
        try:
            root = session.root()
        except DAVError as exc:
            if exc.value == 401:
                return _challenge(start_response, "the credentials were not accepted")
            return _refused(start_response, exc)
        if environ.get("REQUEST_METHOD") == "PROPFIND":
            depth = environ.get("HTTP_DEPTH", "").strip().lower()
            if depth == "infinity":
                return _finite_depth(start_response)
            if not depth:
                environ["HTTP_DEPTH"] = "1"  # RFC 4918 9.1 would read infinity; one level is what clients mean
        environ["flowdock.session"] = session
        # WsgiDAV reads a refused request's whole body before answering (a Windows client's quirk, its
        # read_and_discard_input): a 507 to an over-quota PUT would wait for gigabytes. Marked as read in part, it
        # answers at once with Connection: close instead, which _ClosingGateway honours.
        environ["wsgidav.some_input_read"] = 1
        environ["wsgidav.auth.user_name"] = root.owner_id
        environ["wsgidav.auth.realm"] = REALM
        environ["wsgidav.auth.roles"] = []
        environ["wsgidav.auth.permissions"] = []
        if self.snapshot is None or environ.get("REQUEST_METHOD") != "PROPFIND":
            return self.dav(environ, start_response)
        # PROPFIND reads each member's locks and dead properties: one load of the user's for the whole answer.
        self.snapshot.begin(root.owner_id)
        environ[SNAPSHOT_KEY] = self.snapshot
        try:
            result = self.dav(environ, start_response)
            try:
                return list(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        finally:
            self.snapshot.end()


def _body_unread(environ: dict[str, Any]) -> bool:
    declared = environ.get("CONTENT_LENGTH", "") or "0"
    chunked = environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked"
    return (chunked or (declared.isdigit() and int(declared) > 0)) and not environ.get("wsgidav.all_input_read")


def _bad_url(environ: dict[str, Any]) -> str:
    """Why the request's path (WSGI gives it as latin-1 of the raw bytes) or Destination is unusable, or ""."""
    for key in ("PATH_INFO", "HTTP_DESTINATION"):
        raw = environ.get(key, "")
        if "%2f" in raw.lower():  # cheroot leaves an encoded slash encoded in PATH_INFO
            return "a name may not contain a slash (%2F)"
        try:
            text = raw.encode("latin-1").decode("utf-8") if key == "PATH_INFO" else raw
        except (UnicodeEncodeError, UnicodeDecodeError):
            return "the URL is not valid UTF-8"
        if key == "HTTP_DESTINATION":
            try:
                text = urllib.parse.unquote(text, errors="strict")
            except UnicodeDecodeError:
                return "the Destination header is not valid UTF-8"
        if "\x00" in text:
            return "the URL contains NUL"
    return ""


def _plain(start_response: StartResponse, status: int, message: str) -> list[bytes]:
    body = (message + "\n").encode()
    start_response(
        f"{status} {_reason(status)}",
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]


FINITE_DEPTH = b'<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:"><D:propfind-finite-depth/></D:error>\n'


def _finite_depth(start_response: StartResponse) -> list[bytes]:
    """PROPFIND with Depth: infinity is refused (RFC 4918 9.1): a whole tree in one answer is unbounded work."""
    start_response(
        "403 Forbidden",
        [("Content-Type", 'application/xml; charset="utf-8"'), ("Content-Length", str(len(FINITE_DEPTH)))],
    )
    return [FINITE_DEPTH]


def _refused(start_response: StartResponse, exc: DAVError) -> list[bytes]:
    """An error met before WsgiDAV runs (auth_svc or storage_svc unreachable, throttled)."""
    body = (exc.get_user_info() + "\n").encode()
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    headers += list(exc.add_headers or [])
    start_response(f"{exc.value} {_reason(exc.value)}", headers)
    return [body]


def _reason(status: int) -> str:
    import http

    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"
