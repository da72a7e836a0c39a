from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from kassa.clock import ManualClock
from kassa.rates import CombinedRateSource, RateUnavailable, convert_minor

from .support import FakeSource

XMR_USD, BTC_USD, ETH_USD = ("XMR", "USD"), ("BTC", "USD"), ("ETH", "USD")


async def test_first_source_that_has_a_pair_wins(clock: ManualClock) -> None:
    primary = FakeSource("a", clock, {XMR_USD: "150"})
    fallback = FakeSource("b", clock, {XMR_USD: "999", BTC_USD: "60000"})
    rates = await CombinedRateSource(primary, [fallback]).fetch([XMR_USD, BTC_USD])
    assert {p: (r.value, r.source) for p, r in rates.items()} == {
        XMR_USD: (Decimal(150), "a"),
        BTC_USD: (Decimal(60000), "b"),
    }
    assert fallback.calls == [[BTC_USD]]  # only asked for what the primary lacked


async def test_failing_primary_does_not_block_the_fallback(clock: ManualClock) -> None:
    primary = FakeSource("kraken", clock, {}, fail=RateUnavailable([XMR_USD], "kraken", "HTTP 500"))
    fallback = FakeSource("static", clock, {XMR_USD: "150"})
    rates = await CombinedRateSource(primary, [fallback]).fetch([XMR_USD])
    assert rates[XMR_USD].source == "static"


async def test_a_broken_source_does_not_block_the_others(clock: ManualClock) -> None:
    primary = FakeSource("buggy", clock, {}, fail=KeyError("oops"))
    fallback = FakeSource("static", clock, {XMR_USD: "150"})
    rates = await CombinedRateSource(primary, [fallback]).fetch([XMR_USD])
    assert rates[XMR_USD].value == 150


async def test_failing_fallback_does_not_block_what_the_primary_has(clock: ManualClock) -> None:
    primary = FakeSource("a", clock, {XMR_USD: "150"})
    fallback = FakeSource("b", clock, {}, fail=RateUnavailable([BTC_USD], "b", "timeout"))
    rates = await CombinedRateSource(primary, [fallback]).fetch([XMR_USD, BTC_USD])
    assert set(rates) == {XMR_USD}


async def test_all_sources_failing_explains_each(clock: ManualClock) -> None:
    a = FakeSource("a", clock, {}, fail=RateUnavailable([ETH_USD], "a", "HTTP 503"))
    b = FakeSource("b", clock, {XMR_USD: "150"})
    with pytest.raises(RateUnavailable) as info:
        await CombinedRateSource(a, [b]).fetch([ETH_USD])
    assert info.value.pairs == (ETH_USD,)
    assert info.value.source == "a+b"
    assert info.value.reason == "a: HTTP 503; b: not scripted"


async def test_duplicate_pairs_are_fetched_once(clock: ManualClock) -> None:
    a = FakeSource("a", clock, {XMR_USD: "150"})
    await CombinedRateSource(a).fetch([XMR_USD, XMR_USD])
    assert a.calls == [[XMR_USD]]


async def test_spread_lowers_the_coin_price(clock: ManualClock) -> None:
    a = FakeSource("a", clock, {XMR_USD: "150"})
    rate = (await CombinedRateSource(a, spread_bps=100).fetch([XMR_USD]))[XMR_USD]
    assert rate.value == Decimal("148.5")  # 150 * (1 - 1%)
    assert rate.source == "a"


async def test_spread_makes_the_customer_pay_more_coin(clock: ManualClock) -> None:
    a = FakeSource("a", clock, {XMR_USD: "150"})
    plain = (await CombinedRateSource(a).fetch([XMR_USD]))[XMR_USD]
    spread = (await CombinedRateSource(a, spread_bps=50).fetch([XMR_USD]))[XMR_USD]
    ten_dollars_plain = convert_minor(1000, 2, 12, plain.value)
    ten_dollars_spread = convert_minor(1000, 2, 12, spread.value)
    assert ten_dollars_spread > ten_dollars_plain
    assert ten_dollars_plain == 66_666_666_667


async def test_spread_rounds_down_when_inexact(clock: ManualClock) -> None:
    long = "1." + "3" * 59  # 60 significant digits: the product needs more than the context keeps
    a = FakeSource("a", clock, {XMR_USD: long})
    rate = (await CombinedRateSource(a, spread_bps=1).fetch([XMR_USD]))[XMR_USD]
    exact = Fraction(long) * Fraction(9999, 10000)
    assert Fraction(rate.value) <= exact
    assert exact - Fraction(rate.value) < Fraction(1, 10**58)


@pytest.mark.parametrize("bps", [-1, 10_000, 1.5, True])
def test_bad_spread_is_refused(clock: ManualClock, bps: object) -> None:
    with pytest.raises(ValueError, match="spread_bps must be an integer from 0 to 9999"):
        CombinedRateSource(FakeSource("a", clock, {}), spread_bps=bps)  # type: ignore[arg-type]
