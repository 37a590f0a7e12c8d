"""Users and tokens: who is calling, logins, and the built-in user accounts.

A request's bearer token is either one /auth/login minted (HS256 with ``auth_jwt_secret``)
or one from the site's identity provider (RS256, checked with its public key).  A
built-in token names a user, who is looked up on every request: disabling or deleting
the user ends their tokens at once, and a role change applies to the next request.  An
external token carries its own role (see ``role_from_claims``); built-in accounts of the
same name are never consulted for it, so an identity provider cannot speak for a local
account and a local account cannot raise an external user's role.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from task_scheduler.clock import Clock
from task_scheduler.domain.auth import (
    ANONYMOUS,
    MAX_PASSWORD_LENGTH,
    USERNAME_PATTERN,
    BadToken,
    FailureWindow,
    Principal,
    Role,
    acceptable_password,
    mint,
    mint_feed,
    role_from_claims,
    token_algorithm,
    verify_builtin,
    verify_external,
    verify_feed,
)
from task_scheduler.domain.errors import (
    Busy,
    Conflict,
    Forbidden,
    NotFound,
    TooManyAttempts,
    Unauthenticated,
)
from task_scheduler.storage.orm import UserRecord
from task_scheduler.storage.retry import retrying
from task_scheduler.storage.store import Store

logger = logging.getLogger(__name__)
T = TypeVar("T")

LOGIN_FAILED = "wrong username or password"
"""The one answer to every failed login, so it does not tell which names exist."""
THROTTLED = "too many failed logins; try again later"
"""The same for a name and for an address, so it does not tell which names exist either."""


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(pattern=USERNAME_PATTERN, description="Letters, digits and . _ @ + -; at most 128.")
    password: str = Field(description="At least 10 characters; stored only as an argon2id hash.")
    role: Role = Role.viewer

    _password = field_validator("password")(acceptable_password)


class UserPatch(BaseModel):
    """What an admin may change about a user; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    enabled: bool | None = Field(
        None, description="A disabled user cannot log in; their tokens stop working."
    )
    password: str | None = Field(None, description="A new password (at least 10 characters).")

    _password = field_validator("password")(acceptable_password)


class UserView(BaseModel):
    username: str
    role: Role
    enabled: bool
    created_at: datetime
    updated_at: datetime


class Me(BaseModel):
    username: str | None = Field(description="None when authentication is switched off.")
    role: Role
    source: str = Field(
        description="builtin (a token from /auth/login), external (identity provider) or off."
    )
    auth_enabled: bool


class FeedToken(BaseModel):
    token: str = Field(description="Opens GET /calendar.ics only (as ?token=); no bearer token.")
    expires_at: datetime
    url: str = Field(description="The feed's path with the token, for a calendar app's subscription.")


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: datetime
    expires_in: int = Field(description="Seconds until the token expires.")
    username: str
    role: Role


@dataclass(frozen=True)
class AuthSettings:
    enabled: bool
    secret: str | None
    token_ttl: timedelta
    feed_token_ttl: timedelta = timedelta(days=365)
    external_public_key: str | None = None
    external_audience: str = "rmf_api_server"
    external_issuer: str | None = None
    external_role_claim: str | None = None
    external_role_map: dict[str, Role] = field(default_factory=dict)
    external_default_role: Role | None = Role.viewer
    login_max_failures: int = 5
    login_max_failures_per_address: int = 20
    login_window: timedelta = timedelta(minutes=5)
    login_concurrency: int = 2
    login_wait_s: float = 5.0


HASHING_NICENESS = 10
"""How much lower than the rest of the process hashing threads are scheduled (``nice``)."""


def _yield_the_cpu() -> None:
    """Lower this hashing thread's scheduling priority (Linux schedules threads, and
    argon2's own lane threads inherit it), so that when cores are short the event loop,
    which serves the API and dispatches, runs first and a burst of logins waits instead."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not allowed: run as is
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASHING_NICENESS)


def _view(record: UserRecord) -> UserView:
    return UserView(
        username=record.username,
        role=Role(record.role),
        enabled=record.enabled,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


class AuthService:
    def __init__(
        self, store: Store, clock: Clock, settings: AuthSettings, hasher: PasswordHasher | None = None
    ) -> None:
        self._store = store
        self._clock = clock
        self._settings = settings
        self._hasher = hasher or PasswordHasher()  # argon2id, RFC 9106's low-memory profile
        self._dummy_hash: str | None = None
        self._by_name = FailureWindow(settings.login_max_failures, settings.login_window)
        self._by_address = FailureWindow(settings.login_max_failures_per_address, settings.login_window)
        # Each hash takes 64 MiB and a core or more for a moment: a few at a time, in threads
        # of their own, so a burst of logins cannot starve the API and the dispatcher.
        self._hashing = asyncio.Semaphore(settings.login_concurrency)
        self._hashers = ThreadPoolExecutor(
            settings.login_concurrency, thread_name_prefix="password-hash", initializer=_yield_the_cpu
        )

    @property
    def enabled(self) -> bool:
        return self._settings.enabled

    def close(self) -> None:
        self._hashers.shutdown(wait=False, cancel_futures=True)

    async def start(self, admin_username: str | None, admin_password: str | None) -> None:
        """Prepare the hash unknown users are checked against (with authentication on: each
        argon2id hash takes 64 MiB for a moment), and create the configured first admin if
        there is no enabled admin yet."""
        if self.enabled:
            self._dummy_hash = await self._hash("not a password of anyone's")
        if admin_username is not None and admin_password is not None:
            await self.ensure_admin(admin_username, admin_password)

    # -- who is calling ------------------------------------------------------------------

    async def authenticate(self, token: str | None) -> Principal:
        """The caller named by a bearer token (everyone is an admin when auth is off)."""
        if not self.enabled:
            return ANONYMOUS
        if not token:
            raise Unauthenticated("a bearer token is required (POST /auth/login)")
        settings, now = self._settings, self._clock.now()
        try:
            algorithm = token_algorithm(token)
            if algorithm == "HS256" and settings.secret is not None:
                username = verify_builtin(token, settings.secret, now)
                record = await self._store.get_user(username)
                if record is None or not record.enabled:
                    raise Unauthenticated("the token's user is disabled or no longer exists")
                return Principal(username=username, role=Role(record.role), source="builtin")
            if algorithm == "RS256" and settings.external_public_key and settings.external_issuer:
                claims = verify_external(
                    token,
                    settings.external_public_key,
                    settings.external_audience,
                    settings.external_issuer,
                    now,
                )
                role = role_from_claims(
                    claims,
                    settings.external_role_claim,
                    settings.external_role_map,
                    settings.external_default_role,
                )
                if role is None:
                    raise Forbidden("the identity provider grants this user no role here")
                return Principal(username=claims["preferred_username"], role=role, source="external")
        except BadToken as exc:
            raise Unauthenticated(str(exc)) from None
        raise Unauthenticated("tokens signed this way are not accepted here")

    # -- logins --------------------------------------------------------------------------

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def feed_token(self, principal: Principal) -> FeedToken:
        """A token for the calendar feed only, valid for ``feed_token_ttl``: calendar apps
        cannot send headers, so it goes in the feed's URL."""
        if not self.enabled or self._settings.secret is None:
            raise Conflict("authentication is switched off (auth_enabled is False): the feed needs no token")
        token, expires = mint_feed(
            principal, self._settings.secret, self._clock.now(), self._settings.feed_token_ttl
        )
        return FeedToken(token=token, expires_at=expires, url=f"/calendar.ics?token={token}")

    async def authenticate_feed(self, token: str) -> Principal:
        """The caller a feed token names; a built-in user must still exist and be enabled, and
        acts with their role now."""
        if self._settings.secret is None:
            raise Unauthenticated("feed tokens are not accepted here")
        try:
            principal = verify_feed(token, self._settings.secret, self._clock.now())
        except BadToken as exc:
            raise Unauthenticated(str(exc)) from None
        if principal.source != "builtin":
            return principal
        record = await self._store.get_user(principal.username)
        if record is None or not record.enabled:
            raise Unauthenticated("the token's user is disabled or no longer exists")
        return Principal(username=principal.username, role=Role(record.role), source="builtin")

    async def login(self, credentials: Credentials, address: str) -> Token:
        """A token for a built-in user.  An unknown or disabled user costs the same hash
        check as a wrong password and gets the same answer.

        After ``login_max_failures`` failures for a name, or ``login_max_failures_per_address``
        from an address (``address``), within ``login_window``, further attempts get 429
        before any hashing.  A success clears the name's count; the address's runs on, so
        one account's holder cannot wipe out the guesses made against others.
        """
        if not self.enabled or self._settings.secret is None:
            raise Conflict("authentication is switched off (auth_enabled is False): no token is needed")
        name, now = credentials.username, self._clock.now()
        waits = [
            wait
            for wait in (self._by_name.retry_after(name, now), self._by_address.retry_after(address, now))
            if wait is not None
        ]
        if waits:
            logger.info("login throttled for %r from %s", name, address)
            raise TooManyAttempts(THROTTLED, retry_after=max(1, math.ceil(max(waits))))
        self._by_name.begin(name)
        self._by_address.begin(address)
        failed = False
        try:
            record = await self._store.get_user(name)
            checked = record.password_hash if record is not None else self._dummy_hash
            assert checked is not None, "start() prepares the dummy hash"
            matches = await self._in_thread(self._verify, checked, credentials.password)
            failed = record is None or not record.enabled or not matches
        finally:
            # One that ended without a verdict (no hashing slot: 503) guessed nothing: not counted.
            now = self._clock.now()
            self._by_name.end(name, now, failed=failed)
            self._by_address.end(address, now, failed=failed)
        if failed:
            logger.info("login refused for %r from %s", name, address)
            raise Unauthenticated(LOGIN_FAILED)
        assert record is not None
        self._by_name.reset(name)
        if self._hasher.check_needs_rehash(record.password_hash):
            new_hash = await self._hash(credentials.password)
            await self._store.save_user(record, password_hash=new_hash)
        now = self._clock.now()
        role = Role(record.role)
        token, expires = mint(record.username, role, self._settings.secret, now, self._settings.token_ttl)
        return Token(
            access_token=token,
            expires_at=expires,
            expires_in=int((expires - now).total_seconds()),
            username=record.username,
            role=role,
        )

    # -- accounts ------------------------------------------------------------------------

    async def _in_thread(self, work: Callable[..., T], *args: object) -> T:
        """Run a password hash or check in the hashing threads, ``login_concurrency`` at a time.
        When none frees up within ``login_wait_s``: 503, so waiting requests do not pile up."""
        if self._hashing.locked():
            try:
                await asyncio.wait_for(self._hashing.acquire(), self._settings.login_wait_s)
            except asyncio.TimeoutError:
                raise Busy("too many password checks at once; try again shortly", retry_after=1) from None
        else:
            await self._hashing.acquire()
        try:
            return await asyncio.get_running_loop().run_in_executor(self._hashers, work, *args)
        finally:
            self._hashing.release()

    async def _hash(self, password: str) -> str:
        return await self._in_thread(self._hasher.hash, password)

    async def register(self, new: NewUser, by: str | None) -> UserView:
        now = self._clock.now()
        record = await self._store.insert_user(
            username=new.username,
            password_hash=await self._hash(new.password),
            role=new.role.value,
            enabled=True,
            created_at=now,
            updated_at=now,
        )
        logger.info("user %r created with role %s by %r", new.username, new.role.value, by)
        return _view(record)

    async def list_users(self) -> list[UserView]:
        return [_view(record) for record in await self._store.list_users()]

    @retrying
    async def update_user(self, username: str, patch: UserPatch, by: str | None) -> UserView:
        """Change a user's role, enabled flag or password; the last enabled admin stays one."""
        password_hash = await self._hash(patch.password) if patch.password is not None else None
        async with self._store.transaction():
            admins = await self._store.enabled_admins(for_update=True)
            record = await self._store.get_user(username, for_update=True)
            if record is None:
                raise NotFound("user", username)
            role = patch.role or Role(record.role)
            enabled = record.enabled if patch.enabled is None else patch.enabled
            if admins == [username] and (role is not Role.admin or not enabled):
                raise Conflict(f"{username!r} is the last enabled admin; make another admin first")
            values: dict[str, object] = {
                "role": role.value,
                "enabled": enabled,
                "updated_at": self._clock.now(),
            }
            if password_hash is not None:
                values["password_hash"] = password_hash
            await self._store.save_user(record, **values)
        logger.info("user %r changed by %r: %s", username, by, patch.model_dump(exclude={"password"}))
        return _view(record)

    @retrying
    async def delete_user(self, username: str, by: str | None) -> None:
        async with self._store.transaction():
            admins = await self._store.enabled_admins(for_update=True)
            if admins == [username]:
                raise Conflict(f"{username!r} is the last enabled admin; make another admin first")
            if not await self._store.delete_user(username):
                raise NotFound("user", username)
        logger.info("user %r deleted by %r", username, by)

    async def create_admin(self, username: str, password: str) -> UserView:
        """A new admin (the ``create-admin`` command); 409 when the name is taken."""
        return await self.register(NewUser(username=username, password=password, role=Role.admin), by=None)

    @retrying
    async def ensure_admin(self, username: str, password: str) -> None:
        """With no enabled admin, make the configured one: created, or (if the name exists)
        made an enabled admin with the configured password, which is also how a site that
        locked itself out recovers.  With an admin present nothing changes."""
        if await self._store.enabled_admins():
            return
        password_hash = await self._hash(password)
        now = self._clock.now()
        try:
            async with self._store.transaction():
                if await self._store.enabled_admins(for_update=True):
                    return
                record = await self._store.get_user(username, for_update=True)
                values = {
                    "password_hash": password_hash,
                    "role": Role.admin.value,
                    "enabled": True,
                    "updated_at": now,
                }
                if record is None:
                    await self._store.insert_user(username=username, created_at=now, **values)
                else:
                    await self._store.save_user(record, **values)
        except Conflict:
            return  # another replica starting at the same time created it first
        logger.info("no admin existed: %r is now the admin named in the configuration", username)
