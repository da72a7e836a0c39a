"""The ledger's store (services/ledger.py `post`) on SQLite and PostgreSQL: a posting is written in
its caller's transaction or not at all, a posting that fails raises SQLAlchemy's error, kept
balances stay exact past 64 bits (decimal text on SQLite), and postings of any shape keep each
account's balance and entry count."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from kassa.db.tables import ledger_balances, ledger_entries, ledger_postings
from kassa.domain.ledger import Account, Entry, Posting, PostingKind, balances, payment_confirmed
from kassa.domain.money import MAX_AMOUNT
from kassa.services import ledger
from tests.support.server import KassaServer


class Boom(Exception):
    pass


def _merchant_pk(kassa: KassaServer, merchant: tuple[str, str]) -> int:
    return kassa.call(kassa.runtime.merchants.get(merchant[0])).pk


def _post(kassa: KassaServer, merchant_pk: int, posting: Posting) -> bool:
    async def run() -> bool:
        async with kassa.runtime.db.transaction() as tx:
            return await ledger.post(tx, merchant_pk, posting, test=False, now=kassa.clock.now())

    return kassa.call(run())


def _count(kassa: KassaServer, table: Any, merchant_pk: int) -> int:
    async def run() -> int:
        async with kassa.runtime.db.read() as conn:
            query = select(func.count()).select_from(table).where(table.c.merchant_pk == merchant_pk)
            return int((await conn.execute(query)).scalar_one())

    return kassa.call(run())


def _ledger_ok(kassa: KassaServer) -> None:
    broken = kassa.call(kassa.runtime.ledger.check())
    assert broken is None, broken


def test_a_ledger_posting_is_undone_with_its_transaction(
    kassa: KassaServer, merchant: tuple[str, str]
) -> None:
    pk = _merchant_pk(kassa, merchant)
    posting = payment_confirmed("pay_undone", "XMR", 10)

    async def post_then_fail() -> None:
        async with kassa.runtime.db.transaction() as tx:
            assert await ledger.post(tx, pk, posting, test=False, now=kassa.clock.now())
            raise Boom

    with pytest.raises(Boom):
        kassa.call(post_then_fail())
    for table in (ledger_postings, ledger_entries, ledger_balances):
        assert _count(kassa, table, pk) == 0, table.name
    assert _post(kassa, pk, posting)  # the key was never taken
    assert not _post(kassa, pk, posting)
    (xmr,) = kassa.call(kassa.runtime.ledger.balances(pk, False))
    assert xmr["available"] == 10
    _ledger_ok(kassa)


def test_a_ledger_posting_that_fails_raises_sqlalchemys_error(kassa: KassaServer) -> None:
    nobody = 2**40  # no such merchant: the foreign key refuses the posting
    with pytest.raises(IntegrityError):
        _post(kassa, nobody, payment_confirmed("pay_nobody", "XMR", 10))
    for table in (ledger_postings, ledger_entries, ledger_balances):
        assert _count(kassa, table, nobody) == 0, table.name


def test_ledger_kept_balances_are_exact_past_64_bits(kassa: KassaServer, merchant: tuple[str, str]) -> None:
    pk = _merchant_pk(kassa, merchant)
    amounts = [2**63 - 1, 1, 2**64 + 7, 10**70, MAX_AMOUNT - 1, 3]
    for n, amount in enumerate(amounts):
        assert _post(kassa, pk, payment_confirmed(f"pay_wide{n}", "ETH", amount))
    (eth,) = kassa.call(kassa.runtime.ledger.balances(pk, False))
    assert eth["available"] == sum(amounts)
    assert eth["accounts"]["incoming"] == -sum(amounts)

    async def stored() -> dict[str, tuple[Any, ...]]:
        async with kassa.runtime.db.read() as conn:
            rows = await conn.execute(
                text(
                    "SELECT account, balance, entries FROM ledger_balances WHERE merchant_pk = :pk"
                    if kassa.runtime.db.is_postgres
                    else "SELECT account, balance, entries, typeof(balance) FROM ledger_balances"
                    " WHERE merchant_pk = :pk"
                ),
                {"pk": pk},
            )
            return {row[0]: tuple(row[1:]) for row in rows}

    kept = kassa.call(stored())
    if kassa.runtime.db.is_postgres:
        assert kept == {"balance": (sum(amounts), len(amounts)), "incoming": (-sum(amounts), len(amounts))}
    else:  # SignedTotal's decimal text, never an INTEGER or a REAL
        assert kept == {
            "balance": (str(sum(amounts)), len(amounts), "text"),
            "incoming": (str(-sum(amounts)), len(amounts), "text"),
        }
    _ledger_ok(kassa)


def test_a_ledger_posting_of_any_shape_keeps_its_accounts(
    kassa: KassaServer, merchant: tuple[str, str]
) -> None:
    pk = _merchant_pk(kassa, merchant)
    wide = MAX_AMOUNT - 1
    shaped = Posting(
        "shape:1",
        PostingKind.PAYMENT,
        (
            Entry(Account.INCOMING, "XMR", -wide),
            Entry(Account.BALANCE, "XMR", wide - 3),
            Entry(Account.FEES, "XMR", 3),
            Entry(Account.BALANCE, "XMR", 5),  # the same account twice in one posting
            Entry(Account.INCOMING, "XMR", -5),
            Entry(Account.INCOMING, "BTC", -2),
            Entry(Account.BALANCE, "BTC", 2),
        ),
    )
    two = payment_confirmed("pay_shape", "XMR", wide)
    for posting in (shaped, two, shaped, two):
        _post(kassa, pk, posting)
    assert _count(kassa, ledger_postings, pk) == 2
    assert _count(kassa, ledger_entries, pk) == len(shaped.entries) + len(two.entries)
    expected = {(a.value, c): v for (a, c), v in balances([shaped, two]).items() if v}
    stored = {
        (account, row["currency"]): value
        for row in kassa.call(kassa.runtime.ledger.balances(pk, False))
        for account, value in row["accounts"].items()
        if value
    }
    assert stored == expected
    _ledger_ok(kassa)  # also: each kept entry count is its account's number of entries
