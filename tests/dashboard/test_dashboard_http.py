"""The dashboard through plain HTTP forms (no JavaScript): sign-in, sessions, CSRF, isolation between
merchants, and every page's actions, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Callable
from datetime import timedelta

import httpx
import pyotp

from tests.dashboard.support import PASSWORD, admin_get, csrf_of, new_user, post_form
from tests.support.receiver import Receiver
from tests.support.server import KassaServer


def test_pages_need_a_session(anon: httpx.Client) -> None:
    for path in ("/dashboard/orders", "/dashboard/keys", "/dashboard/orders/ord_x", "/dashboard/balances"):
        r = anon.get(path)
        assert r.status_code == 303 and r.headers["location"] == f"/dashboard/login?next={path}"
    r = anon.post("/dashboard/keys", data={"csrf": "x", "scopes": "orders:read"})
    assert r.status_code == 303 and r.headers["location"].startswith("/dashboard/login")
    home = anon.get("/dashboard", follow_redirects=True)  # the bare prefix: to the list, so to sign in
    assert home.status_code == 200 and home.url.path == "/dashboard/login", home.url
    assert anon.get("/dashboard/no-such-page").status_code == 404


def test_sign_in_cookies_and_sign_out(kassa: KassaServer, merchant: tuple[str, str]) -> None:
    user = new_user(kassa, merchant[0])
    with httpx.Client(base_url=kassa.base_url) as client:
        page = client.get("/dashboard/login")
        assert page.status_code == 200 and "Sign in to Kassa" in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]
        wrong = client.post(
            "/dashboard/login",
            data={"csrf": csrf_of(page.text), "email": user["email"], "password": "nope nope nope"},
        )
        assert wrong.status_code == 401 and "wrong email or password" in wrong.text
        unknown = client.post(
            "/dashboard/login",
            data={"csrf": csrf_of(page.text), "email": "nobody@x.example", "password": PASSWORD},
        )
        assert unknown.status_code == 401 and "wrong email or password" in unknown.text  # same answer
        ok = client.post(
            "/dashboard/login",
            data={
                "csrf": csrf_of(page.text),
                "email": user["email"].upper(),
                "password": PASSWORD,
                "next": "//evil.example/x",
            },
        )
        assert ok.status_code == 303 and ok.headers["location"] == "/dashboard/orders"  # never off-site
        cookie = next(c for c in ok.headers.get_list("set-cookie") if c.startswith("kassa_dashboard="))
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/dashboard" in cookie
        orders = client.get("/dashboard/orders")
        assert orders.status_code == 200 and user["email"] in orders.text
        stolen = client.cookies.get("kassa_dashboard")
        out = post_form(client, "/dashboard/orders", "/dashboard/logout")
        assert out.status_code == 303 and out.headers["location"] == "/dashboard/login"
    # The cookie of an ended session opens nothing, nor does a forged one.
    for value in (stolen, "forged.value"):
        with httpx.Client(base_url=kassa.base_url, cookies={"kassa_dashboard": value or ""}) as replay:
            assert replay.get("/dashboard/orders").status_code == 303
    listed = admin_get(kassa, f"/api/v1/merchants/{merchant[0]}/users").json()["data"]
    assert listed[0]["last_sign_in_at"] is not None and "password" not in listed[0]


def test_csrf_is_required_on_every_form(
    sign_in: Callable[..., httpx.Client], kassa: KassaServer, merchant: tuple[str, str]
) -> None:
    user = new_user(kassa, merchant[0])
    client = sign_in(user["email"])
    before = len(admin_get(kassa, f"/api/v1/merchants/{merchant[0]}/keys").json()["data"])
    for data in ({"scopes": "orders:read"}, {"csrf": "0" * 64, "scopes": "orders:read"}):
        r = client.post("/dashboard/keys", data=data)
        assert r.status_code == 403 and "reload the page" in r.text
    # A form posted from another site is refused even with a valid token.
    token = csrf_of(client.get("/dashboard/keys").text)
    r = client.post(
        "/dashboard/keys",
        data={"csrf": token, "scopes": "orders:read"},
        headers={"Origin": "https://evil.example"},
    )
    assert r.status_code == 403 and "another site" in r.text
    # Another session's token is not this session's.
    other = sign_in(user["email"])
    foreign = csrf_of(other.get("/dashboard/keys").text)
    assert client.post("/dashboard/keys", data={"csrf": foreign, "scopes": "orders:read"}).status_code == 403
    # The sign-in form itself needs its pre-session token.
    with httpx.Client(base_url=kassa.base_url) as fresh:
        r = fresh.post("/dashboard/login", data={"email": user["email"], "password": PASSWORD})
        assert r.status_code == 403
    assert len(admin_get(kassa, f"/api/v1/merchants/{merchant[0]}/keys").json()["data"]) == before


def test_one_merchant_never_sees_another(
    sign_in: Callable[..., httpx.Client], kassa: KassaServer, api: httpx.Client, merchant: tuple[str, str]
) -> None:
    theirs = api.post(
        "/api/v1/orders", json={"amount": 700, "currency": "EUR", "order_id": "their-ref"}
    ).json()
    their_hook = api.post("/api/v1/webhook-endpoints", json={"url": "https://hooks.example/x"}).json()
    other_id, _ = kassa.new_merchant("Other Shop")
    me = sign_in(new_user(kassa, other_id)["email"])
    assert me.get(f"/dashboard/orders/{theirs['id']}").status_code == 404
    assert theirs["id"] not in me.get("/dashboard/orders").text
    assert theirs["id"] not in me.get("/dashboard/orders", params={"q": "their-ref"}).text
    assert me.get("/dashboard/orders", params={"q": theirs["id"]}).status_code == 404
    assert me.get(f"/dashboard/webhooks/{their_hook['id']}").status_code == 404
    assert post_form(me, "/dashboard/orders", f"/dashboard/orders/{theirs['id']}/cancel").status_code == 404
    assert (
        post_form(me, "/dashboard/orders", f"/dashboard/webhooks/{their_hook['id']}/test").status_code == 404
    )
    keys = admin_get(kassa, f"/api/v1/merchants/{merchant[0]}/keys").json()["data"]
    r = post_form(me, "/dashboard/keys", f"/dashboard/keys/{keys[0]['id']}/revoke")
    assert r.status_code == 404
    assert api.get(f"/api/v1/orders/{theirs['id']}").json()["status"] == "open"  # untouched
    assert api.get("/api/v1/orders").status_code == 200  # their key still works


def test_orders_list_search_filters_pages_and_csv(
    sign_in: Callable[..., httpx.Client], kassa: KassaServer, api: httpx.Client, merchant: tuple[str, str]
) -> None:
    made = [
        api.post(
            "/api/v1/orders", json={"amount": 100 + i, "currency": "EUR", "order_id": f"shop-{i}"}
        ).json()
        for i in range(30)
    ]
    api.post("/api/v1/test/payments", json={"order": made[3]["id"], "amount": 103})
    api.post("/api/v1/orders", json={"amount": 5, "currency": "USD", "description": '=HYPERLINK("x")'})
    me = sign_in(new_user(kassa, merchant[0])["email"])
    first = me.get("/dashboard/orders")
    assert first.status_code == 200 and first.text.count("/dashboard/orders/ord_") == 25
    older = re.search(r'<a href="([^"]+)" rel="next">', first.text)
    assert older is not None
    second = me.get(html.unescape(older.group(1)))
    assert second.text.count("/dashboard/orders/ord_") == 6 and 'rel="next"' not in second.text
    assert made[0]["id"] in second.text
    found = me.get("/dashboard/orders", params={"q": "shop-7"})
    assert made[7]["id"] in found.text and found.text.count("/dashboard/orders/ord_") == 1
    jump = me.get("/dashboard/orders", params={"q": made[9]["id"]})
    assert jump.status_code == 303 and jump.headers["location"] == f"/dashboard/orders/{made[9]['id']}"
    paid = (
        me.get("/dashboard/orders", params={"status": "processing"}).text
        + me.get("/dashboard/orders", params={"status": "paid"}).text
    )
    assert made[3]["id"] in paid and made[4]["id"] not in paid
    today = kassa.clock.now().date()
    assert (
        me.get("/dashboard/orders", params={"to": (today - timedelta(days=1)).isoformat()}).text.count("ord_")
        == 0
    )
    assert me.get("/dashboard/orders", params={"status": "bogus"}).status_code == 400
    assert me.get("/dashboard/orders", params={"from": "yesterday"}).status_code == 400
    exported = me.get("/dashboard/orders.csv", params={"from": today.isoformat()})
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == 31 and {r["id"] for r in rows} >= {m["id"] for m in made}
    assert next(r for r in rows if r["id"] == made[5]["id"])["amount"] == "1.05"
    assert next(r for r in rows if r["currency"] == "USD")["description"].startswith("'=")  # no formula


def test_order_page_timeline_cancel_and_refund(
    sign_in: Callable[..., httpx.Client], kassa: KassaServer, api: httpx.Client, merchant: tuple[str, str]
) -> None:
    me = sign_in(new_user(kassa, merchant[0])["email"])
    order = api.post("/api/v1/orders", json={"amount": 1250, "currency": "EUR", "confirmations": 0}).json()
    page = me.get(f"/dashboard/orders/{order['id']}")
    assert page.status_code == 200 and "12.50 EUR" in page.text and "order.created" in page.text
    api.post("/api/v1/test/payments", json={"order": order["id"], "amount": 1250})
    page = me.get(f"/dashboard/orders/{order['id']}")
    assert "payment.received" in page.text and "order.paid" in page.text and ">paid<" in page.text
    refund = post_form(
        me,
        f"/dashboard/orders/{order['id']}",
        f"/dashboard/orders/{order['id']}/refund",
        amount="2.50",
        reason="one pie short",
        destination="test:back",
    )
    assert refund.status_code == 303, refund.text
    refunds = api.get(f"/api/v1/orders/{order['id']}/refunds").json()["data"]
    assert [(r["amount"], r["reason"]) for r in refunds] == [(250, "one pie short")]
    too_much = post_form(
        me, f"/dashboard/orders/{order['id']}", f"/dashboard/orders/{order['id']}/refund", amount="99.00"
    )
    assert too_much.status_code in (400, 409) and "refund" in too_much.text.lower()
    bad = post_form(
        me, f"/dashboard/orders/{order['id']}", f"/dashboard/orders/{order['id']}/refund", amount="1.234"
    )
    assert bad.status_code == 400 and "decimal places" in bad.text
    other = api.post("/api/v1/orders", json={"amount": 300, "currency": "EUR"}).json()
    canceled = post_form(me, f"/dashboard/orders/{other['id']}", f"/dashboard/orders/{other['id']}/cancel")
    assert canceled.status_code == 303 and canceled.headers["location"].endswith("done=canceled")
    assert api.get(f"/api/v1/orders/{other['id']}").json()["status"] == "canceled"
    again = post_form(me, f"/dashboard/orders/{other['id']}", f"/dashboard/orders/{other['id']}/cancel")
    assert again.status_code == 409


def test_keys_webhooks_methods_settings_and_balances(
    sign_in: Callable[..., httpx.Client], kassa: KassaServer, api: httpx.Client, merchant: tuple[str, str]
) -> None:
    me = sign_in(new_user(kassa, merchant[0])["email"])
    created = post_form(
        me, "/dashboard/keys", "/dashboard/keys", name="shop", scopes=["orders:read", "orders:write"]
    )
    assert created.status_code == 201
    secret = created.text.split('<code id="new-key">')[1].split("<")[0]
    with httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {secret}"}) as new_key:
        assert new_key.get("/api/v1/orders").status_code == 200
        assert new_key.get("/api/v1/merchant").status_code == 403  # only the scopes chosen
        key_id = created.text.split('Key <span class="mono">')[1].split("<")[0]
        assert secret not in me.get("/dashboard/keys").text  # shown once
        assert post_form(me, "/dashboard/keys", f"/dashboard/keys/{key_id}/revoke").status_code == 303
        assert new_key.get("/api/v1/orders").status_code == 401
    assert post_form(me, "/dashboard/keys", "/dashboard/keys", scopes=["root"]).status_code == 400

    hook = post_form(
        me,
        "/dashboard/webhooks",
        "/dashboard/webhooks",
        url="https://hooks.example/kassa",
        event_types=["order.paid"],
    )
    assert hook.status_code == 201 and "whsec_" in hook.text
    endpoint = api.get("/api/v1/webhook-endpoints").json()["data"][0]
    assert endpoint["event_types"] == ["order.paid"]
    sent = post_form(
        me, f"/dashboard/webhooks/{endpoint['id']}", f"/dashboard/webhooks/{endpoint['id']}/test"
    )
    assert sent.status_code == 303
    log = me.get(f"/dashboard/webhooks/{endpoint['id']}").text
    assert "webhook.test" in log and "pending" in log
    assert post_form(me, "/dashboard/webhooks", "/dashboard/webhooks", url="ftp://x").status_code == 400

    methods = me.get("/dashboard/methods")
    assert methods.status_code == 200 and 'id="rail-test"' in methods.text
    checked = post_form(me, "/dashboard/methods", "/dashboard/methods/test/check")
    assert checked.status_code == 200 and "test: healthy" in checked.text
    assert post_form(me, "/dashboard/methods", "/dashboard/methods/test", settings="[1]").status_code == 400
    assert post_form(me, "/dashboard/methods", "/dashboard/methods/test", settings="{").status_code == 400

    saved = post_form(
        me, "/dashboard/settings", "/dashboard/settings",
        name="Renamed Shop", email="", callback_url="", default_confirmations="3", invoice_lifetime="1800",
        payment_tolerance_bps="50", monitoring_window="3600", late_payment_policy="refund", quote_at="creation",
        withdrawal_policy="manual", withdrawal_url="", payout_hour="4", refund_policy="approve",
    )  # fmt: skip
    assert saved.status_code == 303, saved.text
    mine = api.get("/api/v1/merchant").json()
    assert (mine["name"], mine["default_confirmations"], mine["invoice_lifetime"]) == (
        "Renamed Shop",
        3,
        1800,
    )
    assert mine["late_payment_policy"] == "refund" and mine["notify_paid_email"] is False
    bad = post_form(me, "/dashboard/settings", "/dashboard/settings", name="X", default_confirmations="lots")
    assert bad.status_code == 400 and "whole number" in bad.text
    bad = post_form(me, "/dashboard/settings", "/dashboard/settings", name="X", invoice_lifetime="5")
    assert bad.status_code == 400 and "invoice_lifetime" in bad.text

    order = api.post("/api/v1/orders", json={"amount": 4200, "currency": "EUR", "confirmations": 0}).json()
    api.post("/api/v1/test/payments", json={"order": order["id"], "amount": 4200})
    balances = me.get("/dashboard/balances")
    assert balances.status_code == 200 and "EUR: 42.00 EUR" in balances.text and "<svg" in balances.text
    assert (
        api.put("/api/v1/payment-methods/test", json={"payout_address": "test:merchant-wallet"}).status_code
        == 200
    )
    paid_out = post_form(
        me, "/dashboard/balances", "/dashboard/payouts", rail="test", currency="EUR", amount="10.00"
    )
    assert paid_out.status_code == 303, paid_out.text
    [made] = api.get("/api/v1/payouts").json()["data"]
    assert (made["amount"], made["currency"], made["destination"]) == (1000, "EUR", "test:merchant-wallet")
    too_much = post_form(
        me, "/dashboard/balances", "/dashboard/payouts", rail="test", currency="EUR", amount="99.00"
    )
    assert too_much.status_code in (400, 409) and len(api.get("/api/v1/payouts").json()["data"]) == 1
    bad = post_form(
        me, "/dashboard/balances", "/dashboard/payouts", rail="test", currency="EUR", amount="1.001"
    )
    assert bad.status_code == 400 and "decimal places" in bad.text


def test_password_change_and_totp(
    sign_in: Callable[..., httpx.Client], kassa: KassaServer, merchant: tuple[str, str]
) -> None:
    user = new_user(kassa, merchant[0])
    me = sign_in(user["email"])
    other_session = sign_in(user["email"])
    account = me.get("/dashboard/account").text
    secret = account.split('<code id="totp-secret">')[1].split("<")[0]
    wrong = post_form(me, "/dashboard/account", "/dashboard/account/totp", secret=secret, code="000000")
    assert wrong.status_code == 400
    totp = pyotp.TOTP(secret)
    now = kassa.clock.now()
    on = post_form(me, "/dashboard/account", "/dashboard/account/totp", secret=secret, code=totp.at(now))
    assert on.status_code == 303 and on.headers["location"].endswith("done=totp-on")
    # Signing in now asks for a code; a code works once.
    with httpx.Client(base_url=kassa.base_url) as client:
        page = client.get("/dashboard/login")
        token = csrf_of(page.text)
        step = client.post(
            "/dashboard/login", data={"csrf": token, "email": user["email"], "password": PASSWORD}
        )
        assert (
            step.status_code == 200
            and "Enter your code" in step.text
            and "kassa_dashboard=" not in str(step.headers)
        )
        pending = step.text.split('name="pending" value="')[1].split('"')[0]
        used = client.post(
            "/dashboard/login/code", data={"csrf": token, "pending": pending, "code": totp.at(now)}
        )
        assert used.status_code == 401  # the code that turned it on
        later = now + timedelta(seconds=30)
        kassa.clock.advance(30)
        good = client.post(
            "/dashboard/login/code", data={"csrf": token, "pending": pending, "code": totp.at(later)}
        )
        assert good.status_code == 303 and client.get("/dashboard/orders").status_code == 200
        forged = client.post(
            "/dashboard/login/code", data={"csrf": token, "pending": "1", "code": totp.at(later)}
        )
        assert forged.status_code == 400
    changed = post_form(
        me,
        "/dashboard/account",
        "/dashboard/account/password",
        password=PASSWORD,
        new_password="a new long password",
    )
    assert changed.status_code == 303
    assert me.get("/dashboard/orders").status_code == 200  # this session stays
    assert other_session.get("/dashboard/orders").status_code == 303  # the others end
    short = post_form(
        me,
        "/dashboard/account",
        "/dashboard/account/password",
        password="a new long password",
        new_password="short",
    )
    assert short.status_code == 400


def test_sign_in_is_throttled(kassa: KassaServer, merchant: tuple[str, str]) -> None:
    user = new_user(kassa, merchant[0])
    with httpx.Client(base_url=kassa.base_url, headers={"X-Forwarded-For": "192.0.2.77"}) as client:
        token = csrf_of(client.get("/dashboard/login").text)
        codes = [
            client.post(
                "/dashboard/login",
                data={"csrf": token, "email": user["email"], "password": f"guess {i:04d}xx"},
            ).status_code
            for i in range(11)
        ]
        assert codes[:10] == [401] * 10 and codes[10] == 429
        r = client.post(
            "/dashboard/login", data={"csrf": token, "email": user["email"], "password": PASSWORD}
        )
        assert r.status_code == 429 and "try again in" in r.text


def test_static_files(anon: httpx.Client) -> None:
    page = anon.get("/dashboard/login").text
    css = page.split('rel="stylesheet" href="')[1].split('"')[0]
    served = anon.get(css)
    assert served.status_code == 200 and "immutable" in served.headers["cache-control"]
    for path in ("/dashboard/static/dashboard.css", "/dashboard/static/nope.css"):
        assert anon.get(path).status_code == 404  # only the hashed names


def test_a_test_event_is_signed_and_delivered(
    sign_in: Callable[..., httpx.Client],
    kassa: KassaServer,
    api: httpx.Client,
    merchant: tuple[str, str],
    receiver: Receiver,
) -> None:
    me = sign_in(new_user(kassa, merchant[0])["email"])
    added = post_form(me, "/dashboard/webhooks", "/dashboard/webhooks", url=receiver.url + "/t")
    receiver.secrets["/t"] = [added.text.split('<code id="new-secret">')[1].split("<")[0]]
    endpoint = api.get("/api/v1/webhook-endpoints").json()["data"][0]
    assert (
        post_form(me, "/dashboard/webhooks", f"/dashboard/webhooks/{endpoint['id']}/test").status_code == 303
    )
    kassa.deliver()
    [got] = receiver.on("/t")
    assert got.verified and got.body["type"] == "webhook.test" and got.body["data"]["id"] == endpoint["id"]
    log = me.get(f"/dashboard/webhooks/{endpoint['id']}").text
    assert "succeeded" in log and ": 200 (" in log
    assert [e["type"] for e in api.get("/api/v1/events").json()["data"]][:1] == ["webhook.test"]
