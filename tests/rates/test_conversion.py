from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from kassa.rates import convert_minor

amounts = st.integers(min_value=0, max_value=2**256)
exponents = st.integers(min_value=0, max_value=18)
rates = st.decimals(
    min_value=Decimal("1e-12"), max_value=Decimal("1e12"), allow_nan=False, allow_infinity=False, places=None
).filter(lambda d: d > 0)


def owed(amount: int, from_exponent: int, to_exponent: int, rate: Decimal) -> Fraction:
    """Exact target minor units needed: amount / 10**from / rate * 10**to."""
    scale: int = 10**to_exponent
    return Fraction(amount, 10**from_exponent) / Fraction(rate) * scale


@given(amounts, exponents, exponents, rates)
@example(2**256, 18, 0, Decimal("3.7"))
@example(2**256, 0, 18, Decimal("0.000000000001"))
@example(1, 2, 12, Decimal(3))
def test_result_covers_the_amount_and_is_minimal(
    amount: int, from_exp: int, to_exp: int, rate: Decimal
) -> None:
    result = convert_minor(amount, from_exp, to_exp, rate)
    need = owed(amount, from_exp, to_exp, rate)
    # paid back at the rate, the result is worth at least the amount ...
    assert Fraction(result, 10**to_exp) * Fraction(rate) >= Fraction(amount, 10**from_exp)
    assert result >= need
    # ... and one minor unit less would be short
    assert result - 1 < need


@given(st.integers(min_value=0, max_value=2**256), exponents)
def test_rate_one_same_exponent_is_identity(amount: int, exp: int) -> None:
    assert convert_minor(amount, exp, exp, Decimal(1)) == amount


def test_ten_dollars_in_monero() -> None:
    assert convert_minor(1000, 2, 12, Decimal(150)) == 66_666_666_667
    assert convert_minor(1050, 2, 8, Decimal("67187.3358936566")) == 15628  # 10.50 USD in satoshi


def test_exact_results_are_not_rounded_up() -> None:
    assert convert_minor(15000, 2, 12, Decimal(150)) == 10**12  # 150.00 USD is exactly 1 XMR
    assert convert_minor(0, 2, 18, Decimal("3000.5")) == 0


def test_huge_wei_amounts_are_exact() -> None:
    # 2**256 - 1 wei priced in ETH at an ETH/WETH rate of 1: unchanged, beyond any float or 28-digit Decimal.
    assert convert_minor(2**256 - 1, 18, 18, Decimal(1)) == 2**256 - 1
    assert convert_minor(2**256 - 1, 18, 18, Decimal(2)) == 2**255  # ceil((2**256 - 1) / 2)


@pytest.mark.parametrize("rate", [Decimal(0), Decimal(-150), Decimal("NaN"), Decimal("-Infinity"), 150.0])
def test_bad_rates_are_refused(rate: Decimal) -> None:
    with pytest.raises(ValueError, match="rate must be a positive finite Decimal"):
        convert_minor(1000, 2, 12, rate)


@pytest.mark.parametrize(
    ("amount", "from_exp", "to_exp", "message"),
    [
        (-1, 2, 12, "amount must be an integer >= 0"),
        (True, 2, 12, "amount must be an integer"),
        (1.5, 2, 12, "amount must be an integer"),
        (1, -2, 12, "from_exponent must be an integer >= 0"),
        (1, 2, -1, "to_exponent must be an integer >= 0"),
    ],
)
def test_bad_amounts_and_exponents_are_refused(amount: int, from_exp: int, to_exp: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        convert_minor(amount, from_exp, to_exp, Decimal(150))
