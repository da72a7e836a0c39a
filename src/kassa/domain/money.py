"""Money: an integer count of a currency's smallest unit. Never a float.

Amounts go up to 2**256 (wei) and must survive every path exactly, so parsing works on
strings and integers only; a float is refused outright.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kassa.domain.currencies import Currency, get_currency

MAX_AMOUNT = 2**256
"""Exclusive upper bound on any amount Kassa stores (uint256, the EVM's range)."""

MAX_DIGITS = 78  # 2**256 has 78 digits
_DECIMAL = re.compile(r"^(?P<int>\d+)(?:\.(?P<frac>\d+))?$")


class InvalidMoney(ValueError):
    """A malformed amount; `field` names what was wrong (amount or currency)."""

    def __init__(self, message: str, field: str = "amount") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True, order=False)
class Money:
    amount: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise InvalidMoney("amount must be an integer number of minor units")
        if self.amount < 0:
            raise InvalidMoney("amount must not be negative")
        if self.amount >= MAX_AMOUNT:
            raise InvalidMoney("amount is too large (must be below 2**256)")
        get_currency(self.currency)  # raises UnknownCurrency
        object.__setattr__(self, "currency", self.currency.upper())

    @property
    def spec(self) -> Currency:
        return get_currency(self.currency)

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise InvalidMoney(f"cannot combine {self.currency} with {other.currency}", "currency")

    def to_decimal_string(self) -> str:
        """`1050 USD` -> `"10.50"`; exact for any size."""
        exp = self.spec.exponent
        if exp == 0:
            return str(self.amount)
        whole, frac = divmod(self.amount, 10**exp)
        return f"{whole}.{frac:0{exp}d}"

    def to_text(self) -> str:
        """Taler-style text form: `"USD:10.50"`."""
        return f"{self.currency}:{self.to_decimal_string()}"

    def display(self) -> str:
        """Human form for logs and merchants' texts: `"10.50 USD"` (pages and emails format it per
        language, kassa.i18n)."""
        return f"{self.display_number()} {self.currency}"

    def display_number(self) -> str:
        """The number as shown: `"10.50"`; coins with more than 8 decimals lose their trailing
        zeros (`"1.5"` XMR), while BTC-like coins keep all 8, as wallets show them."""
        text = self.to_decimal_string()
        if self.spec.crypto and self.spec.exponent > 8 and "." in text:
            text = text.rstrip("0").rstrip(".")
        return text

    @classmethod
    def from_decimal_string(cls, value: str, currency: str) -> Money:
        spec = get_currency(currency)
        match = _DECIMAL.match(value.strip())
        if not match:
            raise InvalidMoney(f"{value!r} is not a decimal amount like 10.50")
        frac = match.group("frac") or ""
        if len(frac) > spec.exponent:
            raise InvalidMoney(f"{spec.code} has {spec.exponent} decimal places; {value!r} has {len(frac)}")
        minor = int(match.group("int")) * 10**spec.exponent + int(frac.ljust(spec.exponent, "0") or 0)
        return cls(minor, spec.code)

    @classmethod
    def from_decimal(cls, value: Decimal | int, currency: str) -> Money:
        """An exact decimal number of `currency` (`Decimal("10.5")` USD -> 1050): more decimals than
        the currency has, a non-finite, negative or too large number is InvalidMoney."""
        spec = get_currency(currency)
        number = Decimal(value)
        if not number.is_finite() or number < 0:
            raise InvalidMoney("must be a number of at least 0")
        if number and number.adjusted() > MAX_DIGITS:  # before scaling: 1e999999 would overflow
            raise InvalidMoney("is too large")
        # In integers, not Decimal arithmetic: that rounds to the context's 28 digits, and
        # 10000000000000000000000000.001 would become .00 instead of being refused.
        _sign, digits, exp = number.as_tuple()
        assert isinstance(exp, int)  # finite
        whole = int("".join(map(str, digits)) or "0")
        shift = exp + spec.exponent
        if shift >= 0:
            return cls(whole * 10**shift, spec.code)
        if whole and -shift > len(digits):  # more decimals than digits: never whole minor units
            raise InvalidMoney(f"{spec.code} has {spec.exponent} decimal places; {value} has more")
        minor, rest = divmod(whole, 10**-shift)
        if rest:
            raise InvalidMoney(f"{spec.code} has {spec.exponent} decimal places; {value} has more")
        return cls(minor, spec.code)

    @classmethod
    def parse(cls, value: Any, currency: str | None = None) -> Money:
        """Parse any accepted form: `"USD:10.50"`, `{"amount": 1050, "currency": "USD"}`,
        or an integer of minor units with `currency` given separately."""
        if isinstance(value, Money):
            return value
        if isinstance(value, dict):
            if set(value) != {"amount", "currency"}:
                raise InvalidMoney("money object needs exactly 'amount' and 'currency'")
            return cls.parse(value["amount"], value["currency"])
        if isinstance(value, str) and ":" in value:
            code, _, number = value.partition(":")
            if currency is not None and code.upper() != currency.upper():
                raise InvalidMoney(f"currency {code!r} does not match {currency!r}", "currency")
            return cls.from_decimal_string(number, code)
        if currency is None:
            raise InvalidMoney("currency is required", "currency")
        if not isinstance(currency, str):
            raise InvalidMoney("currency must be a string", "currency")
        if isinstance(value, str) and value.isdigit():
            return cls(int(value), currency)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidMoney("amount must be an integer number of minor units")
        return cls(value, currency)
