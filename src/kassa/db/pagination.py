"""Cursor pagination, newest first, for every list endpoint (`limit`, `starting_after`, `has_more`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, Table, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from kassa.errors import InvalidRequest


async def newest_first(
    conn: AsyncConnection,
    table: Table,
    query: Select[Any],
    scope: ColumnElement[bool],
    *,
    limit: int,
    starting_after: str | None,
    noun: str,
) -> tuple[list[Any], bool]:
    """One page of `query` (already filtered to the caller's scope) ordered by `table.pk`
    descending, after the object whose public id is `starting_after` (looked up within `scope`)."""
    cursor = await cursor_pk(conn, table, scope, starting_after, noun)
    return await page_of(conn, paged(table, query, cursor is not None), {}, cursor, limit)


def paged(table: Table, query: Select[Any], after_cursor: bool) -> Select[Any]:
    """`query` as a newest-first page with its cursor and size bound at execution (`page_of`), so a
    caller may build it once and run it for every page."""
    if after_cursor:
        query = query.where(table.c.pk < bindparam("cursor"))
    return query.order_by(table.c.pk.desc()).limit(bindparam("rows"))


async def page_of(
    conn: AsyncConnection, statement: Select[Any], params: dict[str, Any], cursor: int | None, limit: int
) -> tuple[list[Any], bool]:
    """Runs a `paged` statement: up to `limit` rows, and whether there are more."""
    rows = (await conn.execute(statement, {**params, "cursor": cursor, "rows": limit + 1})).all()
    return [r._mapping for r in rows[:limit]], len(rows) > limit


async def cursor_pk(
    conn: AsyncConnection, table: Table, scope: ColumnElement[bool], starting_after: str | None, noun: str
) -> int | None:
    """The key a page after `starting_after` starts below (None: from the newest); only an object
    within `scope` can be a cursor."""
    if starting_after is None:
        return None
    cursor = (await conn.execute(select(table.c.pk).where(scope, table.c.id == starting_after))).scalar()
    if cursor is None:
        raise InvalidRequest(f"no {noun} {starting_after!r} to start after", param="starting_after")
    return int(cursor)
