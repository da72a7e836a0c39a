"""`/api/v1/payment-methods`: rails configured per merchant, validated by the rail."""

from __future__ import annotations

import httpx

from tests.support.server import KassaServer


def test_list_configure_disable(api: httpx.Client) -> None:
    listed = api.get("/api/v1/payment-methods").json()["data"]
    assert [(m["rail"], m["enabled"], m["test"]) for m in listed] == [("test", True, True)]
    r = api.delete("/api/v1/payment-methods/test")
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert api.post("/api/v1/orders", json={"amount": 5, "currency": "USD"}).status_code == 409
    r = api.put("/api/v1/payment-methods/test", json={})
    assert r.status_code == 200 and r.json()["enabled"] is True
    assert api.post("/api/v1/orders", json={"amount": 5, "currency": "USD"}).status_code == 201


def test_bad_configuration(api: httpx.Client) -> None:
    r = api.put("/api/v1/payment-methods/test", json={"colour": "red"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "settings.colour"
    r = api.put("/api/v1/payment-methods/nope", json={})
    assert r.status_code == 404 and r.json()["error"]["param"] == "rail"
    r = api.put("/api/v1/payment-methods/test", json=[1])
    assert r.status_code == 400
    assert api.delete("/api/v1/payment-methods/nope").status_code == 404


def test_check(api: httpx.Client) -> None:
    r = api.post("/api/v1/payment-methods/test/check")
    assert r.status_code == 200 and r.json()["ok"] is True
    assert api.post("/api/v1/payment-methods/nope/check").status_code == 404


def test_scopes(kassa: KassaServer) -> None:
    merchant_id, _ = kassa.new_merchant()
    with kassa.admin() as admin:
        key = admin.post(f"/api/v1/merchants/{merchant_id}/keys", json={"scopes": ["merchant:read"]}).json()[
            "secret"
        ]
    with httpx.Client(base_url=kassa.base_url, headers={"Authorization": f"Bearer {key}"}) as ro:
        assert ro.get("/api/v1/payment-methods").status_code == 200
        assert ro.put("/api/v1/payment-methods/test", json={}).status_code == 403


def test_readyz_lists_watchers(anon: httpx.Client) -> None:
    r = anon.get("/readyz")
    assert r.status_code == 200 and r.json()["details"]["database"] == "ok"
    assert isinstance(r.json()["details"]["watchers"], dict)
