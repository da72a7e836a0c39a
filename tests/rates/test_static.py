from __future__ import annotations

from decimal import Decimal

import pytest

from kassa.clock import ManualClock
from kassa.rates import RateUnavailable, StaticRateSource

from .support import T0


async def test_answers_configured_pair_with_clock_time(clock: ManualClock) -> None:
    source = StaticRateSource({"XMR/USD": "150.00"}, clock)
    rates = await source.fetch([("XMR", "USD")])
    rate = rates[("XMR", "USD")]
    assert rate.value == Decimal("150.00")
    assert (rate.base, rate.quote, rate.source, rate.fetched_at) == ("XMR", "USD", "static", T0)


async def test_answers_the_inverse_to_forty_digits(clock: ManualClock) -> None:
    source = StaticRateSource({"XMR/USD": "150"}, clock)
    value = (await source.fetch([("USD", "XMR")]))[("USD", "XMR")].value
    assert value == Decimal("0.006666666666666666666666666666666666666666")
    assert len(value.as_tuple().digits) == 40
    assert abs(value * 150 - 1) < Decimal("1e-39")


async def test_exact_inverse_stays_exact(clock: ManualClock) -> None:
    source = StaticRateSource({"EUR/USD": Decimal("1.25")}, clock)
    assert (await source.fetch([("USD", "EUR")]))[("USD", "EUR")].value == Decimal("0.8")


async def test_explicit_pair_wins_over_inverse(clock: ManualClock) -> None:
    source = StaticRateSource({"XMR/USD": "150", "USD/XMR": "0.0065"}, clock)
    rates = await source.fetch([("USD", "XMR"), ("XMR", "USD")])
    assert rates[("USD", "XMR")].value == Decimal("0.0065")
    assert rates[("XMR", "USD")].value == Decimal(150)


async def test_identity_pairs_are_one_even_when_unconfigured(clock: ManualClock) -> None:
    source = StaticRateSource({}, clock)
    rates = await source.fetch([("BTC", "BTC"), ("USD", "USD")])
    assert {p: r.value for p, r in rates.items()} == {("BTC", "BTC"): 1, ("USD", "USD"): 1}


async def test_returns_the_subset_it_knows(clock: ManualClock) -> None:
    source = StaticRateSource({"XMR/USD": "150"}, clock)
    rates = await source.fetch([("XMR", "USD"), ("BTC", "USD")])
    assert set(rates) == {("XMR", "USD")}


async def test_raises_when_it_knows_none(clock: ManualClock) -> None:
    source = StaticRateSource({"XMR/USD": "150"}, clock)
    with pytest.raises(RateUnavailable, match=r"BTC/USD from static: not in the configured") as info:
        await source.fetch([("BTC", "USD")])
    assert info.value.pairs == (("BTC", "USD"),)


async def test_no_pairs_asked_no_rates(clock: ManualClock) -> None:
    assert await StaticRateSource({}, clock).fetch([]) == {}


async def test_keys_are_normalised_to_upper_case(clock: ManualClock) -> None:
    source = StaticRateSource({" xmr/usd ": "150"}, clock)
    assert (await source.fetch([("XMR", "USD")]))[("XMR", "USD")].value == 150


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"XMRUSD": "150"}, r"'XMRUSD' is not of the form 'AAA/BBB'"),
        ({"XMR/USD/EUR": "150"}, r"not of the form"),
        ({"XMR/": "150"}, r"not of the form"),
        ({"XMR/XMR": "1"}, r"identity pairs"),
        ({"XMR/USD": "0"}, r"'XMR/USD': must be a positive finite number"),
        ({"XMR/USD": "-3"}, r"positive finite"),
        ({"XMR/USD": "NaN"}, r"positive finite"),
        ({"XMR/USD": "Infinity"}, r"positive finite"),
        ({"XMR/USD": "lots"}, r"not a decimal number"),
        ({"XMR/USD": 150.5}, r"expected a decimal string, got float"),
        ({"XMR/USD": "1", "xmr/usd": "2"}, r"configured twice"),
    ],
)
def test_bad_tables_are_refused_clearly(table: dict[str, object], message: str, clock: ManualClock) -> None:
    with pytest.raises(ValueError, match=message):
        StaticRateSource(table, clock)  # type: ignore[arg-type]
