"""A real Kassa server (uvicorn, in a thread) on a loopback port, with a clock tests can move."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Coroutine
from datetime import datetime
from typing import Any, TypeVar

import httpx
import uvicorn
from scripts.procs import free_port

from kassa.api.app import create_app
from kassa.clock import ShiftedClock
from kassa.config import load_settings
from kassa.db.migrate import upgrade
from kassa.notify.email import RecordingMailer
from kassa.notify.outbound import OutboundPools
from kassa.runtime import Runtime, build_runtime
from kassa.worker.deliveries import DeliveryWorker
from kassa.worker.emails import EmailWorker
from kassa.worker.runner import Worker

T = TypeVar("T")


class _Failures(logging.Handler):
    """The ERROR records (with their tracebacks) a logger writes while in use."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logging.ERROR)
        self.logger = logger
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        formatter = logging.Formatter()
        return "\n".join(formatter.format(r) for r in self.records)

    def __enter__(self) -> _Failures:
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)


ADMIN_TOKEN = "kadm_test-admin-token-for-the-suite"


class KassaServer:
    def __init__(
        self, database_url: str, secret_file: str, run_worker: bool = False, **settings: Any
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.clock = ShiftedClock()
        self.settings = load_settings(
            database_url=database_url,
            base_url=self.base_url,
            admin_token=ADMIN_TOKEN,
            secret_key_file=secret_file,
            access_log=False,
            allow_private_webhooks=True,
            # The suite makes thousands of requests from one address: limits only where a test sets them.
            **{"rate_limit_orders": "", "rate_limit_pages": "", "rate_limit_polls": "", **settings},
        )
        upgrade(database_url)
        self.runtime: Runtime = build_runtime(self.settings, self.clock)
        self.app = create_app(self.runtime, run_worker=run_worker)
        self.worker = Worker(self.runtime)
        self.mailer = RecordingMailer()
        self.deliveries = DeliveryWorker(
            self.runtime, OutboundPools(self.settings.webhook_per_target, verify=False)
        )
        self.emails = EmailWorker(self.runtime, self.mailer)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
        self.server = uvicorn.Server(config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._serve, name=f"kassa-{self.port}", daemon=True)

    def _serve(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.serve())
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def sibling(self, **settings: Any) -> KassaServer:
        """Another server (not started) on the same database and server key, with other settings."""
        return KassaServer(str(self.settings.database_url), str(self.settings.secret_key_file), **settings)

    def start(self) -> KassaServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("Kassa test server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.loop is not None and self.thread.is_alive():
            self.call(self.deliveries.aclose())
        self.server.should_exit = True
        self.thread.join(timeout=20)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run a coroutine on the server's own event loop (e.g. one worker pass)."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def tick(self) -> int:
        """One worker pass at the clock's current time; returns how many orders moved."""
        return self.call(self.worker.run_once())

    def deliver(self) -> None:
        """Send every due webhook/callback delivery, waiting for the answers."""
        # Only what was due when the drain began must be gone: the clock runs on in real time, so a
        # retry scheduled during the drain may fall due a moment after its last pass.
        began = self.clock.now()
        with _Failures(logging.getLogger("kassa.deliveries")) as failures:
            self.call(self.deliveries.drain(), timeout=120)
        # A send that failed unexpectedly keeps its lease until it runs out, holding up the order's
        # later deliveries: the drain then ends early without leaving anything due.
        assert not failures.records, "a delivery failed unexpectedly:\n" + failures.text()
        stuck = self.call(self._due_heads(began))
        assert not stuck, f"deliveries due at {began} left after a drain: {stuck}"

    async def _due_heads(self, now: datetime) -> list[dict[str, Any]]:
        """Pending deliveries a drain begun at `now` should have sent: due, unleased, first of their order."""
        from sqlalchemy import select

        from kassa.db.tables import deliveries

        async with self.runtime.db.read() as conn:
            rows = await conn.execute(select(deliveries).where(deliveries.c.status == "pending"))
            pending = sorted((dict(r._mapping) for r in rows), key=lambda r: r["pk"])
        heads: dict[tuple[str, str], dict[str, Any]] = {}
        for row in pending:
            heads.setdefault((row["channel"], row["order_id"] or row["id"]), row)
        return [
            h
            for h in heads.values()
            if h["next_attempt_at"] <= now and (h["leased_until"] is None or h["leased_until"] < now)
        ]

    def send_emails(self) -> int:
        return self.call(self.emails.run_once())

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
        )

    def new_merchant(self, name: str = "Test Shop", **settings: Any) -> tuple[str, str]:
        with self.admin() as admin:
            response = admin.post("/api/v1/merchants", json={"name": name, **settings})
            response.raise_for_status()
            body = response.json()
        return body["merchant"]["id"], body["api_key"]["secret"]
