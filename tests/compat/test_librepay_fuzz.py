"""Malformed input to every LibrePay route: never a 5xx, and nothing malformed changes an invoice."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.compat.conftest import KAShop
from tests.compat.test_knockturn_fuzz import json_values

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
prices = st.one_of(
    json_values,
    st.decimals(allow_nan=False, allow_infinity=False, places=4).map(str),
    st.integers(min_value=-(10**80), max_value=10**80),
)
items = st.fixed_dictionaries(
    {"price": prices, "name": json_values}, optional={"image": json_values, "quantity": json_values}
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "successUrl": st.one_of(st.just("http://localhost/complete"), json_values),
            "cancelUrl": st.one_of(st.just("http://localhost/cancel"), json_values),
            "currency": st.one_of(st.sampled_from(["usd", "jpy", "kwd", "btc", "USD"]), json_values),
            "cart": st.one_of(st.lists(items, max_size=3), json_values),
        }
    ),
)


def test_fuzz_create(ka_factory: Callable[..., KAShop]) -> None:
    shop = ka_factory()

    @FUZZ
    @given(body=bodies)
    def run(body: Any) -> None:
        response = shop.api.post("/invoice/", content=json.dumps(body, default=str))
        assert response.status_code < 500, response.text
        if response.status_code == 200:  # a good invoice after all: its total is exact
            selector = response.json()["selector"]
            order = shop.native(selector)
            assert order["amount"] > 0
        else:
            assert response.status_code in (400, 409), response.text
            assert "error" in response.json()

    run()


def test_fuzz_set_method_and_reads(ka_factory: Callable[..., KAShop]) -> None:
    shop = ka_factory()
    response = shop.api.post(
        "/invoice/",
        json={
            "successUrl": "http://localhost/complete",
            "cancelUrl": "http://localhost/cancel",
            "currency": "usd",
            "cart": [{"price": 1, "name": "x"}],
        },
    )
    selector = response.json()["selector"]
    before = shop.native(selector)

    @FUZZ
    @given(
        body=st.one_of(json_values, st.fixed_dictionaries({"method": json_values}), st.binary(max_size=200)),
        path=st.one_of(
            st.just(selector),
            st.text(max_size=70).filter(lambda t: "/" not in t and t not in ("", ".", "..")),
        ),
    )
    def run(body: Any, path: str) -> None:
        content = body if isinstance(body, bytes) else json.dumps(body)
        path = quote(path, safe="")
        answer = shop.anon.post(f"/invoice/{path}/setmethod", content=content)
        assert answer.status_code < 500, answer.text
        assert answer.status_code in (400, 404, 409), answer.text
        assert shop.anon.get(f"/invoice/{path}").status_code in (200, 400, 404)

    run()
    after = shop.native(selector)
    assert (after["version"], after["method"], after["payments"]) == (before["version"], before["method"], [])
