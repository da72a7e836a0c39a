"""API keys: random, prefixed, shown once, stored as SHA-256 hashes, with scopes.

A key is 256 random bits, so a plain SHA-256 is a sound verifier (no slow hash needed) and lets
authentication be a single indexed lookup. The admin credential is either `KASSA_ADMIN_TOKEN` or an
admin key (a key with no merchant and the `admin` scope).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from kassa.clock import Clock
from kassa.db.database import Database
from kassa.db.tables import api_keys, merchants
from kassa.errors import AuthenticationFailed, InvalidRequest, NotFound, PermissionDenied
from kassa.ids import new_id, new_secret
from kassa.services.ttl_cache import TTLCache
from kassa.services.views import iso

MERCHANT_SCOPES = (
    "orders:read",
    "orders:write",
    "merchant:read",
    "merchant:write",
    "payouts:write",  # money leaving for the merchant's wallet: a key of its own if you like
    "rails:notify",
    "events:read",
    "webhooks:read",
    "webhooks:write",
)
ADMIN_SCOPE = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    merchant_pk: int | None
    merchant_id: str | None
    scopes: frozenset[str]

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise PermissionDenied(f"this API key lacks the {scope!r} scope")


@dataclass(frozen=True, slots=True)
class IssuedKey:
    id: str
    secret: str  # the only time it is ever shown
    scopes: list[str]
    merchant_id: str | None
    created_at: datetime

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "api_key",
            "secret": self.secret,
            "scopes": self.scopes,
            "merchant": self.merchant_id,
            "created_at": iso(self.created_at),
        }


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKeyService:
    def __init__(
        self, db: Database, clock: Clock, admin_token: str | None = None, cache_seconds: float = 0
    ) -> None:
        self.db = db
        self.clock = clock
        self._admin_hash = hash_secret(admin_token) if admin_token else None
        self._cache: TTLCache[Principal] = TTLCache(cache_seconds)

    async def create(
        self, merchant_id: str | None, scopes: list[str] | None = None, name: str | None = None
    ) -> IssuedKey:
        admin = merchant_id is None
        allowed = (ADMIN_SCOPE,) if admin else MERCHANT_SCOPES
        chosen = scopes or list(allowed)
        bad = [s for s in chosen if s not in allowed]
        if bad:
            raise InvalidRequest(
                f"unknown scope(s) {', '.join(bad)}; allowed: {', '.join(allowed)}", param="scopes"
            )
        secret = new_secret("kadm" if admin else "ksk")
        now = self.clock.now()
        key_id = new_id("key")
        async with self.db.transaction() as tx:
            merchant_pk = None
            if merchant_id is not None:
                merchant_pk = (
                    await tx.conn.execute(select(merchants.c.pk).where(merchants.c.id == merchant_id))
                ).scalar()
                if merchant_pk is None:
                    raise NotFound(f"no merchant {merchant_id!r}", param="merchant")
            await tx.conn.execute(
                insert(api_keys).values(
                    id=key_id,
                    merchant_pk=merchant_pk,
                    name=name,
                    prefix=secret[:12],
                    secret_hash=hash_secret(secret),
                    scopes=sorted(set(chosen)),
                    created_at=now,
                )
            )
        return IssuedKey(key_id, secret, sorted(set(chosen)), merchant_id, now)

    async def revoke(self, key_id: str, merchant_id: str | None = None) -> None:
        async with self.db.transaction() as tx:
            query = update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            if merchant_id is not None:
                query = query.where(
                    api_keys.c.merchant_pk
                    == select(merchants.c.pk).where(merchants.c.id == merchant_id).scalar_subquery()
                )
            result = await tx.conn.execute(query.values(revoked_at=self.clock.now()))
            if result.rowcount == 0:
                raise NotFound(f"no active API key {key_id!r}", param="id")
        self._cache.invalidate()

    async def for_merchant(self, merchant_id: str) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(api_keys)
                .join(merchants, merchants.c.pk == api_keys.c.merchant_pk)
                .where(merchants.c.id == merchant_id)
                .order_by(api_keys.c.pk)
            )
            return [
                {
                    "id": r.id,
                    "object": "api_key",
                    "prefix": r.prefix,
                    "scopes": r.scopes,
                    "created_at": iso(r.created_at),
                    "revoked_at": iso(r.revoked_at),
                }
                for r in rows
            ]

    async def authenticate(self, secret: str) -> Principal:
        digest = hash_secret(secret)
        if self._admin_hash is not None and hmac.compare_digest(digest, self._admin_hash):
            return Principal("admin-token", None, None, frozenset({ADMIN_SCOPE}))
        cached = self._cache.get(digest)
        if cached is not None:
            return cached
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(
                        api_keys.c.id,
                        api_keys.c.merchant_pk,
                        api_keys.c.scopes,
                        api_keys.c.revoked_at,
                        merchants.c.id.label("merchant_id"),
                    )
                    .select_from(api_keys.outerjoin(merchants, merchants.c.pk == api_keys.c.merchant_pk))
                    .where(api_keys.c.secret_hash == digest)
                )
            ).first()
        if row is None or row.revoked_at is not None:
            raise AuthenticationFailed("invalid or revoked API key")
        principal = Principal(row.id, row.merchant_pk, row.merchant_id, frozenset(row.scopes))
        self._cache.put(digest, principal)
        return principal
