"""The database handle: one async engine, short transactions, and change notification.

SQLite serializes writers: every transaction starts with `BEGIN IMMEDIATE`, so two writers never
interleave a read-then-write (PostgreSQL gets the same guarantee from `SELECT ... FOR UPDATE`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry


class Tx:
    """An open transaction plus what to announce once it commits."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.changed_orders: set[str] = set()  # announced to every process (long polls wake)
        self.local_notice = False  # wake this process's workers only (e.g. new deliveries)
        self.cache: dict[tuple[str, int], Any] = {}  # lookups repeated within this transaction

    def order_changed(self, order_id: str) -> None:
        self.changed_orders.add(order_id)

    def work_queued(self) -> None:
        self.local_notice = True


class Database:
    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"echo": echo}
        if url.startswith("postgresql"):
            # Overflow connections are opened and closed per use: under load that churn costs more
            # than the queries, so the pool itself is sized for the expected concurrency.
            kwargs.update(pool_size=pool_size, max_overflow=pool_size // 4, pool_pre_ping=False)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self.dialect = self.engine.dialect.name
        self.on_commit: list[Callable[[set[str]], None]] = []
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        async with self.engine.connect() as conn:
            async with conn.begin():
                tx = Tx(conn)
                yield tx
                if tx.changed_orders and self.is_postgres:
                    await conn.execute(
                        text("SELECT pg_notify('kassa_orders', id) FROM unnest(CAST(:ids AS text[])) AS id"),
                        {"ids": sorted(tx.changed_orders)},
                    )
            if tx.changed_orders or tx.local_notice:
                self.committed(tx.changed_orders)

    def committed(self, changed_orders: set[str]) -> None:
        """Tell this process's listeners (long polls, workers) that a commit changed something."""
        for callback in self.on_commit:
            callback(changed_orders)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A short read-only connection (no write lock on SQLite)."""
        async with self.engine.connect() as conn:
            # PostgreSQL: autocommit, so a read costs no BEGIN/ROLLBACK round trips.
            await conn.execution_options(
                kassa_read_only=True, **({"isolation_level": "AUTOCOMMIT"} if self.is_postgres else {})
            )
            yield conn

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction that sees one moment throughout: its queries agree with each
        other while writers go on (PostgreSQL: REPEATABLE READ; SQLite: a deferred BEGIN in WAL)."""
        async with self.engine.connect() as conn:
            options: dict[str, Any] = {"kassa_read_only": True}
            if self.is_postgres:
                options["isolation_level"] = "REPEATABLE READ"
            await conn.execution_options(**options)
            async with conn.begin():
                if self.is_postgres:
                    await conn.execute(text("SET TRANSACTION READ ONLY"))
                yield conn

    @asynccontextmanager
    async def driver(self) -> AsyncIterator[Any]:
        """PostgreSQL: the pooled asyncpg connection itself, for the statements written in SQL
        (db/order_insert.py, worker/delivery_sql.py). Autocommit: one statement, one round trip."""
        async with self.engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            yield driver

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def revisions(self) -> set[str]:
        """The migration revisions the database is at (Alembic's table; empty before the first)."""
        async with self.engine.connect() as conn:
            try:
                rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
            except DBAPIError:
                return set()
            return {row[0] for row in rows}

    async def dispose(self) -> None:
        await self.engine.dispose()


LOCK_CONFLICTS = frozenset({"40P01", "40001"})  # PostgreSQL: deadlock detected, serialization failure


def lock_conflict(exc: BaseException) -> bool:
    """Whether PostgreSQL aborted the transaction to break a deadlock (or a serialization conflict):
    nothing was written, and running it again is the documented remedy."""
    if not isinstance(exc, DBAPIError):
        return False
    causes = (exc.orig, getattr(exc.orig, "__cause__", None))
    return any(getattr(c, "sqlstate", None) in LOCK_CONFLICTS for c in causes)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


def sql_json(value: Any) -> str:
    """Values for a statement that reads its rows from JSON (json_to_recordset & co.):
    compact JSON, datetimes as ISO 8601 with their offset, integers exact however large."""
    return json.dumps(value, separators=(",", ":"), default=_json_default)


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        read_only = conn.get_execution_options().get("kassa_read_only", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
