"""Account use cases: each reads like the feature, talks only to ports."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from auth_svc import domain
from auth_svc.ports import PasswordHasher, TokenIssuer, UnitOfWork
from flowdock_kernel.errors import AlreadyExists, NotFound, Unauthenticated

# The same message for unknown email and wrong password: login must not reveal which accounts exist.
BAD_CREDENTIALS = "email or password is incorrect"


@dataclass(frozen=True)
class Tokens:
    access_token: str
    expires_in: int


@dataclass
class Accounts:
    uow: Callable[[], UnitOfWork]
    hasher: PasswordHasher
    issuer: TokenIssuer
    # A real hash to verify against when the email is unknown, so both paths cost one Argon2 verification.
    dummy_hash: str = ""

    def __post_init__(self) -> None:
        self.dummy_hash = self.dummy_hash or self.hasher.hash(uuid.uuid4().hex)

    async def register(self, email: str, password: str, display_name: str) -> None:
        """Create an account. An existing email gives the same answer (the owner is told by mail, later)."""
        email = domain.normalise_email(email)
        domain.check_password(password)
        name = domain.clean_display_name(display_name, email)
        password_hash = self.hasher.hash(password)
        async with self.uow() as uow:
            if await uow.users.by_email(email) is not None:
                return
            user = domain.User(
                id=str(uuid.uuid4()),
                email=email,
                display_name=name,
                role=domain.Role.USER,
                password_hash=password_hash,
                created_at=datetime.now(UTC),
            )
            await uow.users.add(user)
            try:
                await uow.commit()
            except AlreadyExists:
                return  # a concurrent registration of the same email won; same answer

    async def login(self, email: str, password: str, device_name: str) -> Tokens:
        try:
            email = domain.normalise_email(email)
        except Exception:
            self.hasher.verify(self.dummy_hash, password)
            raise Unauthenticated(BAD_CREDENTIALS) from None
        async with self.uow() as uow:
            user = await uow.users.by_email(email)
            if user is None:
                self.hasher.verify(self.dummy_hash, password)
                raise Unauthenticated(BAD_CREDENTIALS)
            if not self.hasher.verify(user.password_hash, password) or user.disabled:
                raise Unauthenticated(BAD_CREDENTIALS)
            if self.hasher.needs_rehash(user.password_hash):
                await uow.users.set_password_hash(user.id, self.hasher.hash(password))
            session = domain.Session(
                id=str(uuid.uuid4()),
                user_id=user.id,
                device_name=device_name.strip()[:100],
                created_at=datetime.now(UTC),
            )
            await uow.sessions.add(session)
            await uow.commit()
        return Tokens(self.issuer.issue_access(user, session.id), self.issuer.ttl_seconds)

    async def get(self, user_id: str) -> domain.User:
        async with self.uow() as uow:
            user = await uow.users.by_id(user_id)
        if user is None:
            raise NotFound("account not found")
        return user
