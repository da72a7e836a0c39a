"""Several sources in order of preference, with an optional spread."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from decimal import ROUND_FLOOR, Context, Decimal

from kassa.rates.base import Pair, Rate, RateSource, RateUnavailable, format_pair

log = logging.getLogger(__name__)
_SPREAD_CONTEXT = Context(prec=60, rounding=ROUND_FLOOR)


class CombinedRateSource:
    """Per pair, the rate of the first source (primary, then fallbacks in order) that has it.

    A source that fails, or lacks some pairs, only sends those pairs on to the next source.

    Spread direction: a pair (base, quote) is read as (what the customer pays in, what the price is in),
    as for XMR/USD when a USD price is paid in XMR. The spread lowers the rate, `value * (1 - bps/10000)`,
    rounded down: base is valued lower, so the customer pays at least as much base as at the market
    rate, never less. To price a fiat amount in a coin, ask for (COIN, FIAT).
    """

    def __init__(
        self, primary: RateSource, fallbacks: Sequence[RateSource] = (), spread_bps: int = 0
    ) -> None:
        if isinstance(spread_bps, bool) or not isinstance(spread_bps, int) or not 0 <= spread_bps < 10_000:
            raise ValueError(f"spread_bps must be an integer from 0 to 9999, got {spread_bps!r}")
        self._sources = (primary, *fallbacks)
        self._factor = (Decimal(10_000) - spread_bps) / Decimal(10_000)
        self.spread_bps = spread_bps

    @property
    def name(self) -> str:
        return "+".join(s.name for s in self._sources)

    def apply_spread(self, rate: Rate) -> Rate:
        if not self.spread_bps:
            return rate
        return dataclasses.replace(rate, value=_SPREAD_CONTEXT.multiply(rate.value, self._factor))

    async def fetch(self, pairs: Sequence[Pair]) -> dict[Pair, Rate]:
        missing = list(dict.fromkeys(pairs))
        found: dict[Pair, Rate] = {}
        failures: list[str] = []
        for source in self._sources:
            if not missing:
                break
            try:
                got = await source.fetch(missing)
            except RateUnavailable as exc:
                failures.append(f"{source.name}: {exc.reason}")
                continue
            except Exception as exc:  # a broken source must not stop the others
                log.warning("rate source %s failed", source.name, exc_info=True)
                failures.append(f"{source.name}: {exc!r}")
                continue
            for pair in missing:
                if pair in got:
                    found[pair] = self.apply_spread(got[pair])
            missing = [p for p in missing if p not in found]
            if missing:
                failures.append(f"{source.name}: lacks {', '.join(format_pair(p) for p in missing)}")
        if missing and not found:
            raise RateUnavailable(missing, self.name, "; ".join(failures))
        return found
