"""Exchange-rate types shared by every rate source."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Protocol

Pair = tuple[str, str]
"""(base, quote): the rate is the price of one whole unit of base in whole units of quote."""


def format_pair(pair: Pair) -> str:
    return f"{pair[0]}/{pair[1]}"


@dataclass(frozen=True)
class Rate:
    """Price of one whole unit of `base` in whole units of `quote` (XMR/USD 150.25: 1 XMR = 150.25 USD)."""

    base: str
    quote: str
    value: Decimal
    source: str
    fetched_at: datetime

    def __post_init__(self) -> None:
        if not isinstance(self.value, Decimal) or not self.value.is_finite() or self.value <= 0:
            raise ValueError(
                f"rate {self.base}/{self.quote} must be a positive finite Decimal, got {self.value!r}"
            )
        if self.fetched_at.utcoffset() is None:
            raise ValueError(f"rate {self.base}/{self.quote}: fetched_at must be timezone-aware")

    @property
    def pair(self) -> Pair:
        return (self.base, self.quote)


class RateUnavailable(Exception):
    """No usable rate: says which pairs, from which source, and why."""

    def __init__(self, pairs: Iterable[Pair], source: str, reason: str) -> None:
        self.pairs: tuple[Pair, ...] = tuple(pairs)
        self.source = source
        self.reason = reason
        names = ", ".join(format_pair(p) for p in self.pairs) or "(no pair)"
        super().__init__(f"no exchange rate for {names} from {source}: {reason}")


class RateSource(Protocol):
    """Something that knows exchange rates.

    `fetch` may answer only some of the pairs asked for; it raises RateUnavailable when it can answer none.
    """

    @property
    def name(self) -> str: ...

    async def fetch(self, pairs: Sequence[Pair]) -> dict[Pair, Rate]: ...


def parse_rate_value(raw: object) -> Decimal:
    """A positive finite Decimal from a str, int or Decimal; floats are refused (they are not exact)."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | Decimal):
        raise ValueError(f"expected a decimal string, got {type(raw).__name__} {raw!r}")
    try:
        value = Decimal(raw.strip() if isinstance(raw, str) else raw)
    except InvalidOperation:
        raise ValueError(f"not a decimal number: {raw!r}") from None
    if not value.is_finite() or value <= 0:
        raise ValueError(f"must be a positive finite number, got {raw!r}")
    return value
