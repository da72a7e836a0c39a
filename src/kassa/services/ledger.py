"""The ledger's storage: postings recorded once, entries, and each account's balance kept as it posts.

`post()` runs inside the transaction of the state change it records (a payment becoming final is
posted in `OrderService.observe`'s transaction). A posting's key is unique per merchant in the
database (`uq_ledger_postings_merchant_key`), so a replayed notification, a restarted watcher or two
workers racing cannot post twice: the second insert does nothing, and its entries are not written.
Balances are the sums of entries; `ledger_balances` keeps them as they post (one row per account,
so reading a balance never sums the entries), and `check()` proves the two agree.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import TextClause, select, text
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from kassa.db.database import Database, Tx
from kassa.db.pagination import newest_first
from kassa.db.tables import ledger_balances, ledger_entries, ledger_postings
from kassa.domain.ledger import Account, Posting, PostingKind
from kassa.errors import InvalidRequest
from kassa.ids import new_id
from kassa.services.views import iso


async def post(
    tx: Tx, merchant_pk: int, posting: Posting, *, test: bool, now: datetime, order_id: str | None = None
) -> bool:
    """Record `posting` once; False when its key was posted before (nothing is written then)."""
    posting.check()
    if tx.conn.dialect.name == "postgresql":
        return await _post_pg(tx, merchant_pk, posting, test=test, now=now, order_id=order_id)
    return await _post_sqlite(tx, merchant_pk, posting, test=test, now=now, order_id=order_id)


def _posting_row(
    merchant_pk: int, posting: Posting, test: bool, now: datetime, order_id: str | None
) -> dict[str, Any]:
    return {
        "id": new_id("lpo"),
        "merchant_pk": merchant_pk,
        "key": posting.key,
        "kind": posting.kind.value,
        "test": test,
        "order_id": order_id,
        "created_at": now,
    }


def _deltas(posting: Posting) -> list[tuple[str, str, int, int]]:
    """(account, currency, amount, entries) per account touched, in one order (the lock order)."""
    deltas: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for entry in posting.entries:
        delta = deltas[(entry.account.value, entry.currency)]
        delta[0] += entry.amount
        delta[1] += 1
    return [
        (account, currency, amount, count) for (account, currency), (amount, count) in sorted(deltas.items())
    ]


@lru_cache(maxsize=32)
def _pg_post_sql(entries: int, accounts: int) -> TextClause:
    """One round trip on PostgreSQL: the posting (nothing more if its key exists), its entries,
    and the kept balances, in data-modifying CTEs that all hang on the posting's insert."""
    entry_rows = ", ".join(
        f"(:e{i}_id, :e{i}_account, :e{i}_currency, CAST(:e{i}_amount AS numeric))" for i in range(entries)
    )
    account_rows = ", ".join(
        f"(:b{i}_account, :b{i}_currency, CAST(:b{i}_amount AS numeric), CAST(:b{i}_entries AS integer))"
        for i in range(accounts)
    )
    # Only numbered placeholders are put into the text; every value is a bound parameter.
    return text(
        f"""
WITH p AS (
  INSERT INTO ledger_postings (id, merchant_pk, key, kind, test, order_id, created_at)
  VALUES (:id, CAST(:merchant_pk AS bigint), :key, :kind, CAST(:test AS boolean), :order_id,
          CAST(:created_at AS timestamptz))
  ON CONFLICT (merchant_pk, key) DO NOTHING
  RETURNING pk
), e AS (
  INSERT INTO ledger_entries
    (id, posting_pk, merchant_pk, test, account, currency, amount, kind, order_id, created_at)
  SELECT v.id, p.pk, CAST(:merchant_pk AS bigint), CAST(:test AS boolean), v.account, v.currency,
         v.amount, :kind, :order_id, CAST(:created_at AS timestamptz)
  FROM p CROSS JOIN (VALUES {entry_rows}) AS v(id, account, currency, amount)
), b AS (
  INSERT INTO ledger_balances AS kept (merchant_pk, test, account, currency, balance, entries, updated_at)
  SELECT CAST(:merchant_pk AS bigint), CAST(:test AS boolean), v.account, v.currency, v.amount,
         v.entries, CAST(:created_at AS timestamptz)
  FROM p CROSS JOIN (VALUES {account_rows}) AS v(account, currency, amount, entries)
  ON CONFLICT (merchant_pk, test, account, currency) DO UPDATE
  SET balance = kept.balance + EXCLUDED.balance, entries = kept.entries + EXCLUDED.entries,
      updated_at = EXCLUDED.updated_at
)
SELECT pk FROM p"""  # noqa: S608
    )


async def _post_pg(
    tx: Tx, merchant_pk: int, posting: Posting, *, test: bool, now: datetime, order_id: str | None
) -> bool:
    deltas = _deltas(posting)
    params = _posting_row(merchant_pk, posting, test, now, order_id)
    for i, entry in enumerate(posting.entries):
        params.update(
            {
                f"e{i}_id": new_id("len"),
                f"e{i}_account": entry.account.value,
                f"e{i}_currency": entry.currency,
                f"e{i}_amount": str(entry.amount),
            }
        )
    for i, (account, currency, amount, count) in enumerate(deltas):
        params.update(
            {
                f"b{i}_account": account,
                f"b{i}_currency": currency,
                f"b{i}_amount": str(amount),
                f"b{i}_entries": count,
            }
        )
    statement = _pg_post_sql(len(posting.entries), len(deltas))
    return (await tx.conn.execute(statement, params)).first() is not None


# SQLite: a posting is one trip to aiosqlite's thread. Through SQLAlchemy every statement is three
# or four trips (a cursor, the statement, its rows, closing the cursor), and each trip costs more than
# the statement; here the posting's three statements run back to back on the driver's sqlite3
# connection, inside the transaction SQLAlchemy began (BEGIN IMMEDIATE: one writer at a time), and
# sqlite3 keeps them prepared. Values are bound by the columns' own processors, as SQLAlchemy binds
# them, and errors come out as SQLAlchemy's. The trip goes through aiosqlite's own queue
# (`Connection._execute`, not public; SQLAlchemy's aiosqlite adapter uses that queue as well):
# aiosqlite is pinned in pyproject.toml, and every ledger test on SQLite runs through here.

_SQLITE_POSTING = """
INSERT INTO ledger_postings (id, merchant_pk, key, kind, test, order_id, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (merchant_pk, key) DO NOTHING
RETURNING pk"""

_SQLITE_ADD = "kassa_add"
"""Exact addition of two kept amounts, defined on each connection that posts: SignedTotal keeps
decimal text on SQLite, and SQLite's own `+` would go through a 64-bit integer or a float."""


@lru_cache(maxsize=32)
def _sqlite_entries_sql(entries: int) -> str:
    rows = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * entries)
    # Only placeholders are put into the text; every value is a bound parameter.
    return f"""
INSERT INTO ledger_entries
  (id, posting_pk, merchant_pk, test, account, currency, amount, kind, order_id, created_at)
VALUES {rows}"""  # noqa: S608


@lru_cache(maxsize=32)
def _sqlite_balances_sql(accounts: int) -> str:
    rows = ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * accounts)
    return f"""
INSERT INTO ledger_balances AS kept (merchant_pk, test, account, currency, balance, entries, updated_at)
VALUES {rows}
ON CONFLICT (merchant_pk, test, account, currency) DO UPDATE
SET balance = {_SQLITE_ADD}(kept.balance, excluded.balance), entries = kept.entries + excluded.entries,
    updated_at = excluded.updated_at"""  # noqa: S608


def _exact_add(kept: object, delta: object) -> str:
    """`kassa_add(a, b)`: Python's integers are exact at any size."""
    if not isinstance(kept, str | int) or not isinstance(delta, str | int):
        raise TypeError("a kept amount is decimal text")
    return str(int(kept) + int(delta))


@dataclass(frozen=True, slots=True)
class _SqliteBinds:
    """The columns' bind processors, so values are stored exactly as SQLAlchemy stores them."""

    flag: Callable[[Any], Any]
    amount: Callable[[Any], Any]
    time: Callable[[Any], Any]


@lru_cache(maxsize=8)
def _sqlite_binds(dialect: Dialect) -> _SqliteBinds:
    def processor(column: Any) -> Callable[[Any], Any]:
        process = column.type.dialect_impl(dialect).bind_processor(dialect)
        return process if process is not None else (lambda value: value)

    return _SqliteBinds(
        flag=processor(ledger_entries.c.test),
        amount=processor(ledger_entries.c.amount),
        time=processor(ledger_entries.c.created_at),
    )


@dataclass(slots=True)
class _SqlitePosting:
    """What one posting writes on SQLite, its values bound."""

    posting: tuple[Any, ...]
    entries_sql: str
    entries: list[tuple[Any, ...]]  # each entry's values, but for the posting's pk (known once inserted)
    balances_sql: str
    balances: tuple[Any, ...]
    define_add: bool  # first posting on this connection: define kassa_add
    statement: str = ""  # the statement running, and its values, for an error's report
    params: Any = None


def _write_sqlite(conn: sqlite3.Connection, work: _SqlitePosting) -> bool:
    """In aiosqlite's thread, on its connection, inside the open transaction: the posting (nothing
    more when the unique constraint on its key refuses it), its entries, the kept balances (one
    UPSERT, added exactly by kassa_add, never read into Python and written back)."""
    if work.define_add:
        conn.create_function(_SQLITE_ADD, 2, _exact_add, deterministic=True)
    work.statement, work.params = _SQLITE_POSTING, work.posting
    inserted = conn.execute(_SQLITE_POSTING, work.posting).fetchall()
    if not inserted:
        return False
    posting_pk = inserted[0][0]
    work.statement = work.entries_sql
    work.params = [value for entry in work.entries for value in (entry[0], posting_pk, *entry[1:])]
    conn.execute(work.entries_sql, work.params)
    work.statement, work.params = work.balances_sql, work.balances
    conn.execute(work.balances_sql, work.balances)
    return True


async def _post_sqlite(
    tx: Tx, merchant_pk: int, posting: Posting, *, test: bool, now: datetime, order_id: str | None
) -> bool:
    binds = _sqlite_binds(tx.conn.dialect)
    flag, created_at, kind = binds.flag(test), binds.time(now), posting.kind.value
    deltas = _deltas(posting)
    balances: list[Any] = []
    for account, currency, amount, count in deltas:
        balances += (merchant_pk, flag, account, currency, binds.amount(amount), count, created_at)
    raw = await tx.conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    work = _SqlitePosting(
        posting=(new_id("lpo"), merchant_pk, posting.key, kind, flag, order_id, created_at),
        entries_sql=_sqlite_entries_sql(len(posting.entries)),
        entries=[
            (
                new_id("len"),
                merchant_pk,
                flag,
                entry.account.value,
                entry.currency,
                binds.amount(entry.amount),
                kind,
                order_id,
                created_at,
            )
            for entry in posting.entries
        ],
        balances_sql=_sqlite_balances_sql(len(deltas)),
        balances=tuple(balances),
        define_add=not raw.info.get(_SQLITE_ADD),
    )
    try:
        written = await driver._execute(_write_sqlite, driver._conn, work)
    except sqlite3.Error as error:
        raise DBAPIError.instance(work.statement, work.params, error, sqlite3.Error) from error
    raw.info[_SQLITE_ADD] = True
    return bool(written)


async def posted(tx: Tx, merchant_pk: int, key: str) -> bool:
    found = await tx.conn.execute(
        select(ledger_postings.c.pk).where(
            ledger_postings.c.merchant_pk == merchant_pk, ledger_postings.c.key == key
        )
    )
    return found.first() is not None


def entry_view(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "ledger_entry",
        "posting": row["posting_id"],
        "key": row["key"],
        "kind": row["kind"],
        "account": row["account"],
        "currency": row["currency"],
        "amount": row["amount"],
        "order": row["order_id"],
        "test": row["test"],
        "created_at": iso(row["created_at"]),
    }


@dataclass(frozen=True, slots=True)
class Broken:
    """The first place where the ledger's invariants do not hold."""

    posting: str | None  # the posting's key, when one posting is at fault
    merchant_pk: int
    message: str


class LedgerService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def balances(self, merchant_pk: int, test: bool) -> list[dict[str, Any]]:
        """Per currency: every account's balance, from the kept balances (no sum over entries)."""
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(ledger_balances)
                .where(ledger_balances.c.merchant_pk == merchant_pk, ledger_balances.c.test == test)
                .order_by(ledger_balances.c.currency, ledger_balances.c.account)
            )
            by_currency: dict[str, dict[str, int]] = {}
            for row in rows:
                by_currency.setdefault(row.currency, {a.value: 0 for a in Account})[row.account] = row.balance
        return [
            {
                "object": "balance",
                "currency": currency,
                "test": test,
                "available": accounts[Account.BALANCE.value],
                "accounts": accounts,
            }
            for currency, accounts in by_currency.items()
        ]

    async def entries(
        self,
        merchant_pk: int,
        *,
        limit: int,
        starting_after: str | None,
        order_id: str | None = None,
        kind: str | None = None,
    ) -> tuple[list[dict[str, Any]], bool]:
        if kind is not None and kind not in {k.value for k in PostingKind}:
            raise InvalidRequest(
                f"unknown kind {kind[:40]!r}; kinds: {', '.join(k.value for k in PostingKind)}", param="kind"
            )
        scope = ledger_entries.c.merchant_pk == merchant_pk
        query = (
            select(
                ledger_entries,
                ledger_postings.c.id.label("posting_id"),
                ledger_postings.c.key,
            )
            .join(ledger_postings, ledger_postings.c.pk == ledger_entries.c.posting_pk)
            .where(scope)
        )
        if order_id is not None:
            query = query.where(ledger_entries.c.order_id == order_id)
        if kind is not None:
            query = query.where(ledger_entries.c.kind == kind)
        async with self.db.read() as conn:
            rows, more = await newest_first(
                conn,
                ledger_entries,
                query,
                scope,
                limit=limit,
                starting_after=starting_after,
                noun="ledger entry",
            )
        return [entry_view(r) for r in rows], more

    async def check(self) -> Broken | None:
        """Every posting balances per currency, has at least two entries, and every kept balance is
        the sum of its account's entries. The first fault found, or None."""
        sums: dict[tuple[int, bool, str, str], list[int]] = defaultdict(lambda: [0, 0])
        async with self.db.snapshot() as conn:
            current: tuple[int, str, int] | None = None  # posting pk, key, merchant
            per_currency: dict[str, int] = defaultdict(int)
            count = 0
            async for row in _stream(
                conn,
                select(
                    ledger_postings.c.pk,
                    ledger_postings.c.key,
                    ledger_postings.c.merchant_pk,
                    ledger_postings.c.test,
                    ledger_entries.c.account,
                    ledger_entries.c.currency,
                    ledger_entries.c.amount,
                    ledger_entries.c.merchant_pk.label("entry_merchant_pk"),
                    ledger_entries.c.test.label("entry_test"),
                )
                .outerjoin(ledger_entries, ledger_entries.c.posting_pk == ledger_postings.c.pk)
                .order_by(ledger_postings.c.pk, ledger_entries.c.pk),
            ):
                if current is None or row.pk != current[0]:
                    if current is not None:
                        broken = _posting_fault(current, per_currency, count)
                        if broken is not None:
                            return broken
                    current, per_currency, count = (row.pk, row.key, row.merchant_pk), defaultdict(int), 0
                if row.amount is None:
                    continue
                if (row.entry_merchant_pk, row.entry_test) != (row.merchant_pk, row.test):
                    return Broken(row.key, row.merchant_pk, "an entry belongs to another merchant or mode")
                per_currency[row.currency] += row.amount
                count += 1
                total = sums[(row.merchant_pk, row.test, row.account, row.currency)]
                total[0] += row.amount
                total[1] += 1
            if current is not None:
                broken = _posting_fault(current, per_currency, count)
                if broken is not None:
                    return broken
            kept = {
                (r.merchant_pk, r.test, r.account, r.currency): (r.balance, r.entries)
                for r in await conn.execute(select(ledger_balances))
            }
        for account in sorted(set(kept) | set(sums)):
            summed = tuple(sums.get(account, (0, 0)))
            if kept.get(account, (0, 0)) != summed:
                merchant_pk, test, name, currency = account
                return Broken(
                    None,
                    merchant_pk,
                    f"the kept balance of {name} in {currency}{' (test)' if test else ''} is "
                    f"{kept.get(account, (0, 0))[0]} over {kept.get(account, (0, 0))[1]} entries; "
                    f"the entries sum to {summed[0]} over {summed[1]}",
                )
        return None


def _posting_fault(current: tuple[int, str, int], per_currency: dict[str, int], count: int) -> Broken | None:
    _pk, key, merchant_pk = current
    if count < 2:
        return Broken(key, merchant_pk, f"the posting has {count} entries; a posting has at least two")
    unbalanced = sorted(c for c, total in per_currency.items() if total)
    if unbalanced:
        return Broken(key, merchant_pk, f"the entries do not sum to zero in {', '.join(unbalanced)}")
    return None


async def _stream(conn: AsyncConnection, query: Any) -> AsyncIterator[Any]:
    result = await conn.stream(query.execution_options(yield_per=2000))
    async for row in result:
        yield row
