"""Fixed rates from settings: the default source, so Kassa prices orders with no network at all."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import ROUND_FLOOR, Context, Decimal

from kassa.clock import Clock
from kassa.rates.base import Pair, Rate, RateUnavailable, format_pair, parse_rate_value

_CODE = r"[A-Z][A-Z0-9]{1,9}"
_KEY = re.compile(rf"({_CODE})/({_CODE})")
# 40 significant digits; rounding down errs in the merchant's favour, like the spread (see combined.py).
_INVERSE_CONTEXT = Context(prec=40, rounding=ROUND_FLOOR)


def parse_pair_key(key: str) -> Pair:
    """`"XMR/USD"` -> `("XMR", "USD")`; raises ValueError for anything else."""
    match = _KEY.fullmatch(key.strip().upper()) if isinstance(key, str) else None
    if match is None:
        raise ValueError(f"rate key {key!r} is not of the form 'AAA/BBB' (two currency codes)")
    base, quote = match.group(1), match.group(2)
    if base == quote:
        raise ValueError(f"rate key {key!r}: identity pairs are always 1 and must not be configured")
    return (base, quote)


class StaticRateSource:
    """Answers the configured pairs, their inverses (1/value) and identity pairs (X/X = 1).

    A pair configured explicitly wins over the inverse of its opposite.
    """

    name = "static"

    def __init__(self, table: Mapping[str, str | Decimal], clock: Clock) -> None:
        self._clock = clock
        explicit: dict[Pair, Decimal] = {}
        for key, raw in table.items():
            pair = parse_pair_key(key)
            if pair in explicit:
                raise ValueError(f"rate key {key!r}: {format_pair(pair)} is configured twice")
            try:
                explicit[pair] = parse_rate_value(raw)
            except ValueError as exc:
                raise ValueError(f"rate {key!r}: {exc}") from None
        self._values = {(q, b): _INVERSE_CONTEXT.divide(Decimal(1), v) for (b, q), v in explicit.items()}
        self._values.update(explicit)

    def value(self, pair: Pair) -> Decimal | None:
        if pair[0] == pair[1]:
            return Decimal(1)
        return self._values.get(pair)

    async def fetch(self, pairs: Sequence[Pair]) -> dict[Pair, Rate]:
        now = self._clock.now()
        found: dict[Pair, Rate] = {}
        for pair in pairs:
            value = self.value(pair)
            if value is not None:
                found[pair] = Rate(pair[0], pair[1], value, self.name, now)
        missing = [p for p in pairs if p not in found]
        if pairs and not found:
            raise RateUnavailable(missing, self.name, "not in the configured static rate table")
        return found
