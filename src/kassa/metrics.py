"""Prometheus metrics (prometheus-client), one registry per runtime.

Counted as requests are answered: requests by route template and status, and their latency. Read
when scraped: orders by status and undelivered webhooks (from the database, so every process reports
the same), rail watchers' lag and health (from the process running them), and the age of each cached
exchange rate (from the process that quotes).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import func, select

from kassa.db.tables import deliveries, orders
from kassa.domain.orders import OrderStatus

if TYPE_CHECKING:
    from kassa.runtime import Runtime

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Up to the long polls' two minutes: a poll's time is its wait, not slowness.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "kassa_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "kassa_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["route"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.orders = Gauge("kassa_orders", "Orders by status.", ["status"], registry=self.registry)
        self.deliveries = Gauge(
            "kassa_webhook_deliveries",
            "Webhook and callback deliveries by state: pending (waiting or retrying) and failed (gave up).",
            ["state"],
            registry=self.registry,
        )
        self.watcher_lag = Gauge(
            "kassa_watcher_lag_seconds",
            "Seconds since a rail watcher of this process last started a pass over its node.",
            ["rail", "merchant"],
            registry=self.registry,
        )
        self.watcher_up = Gauge(
            "kassa_watcher_up",
            "1 while a rail watcher of this process runs without error, else 0.",
            ["rail", "merchant"],
            registry=self.registry,
        )
        self.rate_age = Gauge(
            "kassa_rate_age_seconds",
            "Age of the exchange rate this process holds for a pair.",
            ["pair"],
            registry=self.registry,
        )
        self.rate_usable = Gauge(
            "kassa_rate_usable",
            "1 while the held rate is younger than KASSA_RATE_MAX_AGE (quotes may use it), else 0.",
            ["pair"],
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    async def render(self, runtime: Runtime, *, database: bool = True) -> bytes:
        """The exposition text; `database`: include the figures read from the database."""
        if database:
            await self._read_database(runtime)
        self._read_process(runtime)
        return generate_latest(self.registry)

    async def _read_database(self, runtime: Runtime) -> None:
        async with runtime.db.read() as conn:
            counted = await conn.execute(select(orders.c.status, func.count()).group_by(orders.c.status))
            by_status: dict[str, int] = {status: count for status, count in counted}
            pending_or_failed = await conn.execute(
                select(deliveries.c.status, func.count())
                .where(deliveries.c.status.in_(("pending", "failed")))
                .group_by(deliveries.c.status)
            )
            undelivered: dict[str, int] = {state: count for state, count in pending_or_failed}
        for status in OrderStatus:
            self.orders.labels(status.value).set(by_status.get(status.value, 0))
        for state in ("pending", "failed"):
            self.deliveries.labels(state).set(undelivered.get(state, 0))

    def _read_process(self, runtime: Runtime) -> None:
        now = runtime.clock.now()
        self.watcher_lag.clear()
        self.watcher_up.clear()
        for key, entry in list(runtime.watcher_health.items()):
            merchant, _, rail = key.partition("/")
            self.watcher_up.labels(rail, merchant).set(1 if entry.get("ok") else 0)
            last = entry.get("last_pass")
            if last is not None:
                lag = (now - datetime.fromisoformat(last)).total_seconds()
                self.watcher_lag.labels(rail, merchant).set(lag)
        self.rate_age.clear()
        self.rate_usable.clear()
        for (base, quote), (age, usable) in runtime.orders.quoter.rates.ages().items():
            self.rate_age.labels(f"{base}/{quote}").set(age)
            self.rate_usable.labels(f"{base}/{quote}").set(1 if usable else 0)
