"""Keys, scopes, the admin credential, and merchant isolation (foreign ids are 404, never 403)."""

from __future__ import annotations

import httpx

from tests.support.server import KassaServer


def client(kassa: KassaServer, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=kassa.base_url, headers=headers, timeout=30)


def test_missing_and_bad_keys(kassa: KassaServer) -> None:
    with client(kassa, None) as anon:
        r = anon.get("/api/v1/orders")
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        assert r.headers["www-authenticate"] == "Bearer"
    with client(kassa, "ksk_not-a-real-key") as bad:
        r = bad.get("/api/v1/orders")
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


def test_merchants_never_see_each_other(kassa: KassaServer) -> None:
    _, key_a = kassa.new_merchant("A")
    _, key_b = kassa.new_merchant("B")
    with client(kassa, key_a) as a, client(kassa, key_b) as b:
        order = a.post("/api/v1/orders", json={"amount": 100, "currency": "EUR", "order_id": "same"}).json()
        for path in (f"/api/v1/orders/{order['id']}", "/api/v1/orders/same"):
            r = b.get(path)
            assert r.status_code == 404 and r.json()["error"]["code"] == "resource_missing"
        assert b.post(f"/api/v1/orders/{order['id']}/cancel").status_code == 404
        assert b.post("/api/v1/test/payments", json={"order": order["id"], "amount": 100}).status_code == 404
        assert b.get("/api/v1/orders").json()["data"] == []
        # B may use the same merchant order id for its own order.
        assert (
            b.post("/api/v1/orders", json={"amount": 5, "currency": "EUR", "order_id": "same"}).status_code
            == 201
        )
        # B's blocks do not confirm A's payments.
        a.post("/api/v1/test/payments", json={"order": order["id"], "amount": 100})
        assert b.post("/api/v1/test/blocks", json={"count": 5}).json()["payments_updated"] == 0
        assert a.get(f"/api/v1/orders/{order['id']}").json()["status"] == "processing"


def test_scopes_enforced(kassa: KassaServer) -> None:
    merchant_id, _ = kassa.new_merchant()
    with kassa.admin() as admin:
        r = admin.post(f"/api/v1/merchants/{merchant_id}/keys", json={"scopes": ["orders:read"]})
        assert r.status_code == 201, r.text
        read_only = r.json()["secret"]
        assert (
            admin.post(f"/api/v1/merchants/{merchant_id}/keys", json={"scopes": ["nope"]}).status_code == 400
        )
    with client(kassa, read_only) as ro:
        assert ro.get("/api/v1/orders").status_code == 200
        r = ro.post("/api/v1/orders", json={"amount": 1, "currency": "USD"})
        assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"
        assert ro.get("/api/v1/merchants").status_code == 403  # not an admin


def test_revoked_key_stops_working(kassa: KassaServer) -> None:
    merchant_id, key = kassa.new_merchant()
    with client(kassa, key) as c:
        assert c.get("/api/v1/orders").status_code == 200
    with kassa.admin() as admin:
        keys = admin.get(f"/api/v1/merchants/{merchant_id}/keys").json()["data"]
        assert keys[0]["prefix"] == key[:12] and "secret" not in keys[0]
        assert admin.delete(f"/api/v1/merchants/{merchant_id}/keys/{keys[0]['id']}").status_code == 204
        assert admin.delete(f"/api/v1/merchants/{merchant_id}/keys/{keys[0]['id']}").status_code == 404
    with client(kassa, key) as c:
        assert c.get("/api/v1/orders").status_code == 401


def test_keys_are_stored_hashed(kassa: KassaServer) -> None:
    from sqlalchemy import select

    from kassa.db.tables import api_keys

    _, key = kassa.new_merchant()

    async def stored() -> list[str]:
        async with kassa.runtime.db.read() as conn:
            return [str(v) for row in await conn.execute(select(api_keys)) for v in row]

    values = kassa.call(stored())
    assert not any(key in v for v in values)


def test_admin_manages_merchants_and_rails(kassa: KassaServer) -> None:
    merchant_id, key = kassa.new_merchant("Rails")
    with kassa.admin() as admin:
        listed = admin.get("/api/v1/merchants").json()["data"]
        assert merchant_id in [m["id"] for m in listed]
        r = admin.patch(
            f"/api/v1/merchants/{merchant_id}", json={"rails": {"test": False}, "invoice_lifetime": 600}
        )
        assert r.status_code == 200, r.text
        assert r.json()["rails"] == [{"rail": "test", "enabled": False}]
        assert r.json()["invoice_lifetime"] == 600
        assert (
            admin.patch(f"/api/v1/merchants/{merchant_id}", json={"rails": {"bogus": True}}).status_code
            == 400
        )
        assert admin.get("/api/v1/merchants/mch_unknown").status_code == 404
        # The admin credential cannot act on orders.
        r = admin.get("/api/v1/orders")
        assert r.status_code == 403 and r.json()["error"]["code"] == "admin_key"
    with client(kassa, key) as c:
        r = c.post("/api/v1/orders", json={"amount": 1, "currency": "USD"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "no_payment_method"
        me = c.get("/api/v1/merchant").json()
        assert me["id"] == merchant_id
        assert (
            c.patch("/api/v1/merchant", json={"rails": {"test": True}}).json()["rails"][0]["enabled"] is True
        )
        assert c.post("/api/v1/orders", json={"amount": 1, "currency": "USD"}).status_code == 201


def test_test_rail_disabled_refuses_test_payments(kassa: KassaServer) -> None:
    merchant_id, key = kassa.new_merchant()
    with client(kassa, key) as c:
        order = c.post("/api/v1/orders", json={"amount": 100, "currency": "USD"}).json()
        c.patch("/api/v1/merchant", json={"rails": {"test": False}})
        r = c.post("/api/v1/test/payments", json={"order": order["id"], "amount": 100})
        assert r.status_code == 409 and r.json()["error"]["code"] == "test_rail_disabled"
