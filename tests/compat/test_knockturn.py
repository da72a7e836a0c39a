"""KnockturnAllee's protocol against a real Kassa server (SQLite and PostgreSQL) and a loopback
stand-in for the merchant's Grin wallet and node (no Grin software can be installed here)."""

from __future__ import annotations

import base64
import concurrent.futures
import json
from collections.abc import Callable

import httpx
import pytest

from tests.compat.conftest import DUE_10_USD, PASSWORD, KAShop
from tests.support.grin_stand_in import make_slate_v3, make_slate_v4
from tests.support.receiver import Receiver
from tests.support.watching import Watching

# ----- creating orders --------------------------------------------------------------------------


def test_create_with_the_api_token_as_the_seed_shows(ka_shop: KAShop) -> None:
    response = ka_shop.create("xyz", confirmations=10, email="user@domain.com")
    assert response.status_code == 201, response.text
    order = response.json()
    url = f"{ka_shop.server.base_url}/merchants/{ka_shop.merchant_id}/orders/xyz"
    assert order["status"] == "UNPAID"
    assert order["order_id"] == "xyz"
    assert order["amount"] == {"amount": 1000, "currency": "USD"}
    assert order["grin_amount"] == DUE_10_USD
    assert order["payment_url"] == url
    assert response.headers["location"] == url
    assert order["confirmations"] == 10
    assert order["email"] == "user@domain.com"
    native = ka_shop.native("xyz")
    assert native["method"] == "GRIN"
    assert native["amount_due"] == DUE_10_USD
    assert native["expires_at"] == order["expires_at"]
    # The customer is emailed about the new order.
    ka_shop.server.send_emails()
    sent = [m for m in ka_shop.server.mailer.messages if m.to == "user@domain.com"]
    assert any("xyz" in m.text or order["id"] in m.text for m in sent), [m.subject for m in sent]


def test_the_same_order_again_is_the_same_order_and_other_details_conflict(ka_shop: KAShop) -> None:
    first = ka_shop.create("dup", confirmations=3)
    again = ka_shop.create("dup", confirmations=3)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    other = ka_shop.create("dup", confirmations=4)
    assert other.status_code == 409
    assert other.json()["error"]["param"] == "order_id"


def test_create_with_user_and_password(ka_shop: KAShop) -> None:
    body = {"order_id": "basic-1", "amount": {"amount": 250, "currency": "USD"}}
    url = ka_shop.ka
    no_password = ka_shop.anon.post(url, json=body, auth=(ka_shop.merchant_id, PASSWORD))
    assert no_password.status_code == 401
    assert "Basic" in no_password.headers["www-authenticate"]
    with ka_shop.server.admin() as admin:
        set_it = admin.patch(f"/api/v1/merchants/{ka_shop.merchant_id}", json={"password": PASSWORD})
    assert set_it.status_code == 200, set_it.text
    assert set_it.json()["has_password"] is True
    assert "password" not in set_it.json()
    ok = ka_shop.anon.post(url, json=body, auth=(ka_shop.merchant_id, PASSWORD))
    assert ok.status_code == 201, ok.text
    assert ok.json()["grin_amount"] == DUE_10_USD // 4
    wrong_user = ka_shop.anon.post(url, json=body, auth=("mch_someone_else", PASSWORD))
    assert wrong_user.status_code == 401
    garbled = ka_shop.anon.post(url, json=body, headers={"Authorization": "Basic !!!not-base64"})
    assert garbled.status_code == 401


def test_password_guessing_is_throttled(ka_factory: Callable[..., KAShop]) -> None:
    shop = ka_factory()
    with shop.server.admin() as admin:
        assert (
            admin.patch(f"/api/v1/merchants/{shop.merchant_id}", json={"password": PASSWORD}).status_code
            == 200
        )
    body = {"order_id": "guess", "amount": {"amount": 100, "currency": "USD"}}
    statuses = [
        shop.anon.post(shop.ka, json=body, auth=(shop.merchant_id, f"guess number {i}")).status_code
        for i in range(10)
    ]
    assert statuses == [401] * 10
    blocked = shop.anon.post(shop.ka, json=body, auth=(shop.merchant_id, PASSWORD))
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0


def test_credentials_of_another_merchant_or_none_are_refused(
    ka_factory: Callable[..., KAShop],
) -> None:
    mine, theirs = ka_factory(), ka_factory()
    body = {"order_id": "x1", "amount": {"amount": 100, "currency": "USD"}}
    foreign = mine.anon.post(theirs.ka, json=body, headers={"Authorization": f"Bearer {mine.key}"})
    assert foreign.status_code == 404
    missing = mine.anon.post(mine.ka, json=body)
    assert missing.status_code == 401
    assert "Bearer" in missing.headers["www-authenticate"]
    unknown = mine.anon.post(
        "/merchants/mch_nobody", json=body, headers={"Authorization": f"Bearer {mine.key}"}
    )
    assert unknown.status_code == 404
    assert theirs.api.get("/api/v1/orders/x1").status_code == 404


def test_a_body_nested_too_deeply_is_a_400(ka_shop: KAShop) -> None:
    response = ka_shop.api.post(
        ka_shop.ka, content=b"[" * 100_000, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "body_invalid"


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"amount": {"amount": 1000, "currency": "USD"}}, 400, "order_id"),
        ({"order_id": "a"}, 400, "amount"),
        ({"order_id": "a", "amount": {"amount": -5, "currency": "USD"}}, 400, "amount.amount"),
        ({"order_id": "a", "amount": {"amount": "1000", "currency": "USD"}}, 400, "amount.amount"),
        ({"order_id": "a", "amount": {"amount": 1000, "currency": "XXX"}}, 400, "currency"),
        (
            {"order_id": "a", "amount": {"amount": 1000, "currency": "USD"}, "confirmations": -1},
            400,
            "confirmations",
        ),
        ({"order_id": "a", "amount": {"amount": 1000, "currency": "USD"}, "email": "nope"}, 400, "email"),
        ({"order_id": "", "amount": {"amount": 1000, "currency": "USD"}}, 400, "order_id"),
        ([1, 2], 400, "body"),
    ],
)
def test_bad_create_requests_say_what_is_wrong(
    ka_shop: KAShop, body: object, status: int, param: str
) -> None:
    response = ka_shop.api.post(ka_shop.ka, json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == param


def test_the_seed_example_is_not_json_and_says_so(ka_shop: KAShop) -> None:
    literal = """{
\t"order_id": "xyz",
\t"amount" : {
\t\t"amount": 1000,
\t\t"currency: "USD"
\t\t},
\tconfirmations: 10,
\temail: "user@domain.com"
}"""
    response = ka_shop.api.post(ka_shop.ka, content=literal, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "body_invalid"
    assert "not valid JSON" in response.json()["error"]["message"]


def test_a_merchant_without_a_grin_wallet_is_told_so(ka_factory: Callable[..., KAShop]) -> None:
    shop = ka_factory(configure=False)
    response = shop.create("no-grin")
    assert response.status_code == 409
    assert "Grin" in response.json()["error"]["message"]


# ----- the order page ---------------------------------------------------------------------------


def test_order_page_html_and_json(ka_shop: KAShop) -> None:
    ka_shop.order("page-1", confirmations=10, email="c@example.com")
    html = ka_shop.anon.get(f"{ka_shop.ka}/orders/page-1")
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    text = html.text
    url = f"{ka_shop.server.base_url}/merchants/{ka_shop.merchant_id}/orders/page-1"
    assert url in text
    assert "200 GRIN" in text
    assert "UNPAID" in text
    assert "0</span> of 10" in text
    assert "grin-wallet send -d" in text
    assert "<svg" in text  # the QR code of the payment URL
    assert "c@example.com" not in text  # the page is public: no customer data
    assert "default-src 'none'" in html.headers["content-security-policy"]
    view = ka_shop.view("page-1")
    assert view["status"] == "UNPAID"
    assert view["payment_url"] == url
    assert "email" not in view
    # Kassa's own id reaches the same order.
    assert ka_shop.view(view["id"])["order_id"] == "page-1"


def test_unknown_orders_and_merchants_are_404(ka_shop: KAShop) -> None:
    html = ka_shop.anon.get(f"{ka_shop.ka}/orders/nope")
    assert html.status_code == 404
    assert "text/html" in html.headers["content-type"]
    as_json = ka_shop.anon.get(f"{ka_shop.ka}/orders/nope", headers={"Accept": "application/json"})
    assert as_json.status_code == 404
    assert as_json.json()["error"]["code"] == "resource_missing"
    assert ka_shop.anon.get("/merchants/mch_nobody/orders/nope").status_code == 404
    assert ka_shop.pay("nope", make_slate_v4(DUE_10_USD)).status_code == 404
    assert ka_shop.rpc("nope", "receive_tx", [make_slate_v4(DUE_10_USD), None, None]).status_code == 404
    assert ka_shop.net.received == []


def test_an_order_that_does_not_take_grin_is_not_a_ka_order(ka_shop: KAShop) -> None:
    native = ka_shop.api.post(
        "/api/v1/orders",
        json={"amount": 500, "currency": "USD", "order_id": "native", "payment_methods": ["test"]},
    )
    assert native.status_code == 201, native.text
    assert (
        ka_shop.anon.get(f"{ka_shop.ka}/orders/native", headers={"Accept": "application/json"}).status_code
        == 404
    )


# ----- paying ---------------------------------------------------------------------------------


def test_slate_v4_by_post_to_the_order_url_then_confirmations(ka_shop: KAShop, watching: Watching) -> None:
    receiver = Receiver().start()
    try:
        secret = ka_shop.api.post("/api/v1/merchant/callback-secret").json()["secret"]
        receiver.secrets["/ka"] = [secret]
        assert (
            ka_shop.api.patch("/api/v1/merchant", json={"callback_url": f"{receiver.url}/ka"}).status_code
            == 200
        )
        ka_shop.order("pay-v4", confirmations=3, email="buyer@example.com")
        slate = make_slate_v4(DUE_10_USD)
        response = ka_shop.pay("pay-v4", slate)
        assert response.status_code == 200, response.text
        signed = response.json()
        assert signed["id"] == slate["id"]
        assert signed["sta"] == "S2"
        assert ka_shop.net.received[-1]["id"] == slate["id"]
        assert ka_shop.view("pay-v4")["status"] == "RECEIVED"
        assert ka_shop.native("pay-v4")["status"] == "processing"

        ka_shop.net.broadcast(slate["id"])
        ka_shop.net.mine(1)
        view = ka_shop.wait_status("pay-v4", "RECEIVED")
        ka_shop.net.mine(2)
        view = ka_shop.wait_status("pay-v4", "CONFIRMED")
        assert view["current_confirmations"] >= 3
        native = ka_shop.native("pay-v4")
        assert native["status"] == "paid"
        assert native["payments"][0]["reference"] == slate["id"]
        assert native["payments"][0]["amount"] == DUE_10_USD

        # The merchant's callback URL gets the signed notification, the customer an email.
        ka_shop.server.deliver()
        paid = [r for r in receiver.on("/ka") if r.body.get("type") == "order.paid"]
        assert paid, [r.body.get("type") for r in receiver.on("/ka")]
        assert all(r.verified for r in receiver.on("/ka"))
        assert paid[0].body["data"]["order_id"] == "pay-v4"
        ka_shop.server.send_emails()
        mails = [m for m in ka_shop.server.mailer.messages if m.to == "buyer@example.com"]
        assert any("paid" in m.subject.lower() or "received" in m.subject.lower() for m in mails), [
            m.subject for m in mails
        ]
    finally:
        receiver.stop()


def test_grin_wallet_send_speaks_json_rpc_v3_slate(ka_shop: KAShop) -> None:
    ka_shop.order("pay-v3")
    version = ka_shop.rpc("pay-v3", "check_version", [])
    assert version.status_code == 200
    assert version.json() == {
        "id": 1,
        "jsonrpc": "2.0",
        "result": {"Ok": {"foreign_api_version": 2, "supported_slate_versions": ["V4", "V3"]}},
    }
    slate = make_slate_v3(DUE_10_USD)
    answer = ka_shop.rpc("pay-v3", "receive_tx", [slate, None, None], id=7)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["id"] == 7 and body["jsonrpc"] == "2.0"
    signed = body["result"]["Ok"]
    assert signed["id"] == slate["id"]
    assert len(signed["participant_data"]) == 2
    assert ka_shop.view("pay-v3")["status"] == "RECEIVED"


def test_wrong_amount_is_refused_before_the_wallet_sees_it(ka_shop: KAShop) -> None:
    ka_shop.order("short")
    response = ka_shop.pay("short", make_slate_v4(DUE_10_USD - 1))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "amount_mismatch"
    rpc = ka_shop.rpc("short", "receive_tx", [make_slate_v4(DUE_10_USD + 1), None, None])
    assert rpc.status_code == 200
    assert "Err" in rpc.json()["result"]
    assert ka_shop.net.received == []
    assert ka_shop.view("short")["status"] == "UNPAID"


def test_an_order_already_received_takes_no_second_slate(ka_shop: KAShop) -> None:
    ka_shop.order("twice")
    assert ka_shop.pay("twice", make_slate_v4(DUE_10_USD)).status_code == 200
    second = ka_shop.pay("twice", make_slate_v4(DUE_10_USD))
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "payment_pending"
    assert len(ka_shop.net.received) == 1


def test_the_same_slate_again_gets_the_first_answer(ka_shop: KAShop) -> None:
    ka_shop.order("replay")
    slate = make_slate_v4(DUE_10_USD)
    first = ka_shop.pay("replay", slate)
    again = ka_shop.pay("replay", slate)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert len(ka_shop.net.received) == 1
    assert len(ka_shop.native("replay")["payments"]) == 1


def test_concurrent_slates_pay_once(ka_shop: KAShop) -> None:
    ka_shop.order("race")
    slates = [make_slate_v4(DUE_10_USD) for _ in range(6)]

    def send(slate: dict[str, object]) -> int:
        with httpx.Client(base_url=ka_shop.server.base_url, timeout=30) as client:
            return client.post(f"{ka_shop.ka}/orders/race", content=json.dumps(slate)).status_code

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        statuses = sorted(pool.map(send, slates))
    assert statuses.count(200) == 1, statuses
    assert set(statuses) == {200, 409}
    assert len(ka_shop.net.received) == 1
    native = ka_shop.native("race")
    assert len(native["payments"]) == 1
    assert native["amount_received"] == DUE_10_USD


def test_a_refused_slate_shows_rejected_and_may_be_sent_again(ka_shop: KAShop) -> None:
    ka_shop.order("refused")
    err = {"GenericError": "Wallet is locked"}
    ka_shop.net.refuse_next(err)
    refused = ka_shop.pay("refused", make_slate_v4(DUE_10_USD))
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "payment_refused"
    assert "locked" in refused.json()["error"]["message"]
    assert ka_shop.view("refused")["status"] == "REJECTED"
    assert ka_shop.native("refused")["payments"] == []
    # Through JSON-RPC the wallet's own Err goes back to the sending wallet.
    ka_shop.net.refuse_next(err)
    rpc = ka_shop.rpc("refused", "receive_tx", [make_slate_v4(DUE_10_USD), None, None])
    assert rpc.json()["result"] == {"Err": err}
    ok = ka_shop.pay("refused", make_slate_v4(DUE_10_USD))
    assert ok.status_code == 200, ok.text
    assert ka_shop.view("refused")["status"] == "RECEIVED"


def test_a_transaction_cancelled_in_the_wallet_reopens_the_order(ka_shop: KAShop, watching: Watching) -> None:
    ka_shop.order("cancelled")
    slate = make_slate_v4(DUE_10_USD)
    assert ka_shop.pay("cancelled", slate).status_code == 200
    ka_shop.net.cancel(slate["id"])
    view = ka_shop.wait_status("cancelled", "REJECTED")
    assert view["current_confirmations"] == 0
    native = ka_shop.native("cancelled")
    assert native["status"] == "open"
    assert native["payments"][0]["status"] == "rejected"
    assert "payment.rejected" in ka_shop.events("cancelled")
    # The customer may pay again.
    assert ka_shop.pay("cancelled", make_slate_v4(DUE_10_USD)).status_code == 200
    assert ka_shop.view("cancelled")["status"] == "RECEIVED"


def test_an_expired_order_takes_no_slate(ka_shop: KAShop) -> None:
    ka_shop.order("late")
    ka_shop.server.clock.advance(seconds=3600)
    try:
        response = ka_shop.pay("late", make_slate_v4(DUE_10_USD))
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "order_not_open"
        assert ka_shop.view("late")["status"] == "EXPIRED"
    finally:
        ka_shop.server.clock.advance(seconds=-3600)
    assert ka_shop.net.received == []


def test_an_unreachable_wallet_is_a_502_and_pays_nothing(ka_shop: KAShop) -> None:
    ka_shop.configure(wallet_url="http://127.0.0.1:9")
    ka_shop.order("down")
    response = ka_shop.pay("down", make_slate_v4(DUE_10_USD))
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "wallet_unavailable"
    assert "secret" not in response.text
    assert ka_shop.view("down")["status"] == "UNPAID"
    ka_shop.configure()
    assert ka_shop.pay("down", make_slate_v4(DUE_10_USD)).status_code == 200


def test_a_lost_answer_is_found_in_the_wallet_by_the_watcher(ka_shop: KAShop, watching: Watching) -> None:
    """Kassa stopped while the wallet answered: the wallet has the transaction, Kassa no payment.
    The watcher finds it in the wallet's log by its slate id and the order moves on."""
    ka_shop.order("lost")
    slate = make_slate_v4(DUE_10_USD)
    ka_shop.net.lose_next_answer()
    response = ka_shop.pay("lost", slate)
    assert response.status_code == 502
    assert ka_shop.net.received[-1]["id"] == slate["id"]
    view = ka_shop.wait_status("lost", "RECEIVED")
    assert view["current_confirmations"] == 0
    assert ka_shop.native("lost")["payments"][0]["reference"] == slate["id"]


def test_slate_payloads_that_are_not_slates(ka_shop: KAShop) -> None:
    ka_shop.order("junk")
    for payload in ({}, {"ver": "2:0"}, {"ver": "4:2", "id": "not-a-uuid", "amt": "1"}, "slate", 12, None):
        response = ka_shop.pay("junk", payload)
        assert response.status_code == 400, (payload, response.text)
        assert response.json()["error"]["code"] == "payload_invalid"
    not_json = ka_shop.anon.post(f"{ka_shop.ka}/orders/junk", content=b"\xff\xfe")
    assert not_json.status_code == 400
    assert ka_shop.net.received == []


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{", -32700),
        (b"[]", -32600),
        (b'{"jsonrpc": "2.0", "id": 1}', -32600),
        (b'{"jsonrpc": "2.0", "method": "build_coinbase", "id": 1, "params": []}', -32601),
        (b'{"jsonrpc": "2.0", "method": "receive_tx", "id": 1, "params": []}', -32602),
        (b'{"jsonrpc": "2.0", "method": "receive_tx", "id": {"x": 1}, "params": []}', -32600),
    ],
)
def test_json_rpc_errors_as_a_grin_wallet_answers_them(ka_shop: KAShop, raw: bytes, code: int) -> None:
    ka_shop.order("rpc-errors")
    response = ka_shop.anon.post(f"{ka_shop.ka}/orders/rpc-errors/v2/foreign", content=raw)
    assert response.status_code == 200
    assert response.json()["error"]["code"] == code


def test_withdrawal_policy_is_stored_and_shown(ka_shop: KAShop) -> None:
    me = ka_shop.api.get("/api/v1/merchant").json()
    assert me["withdrawal_policy"] == "manual"
    assert me["withdrawal_url"] is None
    needs_url = ka_shop.api.patch("/api/v1/merchant", json={"withdrawal_policy": "daily"})
    assert needs_url.status_code == 400
    assert needs_url.json()["error"]["param"] == "withdrawal_policy"
    not_https = ka_shop.api.patch(
        "/api/v1/merchant",
        json={"withdrawal_policy": "daily", "withdrawal_url": "http://wallet.example:3415"},
    )
    assert not_https.status_code == 400
    assert not_https.json()["error"]["param"] == "withdrawal_url"
    ok = ka_shop.api.patch(
        "/api/v1/merchant",
        json={"withdrawal_policy": "immediate", "withdrawal_url": "https://wallet.example"},
    )
    assert ok.status_code == 200, ok.text
    assert (ok.json()["withdrawal_policy"], ok.json()["withdrawal_url"]) == (
        "immediate",
        "https://wallet.example",
    )
    back = ka_shop.api.patch("/api/v1/merchant", json={"withdrawal_policy": "manual"})
    assert back.json()["withdrawal_policy"] == "manual"


def test_basic_header_with_a_non_ascii_password(ka_shop: KAShop) -> None:
    password = "pässwörd-ünïcode-12"
    assert ka_shop.api.patch("/api/v1/merchant", json={"password": password}).status_code == 200
    token = base64.b64encode(f"{ka_shop.merchant_id}:{password}".encode()).decode()
    body = {"order_id": "uni", "amount": {"amount": 100, "currency": "USD"}}
    response = ka_shop.anon.post(ka_shop.ka, json=body, headers={"Authorization": f"Basic {token}"})
    assert response.status_code == 201, response.text
    cleared = ka_shop.api.patch("/api/v1/merchant", json={"password": None})
    assert cleared.json()["has_password"] is False
    again = ka_shop.anon.post(ka_shop.ka, json=body, headers={"Authorization": f"Basic {token}"})
    assert again.status_code == 401


def test_kassas_own_checkout_page_shows_a_grin_order(ka_shop: KAShop) -> None:
    order = ka_shop.order("checkout")
    page = ka_shop.anon.get(f"/pay/{order['id']}")
    assert page.status_code == 200
    assert order["payment_url"] in page.text
    assert "200\u00a0GRIN" in page.text  # the checkout writes coins with a no-break space
