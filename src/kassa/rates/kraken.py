"""Rates from Kraken's public `GET /0/public/Ticker?pair=...`, using the last trade price `c[0]`.

The answer is `{"error": [...], "result": {"XXMRZUSD": {"c": ["150.25", "0.5"], ...}}}`; errors come
with HTTP 200. Kraken names BTC "XBT" and keys old pairs as X<asset>Z<fiat> (XXBTZUSD) whatever name
was asked for, so answers are matched against every name a pair may come back under.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import httpx

from kassa.clock import Clock
from kassa.rates._http import DEFAULT_TIMEOUT, get_json, positive_decimal
from kassa.rates.base import Pair, Rate, RateUnavailable, format_pair

DEFAULT_URL = "https://api.kraken.com"
PATH = "/0/public/Ticker"
ASSET_CODES: Mapping[str, str] = {"BTC": "XBT", "DOGE": "XDG"}
PAIR_NAMES: Mapping[Pair, str] = {
    ("BTC", "USD"): "XXBTZUSD",
    ("BTC", "EUR"): "XXBTZEUR",
    ("XMR", "USD"): "XXMRZUSD",
    ("XMR", "EUR"): "XXMRZEUR",
    ("XMR", "BTC"): "XXMRXXBT",
    ("ETH", "USD"): "XETHZUSD",
    ("ETH", "EUR"): "XETHZEUR",
    ("ETH", "BTC"): "XETHXXBT",
    ("LTC", "USD"): "XLTCZUSD",
    ("LTC", "EUR"): "XLTCZEUR",
    ("USDT", "USD"): "USDTZUSD",
    ("USDC", "USD"): "USDCUSD",
    ("USDC", "EUR"): "USDCEUR",
}
_UNKNOWN_PAIR = "EQuery:Unknown asset pair"


class KrakenRateSource:
    """Answers pairs Kraken lists; `pair_names` overrides or extends the known Kraken pair names."""

    name = "kraken"

    def __init__(
        self,
        client: httpx.AsyncClient,
        clock: Clock,
        *,
        base_url: str = DEFAULT_URL,
        timeout: float = DEFAULT_TIMEOUT,
        pair_names: Mapping[Pair, str] | None = None,
    ) -> None:
        self._client = client
        self._clock = clock
        self._url = base_url.rstrip("/") + PATH
        self._timeout = timeout
        self._pair_names = {**PAIR_NAMES, **(pair_names or {})}

    def pair_name(self, pair: Pair) -> str:
        """The name Kraken is asked for: a known one, else the altname (XMRUSD, XBTEUR)."""
        return self._pair_names.get(pair) or "".join(ASSET_CODES.get(c, c) for c in pair)

    def _answer_names(self, pair: Pair) -> set[str]:
        base, quote = (ASSET_CODES.get(c, c) for c in pair)
        return {self.pair_name(pair), base + quote, f"X{base}Z{quote}", f"X{base}X{quote}"}

    async def fetch(self, pairs: Sequence[Pair]) -> dict[Pair, Rate]:
        wanted = list(dict.fromkeys(pairs))
        if not wanted:
            return {}
        try:
            found = await self._query(wanted)
        except RateUnavailable as exc:
            # One unlisted pair fails the whole query: then ask pair by pair, so the others still come.
            if len(wanted) == 1 or _UNKNOWN_PAIR not in exc.reason:
                raise
            found = {}
            for one in await asyncio.gather(*(self._query_or_nothing(p) for p in wanted)):
                found.update(one)
            if not found:
                raise
        return found

    async def _query_or_nothing(self, pair: Pair) -> dict[Pair, Rate]:
        try:
            return await self._query([pair])
        except RateUnavailable:
            return {}

    async def _query(self, pairs: list[Pair]) -> dict[Pair, Rate]:
        names = ",".join(self.pair_name(p) for p in pairs)
        body = await get_json(
            self._client, self._url, {"pair": names}, seconds=self._timeout, source=self.name, pairs=pairs
        )
        if not isinstance(body, dict):
            raise RateUnavailable(pairs, self.name, f"malformed answer, not a JSON object: {body!r:.200}")
        errors, result = body.get("error"), body.get("result")
        if not isinstance(errors, list) or not isinstance(result, dict | None):
            raise RateUnavailable(pairs, self.name, f"malformed answer: {body!r:.200}")
        if not result:  # Kraken may list errors beside a partial result: use what came
            reason = "; ".join(map(str, errors)) or "empty result"
            raise RateUnavailable(pairs, self.name, f"Kraken answered {reason} for pair={names}")
        now = self._clock.now()
        found: dict[Pair, Rate] = {}
        for pair in pairs:
            ticker = next((result[k] for k in self._answer_names(pair) if k in result), None)
            last = ticker.get("c") if isinstance(ticker, dict) else None
            value = positive_decimal(last[0]) if isinstance(last, list) and last else None
            if value is not None:
                found[pair] = Rate(pair[0], pair[1], value, self.name, now)
        if not found:
            wanted = ", ".join(format_pair(p) for p in pairs)
            raise RateUnavailable(pairs, self.name, f"no last trade price for {wanted} in {result!r:.200}")
        return found
