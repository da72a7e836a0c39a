from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from kassa.clock import ManualClock
from kassa.rates import (
    CoinGeckoRateSource,
    CombinedRateSource,
    KrakenRateSource,
    StaticRateSource,
    build_rate_source,
)

from .support import MakeClient, recorded


def unreachable(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("no network here", request=request)


async def test_empty_config_is_an_offline_static_source(clock: ManualClock) -> None:
    source = build_rate_source({}, None, clock)
    assert isinstance(source, StaticRateSource)
    assert (await source.fetch([("XMR", "XMR")]))[("XMR", "XMR")].value == 1


async def test_static_table_from_config(clock: ManualClock) -> None:
    source = build_rate_source({"static": {"XMR/USD": "150"}}, None, clock)
    rates = await source.fetch([("XMR", "USD"), ("USD", "XMR")])
    assert rates[("XMR", "USD")].value == 150
    assert rates[("USD", "XMR")].value == Decimal("0.00" + "6" * 40)


async def test_kraken_with_static_fallback_and_spread(mock_client: MakeClient, clock: ManualClock) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return recorded("kraken_xmr_only.json")

    config: dict[str, Any] = {
        "primary": "kraken",
        "fallbacks": ["static"],
        "spread_bps": 100,
        "static": {"BTC/USD": "60000"},
        "kraken_url": "https://kraken.test",
        "timeout": 3,
    }
    source = build_rate_source(config, mock_client(handler), clock)
    assert isinstance(source, CombinedRateSource)
    assert source.name == "kraken+static"
    rates = await source.fetch([("XMR", "USD"), ("BTC", "USD")])
    assert {p: (r.value, r.source) for p, r in rates.items()} == {
        ("XMR", "USD"): (Decimal("148.7475"), "kraken"),  # 150.25 less 1 %
        ("BTC", "USD"): (Decimal("59400"), "static"),
    }
    assert seen[0].startswith("https://kraken.test/0/public/Ticker?pair=")


async def test_coingecko_ids_and_url(mock_client: MakeClient, clock: ManualClock) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"wownero": {"eur": 0.04}})

    config = {"primary": "coingecko", "coingecko_url": "http://cg.test", "coingecko_ids": {"wow": "wownero"}}
    source = build_rate_source(config, mock_client(handler), clock)
    assert isinstance(source, CoinGeckoRateSource)
    assert (await source.fetch([("WOW", "EUR")]))[("WOW", "EUR")].value == Decimal("0.04")
    assert seen[0].url.host == "cg.test"


def test_kraken_pair_names_from_config(mock_client: MakeClient, clock: ManualClock) -> None:
    config = {"primary": "kraken", "kraken_pairs": {"GRIN/USD": "GRINZUSD"}}
    source = build_rate_source(config, mock_client(unreachable), clock)
    assert isinstance(source, KrakenRateSource)
    assert source.pair_name(("GRIN", "USD")) == "GRINZUSD"
    assert source.pair_name(("XMR", "USD")) == "XXMRZUSD"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ([], "must be a mapping"),
        ({"primay": "static"}, r"unknown setting\(s\) \['primay'\]"),
        ({"primary": "binance"}, r"'primary': 'binance' is not one of \['static', 'coingecko', 'kraken'\]"),
        ({"fallbacks": "kraken"}, "'fallbacks' must be a list"),
        ({"fallbacks": ["static"]}, "listed twice"),
        ({"primary": "kraken", "fallbacks": ["nope"]}, r"'fallbacks': 'nope' is not one of"),
        ({"spread_bps": "50"}, "'spread_bps' must be an integer from 0 to 9999"),
        ({"spread_bps": 10_000}, "'spread_bps' must be an integer"),
        ({"static": ["XMR/USD"]}, "'static' must map"),
        ({"static": {"XMR/USD": "-1"}}, r"'static': rate 'XMR/USD': must be a positive"),
        ({"primary": "kraken", "kraken_url": "ftp://x"}, "'kraken_url' must be an http"),
        ({"primary": "coingecko", "coingecko_url": 5}, "'coingecko_url' must be an http"),
        ({"primary": "kraken", "timeout": 0}, "'timeout' must be a positive number"),
        ({"primary": "kraken", "timeout": "10"}, "'timeout' must be a positive number"),
        ({"primary": "coingecko", "coingecko_ids": {"XMR": 1}}, "'coingecko_ids' must map strings"),
        ({"primary": "kraken", "kraken_pairs": {"XMRUSD": "XXMRZUSD"}}, "'kraken_pairs': rate key 'XMRUSD'"),
    ],
)
def test_bad_config_is_refused_clearly(
    mock_client: MakeClient, clock: ManualClock, config: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_rate_source(config, mock_client(unreachable), clock)


def test_http_source_without_client_is_refused(clock: ManualClock) -> None:
    with pytest.raises(ValueError, match="the coingecko source needs an HTTP client"):
        build_rate_source({"primary": "static", "fallbacks": ["coingecko"]}, None, clock)
