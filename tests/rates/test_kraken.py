from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from kassa.clock import ManualClock
from kassa.rates import KrakenRateSource, RateUnavailable

from .support import T0, Handler, MakeClient, recorded

XMR_USD, BTC_USD = ("XMR", "USD"), ("BTC", "USD")


def source(make: MakeClient, handler: Handler, clock: ManualClock, **kw: object) -> KrakenRateSource:
    return KrakenRateSource(make(handler), clock, base_url="https://kraken.test/", **kw)  # type: ignore[arg-type]


async def test_recorded_ticker_uses_last_trade_price(mock_client: MakeClient, clock: ManualClock) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return recorded("kraken_ticker.json")

    rates = await source(mock_client, handler, clock).fetch([XMR_USD, BTC_USD])

    assert {p: r.value for p, r in rates.items()} == {
        XMR_USD: Decimal("150.25000000"),
        BTC_USD: Decimal("67187.40000"),
    }
    assert {(r.source, r.fetched_at) for r in rates.values()} == {("kraken", T0)}
    [request] = seen
    assert request.url.host == "kraken.test"
    assert request.url.path == "/0/public/Ticker"
    assert request.url.params["pair"] == "XXMRZUSD,XXBTZUSD"


def test_pair_names_use_xbt_and_known_names(mock_client: MakeClient, clock: ManualClock) -> None:
    kraken = source(
        mock_client, lambda r: httpx.Response(500), clock, pair_names={("GRIN", "USD"): "GRINUSD"}
    )
    assert kraken.pair_name(BTC_USD) == "XXBTZUSD"
    assert kraken.pair_name(("ETH", "EUR")) == "XETHZEUR"
    assert kraken.pair_name(("BTC", "GBP")) == "XBTGBP"  # not in the table: the altname
    assert kraken.pair_name(("GRIN", "USD")) == "GRINUSD"


async def test_answer_under_another_name_is_matched(mock_client: MakeClient, clock: ManualClock) -> None:
    # Asked for the altname XBTGBP, Kraken answers under its own name XXBTZGBP.
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.params["pair"] == "XBTGBP"
        return httpx.Response(200, json={"error": [], "result": {"XXBTZGBP": {"c": ["52000.1", "0.1"]}}})

    rates = await source(mock_client, handler, clock).fetch([("BTC", "GBP")])
    assert rates[("BTC", "GBP")].value == Decimal("52000.1")


async def test_unknown_pair_error_body(mock_client: MakeClient, clock: ManualClock) -> None:
    with pytest.raises(
        RateUnavailable, match=r"XMR/JPY from kraken: Kraken answered EQuery:Unknown asset pair"
    ):
        await source(mock_client, lambda r: recorded("kraken_unknown_pair.json"), clock).fetch(
            [("XMR", "JPY")]
        )


async def test_one_unlisted_pair_does_not_sink_the_others(
    mock_client: MakeClient, clock: ManualClock
) -> None:
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params["pair"])
        if request.url.params["pair"] == "XXMRZUSD":
            return recorded("kraken_xmr_only.json")
        return recorded("kraken_unknown_pair.json")

    rates = await source(mock_client, handler, clock).fetch([XMR_USD, ("XMR", "JPY")])
    assert set(rates) == {XMR_USD}
    assert rates[XMR_USD].value == Decimal("150.25")
    assert asked[0] == "XXMRZUSD,XMRJPY"
    assert sorted(asked[1:]) == ["XMRJPY", "XXMRZUSD"]


async def test_all_pairs_unlisted_keeps_krakens_reason(mock_client: MakeClient, clock: ManualClock) -> None:
    with pytest.raises(RateUnavailable, match="Unknown asset pair"):
        await source(mock_client, lambda r: recorded("kraken_unknown_pair.json"), clock).fetch(
            [("XMR", "JPY"), ("BTC", "JPY")]
        )


async def test_errors_beside_a_partial_result_still_give_the_result(
    mock_client: MakeClient, clock: ManualClock
) -> None:
    body = {"error": ["EGeneral:Temporary lockout"], "result": {"XXMRZUSD": {"c": ["151", "1"]}}}
    rates = await source(mock_client, lambda r: httpx.Response(200, json=body), clock).fetch(
        [XMR_USD, BTC_USD]
    )
    assert {p: r.value for p, r in rates.items()} == {XMR_USD: Decimal(151)}


async def test_service_error_with_http_200(mock_client: MakeClient, clock: ManualClock) -> None:
    body = {"error": ["EService:Unavailable"], "result": {}}
    with pytest.raises(RateUnavailable, match="EService:Unavailable"):
        await source(mock_client, lambda r: httpx.Response(200, json=body), clock).fetch([XMR_USD, BTC_USD])


async def test_http_500(mock_client: MakeClient, clock: ManualClock) -> None:
    with pytest.raises(RateUnavailable, match=r"XMR/USD from kraken: HTTP 500 .*'Internal Server Error'"):
        await source(mock_client, lambda r: httpx.Response(500, text="Internal Server Error"), clock).fetch(
            [XMR_USD]
        )


async def test_read_timeout(mock_client: MakeClient, clock: ManualClock) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(RateUnavailable, match=r"XMR/USD from kraken: no answer within 2.5 s"):
        await source(mock_client, handler, clock, timeout=2.5).fetch([XMR_USD])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "malformed JSON"),
        (b"not json", "malformed JSON"),
        (b'"ok"', "not a JSON object"),
        (b'{"result": {}}', "malformed answer"),
        (b'{"error": "none", "result": {}}', "malformed answer"),
        (b'{"error": [], "result": []}', "malformed answer"),
        (b'{"error": [], "result": {"XXMRZUSD": {"c": []}}}', "no last trade price"),
        (b'{"error": [], "result": {"XXMRZUSD": {"c": ["zero"]}}}', "no last trade price"),
        (b'{"error": [], "result": {"XXMRZUSD": {"c": ["0.0", "1"]}}}', "no last trade price"),
        (b'{"error": [], "result": {"XXMRZUSD": {"a": ["150", "1", "1"]}}}', "no last trade price"),
    ],
)
async def test_malformed_answers(
    mock_client: MakeClient, clock: ManualClock, body: bytes, message: str
) -> None:
    with pytest.raises(RateUnavailable, match=message):
        await source(mock_client, lambda r: httpx.Response(200, content=body), clock).fetch(
            [XMR_USD, BTC_USD]
        )
