"""Runs one watcher per (merchant, chain rail). On PostgreSQL an advisory lock makes each watcher a
single leader across worker processes; a watcher that fails is logged, shown on /readyz, and restarted
with backoff, without stopping the others."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from typing import Any

from sqlalchemy import text

from kassa.rails.base import RailConfig
from kassa.rails.registry import get_rail
from kassa.runtime import Runtime
from kassa.services.rail_reports import RailReporter
from kassa.services.views import iso

log = logging.getLogger("kassa.watchers")


class WatcherSupervisor:
    def __init__(self, runtime: Runtime, refresh: float = 5.0) -> None:
        self.runtime = runtime
        self.refresh = refresh
        self.tasks: dict[tuple[int, str], asyncio.Task[None]] = {}
        self.configs: dict[tuple[int, str], RailConfig] = {}
        self.broken: set[tuple[int, str]] = set()

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.sync()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("watcher supervisor: could not load rail configurations")
                await asyncio.sleep(self.refresh)
        finally:
            for task in self.tasks.values():
                task.cancel()
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    async def sync(self) -> None:
        wanted: dict[tuple[int, str], RailConfig] = {}
        for config in await self.runtime.payment_methods.all_configs():
            key = (config.merchant_pk, config.rail)
            try:
                watches = get_rail(config.rail).watcher(config) is not None
            except Exception as exc:  # an uninstalled rail, or settings its model no longer accepts
                if key not in self.broken:  # say it once, and on /readyz; the others still run
                    log.error("cannot watch %s for merchant %s: %s", config.rail, config.merchant_id, exc)
                    self._health(config, ok=False, error=f"{type(exc).__name__}: {exc}")
                    self.broken.add(key)
                continue
            self.broken.discard(key)
            if watches:
                wanted[key] = config
        for key, task in list(self.tasks.items()):
            # A watcher keeps the settings it started with: restart it when they change.
            if key not in wanted or task.done() or wanted[key] != self.configs.get(key):
                task.cancel()
                del self.tasks[key]
                self.configs.pop(key, None)
        for key, config in wanted.items():
            if key not in self.tasks:
                self.configs[key] = config
                self.tasks[key] = asyncio.create_task(
                    self._lead(config), name=f"watch-{config.rail}-{key[0]}"
                )

    async def _lead(self, config: RailConfig) -> None:
        if not self.runtime.db.is_postgres:
            await self._watch(config)
            return
        lock_key = zlib.crc32(f"kassa-watch:{config.merchant_pk}:{config.rail}".encode())
        while True:
            async with self.runtime.db.engine.connect() as conn:
                got = (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": lock_key})).scalar()
                await conn.commit()
                if got:
                    try:
                        await self._watch(config)
                    finally:
                        with contextlib.suppress(Exception):
                            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key})
                            await conn.commit()
            await asyncio.sleep(self.refresh)  # another process leads this watcher

    async def _watch(self, config: RailConfig) -> None:
        key = (config.merchant_pk, config.rail)
        entry = self.runtime.watcher_health.setdefault(f"{config.merchant_id}/{config.rail}", {})

        def passed() -> None:
            entry["last_pass"] = iso(self.runtime.clock.now())

        reporter = RailReporter(self.runtime.db, self.runtime.orders, config, on_pass=passed)
        event = self.runtime.watcher_events.setdefault(key, asyncio.Event())

        async def wake(seconds: float) -> bool:
            try:
                await asyncio.wait_for(event.wait(), seconds)
            except TimeoutError:
                return False
            event.clear()
            return True

        backoff = 1.0
        loop = asyncio.get_running_loop()
        while True:
            watcher = get_rail(config.rail).watcher(config)
            assert watcher is not None
            started = loop.time()
            try:
                self._health(config, ok=True)
                await watcher.run(reporter, wake)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("watcher %s for merchant %s failed: %s", config.rail, config.merchant_id, exc)
                self._health(config, ok=False, error=f"{type(exc).__name__}: {exc}")
                if loop.time() - started > 60:
                    backoff = 1.0  # it had been running fine: a new incident, not the same one
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60)

    def _health(self, config: RailConfig, ok: bool, error: str | None = None) -> None:
        entry: dict[str, Any] = self.runtime.watcher_health.setdefault(
            f"{config.merchant_id}/{config.rail}", {}
        )
        entry.update(ok=ok, at=iso(self.runtime.clock.now()))
        if error is not None:
            entry["error"] = error[:300]
        else:
            entry.pop("error", None)
