from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from kassa.rates import Rate, RateUnavailable
from kassa.rates.base import parse_rate_value

from .support import T0


def test_rate_unavailable_names_pairs_source_and_reason() -> None:
    exc = RateUnavailable([("XMR", "USD"), ("BTC", "EUR")], "kraken", "HTTP 503")
    assert str(exc) == "no exchange rate for XMR/USD, BTC/EUR from kraken: HTTP 503"
    assert exc.pairs == (("XMR", "USD"), ("BTC", "EUR"))
    assert (exc.source, exc.reason) == ("kraken", "HTTP 503")


@pytest.mark.parametrize("value", [Decimal(0), Decimal(-1), Decimal("NaN"), Decimal("Infinity")])
def test_rate_refuses_non_positive_or_non_finite_values(value: Decimal) -> None:
    with pytest.raises(ValueError, match="positive finite"):
        Rate("XMR", "USD", value, "test", T0)


def test_rate_refuses_naive_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Rate("XMR", "USD", Decimal(1), "test", datetime(2024, 1, 1))


def test_rate_is_frozen_and_knows_its_pair() -> None:
    rate = Rate("XMR", "USD", Decimal("150.25"), "test", T0)
    assert rate.pair == ("XMR", "USD")
    with pytest.raises(AttributeError):
        rate.value = Decimal(1)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("raw", "expected"), [("150.25", Decimal("150.25")), (" 7 ", Decimal(7)), (3, Decimal(3))]
)
def test_parse_rate_value_accepts_exact_numbers(raw: object, expected: Decimal) -> None:
    assert parse_rate_value(raw) == expected


@pytest.mark.parametrize("raw", [150.25, True, None, "abc", "0", "-1", "NaN", "inf", ""])
def test_parse_rate_value_refuses_floats_and_nonsense(raw: object) -> None:
    with pytest.raises(ValueError, match=r"decimal|positive"):
        parse_rate_value(raw)
