"""Databases of their own on the test PostgreSQL server, for tests that must see every row."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator

import asyncpg


def dsn(url: str) -> str:
    """SQLAlchemy's URL as asyncpg and libpq take it."""
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _admin(server_url: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn(server_url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def fresh_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new, empty database on the server of `server_url` (its URL), dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(server_url, f"CREATE DATABASE {name}"))
    try:
        yield server_url.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(_admin(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
