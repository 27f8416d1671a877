"""gRPC entrypoint of auth_svc: translates messages to use-case calls and back. No rules live here."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from google.api import httpbody_pb2

from auth_svc import domain
from auth_svc.ports import PublishedKeys
from auth_svc.usecases import Accounts, Tokens
from flowdock.auth.v1 import auth_pb2, auth_pb2_grpc
from flowdock_kernel import logs
from flowdock_kernel.clock import Clock
from flowdock_kernel.errors import InvalidArgument
from flowdock_kernel.tokens import current_principal
from flowdock_kernel.wire import timestamp, to_datetime

_ROLES = {domain.Role.USER: auth_pb2.ROLE_USER, domain.Role.ADMIN: auth_pb2.ROLE_ADMIN}
_ROLES_IN = {auth_pb2.ROLE_USER: domain.Role.USER, auth_pb2.ROLE_ADMIN: domain.Role.ADMIN}
_KINDS = {
    domain.SessionKind.LOGIN: auth_pb2.SESSION_KIND_LOGIN,
    domain.SessionKind.APP_PASSWORD: auth_pb2.SESSION_KIND_APP_PASSWORD,
    domain.SessionKind.BASIC_PASSWORD: auth_pb2.SESSION_KIND_BASIC_PASSWORD,
}

Ctx = grpc.aio.ServicerContext[Any, Any]


def _metadata(context: Ctx, key: str) -> str:
    for k, v in context.invocation_metadata() or ():
        if k == key:
            return v if isinstance(v, str) else v.decode("latin-1")
    return ""


#: A browser asks for cookie mode with this request header (metadata); without it nothing about cookies happens.
COOKIE_SESSION_HEADER = "x-flowdock-cookie-session"
REFRESH_COOKIE = "fd_refresh"
#: Only the auth service's grpc-web calls carry the cookie: no other path (REST, storage, share) ever sees it.
COOKIE_PATH = "/flowdock.auth.v1.AuthService/"


@dataclass(frozen=True)
class RefreshCookie:
    """The browser's refresh token as an HttpOnly, SameSite=Strict cookie, sent as response metadata (Envoy's
    grpc_web filter turns initial metadata into HTTP headers and the Cookie header into request metadata).

    Script in the page can never read it; another site cannot make the browser send it with the opt-in header
    (a custom header forces a CORS preflight, which the gateway does not grant it). See docs/auth.md.
    """

    max_age_seconds: int
    secure: bool = False

    def wanted(self, context: Ctx) -> bool:
        return _metadata(context, COOKIE_SESSION_HEADER) == "1"

    def _header(self, value: str, max_age: int) -> str:
        parts = [f"{REFRESH_COOKIE}={value}", "HttpOnly", "SameSite=Strict", f"Path={COOKIE_PATH}"]
        parts.append(f"Max-Age={max_age}")
        if self.secure:
            parts.append("Secure")
        return "; ".join(parts)

    def set_header(self, token: str) -> str:
        return self._header(token, self.max_age_seconds)

    def clear_header(self) -> str:
        return self._header("", 0)

    @staticmethod
    def read(context: Ctx) -> str:
        """fd_refresh from the Cookie metadata (HTTP/2 may split cookies over several entries)."""
        return _cookie(_metadata_all(context, "cookie"), REFRESH_COOKIE)


def _metadata_all(context: Ctx, key: str) -> list[str]:
    return [
        v if isinstance(v, str) else v.decode("latin-1") for k, v in context.invocation_metadata() or () if k == key
    ]


def _cookie(headers: Iterable[str], name: str) -> str:
    for header in headers:
        for item in header.split(";"):
            key, sep, value = item.strip().partition("=")
            if sep and key == name:
                return value.strip()
    return ""


def client_of(context: Ctx) -> domain.Client:
    """The caller's address as the kernel's interceptor established it: the gateway's X-Forwarded-For entry when the
    caller is the gateway's mesh identity, else the peer address (a forged header from anyone else is ignored)."""
    client = logs.client_var.get()
    agent = _metadata(context, "x-user-agent") or client.user_agent
    return domain.Client(ip=client.ip[:64], user_agent=agent[: domain.MAX_USER_AGENT])


def user_message(user: domain.User) -> auth_pb2.User:
    return auth_pb2.User(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        role=_ROLES[user.role],
        totp_enabled=user.totp_enabled,
        create_time=timestamp(user.created_at),
        email_verified=user.email_verified,
        disabled=user.disabled,
    )


def event_message(event: domain.Event) -> auth_pb2.ActivityEvent:
    return auth_pb2.ActivityEvent(
        id=event.id,
        time=timestamp(event.at),
        kind=event.kind,
        actor_id=event.actor_id,
        subject_id=event.subject_id,
        ip=event.ip,
        user_agent=event.user_agent,
        service=event.service,
        details=event.details,
    )


def app_password_message(session: domain.Session) -> auth_pb2.AppPassword:
    message = auth_pb2.AppPassword(id=session.id, name=session.device_name, create_time=timestamp(session.created_at))
    if session.last_seen_at is not None:
        message.last_used_time.CopyFrom(timestamp(session.last_seen_at))
    return message


def _quota(quota: domain.Quota) -> auth_pb2.UserQuota:
    return auth_pb2.UserQuota(
        used_bytes=quota.used_bytes, reserved_bytes=quota.reserved_bytes, limit_bytes=quota.limit_bytes
    )


def _tokens(tokens: Tokens) -> auth_pb2.LoginResponse:
    return auth_pb2.LoginResponse(
        access_token=tokens.access_token,
        expires_in=tokens.expires_in,
        token_type="Bearer",
        refresh_token=tokens.refresh_token,
    )


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, accounts: Accounts, keys: PublishedKeys, cookie: RefreshCookie | None = None) -> None:
        self.accounts = accounts
        self.keys = keys
        self.cookie = cookie or RefreshCookie(max_age_seconds=30 * 86400)

    async def _issue(self, tokens: Tokens, context: Ctx) -> auth_pb2.LoginResponse:
        """The tokens as the caller wants them: a browser in cookie mode gets the refresh token only as a cookie."""
        reply = _tokens(tokens)
        if self.cookie.wanted(context):
            await context.send_initial_metadata((("set-cookie", self.cookie.set_header(tokens.refresh_token)),))
            reply.refresh_token = ""
        return reply

    async def Register(self, request: auth_pb2.RegisterRequest, context: Ctx) -> auth_pb2.RegisterResponse:
        await self.accounts.register(request.email, request.password, request.display_name, client_of(context))
        return auth_pb2.RegisterResponse()

    async def VerifyEmail(self, request: auth_pb2.VerifyEmailRequest, context: Ctx) -> auth_pb2.VerifyEmailResponse:
        await self.accounts.verify_email(request.token, client_of(context))
        return auth_pb2.VerifyEmailResponse()

    async def ResendVerification(
        self, request: auth_pb2.ResendVerificationRequest, context: Ctx
    ) -> auth_pb2.ResendVerificationResponse:
        await self.accounts.resend_verification(request.email, client_of(context))
        return auth_pb2.ResendVerificationResponse()

    async def Login(self, request: auth_pb2.LoginRequest, context: Ctx) -> auth_pb2.LoginResponse:
        result = await self.accounts.login(request.email, request.password, request.device_name, client_of(context))
        if result.tokens is None:
            return auth_pb2.LoginResponse(mfa_required=True, mfa_token=result.mfa_token)
        return await self._issue(result.tokens, context)

    async def LoginTotp(self, request: auth_pb2.LoginTotpRequest, context: Ctx) -> auth_pb2.LoginResponse:
        tokens = await self.accounts.login_totp(request.mfa_token, request.code, client_of(context))
        return await self._issue(tokens, context)

    async def Refresh(self, request: auth_pb2.RefreshRequest, context: Ctx) -> auth_pb2.LoginResponse:
        token = request.refresh_token
        if not token and self.cookie.wanted(context):
            token = self.cookie.read(context)
        return await self._issue(await self.accounts.refresh(token, client_of(context)), context)

    async def Logout(self, request: auth_pb2.LogoutRequest, context: Ctx) -> auth_pb2.LogoutResponse:
        me = current_principal()
        await self.accounts.logout(me.user_id, me.session_id, client_of(context))
        if self.cookie.wanted(context):
            await context.send_initial_metadata((("set-cookie", self.cookie.clear_header()),))
        return auth_pb2.LogoutResponse()

    async def RequestPasswordRecovery(
        self, request: auth_pb2.RequestPasswordRecoveryRequest, context: Ctx
    ) -> auth_pb2.RequestPasswordRecoveryResponse:
        await self.accounts.request_recovery(request.email, client_of(context))
        return auth_pb2.RequestPasswordRecoveryResponse()

    async def ResetPassword(
        self, request: auth_pb2.ResetPasswordRequest, context: Ctx
    ) -> auth_pb2.ResetPasswordResponse:
        await self.accounts.reset_password(request.token, request.new_password, client_of(context))
        return auth_pb2.ResetPasswordResponse()

    async def ListOidcProviders(
        self, request: auth_pb2.ListOidcProvidersRequest, context: Ctx
    ) -> auth_pb2.ListOidcProvidersResponse:
        return auth_pb2.ListOidcProvidersResponse(providers=self.accounts.oidc_providers())

    async def StartOidcLogin(
        self, request: auth_pb2.StartOidcLoginRequest, context: Ctx
    ) -> auth_pb2.StartOidcLoginResponse:
        url, state = await self.accounts.oidc_start(request.provider, request.redirect_uri)
        return auth_pb2.StartOidcLoginResponse(authorization_url=url, state=state)

    async def FinishOidcLogin(self, request: auth_pb2.FinishOidcLoginRequest, context: Ctx) -> auth_pb2.LoginResponse:
        result = await self.accounts.oidc_finish(request.state, request.code, request.device_name, client_of(context))
        if result.tokens is None:
            return auth_pb2.LoginResponse(mfa_required=True, mfa_token=result.mfa_token)
        return await self._issue(result.tokens, context)

    async def GetJwks(self, request: auth_pb2.GetJwksRequest, context: Ctx) -> httpbody_pb2.HttpBody:
        await self.keys.refresh()
        return httpbody_pb2.HttpBody(content_type="application/json", data=self.keys.jwks().encode())

    async def GetMe(self, request: auth_pb2.GetMeRequest, context: Ctx) -> auth_pb2.User:
        return user_message(await self.accounts.get(current_principal().user_id))

    async def UpdateMe(self, request: auth_pb2.UpdateMeRequest, context: Ctx) -> auth_pb2.User:
        user = await self.accounts.update_profile(current_principal().user_id, request.display_name, client_of(context))
        return user_message(user)

    async def ChangeEmail(self, request: auth_pb2.ChangeEmailRequest, context: Ctx) -> auth_pb2.ChangeEmailResponse:
        await self.accounts.change_email(
            current_principal().user_id, request.new_email, request.current_password, client_of(context)
        )
        return auth_pb2.ChangeEmailResponse()

    async def ChangePassword(
        self, request: auth_pb2.ChangePasswordRequest, context: Ctx
    ) -> auth_pb2.ChangePasswordResponse:
        me = current_principal()
        await self.accounts.change_password(
            me.user_id,
            me.session_id,
            request.current_password,
            request.new_password,
            request.revoke_other_sessions,
            client_of(context),
        )
        return auth_pb2.ChangePasswordResponse()

    async def ListSessions(self, request: auth_pb2.ListSessionsRequest, context: Ctx) -> auth_pb2.ListSessionsResponse:
        me = current_principal()
        return auth_pb2.ListSessionsResponse(
            sessions=[
                auth_pb2.Session(
                    id=s.id,
                    device_name=s.device_name,
                    ip=s.ip,
                    create_time=timestamp(s.created_at),
                    last_seen_time=timestamp(s.last_seen_at or s.created_at),
                    current=s.id == me.session_id,
                    kind=_KINDS[s.kind],
                )
                for s in await self.accounts.list_sessions(me.user_id)
            ]
        )

    async def RevokeSession(
        self, request: auth_pb2.RevokeSessionRequest, context: Ctx
    ) -> auth_pb2.RevokeSessionResponse:
        await self.accounts.revoke_session(current_principal().user_id, request.session_id, client_of(context))
        return auth_pb2.RevokeSessionResponse()

    async def RevokeOtherSessions(
        self, request: auth_pb2.RevokeOtherSessionsRequest, context: Ctx
    ) -> auth_pb2.RevokeOtherSessionsResponse:
        me = current_principal()
        count = await self.accounts.revoke_other_sessions(me.user_id, me.session_id, client_of(context))
        return auth_pb2.RevokeOtherSessionsResponse(revoked=count)

    async def CreateAppPassword(
        self, request: auth_pb2.CreateAppPasswordRequest, context: Ctx
    ) -> auth_pb2.CreateAppPasswordResponse:
        me = current_principal()
        made = await self.accounts.create_app_password(me.user_id, me.session_id, request.name, client_of(context))
        return auth_pb2.CreateAppPasswordResponse(app_password=app_password_message(made.session), secret=made.secret)

    async def ListAppPasswords(
        self, request: auth_pb2.ListAppPasswordsRequest, context: Ctx
    ) -> auth_pb2.ListAppPasswordsResponse:
        found = await self.accounts.list_app_passwords(current_principal().user_id)
        return auth_pb2.ListAppPasswordsResponse(app_passwords=[app_password_message(s) for s in found])

    async def RevokeAppPassword(
        self, request: auth_pb2.RevokeAppPasswordRequest, context: Ctx
    ) -> auth_pb2.RevokeAppPasswordResponse:
        me = current_principal()
        await self.accounts.revoke_app_password(me.user_id, me.session_id, request.id, client_of(context))
        return auth_pb2.RevokeAppPasswordResponse()

    async def StartTotpEnrollment(
        self, request: auth_pb2.StartTotpEnrollmentRequest, context: Ctx
    ) -> auth_pb2.StartTotpEnrollmentResponse:
        me = current_principal()
        started = await self.accounts.start_totp(me.user_id, client_of(context), me.session_id)
        return auth_pb2.StartTotpEnrollmentResponse(
            secret=started.secret, otpauth_uri=started.uri, qr_svg=started.qr_svg
        )

    async def ConfirmTotp(self, request: auth_pb2.ConfirmTotpRequest, context: Ctx) -> auth_pb2.ConfirmTotpResponse:
        me = current_principal()
        codes = await self.accounts.confirm_totp(me.user_id, request.code, client_of(context), me.session_id)
        return auth_pb2.ConfirmTotpResponse(recovery_codes=codes)

    async def DisableTotp(self, request: auth_pb2.DisableTotpRequest, context: Ctx) -> auth_pb2.DisableTotpResponse:
        await self.accounts.disable_totp(
            current_principal().user_id, request.password, request.code, client_of(context)
        )
        return auth_pb2.DisableTotpResponse()

    async def ListMyActivity(
        self, request: auth_pb2.ListMyActivityRequest, context: Ctx
    ) -> auth_pb2.ListMyActivityResponse:
        events, token = await self.accounts.my_activity(
            current_principal().user_id,
            request.page_size,
            request.page_token,
            kind_prefixes=list(request.kind_prefixes),
            since=to_datetime(request.start_time) if request.HasField("start_time") else None,
            until=to_datetime(request.end_time) if request.HasField("end_time") else None,
        )
        return auth_pb2.ListMyActivityResponse(events=[event_message(e) for e in events], next_page_token=token)

    async def ListUsers(self, request: auth_pb2.ListUsersRequest, context: Ctx) -> auth_pb2.ListUsersResponse:
        found, token = await self.accounts.list_users(
            current_principal().user_id, request.query, request.page_size, request.page_token, client_of(context)
        )
        return auth_pb2.ListUsersResponse(users=[user_message(u) for u in found], next_page_token=token)

    async def GetUser(self, request: auth_pb2.GetUserRequest, context: Ctx) -> auth_pb2.User:
        user, sessions = await self.accounts.get_user(current_principal().user_id, request.user_id, client_of(context))
        message = user_message(user)
        message.active_sessions = sessions
        return message

    async def SetUserRole(self, request: auth_pb2.SetUserRoleRequest, context: Ctx) -> auth_pb2.User:
        if request.role not in _ROLES_IN:
            raise InvalidArgument("role", "must be ROLE_USER or ROLE_ADMIN")
        user = await self.accounts.set_role(
            current_principal().user_id, request.user_id, _ROLES_IN[request.role], client_of(context)
        )
        return user_message(user)

    async def SetUserDisabled(self, request: auth_pb2.SetUserDisabledRequest, context: Ctx) -> auth_pb2.User:
        user = await self.accounts.set_disabled(
            current_principal().user_id, request.user_id, request.disabled, client_of(context)
        )
        return user_message(user)

    async def GetUserQuota(self, request: auth_pb2.GetUserQuotaRequest, context: Ctx) -> auth_pb2.UserQuota:
        return _quota(await self.accounts.user_quota(current_principal().user_id, request.user_id, client_of(context)))

    async def SetUserQuota(self, request: auth_pb2.SetUserQuotaRequest, context: Ctx) -> auth_pb2.UserQuota:
        quota = await self.accounts.set_user_quota(
            current_principal().user_id, request.user_id, request.limit_bytes, client_of(context)
        )
        return _quota(quota)

    async def DeleteUser(self, request: auth_pb2.DeleteUserRequest, context: Ctx) -> auth_pb2.DeleteUserResponse:
        freed = await self.accounts.delete_user(current_principal().user_id, request.user_id, client_of(context))
        return auth_pb2.DeleteUserResponse(freed_bytes=freed)

    async def ListActivity(self, request: auth_pb2.ListActivityRequest, context: Ctx) -> auth_pb2.ListActivityResponse:
        events, token = await self.accounts.list_activity(
            current_principal().user_id,
            request.page_size,
            request.page_token,
            subject_id=request.subject_id,
            actor_id=request.actor_id,
            kind_prefix=request.kind_prefix,
            since=to_datetime(request.start_time) if request.HasField("start_time") else None,
            until=to_datetime(request.end_time) if request.HasField("end_time") else None,
            client=client_of(context),
        )
        return auth_pb2.ListActivityResponse(events=[event_message(e) for e in events], next_page_token=token)


class AuthInternalServicer(auth_pb2_grpc.AuthInternalServiceServicer):
    """Internal (never routed by the gateway): the revocation check, the audit trail's intake, account lookups
    for share_svc and HTTP Basic for the WebDAV service."""

    def __init__(self, accounts: Accounts, clock: Clock) -> None:
        self.accounts = accounts
        self.clock = clock  # stamps events that come without a time

    async def CheckSession(self, request: auth_pb2.CheckSessionRequest, context: Ctx) -> auth_pb2.CheckSessionResponse:
        role = await self.accounts.session_role(request.session_id)
        if role is None:
            return auth_pb2.CheckSessionResponse(active=False)
        return auth_pb2.CheckSessionResponse(active=True, role=_ROLES[role])

    async def RecordEvents(self, request: auth_pb2.RecordEventsRequest, context: Ctx) -> auth_pb2.RecordEventsResponse:
        now = self.clock.now()
        events = [
            domain.Event(
                id=e.id,
                at=to_datetime(e.time) if e.HasField("time") else now,
                kind=e.kind,
                actor_id=e.actor_id,
                subject_id=e.subject_id,
                ip=e.ip,
                user_agent=e.user_agent,
                service=e.service or "unknown",
                details=dict(e.details),
            )
            for e in request.events
        ]
        await self.accounts.record_external(events)
        return auth_pb2.RecordEventsResponse()

    async def LookupUser(self, request: auth_pb2.LookupUserRequest, context: Ctx) -> auth_pb2.LookupUserResponse:
        if request.user_id and request.email:
            raise InvalidArgument("user_id", "send either email or user_id, not both")
        user = await (
            self.accounts.lookup_user_id(request.user_id)
            if request.user_id
            else self.accounts.lookup_user(request.email)
        )
        return auth_pb2.LookupUserResponse(user_id=user.id, email=user.email, display_name=user.display_name)

    async def NotifyUser(self, request: auth_pb2.NotifyUserRequest, context: Ctx) -> auth_pb2.NotifyUserResponse:
        await self.accounts.notify_user(request.user_id, request.subject, request.body)
        return auth_pb2.NotifyUserResponse()

    async def AuthenticateBasic(
        self, request: auth_pb2.AuthenticateBasicRequest, context: Ctx
    ) -> auth_pb2.AuthenticateBasicResponse:
        # The end client is the one the calling service names (only the declared mesh identities may call this);
        # without one, the caller itself.
        client = client_of(context)
        if request.client_address:
            client = domain.Client(
                ip=_printable(request.client_address)[:64],
                user_agent=_printable(request.user_agent)[: domain.MAX_USER_AGENT] or client.user_agent,
            )
        done = await self.accounts.authenticate_basic(request.email, request.password, client)
        return auth_pb2.AuthenticateBasicResponse(
            user_id=done.user_id,
            session_id=done.session_id,
            access_token=done.access_token,
            access_token_expire_time=timestamp(done.expires_at),
        )


def _printable(text: str) -> str:
    """Without control characters (what a service relays from an HTTP header is written to the audit trail)."""
    return "".join(c for c in text if c.isprintable())
