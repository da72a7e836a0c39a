"""Money and the currency registry: exact integers, strict parsing, round trips (hypothesis)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kassa.domain.currencies import CURRENCIES, UnknownCurrency, get_currency
from kassa.domain.money import MAX_AMOUNT, InvalidMoney, Money

codes = st.sampled_from(sorted(CURRENCIES))
amounts = st.integers(min_value=0, max_value=MAX_AMOUNT - 1)


@pytest.mark.parametrize(
    ("code", "exponent"),
    [
        ("USD", 2),
        ("JPY", 0),
        ("KWD", 3),
        ("TWD", 0),
        ("BTC", 8),
        ("XMR", 12),
        ("ETH", 18),
        ("GRIN", 9),
        ("USDC", 6),
        ("CLF", 4),
    ],
)
def test_exponents(code: str, exponent: int) -> None:
    assert get_currency(code).exponent == exponent
    assert get_currency(code.lower()).code == code


def test_unknown_currency() -> None:
    with pytest.raises(UnknownCurrency, match="XYZ"):
        get_currency("XYZ")
    with pytest.raises(UnknownCurrency):
        Money(1, "XYZ")


@given(codes, amounts)
def test_text_round_trip(code: str, amount: int) -> None:
    money = Money(amount, code)
    assert Money.parse(money.to_text()) == money
    assert Money.parse({"amount": amount, "currency": code}) == money
    assert Money.from_decimal_string(money.to_decimal_string(), code) == money


def test_parse_forms() -> None:
    assert Money.parse("USD:10.50") == Money(1050, "USD")
    assert Money.parse("USD:10.5") == Money(1050, "USD")
    assert Money.parse("JPY:1000") == Money(1000, "JPY")
    assert Money.parse({"amount": 1050, "currency": "USD"}) == Money(1050, "USD")
    assert Money.parse(1050, "usd") == Money(1050, "USD")
    wei = 2**256 - 1
    assert Money.parse({"amount": wei, "currency": "ETH"}).amount == wei
    assert Money.parse(f"ETH:{Money(wei, 'ETH').to_decimal_string()}").amount == wei


@pytest.mark.parametrize(
    ("value", "currency", "field"),
    [
        ("USD:10.505", None, "amount"),  # too many decimals
        ("JPY:10.5", None, "amount"),
        ("USD:-1", None, "amount"),
        ("USD:1e3", None, "amount"),
        ("USD:", None, "amount"),
        (10.5, "USD", "amount"),  # floats are refused outright
        (-1, "USD", "amount"),
        (True, "USD", "amount"),
        (2**256, "ETH", "amount"),
        (100, None, "currency"),
        ("USD:10", "EUR", "currency"),
        ({"amount": 1}, None, "amount"),
    ],
)
def test_parse_rejects(value: object, currency: str | None, field: str) -> None:
    with pytest.raises(InvalidMoney) as info:
        Money.parse(value, currency)
    assert info.value.field == field


@given(codes, amounts, amounts)
def test_addition_is_exact(code: str, a: int, b: int) -> None:
    if a + b >= MAX_AMOUNT:
        with pytest.raises(InvalidMoney):
            Money(a, code) + Money(b, code)
    else:
        assert (Money(a, code) + Money(b, code)).amount == a + b


def test_mixed_currencies_refused() -> None:
    with pytest.raises(InvalidMoney, match="combine"):
        Money(1, "USD") + Money(1, "EUR")


def test_display() -> None:
    assert Money(1050, "USD").display() == "10.50 USD"
    assert Money(1_500_000_000_000, "XMR").display() == "1.5 XMR"
    assert Money(5, "JPY").display() == "5 JPY"
    assert Money(1, "ETH").display() == "0.000000000000000001 ETH"
    assert Money(10_000_000, "BTC").display() == "0.10000000 BTC"  # 8 decimals, as wallets show
    assert Money(1, "LTC").display() == "0.00000001 LTC"


@given(
    st.integers(min_value=0, max_value=2**256 - 1),
    st.sampled_from(["USD", "JPY", "KWD", "BTC", "ETH"]),
    st.integers(min_value=1, max_value=5),
)
def test_from_decimal_is_exact_at_any_size(minor: int, code: str, extra: int) -> None:
    """Exactly the minor units, however many digits; one more decimal place than the currency has,
    not zero, is refused (Decimal arithmetic would round it away past 28 digits)."""
    exponent = get_currency(code).exponent
    text = str(minor) if exponent == 0 else f"{minor // 10**exponent}.{minor % 10**exponent:0{exponent}d}"
    assert Money.from_decimal(Decimal(text), code).amount == minor
    with pytest.raises(InvalidMoney):
        Money.from_decimal(Decimal(text + ("." if exponent == 0 else "") + "0" * (extra - 1) + "1"), code)


def test_from_decimal_refuses_what_rounding_would_hide() -> None:
    with pytest.raises(InvalidMoney, match="decimal places"):
        Money.from_decimal(Decimal("10000000000000000000000000.001"), "USD")
    with pytest.raises(InvalidMoney):
        Money.from_decimal(Decimal("1e-999999"), "USD")
    assert Money.from_decimal(Decimal("1.50E+3"), "USD").amount == 150000
    assert Money.from_decimal(Decimal("0E-30"), "USD").amount == 0
