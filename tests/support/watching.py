"""The real WatcherSupervisor on a test server's event loop (what `kassa serve` runs)."""

from __future__ import annotations

import asyncio
import contextlib

from kassa.rails.base import RailConfig
from kassa.rails.registry import known_rails
from kassa.worker.watchers import WatcherSupervisor
from tests.support.server import KassaServer


def watch_known_rails_only(server: KassaServer) -> KassaServer:
    """Keep this server's watcher supervisor off rails this process does not know: the database is
    shared with the whole session, and other tests register rails only for their own duration
    (e.g. tests/api/test_quotes_api.py's `coin`), whose merchants keep them enabled afterwards. The
    supervisor would log each such configuration as broken; the tests here want a quiet /readyz."""
    service = server.runtime.payment_methods
    all_configs = service.all_configs

    async def known() -> list[RailConfig]:
        names = set(known_rails())
        return [config for config in await all_configs() if config.rail in names]

    service.all_configs = known  # type: ignore[method-assign]
    return server


class Watching:
    """The real WatcherSupervisor on a server's event loop (what `kassa serve` runs), for one test."""

    def __init__(self, server: KassaServer) -> None:
        self.server = server
        self.task: asyncio.Task[None] | None = None

    def start(self) -> Watching:
        async def start() -> asyncio.Task[None]:
            return asyncio.create_task(WatcherSupervisor(self.server.runtime, refresh=0.2).run())

        self.task = self.server.call(start())
        return self

    def stop(self) -> None:
        task = self.task
        if task is None:
            return

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        self.server.call(stop())
        self.task = None
