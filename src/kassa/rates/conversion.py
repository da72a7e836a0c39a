"""Exact conversion of minor-unit amounts at a Decimal rate."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction


def _check_int(name: str, value: object, minimum: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def convert_minor(amount: int, from_exponent: int, to_exponent: int, rate: Decimal) -> int:
    """`amount` minor units of the priced currency, in minor units of the target currency, rounded up.

    `rate` is the price of one whole target unit in whole priced units (XMR/USD 150: 1 XMR = 150 USD),
    so 1000 US cents (exponent 2) at 150 is 66_666_666_667 piconero (exponent 12). Rounding up means the
    customer is never asked for less than the price. Exact for any size of amount: integer arithmetic on
    the rate's exact fraction, no rounding context involved.
    """
    _check_int("amount", amount)
    _check_int("from_exponent", from_exponent)
    _check_int("to_exponent", to_exponent)
    if not isinstance(rate, Decimal) or not rate.is_finite() or rate <= 0:
        raise ValueError(f"rate must be a positive finite Decimal, got {rate!r}")
    ratio = Fraction(rate)
    # amount / 10**from_exponent / rate whole target units, times 10**to_exponent minor units
    numerator: int = amount * 10**to_exponent * ratio.denominator
    denominator: int = 10**from_exponent * ratio.numerator
    return -(-numerator // denominator)
