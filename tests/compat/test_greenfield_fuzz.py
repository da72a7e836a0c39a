"""Malformed input to the Greenfield front: never a 5xx, refusals in Greenfield's shapes, and a good
invoice after all is exact."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st

from tests.compat.greenfield_shop import Shop
from tests.compat.test_knockturn_fuzz import json_values
from tests.compat.test_librepay_fuzz import FUZZ

amounts = st.one_of(
    json_values,
    st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str),
    st.integers(min_value=-(10**80), max_value=10**80),
)
checkouts = st.fixed_dictionaries(
    {},
    optional={
        "speedPolicy": st.one_of(st.sampled_from(["HighSpeed", "LowSpeed"]), json_values),
        "paymentMethods": st.one_of(st.just(["test"]), json_values),
        "expirationMinutes": st.one_of(st.integers(-5, 100_000), st.floats(allow_nan=True), json_values),
        "monitoringMinutes": st.one_of(st.integers(-5, 10**7), json_values),
        "paymentTolerance": st.one_of(st.decimals(-1, 101, places=2).map(str), json_values),
        "redirectURL": st.one_of(st.just("https://shop.example/ok"), json_values),
        "redirectAutomatically": json_values,
        "defaultLanguage": st.one_of(st.sampled_from(["de", "zh-TW", "x"]), json_values),
    },
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "amount": amounts,
            "currency": st.one_of(st.sampled_from(["USD", "JPY", "KWD", "usd"]), json_values),
        },
        optional={
            "metadata": st.one_of(
                st.fixed_dictionaries({}, optional={"orderId": json_values, "buyerEmail": json_values}),
                st.dictionaries(st.text(max_size=12), json_values, max_size=4),  # anything, kept as sent
                json_values,
            ),
            "checkout": st.one_of(checkouts, json_values),
        },
    ),
)


def _body(value: Any) -> str:
    return json.dumps(value, default=str)


def test_fuzz_create(shop: Shop) -> None:
    @FUZZ
    @given(body=bodies)
    def run(body: Any) -> None:
        answer = shop.gf.post(f"{shop.store}/invoices", content=_body(body))
        assert answer.status_code < 500, answer.text
        if answer.status_code == 200:
            invoice = answer.json()
            assert invoice["metadata"] == json.loads(_body(body.get("metadata") or {}))
            native = shop.native.get(f"/api/v1/orders/{invoice['id']}").json()
            assert native["amount"] > 0
            assert Decimal(invoice["amount"]) == Decimal(str(body["amount"]).strip())
        else:
            assert answer.status_code == 422, answer.text
            errors = answer.json()
            assert isinstance(errors, list) and {"path", "message"} <= set(errors[0])

    run()


def test_fuzz_invoice_routes(shop: Shop) -> None:
    invoice_id = shop.create()["id"]
    before = shop.invoice(invoice_id)

    @FUZZ
    @given(
        body=st.one_of(json_values, st.binary(max_size=100)),
        action=st.sampled_from(["status", "refund", "unarchive", "payment-methods/x/activate"]),
        path=st.one_of(st.just(invoice_id), st.text(max_size=70).filter(lambda t: t not in ("", ".", ".."))),
    )
    def run(body: Any, action: str, path: str) -> None:
        content = body if isinstance(body, bytes) else _body(body)
        where = f"{shop.store}/invoices/{quote(path, safe='')}"
        answer = shop.gf.post(f"{where}/{action}", content=content)
        assert answer.status_code < 500, answer.text
        assert answer.status_code in (200, 400, 404, 405, 422), answer.text
        assert shop.gf.get(where).status_code in (200, 404, 422)  # 422: a NUL in the path
        hook = shop.gf.post(f"{shop.store}/webhooks", content=content)
        assert hook.status_code == 422 or (hook.status_code == 200 and "secret" in hook.json()), hook.text

    run()
    after = shop.invoice(invoice_id)
    assert after["amount"] == before["amount"] and after["metadata"] == before["metadata"]
