"""`lock_conflict` recognises the deadlock PostgreSQL breaks by aborting one transaction (the
delivery worker's settle runs such a transaction again), and nothing else."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from kassa.db.database import lock_conflict
from tests.support.pg_databases import fresh_database


async def _deadlock(url: str) -> list[BaseException | None]:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (pk int PRIMARY KEY, n int NOT NULL)"))
            await conn.execute(text("INSERT INTO t VALUES (1, 0), (2, 0)"))
        both_hold = asyncio.Barrier(2)

        async def cross(first: int, second: int) -> BaseException | None:
            try:
                async with engine.begin() as conn:
                    await conn.execute(text("UPDATE t SET n = n + 1 WHERE pk = :pk"), {"pk": first})
                    await both_hold.wait()
                    await conn.execute(text("UPDATE t SET n = n + 1 WHERE pk = :pk"), {"pk": second})
            except DBAPIError as exc:
                return exc
            return None

        found = list(await asyncio.gather(cross(1, 2), cross(2, 1)))
        async with engine.connect() as conn:
            try:
                await conn.execute(text("INSERT INTO t VALUES (1, 0)"))  # a unique violation
            except DBAPIError as exc:
                found.append(exc)
        return found
    finally:
        await engine.dispose()


def test_a_deadlock_is_a_lock_conflict_and_a_unique_violation_is_not(postgres_url: str) -> None:
    with fresh_database(postgres_url, "kassa_locks") as url:
        first, second, duplicate = asyncio.run(_deadlock(url))
    aborted = [e for e in (first, second) if e is not None]
    assert len(aborted) == 1, (first, second)  # PostgreSQL aborts one of the two, the other commits
    assert lock_conflict(aborted[0])
    assert duplicate is not None and not lock_conflict(duplicate)
    assert not lock_conflict(RuntimeError("deadlock detected"))
