"""Login with an OpenID Connect provider (authorization code flow with PKCE)."""

from __future__ import annotations

import contextlib
import hmac
import urllib.parse
from typing import Any

import httpx
import jwt

from auth_svc.domain import OidcClaims, OidcProvider
from flowdock_kernel.clock import Clock, SystemClock
from flowdock_kernel.errors import Unauthenticated, Unavailable

ID_TOKEN_ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")


class HttpOidcClient:
    """OpenID Connect relying party over httpx: discovery (cached), authorization URL, code exchange with PKCE
    and client_secret_basic, ID token verification against the provider's JWKS (alg allowlist, iss, aud, exp,
    nonce)."""

    def __init__(
        self,
        providers: list[OidcProvider],
        *,
        timeout: float = 10.0,
        cache_seconds: float = 3600,
        clock: Clock | None = None,
    ) -> None:
        self._providers = providers
        self._clock = clock or SystemClock()
        self._timeout = timeout
        self._cache_seconds = cache_seconds
        self._meta: dict[str, tuple[dict[str, Any], float]] = {}
        self._keys: dict[str, tuple[dict[str, jwt.PyJWK], float]] = {}

    def providers(self) -> list[OidcProvider]:
        return list(self._providers)

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                resp = await client.get(url)
                resp.raise_for_status()
                data = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise Unavailable("the login provider cannot be reached; try again later") from exc
        if not isinstance(data, dict):
            raise Unavailable("the login provider answered something unexpected")
        return data

    async def _discover(self, p: OidcProvider) -> dict[str, Any]:
        cached = self._meta.get(p.name)
        if cached and self._clock.monotonic() - cached[1] < self._cache_seconds:
            return cached[0]
        meta = await self._get_json(p.issuer.rstrip("/") + "/.well-known/openid-configuration")
        if str(meta.get("issuer", "")).rstrip("/") != p.issuer.rstrip("/"):
            raise Unavailable("the login provider's discovery document names another issuer")
        self._meta[p.name] = (meta, self._clock.monotonic())
        return meta

    async def _key(self, p: OidcProvider, meta: dict[str, Any], kid: str | None) -> jwt.PyJWK:
        cached = self._keys.get(p.name)
        for attempt in range(2):
            if cached is None or attempt == 1 or self._clock.monotonic() - cached[1] > self._cache_seconds:
                document = await self._get_json(str(meta["jwks_uri"]))
                keys = {}
                for entry in document.get("keys", []):
                    with contextlib.suppress(jwt.PyJWTError):
                        keys[str(entry.get("kid", ""))] = jwt.PyJWK(entry)
                cached = (keys, self._clock.monotonic())
                self._keys[p.name] = cached
            found = cached[0].get(kid or "") or (next(iter(cached[0].values())) if len(cached[0]) == 1 else None)
            if found is not None:
                return found
        raise Unauthenticated("the login provider's token is signed by an unknown key")

    async def authorization_url(
        self, provider: OidcProvider, *, redirect_uri: str, state: str, nonce: str, code_challenge: str
    ) -> str:
        meta = await self._discover(provider)
        query = urllib.parse.urlencode(
            {
                "response_type": "code",
                "client_id": provider.client_id,
                "redirect_uri": redirect_uri,
                "scope": provider.scopes,
                "state": state,
                "nonce": nonce,
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
            }
        )
        endpoint = str(meta["authorization_endpoint"])
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    async def exchange(
        self, provider: OidcProvider, *, code: str, redirect_uri: str, code_verifier: str, nonce: str
    ) -> OidcClaims:
        meta = await self._discover(provider)
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                resp = await client.post(
                    str(meta["token_endpoint"]),
                    data={
                        "grant_type": "authorization_code",
                        "code": code,
                        "redirect_uri": redirect_uri,
                        "code_verifier": code_verifier,
                    },
                    auth=(provider.client_id, provider.client_secret),
                )
        except httpx.HTTPError as exc:
            raise Unavailable("the login provider cannot be reached; try again later") from exc
        if resp.status_code != 200:
            raise Unauthenticated("the login provider did not confirm this login")
        id_token = str(resp.json().get("id_token", ""))
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated("the login provider sent no valid ID token") from exc
        alg = header.get("alg")
        if alg not in ID_TOKEN_ALGORITHMS:
            raise Unauthenticated("the login provider's ID token uses an algorithm that is not accepted")
        key = await self._key(provider, meta, header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key=key.key,
                algorithms=[alg],
                audience=provider.client_id,
                issuer=str(meta["issuer"]),
                leeway=30,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated("the login provider's ID token was rejected") from exc
        if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
            raise Unauthenticated("the login provider's ID token does not answer this login (nonce)")
        email = claims.get("email")
        if not email and meta.get("userinfo_endpoint") and resp.json().get("access_token"):
            with contextlib.suppress(httpx.HTTPError, ValueError):
                async with httpx.AsyncClient(timeout=self._timeout) as client:
                    info = await client.get(
                        str(meta["userinfo_endpoint"]),
                        headers={"authorization": f"Bearer {resp.json()['access_token']}"},
                    )
                    data = info.json()
                    if data.get("sub") == claims["sub"]:
                        claims = {**data, **claims}
        return OidcClaims(
            subject=str(claims["sub"]),
            email=str(claims.get("email") or ""),
            email_verified=claims.get("email_verified") is True,
            name=str(claims.get("name") or ""),
        )
