from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest

from kassa.clock import ManualClock
from kassa.rates import CoinGeckoRateSource, RateUnavailable

from .support import T0, Handler, MakeClient, recorded

XMR_USD, BTC_EUR = ("XMR", "USD"), ("BTC", "EUR")


def source(make: MakeClient, handler: Handler, clock: ManualClock, **kw: object) -> CoinGeckoRateSource:
    return CoinGeckoRateSource(make(handler), clock, base_url="https://cg.test", **kw)  # type: ignore[arg-type]


async def test_recorded_answer_gives_exact_decimal_prices(
    mock_client: MakeClient, clock: ManualClock
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return recorded("coingecko_simple_price.json")

    rates = await source(mock_client, handler, clock).fetch([XMR_USD, BTC_EUR, ("XMR", "EUR")])

    assert {p: r.value for p, r in rates.items()} == {
        XMR_USD: Decimal("150.25"),
        BTC_EUR: Decimal("62090.1843120043"),
        ("XMR", "EUR"): Decimal("138.84"),
    }
    assert all(r.source == "coingecko" for r in rates.values())
    [request] = seen
    assert request.url.host == "cg.test"
    assert request.url.path == "/api/v3/simple/price"
    assert request.url.params["ids"] == "bitcoin,monero"
    assert request.url.params["vs_currencies"] == "eur,usd"
    assert request.url.params["include_last_updated_at"] == "true"


async def test_fetched_at_is_coingeckos_last_update_when_earlier(
    mock_client: MakeClient, clock: ManualClock
) -> None:
    rates = await source(mock_client, lambda r: recorded("coingecko_simple_price.json"), clock).fetch(
        [XMR_USD, ("BTC", "USD")]
    )
    assert rates[XMR_USD].fetched_at == datetime(2024, 3, 25, 8, 44, 47, tzinfo=UTC)
    assert rates[("BTC", "USD")].fetched_at == datetime(2024, 3, 25, 8, 45, tzinfo=UTC)


async def test_fetched_at_never_lies_in_the_future(mock_client: MakeClient) -> None:
    early = ManualClock(datetime(2024, 3, 25, tzinfo=UTC))  # before the recorded last_updated_at
    rates = await source(mock_client, lambda r: recorded("coingecko_simple_price.json"), early).fetch(
        [XMR_USD]
    )
    assert rates[XMR_USD].fetched_at == early.now()


async def test_missing_pairs_are_left_out(mock_client: MakeClient, clock: ManualClock) -> None:
    rates = await source(mock_client, lambda r: recorded("coingecko_simple_price.json"), clock).fetch(
        [XMR_USD, ("XMR", "JPY"), ("ETH", "USD")]
    )
    assert set(rates) == {XMR_USD}


async def test_unknown_ids_raise(mock_client: MakeClient, clock: ManualClock) -> None:
    with pytest.raises(RateUnavailable, match=r"ETH/USD from coingecko: the answer has none") as info:
        await source(mock_client, lambda r: recorded("coingecko_unknown_ids.json"), clock).fetch(
            [("ETH", "USD")]
        )
    assert info.value.source == "coingecko"


async def test_bases_without_coin_id_are_not_asked(mock_client: MakeClient, clock: ManualClock) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request expected")

    with pytest.raises(RateUnavailable, match="no CoinGecko coin id"):
        await source(mock_client, handler, clock).fetch([("USD", "XMR")])


async def test_coin_ids_are_configurable(mock_client: MakeClient, clock: ManualClock) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.params["ids"])
        return httpx.Response(200, json={"wownero": {"usd": "0.05"}})

    rates = await source(mock_client, handler, clock, coin_ids={"WOW": "wownero"}).fetch([("WOW", "USD")])
    assert seen == ["wownero"]
    assert rates[("WOW", "USD")].value == Decimal("0.05")
    assert rates[("WOW", "USD")].fetched_at == T0  # no last_updated_at: the clock's time


async def test_rate_limited_answer(mock_client: MakeClient, clock: ManualClock) -> None:
    with pytest.raises(RateUnavailable, match=r"XMR/USD from coingecko: HTTP 429 .*exceeded the Rate Limit"):
        await source(mock_client, lambda r: recorded("coingecko_rate_limited.json", 429), clock).fetch(
            [XMR_USD]
        )


async def test_http_500(mock_client: MakeClient, clock: ManualClock) -> None:
    with pytest.raises(RateUnavailable, match=r"HTTP 500 from https://cg.test/api/v3/simple/price"):
        await source(mock_client, lambda r: httpx.Response(500, text="oops"), clock).fetch([XMR_USD])


async def test_read_timeout(mock_client: MakeClient, clock: ManualClock) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(RateUnavailable, match=r"XMR/USD from coingecko: no answer within 10 s"):
        await source(mock_client, handler, clock).fetch([XMR_USD])


async def test_slow_server_is_cut_off_by_the_overall_timeout(
    mock_client: MakeClient, clock: ManualClock
) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return recorded("coingecko_simple_price.json")

    slow = source(mock_client, handler, clock, timeout=0.05)  # type: ignore[arg-type]
    with pytest.raises(RateUnavailable, match=r"no answer within 0.05 s"):
        await slow.fetch([XMR_USD])


async def test_connection_error(mock_client: MakeClient, clock: ManualClock) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(RateUnavailable, match=r"request to .* failed: ConnectError"):
        await source(mock_client, handler, clock).fetch([XMR_USD])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>Cloudflare</html>", "malformed JSON"),
        (b'{"monero": {"usd": NaN}}', "malformed JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"monero": {"usd": null}}', "the answer has none"),
        (b'{"monero": {"usd": -1.5}}', "the answer has none"),
        (b'{"monero": {"usd": true}}', "the answer has none"),
        (b'{"monero": [150.25]}', "the answer has none"),
    ],
)
async def test_malformed_answers(
    mock_client: MakeClient, clock: ManualClock, body: bytes, message: str
) -> None:
    with pytest.raises(RateUnavailable, match=message):
        await source(mock_client, lambda r: httpx.Response(200, content=body), clock).fetch([XMR_USD])


async def test_no_pairs_no_request(mock_client: MakeClient, clock: ManualClock) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request expected")

    assert await source(mock_client, handler, clock).fetch([]) == {}
