"""Benchmark: ledger postings against plain single-row inserts, and balance reads as entries grow.

    PYTHONPATH=. .venv/bin/python bench/ledger/run.py [--postings 100000] [--db postgresql|sqlite]
        [--concurrency 16] [--rounds 5] [--merchants 100]

Run it from the repository root. In one run it:

1. starts a private PostgreSQL (scripts/pgtmp.py) on 127.0.0.1 (or uses a temporary SQLite file),
   migrates it and creates `--merchants` merchants;
2. the floor: `--postings` plain single-row INSERTs (a key, an amount, a time) into a table of
   their own, each in its own transaction, from `--concurrency` tasks. On SQLite twice: through
   SQLAlchemy Core, and on the driver's connection as the ledger's SQLite path writes (the same
   transaction, one trip to aiosqlite's thread); the ratio is taken against the faster of the two;
3. the workload: `--postings` payment postings through `kassa.services.ledger.post` (the posting
   row, its two entries, both accounts' kept balances), each in its own transaction as a payment
   confirmation posts, spread over the merchants, from the same number of tasks. The floor and the
   workload take turns in `--rounds` rounds (their order rotating), so that a change in the
   machine's load weighs on both alike; each round's rates and ratio are printed;
4. reads 1,000 balances (`GET /api/v1/balances`'s query) after the first 1,000 postings and again
   after all of them, to show the read stays flat as entries grow;
5. checks the ledger (`kassa ledger check`'s function) and that exactly `--postings` postings exist;
6. prints postings/s, inserts/s, their ratio, the CPU this process spent per operation (on SQLite
   the database's work included), and the mean and p99 balance read times.

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


async def _spread(numbers: range, concurrency: int, one: object) -> tuple[float, float]:
    """Run `one(i)` for i in `numbers` from `concurrency` tasks; (seconds, CPU seconds of this
    process, threads included: on SQLite that is all of the database's work too)."""
    queue = iter(numbers)

    async def worker() -> None:
        for i in queue:
            await one(i)  # type: ignore[operator]

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, time.process_time() - cpu


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

        # Built once, like the ledger's statements: each insert is the cached, compiled statement
        # and its values (building `insert(floor).values(...)` per row cost the floor about as much
        # client CPU per row as a whole posting on PostgreSQL).
        floor_row = insert(floor)

        async def floor_insert(i: int) -> None:
            async with runtime.db.transaction() as tx:
                await tx.conn.execute(
                    floor_row,
                    {
                        "key": f"payment:{run_tag}_{i}:confirmed",
                        "amount": 1000 + i,
                        "merchant": merchants[i % len(merchants)],
                        "created_at": now,
                    },
                )

        floor_sql = "INSERT INTO bench_floor (key, amount, merchant, created_at) VALUES (?, ?, ?, ?)"
        dialect = runtime.db.engine.dialect
        bind_amount = floor.c.amount.type.dialect_impl(dialect).bind_processor(dialect)
        bind_time = floor.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)

        async def floor_insert_driver(i: int) -> None:
            """SQLite: the same row on the driver's connection, as the ledger's SQLite path writes."""
            assert bind_amount is not None
            assert bind_time is not None
            async with runtime.db.transaction() as tx:
                driver = (await tx.conn.get_raw_connection()).driver_connection
                assert driver is not None
                await driver.execute_fetchall(
                    floor_sql,
                    (
                        f"payment:{run_tag}_{i}:driver",
                        bind_amount(1000 + i),
                        merchants[i % len(merchants)],
                        bind_time(now),
                    ),
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
            range(args.postings, args.postings + warm), args.concurrency, ledger_post
        )  # warm-up, and entries to read
        early = await read_balances()
        # The phases take turns, in rounds (their order rotating), so that a change in the machine's
        # load during the run weighs on the floor and on the ledger alike.
        phases: dict[str, object] = {"floor": floor_insert, "ledger": ledger_post}
        if args.db == "sqlite":
            phases["driver"] = floor_insert_driver
        seconds = dict.fromkeys(phases, 0.0)
        cpu = dict.fromkeys(phases, 0.0)
        rounds = max(1, min(args.rounds, args.postings))
        for r in range(rounds):
            numbers = range(args.postings * r // rounds, args.postings * (r + 1) // rounds)
            names = list(phases)[r % len(phases) :] + list(phases)[: r % len(phases)]
            took = {}
            for name in names:
                took[name], used = await _spread(numbers, args.concurrency, phases[name])
                seconds[name] += took[name]
                cpu[name] += used
            floors = max(len(numbers) / took[name] for name in phases if name != "ledger")
            print(
                f"round {r + 1}/{rounds}: "
                + "  ".join(f"{name} {len(numbers) / took[name]:,.0f}/s" for name in phases)
                + f"  ratio {len(numbers) / took['ledger'] / floors:.2f}",
                flush=True,
            )
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
        floor_rate = args.postings / seconds["floor"]
        driver_rate = args.postings / seconds["driver"] if "driver" in seconds else None
        ledger_rate = args.postings / seconds["ledger"]
        ratio = ledger_rate / max(floor_rate, driver_rate or 0.0)

        def p99(values: list[float]) -> float:
            return sorted(values)[int(len(values) * 0.99) - 1]

        print(f"database: {args.db}; {args.postings} postings, {args.merchants} merchants")
        print(f"tasks: {args.concurrency}; {rounds} rounds")
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")

        def cpu_ms(name: str) -> str:
            return f"({cpu[name] / args.postings * 1000:.2f} ms CPU each in this process)"

        print(f"floor (single-row inserts): {floor_rate:,.0f}/s {cpu_ms('floor')}")
        if driver_rate is not None:
            print(f"floor on the driver:        {driver_rate:,.0f}/s {cpu_ms('driver')}")
        print(f"ledger postings:            {ledger_rate:,.0f}/s {cpu_ms('ledger')}")
        verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
        against = " (the faster floor)" if driver_rate is not None else ""
        print(f"ratio ledger/floor:         {ratio:.2f}{against} (target >= {TARGET_RATIO}: {verdict})")
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
    parser.add_argument("--rounds", type=int, default=5, help="turns the floor and the ledger take")
    parser.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    args = parser.parse_args()
    if args.db == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            return asyncio.run(main(args, f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"))
    with TempPostgres() as pg:
        return asyncio.run(main(args, pg.url))


if __name__ == "__main__":
    sys.exit(cli())
