"""Signing in to the dashboard over plain HTTP, as a browser without JavaScript does."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.support.server import KassaServer

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf" value="([^"]*)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def new_user(kassa: KassaServer, merchant_id: str, email: str | None = None) -> dict[str, Any]:
    email = email or f"owner-{merchant_id[-8:]}@shop.example"
    with kassa.admin() as admin:
        r = admin.post(f"/api/v1/merchants/{merchant_id}/users", json={"email": email, "password": PASSWORD})
        assert r.status_code == 201, r.text
        return dict(r.json())


def signed_in_client(kassa: KassaServer, email: str, password: str = PASSWORD) -> httpx.Client:
    client = httpx.Client(base_url=kassa.base_url, timeout=30)
    page = client.get("/dashboard/login")
    r = client.post(
        "/dashboard/login",
        data={"csrf": csrf_of(page.text), "email": email, "password": password, "next": ""},
    )
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/orders", r.text
    return client


def post_form(client: httpx.Client, page: str, action: str, **fields: Any) -> httpx.Response:
    """Submit a form of `page` as the browser would: with the page's CSRF token."""
    html = client.get(page).text
    return client.post(action, data={"csrf": csrf_of(html), **fields})


def admin_get(kassa: KassaServer, path: str) -> httpx.Response:
    with kassa.admin() as admin:
        return admin.get(path)
