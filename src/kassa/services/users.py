"""The dashboard's users: people who sign in to one merchant's dashboard with an email and a password
(argon2id), optionally a TOTP code (pyotp), and get a server-side session.

A session's token lives only in the user's cookie; the database keeps its SHA-256, so a leaked
database row cannot be replayed. Signing out, a password change and disabling a user end sessions at
once. Failed sign-ins are counted per email and per client address (services/throttle.py).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyotp
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from kassa.clock import Clock
from kassa.crypto import SecretBox
from kassa.db.database import Database
from kassa.db.tables import merchants, user_sessions, users
from kassa.errors import AuthenticationFailed, Conflict, InvalidRequest, NotFound
from kassa.ids import new_id
from kassa.services.merchants import TooManyAttempts, hash_password, verify_password
from kassa.services.throttle import FailureThrottle
from kassa.services.ttl_cache import TTLCache
from kassa.services.views import iso

MIN_PASSWORD = 10
MAX_PASSWORD = 200
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s.]{1,60}")
TOTP_ISSUER = "Kassa"


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The user behind a live session."""

    user_pk: int
    user_id: str
    email: str
    name: str | None
    merchant_pk: int
    merchant_id: str
    merchant_name: str
    totp: bool
    session_pk: int


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _email(value: str) -> str:
    email = value.strip().lower()
    if not _EMAIL.fullmatch(email):
        raise InvalidRequest("email: not an email address", param="email")
    return email


def _check_password(password: str, param: str = "password") -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidRequest(f"{param}: use {MIN_PASSWORD} to {MAX_PASSWORD} characters", param=param)


def user_view(row: Any, merchant_id: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "user",
        "merchant": merchant_id,
        "email": row.email,
        "name": row.name,
        "totp": row.totp_secret is not None,
        "disabled": row.disabled,
        "created_at": iso(row.created_at),
        "last_sign_in_at": iso(row.last_sign_in_at),
    }


class UserService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        box: SecretBox,
        session_hours: float = 12.0,
        cache_seconds: float = 0.0,
    ) -> None:
        """`cache_seconds`: live sessions are remembered this long (KASSA_CACHE_SECONDS); ending one in
        this process forgets it at once, in another process within that time, as for API keys."""
        self.db = db
        self.sessions: TTLCache[SignedIn] = TTLCache(cache_seconds)
        self.clock = clock
        self.box = box
        self.session_lifetime = timedelta(hours=session_hours)
        self.throttle = FailureThrottle(time.monotonic)

    # ----- managed by the admin -------------------------------------------------------------------

    async def create(
        self, merchant_id: str, email: str, password: str, name: str | None = None
    ) -> dict[str, Any]:
        email = _email(email)
        _check_password(password)
        now = self.clock.now()
        hashed = await hash_password(password)
        async with self.db.transaction() as tx:
            merchant_pk = (
                await tx.conn.execute(select(merchants.c.pk).where(merchants.c.id == merchant_id))
            ).scalar()
            if merchant_pk is None:
                raise NotFound(f"no merchant {merchant_id!r}", param="merchant")
            try:
                async with tx.conn.begin_nested():
                    await tx.conn.execute(
                        insert(users).values(
                            id=new_id("usr"),
                            merchant_pk=merchant_pk,
                            email=email,
                            name=name,
                            password_hash=hashed,
                            created_at=now,
                            updated_at=now,
                        )
                    )
            except IntegrityError:
                raise Conflict("a user with this email exists", param="email", code="email_taken") from None
            row = (await tx.conn.execute(select(users).where(users.c.email == email))).one()
        return user_view(row, merchant_id)

    async def list(self, merchant_id: str) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(users)
                .join(merchants, merchants.c.pk == users.c.merchant_pk)
                .where(merchants.c.id == merchant_id)
                .order_by(users.c.pk)
            )
            return [user_view(r, merchant_id) for r in rows]

    async def set_disabled(self, user_id: str, disabled: bool) -> dict[str, Any]:
        now = self.clock.now()
        async with self.db.transaction() as tx:
            row = (await tx.conn.execute(select(users).where(users.c.id == user_id))).first()
            if row is None:
                raise NotFound(f"no user {user_id!r}", param="user")
            await tx.conn.execute(
                update(users).where(users.c.pk == row.pk).values(disabled=disabled, updated_at=now)
            )
            if disabled:
                await self._end_sessions(tx.conn, row.pk, now)
            merchant_id = (
                await tx.conn.execute(select(merchants.c.id).where(merchants.c.pk == row.merchant_pk))
            ).scalar_one()
            row = (await tx.conn.execute(select(users).where(users.c.pk == row.pk))).one()
        return user_view(row, merchant_id)

    async def reset_password(self, email: str, password: str) -> None:
        """The operator sets a user's password (e.g. `kassa demo`); the user's sessions end."""
        _check_password(password)
        hashed = await hash_password(password)
        now = self.clock.now()
        async with self.db.transaction() as tx:
            pk = (await tx.conn.execute(select(users.c.pk).where(users.c.email == _email(email)))).scalar()
            if pk is None:
                raise NotFound(f"no user {email!r}", param="email")
            await tx.conn.execute(
                update(users).where(users.c.pk == pk).values(password_hash=hashed, updated_at=now)
            )
            await self._end_sessions(tx.conn, pk, now)

    # ----- signing in and out -----------------------------------------------------------------------

    def _refuse_if_throttled(self, *keys: str) -> None:
        waits = [w for w in (self.throttle.retry_after(k) for k in keys) if w is not None]
        if waits:
            wait = max(waits)
            raise TooManyAttempts(
                f"too many failed sign-ins; try again in {wait} s", headers={"Retry-After": str(wait)}
            )

    async def check_password(self, email: str, password: str, address: str) -> int:
        """The user's pk when `password` is theirs (and they may sign in); AuthenticationFailed with one
        message for every reason, so the form tells nobody which emails exist."""
        email = email.strip().lower()[:254]
        keys = (f"email:{email}", f"ip:{address}")
        self._refuse_if_throttled(*keys)
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(users.c.pk, users.c.password_hash, users.c.disabled).where(users.c.email == email)
                )
            ).first()
        ok = await verify_password(row.password_hash if row is not None else None, password[:MAX_PASSWORD])
        if row is None or not ok or row.disabled:
            for key in keys:
                self.throttle.failed(key)
            raise AuthenticationFailed("wrong email or password", code="invalid_credentials")
        return int(row.pk)

    async def needs_code(self, user_pk: int) -> bool:
        async with self.db.read() as conn:
            secret = (await conn.execute(select(users.c.totp_secret).where(users.c.pk == user_pk))).scalar()
        return secret is not None

    async def check_code(self, user_pk: int, code: str, address: str) -> None:
        """A TOTP code of the user's, within one step of now, not used before."""
        keys = (f"totp:{user_pk}", f"ip:{address}")
        self._refuse_if_throttled(*keys)
        async with self.db.transaction() as tx:
            row = (
                await tx.conn.execute(
                    select(users.c.totp_secret, users.c.totp_last_step)
                    .where(users.c.pk == user_pk)
                    .with_for_update()
                )
            ).one()
            step = self._accepted_step(self.box.open(row.totp_secret), code) if row.totp_secret else None
            if step is None or (row.totp_last_step is not None and step <= row.totp_last_step):
                for key in keys:
                    self.throttle.failed(key)
                raise AuthenticationFailed("wrong or used code", code="invalid_code")
            await tx.conn.execute(update(users).where(users.c.pk == user_pk).values(totp_last_step=step))

    def _accepted_step(self, secret: str, code: str) -> int | None:
        code = code.strip().replace(" ", "")
        if not (code.isdigit() and len(code) == 6):
            return None
        totp = pyotp.TOTP(secret)
        now = self.clock.now()
        for drift in (0, -1, 1):  # the clocks of phone and server may differ by one step
            at = now + timedelta(seconds=drift * totp.interval)
            if secrets.compare_digest(totp.at(at), code):
                return int(at.timestamp()) // totp.interval
        return None

    async def start_session(self, user_pk: int) -> str:
        """A new session for a user who proved who they are; its token (for the cookie only)."""
        token = secrets.token_urlsafe(32)
        now = self.clock.now()
        async with self.db.transaction() as tx:
            await tx.conn.execute(
                insert(user_sessions).values(
                    token_hash=_digest(token),
                    user_pk=user_pk,
                    created_at=now,
                    expires_at=now + self.session_lifetime,
                )
            )
            await tx.conn.execute(update(users).where(users.c.pk == user_pk).values(last_sign_in_at=now))
        return token

    async def session(self, token: str) -> SignedIn | None:
        digest = _digest(token)
        cached = self.sessions.get(digest)
        if cached is not None:
            return cached
        now = self.clock.now()
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(
                        user_sessions.c.pk.label("session_pk"),
                        users.c.pk,
                        users.c.id,
                        users.c.email,
                        users.c.name,
                        users.c.totp_secret,
                        merchants.c.pk.label("merchant_pk"),
                        merchants.c.id.label("merchant_id"),
                        merchants.c.name.label("merchant_name"),
                    )
                    .join(users, users.c.pk == user_sessions.c.user_pk)
                    .join(merchants, merchants.c.pk == users.c.merchant_pk)
                    .where(
                        user_sessions.c.token_hash == digest,
                        user_sessions.c.ended_at.is_(None),
                        user_sessions.c.expires_at > now,
                        users.c.disabled.is_(False),
                    )
                )
            ).first()
        if row is None:
            return None
        user = SignedIn(
            user_pk=row.pk,
            user_id=row.id,
            email=row.email,
            name=row.name,
            merchant_pk=row.merchant_pk,
            merchant_id=row.merchant_id,
            merchant_name=row.merchant_name,
            totp=row.totp_secret is not None,
            session_pk=row.session_pk,
        )
        self.sessions.put(digest, user)
        return user

    async def end_session(self, token: str) -> None:
        self.sessions.invalidate(_digest(token))
        async with self.db.transaction() as tx:
            await tx.conn.execute(
                update(user_sessions)
                .where(user_sessions.c.token_hash == _digest(token), user_sessions.c.ended_at.is_(None))
                .values(ended_at=self.clock.now())
            )

    async def _end_sessions(self, conn: Any, user_pk: int, now: datetime, keep: int | None = None) -> None:
        self.sessions.invalidate()  # by user, not by token: forget them all (they are cheap to load)
        query = update(user_sessions).where(
            user_sessions.c.user_pk == user_pk, user_sessions.c.ended_at.is_(None)
        )
        if keep is not None:
            query = query.where(user_sessions.c.pk != keep)
        await conn.execute(query.values(ended_at=now))

    # ----- the user's own account -------------------------------------------------------------------

    async def change_password(self, user: SignedIn, current: str, new: str) -> None:
        """Needs the current password; ends the user's other sessions."""
        _check_password(new, "new_password")
        async with self.db.read() as conn:
            stored = (
                await conn.execute(select(users.c.password_hash).where(users.c.pk == user.user_pk))
            ).scalar()
        if not await verify_password(stored, current[:MAX_PASSWORD]):
            raise AuthenticationFailed(
                "the current password is wrong", param="password", code="invalid_credentials"
            )
        hashed = await hash_password(new)
        now = self.clock.now()
        async with self.db.transaction() as tx:
            await tx.conn.execute(
                update(users).where(users.c.pk == user.user_pk).values(password_hash=hashed, updated_at=now)
            )
            await self._end_sessions(tx.conn, user.user_pk, now, keep=user.session_pk)

    @staticmethod
    def new_totp_secret() -> str:
        return pyotp.random_base32()

    @staticmethod
    def totp_uri(secret: str, email: str) -> str:
        return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=TOTP_ISSUER)

    async def enable_totp(self, user: SignedIn, secret: str, code: str) -> None:
        """Turns on codes at sign-in once the user shows a code from `secret` (so their app has it)."""
        if user.totp:
            raise Conflict("two-factor sign-in is already on", code="totp_on")
        step = self._accepted_step(secret, code)
        if step is None:
            raise InvalidRequest("code: wrong code; check the time on your phone", param="code")
        async with self.db.transaction() as tx:
            await tx.conn.execute(
                update(users)
                .where(users.c.pk == user.user_pk)
                .values(totp_secret=self.box.seal(secret), totp_last_step=step, updated_at=self.clock.now())
            )
        self.sessions.invalidate()

    async def disable_totp(self, user: SignedIn, password: str) -> None:
        async with self.db.read() as conn:
            stored = (
                await conn.execute(select(users.c.password_hash).where(users.c.pk == user.user_pk))
            ).scalar()
        if not await verify_password(stored, password[:MAX_PASSWORD]):
            raise AuthenticationFailed("the password is wrong", param="password", code="invalid_credentials")
        async with self.db.transaction() as tx:
            await tx.conn.execute(
                update(users)
                .where(users.c.pk == user.user_pk)
                .values(totp_secret=None, totp_last_step=None, updated_at=self.clock.now())
            )
        self.sessions.invalidate()
