"""Malformed input to every KnockturnAllee route: never a 5xx, and nothing malformed changes an
order, a payment or the merchant's wallet (hypothesis, from the front's own request shapes)."""

from __future__ import annotations

import base64
import json
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kassa.rails.grin.slate import SlateError, parse_slate
from tests.compat.conftest import DUE_10_USD, KAShop
from tests.support.grin_stand_in import make_slate_v3, make_slate_v4

ascii_printable = string.printable.strip() + " "
FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**260),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)


json_values = st.recursive(scalars, _containers, max_leaves=12)


def _mutations(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A real slate with some fields replaced by anything or removed."""
    keys = st.sampled_from(sorted(base))
    return st.lists(st.tuples(keys, st.one_of(st.just(None), json_values)), min_size=1, max_size=3).map(
        lambda changes: {
            **{k: v for k, v in base.items() if k not in {c[0] for c in changes if c[1] is None}},
            **{k: v for k, v in changes if v is not None},
        }
    )


slates = st.one_of(
    json_values,
    _mutations(make_slate_v4(DUE_10_USD)),
    _mutations(make_slate_v3(DUE_10_USD)),
    st.builds(make_slate_v4, st.integers(min_value=0, max_value=2**64 - 1)),
)

create_bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "order_id": json_values,
            "amount": st.one_of(
                json_values, st.fixed_dictionaries({"amount": json_values, "currency": json_values})
            ),
        },
        optional={"confirmations": json_values, "email": json_values},
    ),
)


def _is_payable(payload: Any) -> bool:
    try:
        return parse_slate(payload).amount == DUE_10_USD
    except SlateError:
        return False


def _no_change(shop: KAShop, order_id: str, before: dict[str, Any]) -> None:
    after = shop.native(order_id)
    assert after["version"] == before["version"]
    assert after["payments"] == []
    assert shop.net.received == []


@pytest.fixture
def fuzz_shop(ka_shop: KAShop) -> KAShop:
    ka_shop.order("fuzz")
    return ka_shop


def test_fuzz_slates_to_the_order_url(fuzz_shop: KAShop) -> None:
    before = fuzz_shop.native("fuzz")

    @FUZZ
    @given(payload=slates)
    def run(payload: Any) -> None:
        assume(not _is_payable(payload))
        response = fuzz_shop.pay("fuzz", payload)
        assert response.status_code < 500, response.text
        assert response.status_code in (400, 409), response.text
        assert "error" in response.json()

    run()
    _no_change(fuzz_shop, "fuzz", before)


def test_fuzz_json_rpc_calls(fuzz_shop: KAShop) -> None:
    before = fuzz_shop.native("fuzz")
    calls = st.one_of(
        json_values,
        st.fixed_dictionaries(
            {
                "jsonrpc": json_values,
                "method": st.sampled_from(["receive_tx", "check_version", "x"]) | json_values,
            },
            optional={
                "id": json_values,
                "params": st.one_of(
                    json_values, st.lists(slates, max_size=3), st.fixed_dictionaries({"slate": slates})
                ),
            },
        ),
    )

    @FUZZ
    @given(call=calls)
    def run(call: Any) -> None:
        if isinstance(call, dict):
            params = call.get("params")
            slate = (
                params[0]
                if isinstance(params, list) and params
                else params.get("slate")
                if isinstance(params, dict)
                else None
            )
            assume(not _is_payable(slate))
        response = fuzz_shop.anon.post(f"{fuzz_shop.ka}/orders/fuzz/v2/foreign", content=json.dumps(call))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["jsonrpc"] == "2.0"
        assert "error" in body or "Err" in body["result"] or "Ok" in body["result"]

    run()
    _no_change(fuzz_shop, "fuzz", before)


def test_fuzz_raw_bodies_and_headers(fuzz_shop: KAShop) -> None:
    before = fuzz_shop.native("fuzz")

    @FUZZ
    @given(
        body=st.binary(max_size=300),
        path=st.sampled_from(["", "/orders/fuzz", "/orders/fuzz/v2/foreign"]),
        auth=st.one_of(
            st.none(),
            st.text(ascii_printable, max_size=60).map(lambda t: "Basic " + t),
            st.binary(max_size=40).map(lambda b: "Basic " + base64.b64encode(b).decode()),
            st.text(max_size=30).map(lambda t: "Basic " + base64.b64encode(t.encode()).decode()),
            st.text(ascii_printable, max_size=60),
        ),
    )
    def run(body: bytes, path: str, auth: str | None) -> None:
        headers = {"Authorization": auth.strip()} if auth and auth.strip() else {}
        response = fuzz_shop.anon.post(fuzz_shop.ka + path, content=body, headers=headers)
        assert response.status_code < 500, response.text

    run()
    _no_change(fuzz_shop, "fuzz", before)


def test_fuzz_create_bodies(ka_shop: KAShop) -> None:
    @FUZZ
    @given(body=create_bodies)
    def run(body: Any) -> None:
        response = ka_shop.api.post(ka_shop.ka, content=json.dumps(body))
        assert response.status_code < 500, response.text
        if response.status_code in (200, 201):  # it was a good order after all: check it is exact
            order = response.json()
            asked = body["amount"]
            assert order["amount"] == {"amount": asked["amount"], "currency": asked["currency"].upper()}
            assert order["order_id"] == body["order_id"]
        else:
            assert response.status_code in (400, 409), response.text

    run()
