"""Benchmark: ledger postings against plain single-row inserts, and balance reads as entries grow.

    PYTHONPATH=. .venv/bin/python bench/ledger/run.py [--postings 100000] [--db postgresql|sqlite]

Run it from the repository root. In one run it:

1. starts a private PostgreSQL (scripts/pgtmp.py) on 127.0.0.1 (or uses a temporary SQLite file),
   migrates it and creates `--merchants` merchants;
2. the floor: `--postings` plain single-row INSERTs (a key, an amount, a time) into a table of
   their own, each in its own transaction, from `--concurrency` tasks;
3. the workload: `--postings` payment postings through `kassa.services.ledger.post` (the posting
   row, its two entries, both accounts' kept balances), each in its own transaction as a payment
   confirmation posts, spread over the merchants, from the same number of tasks;
4. reads 1,000 balances (`GET /api/v1/balances`'s query) after the first 1,000 postings and again
   after all of them, to show the read stays flat as entries grow;
5. checks the ledger (`kassa ledger check`'s function) and that exactly `--postings` postings exist;
6. prints postings/s, inserts/s, their ratio, and the mean and p99 balance read times.

It exits non-zero when a sanity check fails. Missing the target (ratio >= 0.5) is reported, not
an error: this is a measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from scripts.pgtmp import TempPostgres
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select

from kassa.config import load_settings
from kassa.db.migrate import upgrade
from kassa.db.tables import ledger_postings
from kassa.db.types import PrimaryKey, SignedTotal, UTCDateTime
from kassa.domain.ledger import payment_confirmed
from kassa.runtime import Runtime, build_runtime
from kassa.services import ledger

TARGET_RATIO = 0.5
floor_metadata = MetaData()
floor = Table(
    "bench_floor",
    floor_metadata,
    Column("pk", PrimaryKey, primary_key=True, autoincrement=True),
    Column("key", String(200), nullable=False),
    Column("amount", SignedTotal, nullable=False),
    Column("merchant", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)


async def _spread(count: int, concurrency: int, one: object) -> float:
    """Run `one(i)` for i in range(count) from `concurrency` tasks; seconds taken."""
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            await one(i)  # type: ignore[operator]

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def main(args: argparse.Namespace, database_url: str) -> int:
    upgrade(database_url)
    settings = load_settings(database_url=database_url, secret_key="b" * 64, db_pool_size=args.concurrency)
    runtime: Runtime = build_runtime(settings)
    try:
        async with runtime.db.engine.begin() as conn:
            await conn.run_sync(floor_metadata.create_all)
        merchants = [(await runtime.merchants.create(f"Bench {n}")).pk for n in range(args.merchants)]
        now = runtime.clock.now()
        run_tag = os.urandom(4).hex()

        async def floor_insert(i: int) -> None:
            async with runtime.db.transaction() as tx:
                await tx.conn.execute(
                    insert(floor).values(
                        key=f"payment:{run_tag}_{i}:confirmed",
                        amount=1000 + i,
                        merchant=merchants[i % len(merchants)],
                        created_at=now,
                    )
                )

        async def ledger_post(i: int) -> None:
            posting = payment_confirmed(f"{run_tag}_{i}", "XMR", 1000 + i)
            async with runtime.db.transaction() as tx:
                assert await ledger.post(tx, merchants[i % len(merchants)], posting, test=False, now=now)

        async def read_balances() -> list[float]:
            times = []
            for _ in range(1000):
                merchant = random.choice(merchants)
                started = time.perf_counter()
                rows = await runtime.ledger.balances(merchant, False)
                times.append((time.perf_counter() - started) * 1000)
                assert rows, "a merchant with postings has a balance"
                assert rows[0]["currency"] == "XMR"
            return times

        warm = min(1000, args.postings)
        await _spread(
            warm, args.concurrency, lambda i: ledger_post(args.postings + i)
        )  # warm-up, and entries to read
        early = await read_balances()
        floor_seconds = await _spread(args.postings, args.concurrency, floor_insert)
        ledger_seconds = await _spread(args.postings, args.concurrency, ledger_post)
        late = await read_balances()
        broken = await runtime.ledger.check()
        async with runtime.db.read() as conn:
            postings = (await conn.execute(select(func.count()).select_from(ledger_postings))).scalar_one()
        if broken is not None:
            print(f"FAIL: ledger check: {broken}", file=sys.stderr)
            return 1
        if postings != args.postings + warm:
            print(f"FAIL: {postings} postings, expected {args.postings + warm}", file=sys.stderr)
            return 1
        floor_rate = args.postings / floor_seconds
        ledger_rate = args.postings / ledger_seconds
        ratio = ledger_rate / floor_rate

        def p99(values: list[float]) -> float:
            return sorted(values)[int(len(values) * 0.99) - 1]

        print(f"database: {args.db}; {args.postings} postings, {args.merchants} merchants")
        print(f"tasks: {args.concurrency}")
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
        print(f"floor (single-row inserts): {floor_rate:,.0f}/s")
        print(f"ledger postings:            {ledger_rate:,.0f}/s")
        verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
        print(f"ratio ledger/floor:         {ratio:.2f} (target >= {TARGET_RATIO}: {verdict})")
        print(
            f"balance read after {warm} postings: mean {statistics.mean(early):.2f} ms, "
            f"p99 {p99(early):.2f} ms; after {args.postings + warm}: mean {statistics.mean(late):.2f} ms, "
            f"p99 {p99(late):.2f} ms (late/early mean {statistics.mean(late) / statistics.mean(early):.2f})"
        )
        print("ledger check: ok")
        return 0
    finally:
        await runtime.close()


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postings", type=int, default=100_000)
    parser.add_argument("--merchants", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    args = parser.parse_args()
    if args.db == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            return asyncio.run(main(args, f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"))
    with TempPostgres() as pg:
        return asyncio.run(main(args, pg.url))


if __name__ == "__main__":
    sys.exit(cli())
