"""Benchmark: the dashboard's orders page with up to 1,000,000 orders, against the bare SQL query for
the same rows.

    PYTHONPATH=. .venv/bin/python bench/dashboard_orders/run.py [--sizes 10000,100000,1000000]
        [--rounds 5] [--requests 40]

Run it from the repository root. In one run it:

1. starts a private PostgreSQL (scripts/pgtmp.py) on 127.0.0.1, migrates it, creates the merchant
   whose dashboard is read (and a second merchant whose orders are interleaved with the first's, one
   for every ten) and a dashboard user with a live session;
2. grows the merchant's orders to each of `--sizes` with one INSERT ... SELECT from generate_series
   (statuses as a shop has them: 20 % paid with a payment, 70 % expired, 10 % canceled; one quote
   each), then ANALYZE;
3. at each size, in `--rounds` rounds of `--requests` each, alternating, times:
   - `GET /dashboard/orders` (the first page: 25 orders, newest first) and the filtered page
     `GET /dashboard/orders?status=paid`, through the whole ASGI app (every middleware, routing, the
     session, the order service's list, the template), called in this process as an ASGI server
     calls it (no HTTP client in between: the bare query has none either);
   - the bare query for the same rows: `SELECT * FROM orders WHERE merchant_pk = ... [AND status =
     'paid'] ORDER BY pk DESC LIMIT 26`, on the same engine;
4. prints each median and the page/query ratio per size, and checks the page shows 25 orders.

The target is a page within 2x of the query, and flat as orders grow; both are reported, not
enforced: this is a measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from scripts.pgtmp import TempPostgres
from sqlalchemy import text
from starlette.types import ASGIApp, Message

from kassa.api.app import create_app
from kassa.config import load_settings
from kassa.db.migrate import upgrade
from kassa.runtime import build_runtime

GROW = """
INSERT INTO orders (id, merchant_pk, merchant_order_id, request_hash, amount, currency, metadata,
    payment_methods, method, status, confirmations, tolerance_bps, monitoring_window,
    late_payment_policy, amount_received, amount_confirmed, amount_refunded, expires_at, late,
    paid_at, closed_at, test, archived, auto_redirect, version, event_seq, created_at, updated_at)
SELECT 'ord_b' || lpad(g::text, 19, '0'),
       CASE WHEN g % 11 = 0 THEN CAST(:other AS bigint) ELSE CAST(:merchant AS bigint) END,
       'shop-' || g, md5(g::text) || md5(g::text), 100 + g % 10000, 'EUR', '{}', '["test"]', 'test',
       CASE WHEN g % 10 < 2 THEN 'paid' WHEN g % 10 < 9 THEN 'expired' ELSE 'canceled' END,
       1, 0, 86400, 'accept',
       CASE WHEN g % 10 < 2 THEN 100 + g % 10000 ELSE 0 END,
       CASE WHEN g % 10 < 2 THEN 100 + g % 10000 ELSE 0 END,
       0, t + interval '15 minutes', false,
       CASE WHEN g % 10 < 2 THEN t + interval '2 minutes' END, t + interval '15 minutes',
       true, false, true, 3, 3, t, t
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS g,
     LATERAL (SELECT timestamptz '2025-01-01 00:00:00+00' + g * interval '5 seconds' AS t) AS at
"""
QUOTES = """
INSERT INTO quotes (order_pk, method, rail, currency, amount, rate, destination, expires_at, created_at)
SELECT pk, 'test', 'test', 'EUR', amount, '1', 'test:' || id, expires_at, created_at
FROM orders WHERE pk > :after
"""
PAYMENTS = """
INSERT INTO payments (id, order_pk, merchant_pk, rail, method, currency, amount, reference,
    confirmations, status, late, replaceable, test, seen_at, confirmed_at, updated_at)
SELECT 'pay_b' || lpad(pk::text, 19, '0'), pk, merchant_pk, 'test', 'test', 'EUR', amount,
       'ref-' || pk, 1, 'confirmed', false, false, true, paid_at, paid_at, paid_at
FROM orders WHERE pk > :after AND status = 'paid'
"""
BARE = "SELECT * FROM orders WHERE merchant_pk = :merchant{extra} ORDER BY pk DESC LIMIT 26"
ROW = re.compile(r'href="/dashboard/orders/ord_')


async def asgi_get(app: ASGIApp, path: str, cookie: str) -> tuple[int, bytes]:
    """GET `path` as an ASGI server hands a request to the app (no HTTP client in between, as
    the bare query has none): the status and the body."""
    route, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": route,
        "raw_path": route.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"kassa.bench"), (b"cookie", f"kassa_dashboard={cookie}".encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("kassa.bench", 80),
    }
    answer: dict[str, Any] = {"body": b""}

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        else:
            answer["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return answer["status"], answer["body"]


async def _time(one: object, n: int) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        await one()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return times


async def main(args: argparse.Namespace, database_url: str, workdir: Path) -> int:
    upgrade(database_url)
    settings = load_settings(
        database_url=database_url,
        secret_key="b" * 64,
        access_log=False,
        base_url="http://kassa.bench",
    )
    runtime = build_runtime(settings)
    app = create_app(runtime, run_worker=False)
    merchant = await runtime.merchants.create("Bench Shop")
    other = await runtime.merchants.create("Other Shop")
    user = await runtime.users.create(merchant.id, "bench@shop.example", "a long bench password")
    signed_in = await runtime.users.check_password(user["email"], "a long bench password", "bench")
    token = await runtime.users.start_session(signed_in)
    cookie = app.state.dashboard_keys.session.dumps(token)
    failures = 0
    grown = 0
    print(
        f"{'orders':>10} {'page ms':>8} {'query ms':>9} {'ratio':>6}"
        f" {'paid page':>10} {'query':>7} {'ratio':>6}"
    )
    for size in args.sizes:
        total = size + size // 10  # the other merchant's, one in eleven
        started = time.perf_counter()
        async with runtime.db.transaction() as tx:
            after = (await tx.conn.execute(text("SELECT coalesce(max(pk), 0) FROM orders"))).scalar_one()
            await tx.conn.execute(
                text(GROW),
                {"merchant": merchant.pk, "other": other.pk, "first": grown + 1, "last": total},
            )
            await tx.conn.execute(text(QUOTES), {"after": after})
            await tx.conn.execute(text(PAYMENTS), {"after": after})
        async with runtime.db.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("ANALYZE"))
        grown = total
        print(f"  (grew to {total:,} orders in {time.perf_counter() - started:.1f} s)", file=sys.stderr)
        results: dict[str, list[float]] = {"page": [], "query": [], "paid": [], "paid_query": []}

        async def page(path: str) -> None:
            nonlocal failures
            status, body = await asgi_get(app, path, cookie)
            if status != 200 or len(ROW.findall(body.decode())) != 25:
                failures += 1

        async def bare(extra: str) -> None:
            async with runtime.db.read() as conn:
                rows = (await conn.execute(text(BARE.format(extra=extra)), {"merchant": merchant.pk})).all()
            assert len(rows) == 26

        for _ in range(2):  # warm up both
            await page("/dashboard/orders")
            await bare("")
        for round_ in range(args.rounds):
            pairs = [
                ("page", lambda: page("/dashboard/orders")),
                ("query", lambda: bare("")),
                ("paid", lambda: page("/dashboard/orders?status=paid")),
                ("paid_query", lambda: bare(" AND status = 'paid'")),
            ]
            if round_ % 2:
                pairs.reverse()
            for name, one in pairs:
                results[name] += await _time(one, args.requests)
        med = {k: statistics.median(v) * 1000 for k, v in results.items()}
        print(
            f"{size:>10,} {med['page']:>8.2f} {med['query']:>9.3f} {med['page'] / med['query']:>6.1f}"
            f" {med['paid']:>10.2f} {med['paid_query']:>7.3f} {med['paid'] / med['paid_query']:>6.1f}"
        )
    await runtime.close()
    if failures:
        print(f"FAILED: {failures} page(s) did not show 25 orders", file=sys.stderr)
        return 1
    return 0


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[10_000, 100_000, 1_000_000]
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, TempPostgres(database="kassa_bench") as pg:
        return asyncio.run(main(args, pg.url, Path(tmp)))


if __name__ == "__main__":
    sys.exit(cli())
