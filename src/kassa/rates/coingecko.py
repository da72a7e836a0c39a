"""Rates from CoinGecko's public `GET /api/v3/simple/price?ids=...&vs_currencies=...`.

The answer maps coin id -> vs currency (lower case) -> price, e.g.
`{"monero": {"usd": 150.25, "last_updated_at": 1711356300}}`; unknown ids and currencies are left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import httpx

from kassa.clock import Clock
from kassa.rates._http import DEFAULT_TIMEOUT, get_json, positive_decimal
from kassa.rates.base import Pair, Rate, RateUnavailable

DEFAULT_URL = "https://api.coingecko.com"
PATH = "/api/v3/simple/price"
COIN_IDS: Mapping[str, str] = {
    "BTC": "bitcoin",
    "XMR": "monero",
    "ETH": "ethereum",
    "LTC": "litecoin",
    "USDC": "usd-coin",
    "USDT": "tether",
    "GRIN": "grin",
}


class CoinGeckoRateSource:
    """Answers pairs whose base has a CoinGecko coin id (`coin_ids`, code -> id) in any vs currency.

    A rate's `fetched_at` is CoinGecko's `last_updated_at` when that is earlier than now, so a price
    CoinGecko itself has not refreshed for a while is seen as old by the cache.
    """

    name = "coingecko"

    def __init__(
        self,
        client: httpx.AsyncClient,
        clock: Clock,
        *,
        base_url: str = DEFAULT_URL,
        timeout: float = DEFAULT_TIMEOUT,
        coin_ids: Mapping[str, str] | None = None,
    ) -> None:
        self._client = client
        self._clock = clock
        self._url = base_url.rstrip("/") + PATH
        self._timeout = timeout
        self._coin_ids = dict(COIN_IDS if coin_ids is None else coin_ids)

    async def fetch(self, pairs: Sequence[Pair]) -> dict[Pair, Rate]:
        if not pairs:
            return {}
        known = [p for p in pairs if p[0] in self._coin_ids]
        if not known:
            raise RateUnavailable(pairs, self.name, "no CoinGecko coin id is configured for these bases")
        params = {
            "ids": ",".join(sorted({self._coin_ids[b] for b, _ in known})),
            "vs_currencies": ",".join(sorted({q.lower() for _, q in known})),
            "include_last_updated_at": "true",
        }
        body = await get_json(
            self._client, self._url, params, seconds=self._timeout, source=self.name, pairs=pairs
        )
        if not isinstance(body, dict):
            raise RateUnavailable(pairs, self.name, f"malformed answer, not a JSON object: {body!r:.200}")
        now = self._clock.now()
        found: dict[Pair, Rate] = {}
        for base, quote in known:
            prices = body.get(self._coin_ids[base])
            if not isinstance(prices, dict):
                continue
            value = positive_decimal(prices.get(quote.lower()))
            if value is not None:
                found[(base, quote)] = Rate(base, quote, value, self.name, _updated_at(prices, now))
        if not found:
            raise RateUnavailable(pairs, self.name, f"the answer has none of these prices: {body!r:.200}")
        return found


def _updated_at(prices: dict[object, object], now: datetime) -> datetime:
    stamp = prices.get("last_updated_at")
    if isinstance(stamp, int) and not isinstance(stamp, bool):
        try:
            return min(now, datetime.fromtimestamp(stamp, UTC))
        except (OverflowError, OSError, ValueError):
            return now
    return now
