"""A merchant's payment rails: settings validated by the rail, secrets encrypted and write-only."""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import ValidationError
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from kassa.clock import Clock
from kassa.crypto import SecretBox
from kassa.db.database import Database
from kassa.db.tables import merchants, payment_methods
from kassa.errors import Conflict, InvalidRequest, NotFound
from kassa.rails.base import CounterpartUnavailable, DestinationInvalid, Rail, RailConfig
from kassa.rails.registry import UnknownRail, get_rail, known_rails
from kassa.services.ttl_cache import TTLCache
from kassa.services.views import iso

MASK = "********"
log = logging.getLogger("kassa.rails")


def _rail(name: str) -> Rail:
    try:
        return get_rail(name)
    except UnknownRail:
        raise NotFound(
            f"unknown payment rail {name!r}; known: {', '.join(known_rails())}", param="rail"
        ) from None


def _validate(rail: Rail, settings: dict[str, Any]) -> dict[str, Any]:
    try:
        model = rail.settings_model.model_validate(settings)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise InvalidRequest(
            f"settings.{where}: {err['msg'].removeprefix('Value error, ')}", param=f"settings.{where}"
        ) from None
    return model.model_dump(mode="json")


class PaymentMethodService:
    def __init__(
        self, db: Database, clock: Clock, box: SecretBox, cache: TTLCache[Any] | None = None
    ) -> None:
        self.db = db
        self.clock = clock
        self.box = box
        self.cache = cache or TTLCache(0)  # the order service's cache of merchant settings

    async def configure(self, merchant_pk: int, rail_name: str, settings: dict[str, Any]) -> dict[str, Any]:
        """Create or replace a rail's settings and enable it. Secrets left out keep their stored value;
        a payout address is checked by the rail (which may ask its wallet) before anything is saved."""
        rail = _rail(rail_name)
        async with self.db.read() as conn:
            merged = self._merged(await self._row(conn, merchant_pk, rail_name), settings)
        clean = _validate(rail, merged)
        if clean.get("payout_address") is not None:
            await _check_payout_address(rail, RailConfig(merchant_pk, "", rail_name, merged), clean)
        now = self.clock.now()
        async with self.db.transaction() as tx:
            row = await self._row(tx.conn, merchant_pk, rail_name)
            secrets = {
                k: clean.pop(k) for k in list(clean) if k in rail.secret_fields and clean[k] is not None
            }
            sealed = self.box.seal(json.dumps(secrets)) if secrets else None
            if row is None:
                await tx.conn.execute(
                    insert(payment_methods).values(
                        merchant_pk=merchant_pk,
                        rail=rail_name,
                        enabled=True,
                        settings=clean,
                        secrets=sealed,
                        created_at=now,
                        updated_at=now,
                    )
                )
            else:
                await tx.conn.execute(
                    update(payment_methods)
                    .where(payment_methods.c.pk == row.pk)
                    .values(enabled=True, settings=clean, secrets=sealed, updated_at=now)
                )
            view = await self._view(tx.conn, merchant_pk, rail_name)
        self.cache.invalidate(merchant_pk)
        return view

    def _merged(self, row: Any, settings: dict[str, Any]) -> dict[str, Any]:
        """The new settings over the stored secrets that were left out (or given masked)."""
        stored = json.loads(self.box.open(row.secrets)) if row is not None and row.secrets else {}
        return {
            **{k: v for k, v in stored.items() if k not in settings or settings[k] in (None, MASK)},
            **{k: v for k, v in settings.items() if v != MASK},
        }

    async def disable(self, merchant_pk: int, rail_name: str) -> dict[str, Any]:
        _rail(rail_name)
        async with self.db.transaction() as tx:
            row = await self._row(tx.conn, merchant_pk, rail_name)
            if row is None:
                raise NotFound(f"payment rail {rail_name!r} is not configured", param="rail")
            await tx.conn.execute(
                update(payment_methods)
                .where(payment_methods.c.pk == row.pk)
                .values(enabled=False, updated_at=self.clock.now())
            )
            view = await self._view(tx.conn, merchant_pk, rail_name)
        self.cache.invalidate(merchant_pk)
        return view

    async def for_merchant(self, merchant_pk: int) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(payment_methods.c.rail)
                .where(payment_methods.c.merchant_pk == merchant_pk)
                .order_by(payment_methods.c.rail)
            )
            return [await self._view(conn, merchant_pk, r.rail) for r in rows.all()]

    async def _row(self, conn: AsyncConnection, merchant_pk: int, rail_name: str) -> Any:
        return (
            await conn.execute(
                select(payment_methods).where(
                    payment_methods.c.merchant_pk == merchant_pk, payment_methods.c.rail == rail_name
                )
            )
        ).first()

    async def _view(self, conn: AsyncConnection, merchant_pk: int, rail_name: str) -> dict[str, Any]:
        row = await self._row(conn, merchant_pk, rail_name)
        rail = get_rail(rail_name)
        masked = {k: MASK for k in json.loads(self.box.open(row.secrets))} if row.secrets else {}
        return {
            "object": "payment_method",
            "rail": rail_name,
            "enabled": row.enabled,
            "test": rail.test,
            "settings": {**row.settings, **masked},
            "secret_fields": sorted(rail.secret_fields),
            "updated_at": iso(row.updated_at),
        }

    async def configs(
        self, conn: AsyncConnection, merchant_pk: int, enabled_only: bool = True
    ) -> list[RailConfig]:
        """Every (enabled) rail of a merchant, with secrets decrypted, for the core and the watchers."""
        query = (
            select(payment_methods, merchants.c.id.label("merchant_id"))
            .join(merchants, merchants.c.pk == payment_methods.c.merchant_pk)
            .where(payment_methods.c.merchant_pk == merchant_pk)
            .order_by(payment_methods.c.rail)
        )
        if enabled_only:
            query = query.where(payment_methods.c.enabled.is_(True))
        return [self._config(r) for r in await conn.execute(query)]

    async def config(self, merchant_pk: int, rail: str, *, enabled_only: bool = True) -> RailConfig | None:
        """One rail's configuration for a merchant (secrets decrypted), or None."""
        async with self.db.read() as conn:
            found = {c.rail: c for c in await self.configs(conn, merchant_pk, enabled_only=enabled_only)}
        return found.get(rail)

    async def all_configs(self) -> list[RailConfig]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(payment_methods, merchants.c.id.label("merchant_id"))
                .join(merchants, merchants.c.pk == payment_methods.c.merchant_pk)
                .where(payment_methods.c.enabled.is_(True))
                .order_by(payment_methods.c.pk)
            )
            configs = []
            for row in rows:
                try:
                    configs.append(self._config(row))
                except Exception as exc:  # e.g. sealed with another server key: skip this one only
                    log.error(
                        "rail %s of merchant %s: cannot read its settings (%s); not watching it",
                        row.rail,
                        row.merchant_id,
                        type(exc).__name__,
                    )
            return configs

    def _config(self, row: Any) -> RailConfig:
        secrets = json.loads(self.box.open(row.secrets)) if row.secrets else {}
        return RailConfig(row.merchant_pk, row.merchant_id, row.rail, {**row.settings, **secrets})


async def _check_payout_address(rail: Rail, config: RailConfig, clean: dict[str, Any]) -> None:
    try:
        clean["payout_address"] = await rail.check_destination(config, clean["payout_address"])
    except DestinationInvalid as exc:
        raise InvalidRequest(f"settings.payout_address: {exc}", param="settings.payout_address") from None
    except CounterpartUnavailable as exc:
        raise Conflict(
            f"the rail cannot check payout_address right now: {exc}", code="rail_unavailable"
        ) from None
