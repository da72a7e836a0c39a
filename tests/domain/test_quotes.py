"""Quotes: priced at a fresh rate, rounded up, with their own deadline; stale rates are refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from kassa.clock import ManualClock
from kassa.errors import Conflict
from kassa.rails.base import MethodSpec, QuoteRequest
from kassa.rates import RateCache, StaticRateSource
from kassa.services.quotes import Quoter

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def quoter(clock: ManualClock, table: dict[str, str]) -> Quoter:
    cache = RateCache(StaticRateSource(table, clock), clock, timedelta(minutes=5))
    return Quoter(cache, timedelta(minutes=10))


async def test_fiat_in_xmr_rounded_up() -> None:
    clock = ManualClock(T0)
    q = quoter(clock, {"XMR/USD": "150"})
    req = QuoteRequest("ord_x", 1000, "USD", T0 + timedelta(minutes=15))
    quote = await q.quote(req, MethodSpec("XMR", "XMR"), clock.now())
    # 10.00 USD at 150 USD/XMR = 0.0666… XMR, rounded up to the piconero.
    assert quote.amount == 66_666_666_667 and quote.currency == "XMR"
    assert quote.rate == Decimal("150")
    assert quote.expires_at == T0 + timedelta(minutes=10)  # quote lifetime before order expiry


async def test_same_currency_is_rate_one_and_order_deadline() -> None:
    clock = ManualClock(T0)
    req = QuoteRequest("ord_x", 1000, "USD", T0 + timedelta(minutes=5))
    quote = await quoter(clock, {}).quote(req, MethodSpec("test", None), clock.now())
    assert (quote.amount, quote.rate, quote.expires_at) == (1000, Decimal(1), T0 + timedelta(minutes=5))


async def test_missing_rate_is_a_clear_conflict() -> None:
    clock = ManualClock(T0)
    req = QuoteRequest("ord_x", 1000, "EUR", T0 + timedelta(minutes=15))
    with pytest.raises(Conflict) as info:
        await quoter(clock, {"XMR/USD": "150"}).quote(req, MethodSpec("XMR", "XMR"), clock.now())
    assert info.value.code == "rate_unavailable" and "XMR/EUR" in info.value.message
