"""Build the configured rate source from a plain settings mapping."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from kassa.clock import Clock
from kassa.rates import coingecko, kraken
from kassa.rates._http import DEFAULT_TIMEOUT
from kassa.rates.base import Pair, RateSource
from kassa.rates.combined import CombinedRateSource
from kassa.rates.static import StaticRateSource, parse_pair_key

SOURCE_NAMES = ("static", "coingecko", "kraken")
CONFIG_KEYS = frozenset(
    {"primary", "fallbacks", "spread_bps", "static", "timeout"}
    | {"coingecko_url", "coingecko_ids", "kraken_url", "kraken_pairs"}
)


def build_rate_source(
    config: Mapping[str, Any], client: httpx.AsyncClient | None, clock: Clock
) -> RateSource:
    """Build from e.g. `{"primary": "kraken", "fallbacks": ["static"], "spread_bps": 50,
    "static": {"XMR/USD": "150"}}`; optional `coingecko_url`, `kraken_url`, `timeout` (seconds),
    `coingecko_ids` ({"XMR": "monero"}) and `kraken_pairs` ({"XMR/USD": "XXMRZUSD"}) extend the defaults.
    Raises ValueError, naming the bad setting, on any mistake.
    """
    if not isinstance(config, Mapping):
        raise ValueError(f"rates config must be a mapping, got {type(config).__name__}")
    unknown = sorted(set(config) - CONFIG_KEYS)
    if unknown:
        raise ValueError(f"rates config: unknown setting(s) {unknown}; known: {sorted(CONFIG_KEYS)}")
    primary = config.get("primary", "static")
    fallbacks = config.get("fallbacks", [])
    if primary not in SOURCE_NAMES:
        raise ValueError(f"rates config 'primary': {primary!r} is not one of {list(SOURCE_NAMES)}")
    if isinstance(fallbacks, str) or not isinstance(fallbacks, list | tuple):
        raise ValueError(f"rates config 'fallbacks' must be a list of source names, got {fallbacks!r}")
    for name in fallbacks:
        if name not in SOURCE_NAMES:
            raise ValueError(f"rates config 'fallbacks': {name!r} is not one of {list(SOURCE_NAMES)}")
    names = [primary, *fallbacks]
    if len(set(names)) != len(names):
        raise ValueError(f"rates config: a source is listed twice in primary + fallbacks {names}")
    sources = [_build_one(name, config, client, clock) for name in names]
    spread_bps = config.get("spread_bps", 0)
    if isinstance(spread_bps, bool) or not isinstance(spread_bps, int) or not 0 <= spread_bps < 10_000:
        raise ValueError(f"rates config 'spread_bps' must be an integer from 0 to 9999, got {spread_bps!r}")
    if len(sources) == 1 and spread_bps == 0:
        return sources[0]
    return CombinedRateSource(sources[0], sources[1:], spread_bps=spread_bps)


def _build_one(
    name: str, config: Mapping[str, Any], client: httpx.AsyncClient | None, clock: Clock
) -> RateSource:
    if name == "static":
        table = config.get("static", {})
        if not isinstance(table, Mapping):
            raise ValueError(f"rates config 'static' must map 'AAA/BBB' to a decimal string, got {table!r}")
        try:
            return StaticRateSource(table, clock)
        except ValueError as exc:
            raise ValueError(f"rates config 'static': {exc}") from None
    if client is None:
        raise ValueError(f"rates config: the {name} source needs an HTTP client, and none was given")
    timeout = config.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < float("inf"):
        raise ValueError(f"rates config 'timeout' must be a positive number of seconds, got {timeout!r}")
    if name == "coingecko":
        ids = _str_mapping(config, "coingecko_ids")
        return coingecko.CoinGeckoRateSource(
            client,
            clock,
            base_url=_url(config, "coingecko_url", coingecko.DEFAULT_URL),
            timeout=float(timeout),
            coin_ids={**coingecko.COIN_IDS, **{code.upper(): coin for code, coin in ids.items()}},
        )
    pairs: dict[Pair, str] = {}
    for key, pair_name in _str_mapping(config, "kraken_pairs").items():
        try:
            pairs[parse_pair_key(key)] = pair_name
        except ValueError as exc:
            raise ValueError(f"rates config 'kraken_pairs': {exc}") from None
    return kraken.KrakenRateSource(
        client,
        clock,
        base_url=_url(config, "kraken_url", kraken.DEFAULT_URL),
        timeout=float(timeout),
        pair_names=pairs,
    )


def _url(config: Mapping[str, Any], key: str, default: str) -> str:
    url = config.get(key, default)
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"rates config {key!r} must be an http(s) URL, got {url!r}")
    return url


def _str_mapping(config: Mapping[str, Any], key: str) -> dict[str, str]:
    value = config.get(key, {})
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"rates config {key!r} must map strings to strings, got {value!r}")
    return dict(value)
