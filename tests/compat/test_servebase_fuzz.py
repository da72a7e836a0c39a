"""Malformed input to every servebase route: never a 5xx, servebase's error shape, and nothing
malformed changes a payment record."""

from __future__ import annotations

import json
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.compat.servebase_shop import ServebaseShop, dummy_shop, newebpay, newebpay_shop
from tests.compat.test_knockturn_fuzz import json_values
from tests.support.newebpay_stand_in import NewebPayStandIn

__all__ = ["dummy_shop", "newebpay", "newebpay_shop"]  # fixtures

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
amounts = st.one_of(
    json_values,
    st.decimals(allow_nan=True, allow_infinity=True, places=3).map(str),
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.text(max_size=12),
)
payloads = st.fixed_dictionaries(
    {"amount": amounts},
    optional={
        "name": json_values,
        "desc": json_values,
        "scope": json_values,
        "email": json_values,
        "lng": json_values,
        "slug": json_values,
    },
)
sign_bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"payload": st.one_of(payloads, json_values)}, optional={"gateway": json_values}),
)
form_values = st.text(max_size=80)
hexes = st.text(alphabet="0123456789abcdefABCDEF", max_size=96)
notices = st.one_of(
    st.dictionaries(
        st.sampled_from(["Status", "MerchantID", "Version", "TradeInfo", "TradeSha", "slug"]), form_values
    ),
    st.fixed_dictionaries(
        {
            "Status": st.sampled_from(["SUCCESS", "MPG03009", ""]),
            "MerchantID": st.sampled_from(["MS3430112", "MS1", ""]),
            "Version": st.just("2.0"),
            "TradeInfo": hexes,
            "TradeSha": st.one_of(hexes, form_values),
        }
    ),
)


def _lderror_or_ok(response: httpx.Response, allowed: tuple[int, ...]) -> None:
    assert response.status_code < 500, response.text
    assert response.status_code in allowed, response.text
    if response.status_code == 490:
        body = response.json()
        assert body["name"] == "lderror" and isinstance(body["id"], int) and body["message"]


def _state(shop: ServebaseShop, slug: str) -> tuple[Any, ...]:
    order = shop.order(slug)
    return order["version"], order["status"], len(order["payments"])


def test_fuzz_sign_and_check(dummy_shop: ServebaseShop) -> None:
    @FUZZ
    @given(body=sign_bodies)
    def run(body: Any) -> None:
        response = dummy_shop.api.post("/pay/sign", content=json.dumps(body, default=str))
        _lderror_or_ok(response, (200, 490))
        if response.status_code == 200:  # a good request after all: the record holds its amount exactly
            signed = response.json()
            order = dummy_shop.order(signed["slug"])
            assert order["amount"] > 0 and str(order["amount"]) == signed["payload"]["amount"]
        check = dummy_shop.anon.post("/pay/check", content=json.dumps({"payload": body}, default=str))
        _lderror_or_ok(check, (200, 490))

    run()


def test_fuzz_dummy_routes(dummy_shop: ServebaseShop) -> None:
    slug = dummy_shop.sign({"name": "Fuzzed", "amount": "10"})["slug"]
    before = _state(dummy_shop, slug)

    @FUZZ
    @given(
        body=st.one_of(
            json_values, st.binary(max_size=120), st.dictionaries(st.text(max_size=8), form_values)
        ),
        route=st.sampled_from(
            ["/extapi/pay/gw/dummy/pay", "/extapi/pay/gw/dummy/notify", "/ext/pay/gw/dummy", "/ext/pay/done"]
        ),
    )
    def run(body: Any, route: str) -> None:
        if isinstance(body, dict) and body.get("slug") == slug:
            return  # that one may pay: not malformed
        if isinstance(body, bytes):
            response = dummy_shop.anon.post(route, content=body)
        elif isinstance(body, dict) and all(isinstance(v, str) for v in body.values()):
            response = dummy_shop.anon.post(route, data=body)
        else:
            response = dummy_shop.anon.post(route, content=json.dumps(body))
        _lderror_or_ok(response, (200, 400, 404, 490))

    run()
    assert _state(dummy_shop, slug) == before


def test_fuzz_newebpay_notifications(newebpay_shop: ServebaseShop, newebpay: NewebPayStandIn) -> None:
    signed = newebpay_shop.sign({"name": "Fuzzed", "amount": "10"})
    slug = signed["slug"]
    before = _state(newebpay_shop, slug)

    @FUZZ
    @given(
        form=notices,
        route=st.sampled_from(["/extapi/pay/notify", "/extapi/pay/gw/newebpay/notify", "/ext/pay/done"]),
    )
    def run(form: dict[str, str], route: str) -> None:
        response = newebpay_shop.anon.post(route, data=form)
        _lderror_or_ok(response, (400, 404, 490))

    run()
    assert _state(newebpay_shop, slug) == before
