"""Webhook endpoints and their deliveries, API keys, payment methods, merchant settings, balances and
payouts: each page reads and changes through the same services (and request models) as the API."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import ValidationError

from kassa.api.auth import runtime_of
from kassa.api.schemas import MerchantUpdate
from kassa.dashboard.auth import PATH
from kassa.dashboard.charts import volume_charts
from kassa.dashboard.pages import PageRoute, checked_form, redirect, render, signed_in
from kassa.domain.money import InvalidMoney, Money
from kassa.errors import InvalidRequest
from kassa.rails.registry import known_rails
from kassa.services.api_keys import MERCHANT_SCOPES
from kassa.services.users import SignedIn
from kassa.services.webhooks import EVENT_TYPES

router = APIRouter(include_in_schema=False, route_class=PageRoute)  # mounted at PATH (api/app.py)

INT_SETTINGS = (
    "default_confirmations",
    "invoice_lifetime",
    "payment_tolerance_bps",
    "monitoring_window",
    "payout_hour",
)
TEXT_SETTINGS = ("name", "email", "callback_url", "withdrawal_url", "late_payment_policy", "quote_at")
CHOICE_SETTINGS = ("withdrawal_policy", "refund_policy")


def _invalid(exc: ValidationError) -> InvalidRequest:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return InvalidRequest(f"{where}: {first['msg']}", param=where or None)


# ----- webhooks -----------------------------------------------------------------------------------


@router.get("/webhooks")
async def webhooks_page(request: Request, user: SignedIn = Depends(signed_in)) -> Response:
    endpoints = await runtime_of(request).webhooks.list_endpoints(user.merchant_pk)
    return render(
        request, "webhooks.html", user=user, endpoints=endpoints, event_types=EVENT_TYPES, created=None
    )


@router.post("/webhooks")
async def add_endpoint(request: Request, user: SignedIn = Depends(signed_in)) -> Response:
    form = await checked_form(request)
    runtime = runtime_of(request)
    types = [str(t) for t in form.getlist("event_types")] or ["*"]
    created = await runtime.webhooks.create_endpoint(
        user.merchant_pk,
        str(form.get("url") or "").strip(),
        types,
        str(form.get("description") or "").strip()[:500] or None,
        True,
    )
    endpoints = await runtime.webhooks.list_endpoints(user.merchant_pk)
    # The signing secret is shown this once, on this answer (not after a redirect).
    return render(
        request,
        "webhooks.html",
        201,
        user=user,
        endpoints=endpoints,
        event_types=EVENT_TYPES,
        created=created,
    )


@router.get("/webhooks/{endpoint_id}")
async def endpoint_page(request: Request, endpoint_id: str, user: SignedIn = Depends(signed_in)) -> Response:
    runtime = runtime_of(request)
    endpoints = {e["id"]: e for e in await runtime.webhooks.list_endpoints(user.merchant_pk)}
    if endpoint_id not in endpoints:
        await runtime.webhooks.get_endpoint(user.merchant_pk, endpoint_id)  # the API's 404
    after = request.query_params.get("after") or None
    deliveries, more = await runtime.webhooks.deliveries(
        user.merchant_pk, endpoint_id, limit=50, starting_after=after
    )
    next_after = deliveries[-1]["id"] if more and deliveries else None
    return render(
        request,
        "endpoint.html",
        user=user,
        endpoint=endpoints[endpoint_id],
        deliveries=deliveries,
        next_after=next_after,
    )


@router.post("/webhooks/{endpoint_id}/test")
async def send_test(request: Request, endpoint_id: str, user: SignedIn = Depends(signed_in)) -> Response:
    await checked_form(request)
    await runtime_of(request).webhooks.send_test(user.merchant_pk, endpoint_id)
    return redirect(f"{PATH}/webhooks/{endpoint_id}", "test-sent")


@router.post("/webhooks/{endpoint_id}/delete")
async def delete_endpoint(
    request: Request, endpoint_id: str, user: SignedIn = Depends(signed_in)
) -> Response:
    await checked_form(request)
    await runtime_of(request).webhooks.delete_endpoint(user.merchant_pk, endpoint_id)
    return redirect(f"{PATH}/webhooks", "endpoint-deleted")


@router.post("/events/{event_id}/redeliver")
async def redeliver(request: Request, event_id: str, user: SignedIn = Depends(signed_in)) -> Response:
    form = await checked_form(request)
    endpoint = str(form.get("endpoint") or "") or None
    back = str(form.get("back") or "")
    await runtime_of(request).webhooks.redeliver(user.merchant_pk, event_id, endpoint)
    target = back if back.startswith(PATH + "/") and not back.startswith("//") else f"{PATH}/webhooks"
    return redirect(target, "redelivered")


# ----- API keys -----------------------------------------------------------------------------------


@router.get("/keys")
async def keys_page(request: Request, user: SignedIn = Depends(signed_in)) -> Response:
    keys = await runtime_of(request).keys.for_merchant(user.merchant_id)
    return render(request, "keys.html", user=user, keys=keys, scopes=MERCHANT_SCOPES, issued=None)


@router.post("/keys")
async def create_key(request: Request, user: SignedIn = Depends(signed_in)) -> Response:
    form = await checked_form(request)
    runtime = runtime_of(request)
    scopes = [str(s) for s in form.getlist("scopes")]
    name = str(form.get("name") or "").strip()[:200] or None
    if not scopes:
        raise InvalidRequest("scopes: choose at least one", param="scopes")
    issued = await runtime.keys.create(user.merchant_id, scopes, name)
    keys = await runtime.keys.for_merchant(user.merchant_id)
    # Shown once, on this answer only: Kassa keeps only its hash.
    return render(
        request, "keys.html", 201, user=user, keys=keys, scopes=MERCHANT_SCOPES, issued=issued.public()
    )


@router.post("/keys/{key_id}/revoke")
async def revoke_key(request: Request, key_id: str, user: SignedIn = Depends(signed_in)) -> Response:
    await checked_form(request)
    await runtime_of(request).keys.revoke(key_id, user.merchant_id)
    return redirect(f"{PATH}/keys", "key-revoked")


# ----- payment methods ----------------------------------------------------------------------------


@router.get("/methods")
async def methods_page(request: Request, user: SignedIn = Depends(signed_in)) -> Response:
    return await _methods(request, user)


async def _methods(
    request: Request, user: SignedIn, status: int = 200, health: dict[str, Any] | None = None
) -> Response:
    runtime = runtime_of(request)
    methods = await runtime.payment_methods.for_merchant(user.merchant_pk)
    shown = [{**m, "settings_json": json.dumps(m["settings"], indent=2, sort_keys=True)} for m in methods]
    configured = {m["rail"] for m in methods}
    addable = [r for r in known_rails() if r not in configured]
    return render(request, "methods.html", status, user=user, methods=shown, addable=addable, health=health)


@router.post("/methods")
async def add_method(request: Request, user: SignedIn = Depends(signed_in)) -> Response:
    return await save_method(request, "", user)


@router.post("/methods/{rail}")
async def save_method(request: Request, rail: str, user: SignedIn = Depends(signed_in)) -> Response:
    form = await checked_form(request)
    rail = rail or str(form.get("rail") or "")
    try:
        settings = json.loads(str(form.get("settings") or "{}"))
    except ValueError:
        raise InvalidRequest("settings: not JSON", param="settings") from None
    if not isinstance(settings, dict):
        raise InvalidRequest("settings: a JSON object, like {}", param="settings")
    await runtime_of(request).payment_methods.configure(user.merchant_pk, rail, settings)
    return redirect(f"{PATH}/methods", "method-saved")


@router.post("/methods/{rail}/disable")
async def disable_method(request: Request, rail: str, user: SignedIn = Depends(signed_in)) -> Response:
    await checked_form(request)
    await runtime_of(request).payment_methods.disable(user.merchant_pk, rail)
    return redirect(f"{PATH}/methods", "method-disabled")


@router.post("/methods/{rail}/check")
async def check_method(request: Request, rail: str, user: SignedIn = Depends(signed_in)) -> Response:
    await checked_form(request)
    health = await runtime_of(request).rail_check(user.merchant_pk, rail)
    return await _methods(request, user, health={"rail": rail, "ok": health.ok, "details": health.details})


# ----- merchant settings --------------------------------------------------------------------------


@router.get("/settings")
async def settings_page(request: Request, user: SignedIn = Depends(signed_in)) -> Response:
    merchant = await runtime_of(request).merchants.get(user.merchant_id)
    return render(request, "settings.html", user=user, merchant=merchant.public())


@router.post("/settings")
async def save_settings(request: Request, user: SignedIn = Depends(signed_in)) -> Response:
    form = await checked_form(request)
    values: dict[str, Any] = {}
    for name in INT_SETTINGS:
        text = str(form.get(name) or "").strip()
        if text:
            try:
                values[name] = int(text)
            except ValueError:
                raise InvalidRequest(f"{name}: a whole number", param=name) from None
    for name in TEXT_SETTINGS:
        if name in form:
            values[name] = str(form.get(name) or "").strip() or None
    for name in CHOICE_SETTINGS:
        if form.get(name):
            values[name] = str(form.get(name))
    values["notify_paid_email"] = form.get("notify_paid_email") == "on"
    if values.get("name") is None:
        values.pop("name", None)  # a merchant always has a name
    try:
        body = MerchantUpdate.model_validate(values)
    except ValidationError as exc:
        raise _invalid(exc) from None
    settings = body.model_dump(exclude_unset=True, exclude={"rails"}, mode="json")
    await runtime_of(request).merchants.update(user.merchant_id, settings)
    return redirect(f"{PATH}/settings", "settings-saved")


# ----- balances, payouts and the volume chart ------------------------------------------------------


@router.get("/balances")
async def balances_page(request: Request, user: SignedIn = Depends(signed_in)) -> Response:
    runtime = runtime_of(request)
    live = await runtime.ledger.balances(user.merchant_pk, test=False)
    test = await runtime.ledger.balances(user.merchant_pk, test=True)
    payouts, _ = await runtime.payouts.page(user.merchant_pk, 25, None)
    volume = await runtime.orders.paid_volume(user.merchant_pk, days=30)
    charts = volume_charts(volume, runtime.clock.now().date(), days=30)
    rails = [m["rail"] for m in await runtime.payment_methods.for_merchant(user.merchant_pk) if m["enabled"]]
    return render(
        request, "balances.html", user=user, live=live, test=test, payouts=payouts, charts=charts, rails=rails
    )


@router.post("/payouts")
async def pay_out(request: Request, user: SignedIn = Depends(signed_in)) -> Response:
    """A manual payout through the payouts service: the whole available balance, or an amount."""
    form = await checked_form(request)
    currency = str(form.get("currency") or "").strip().upper()
    text = str(form.get("amount") or "").strip()
    try:
        amount = Money.from_decimal_string(text, currency).amount if text else None
    except (InvalidMoney, KeyError, ValueError) as exc:
        raise InvalidRequest(f"amount: {exc}", param="amount") from None
    await runtime_of(request).payouts.create(
        user.merchant_pk,
        str(form.get("rail") or ""),
        currency=currency or None,
        amount=amount,
        destination=str(form.get("destination") or "").strip() or None,
    )
    return redirect(f"{PATH}/balances", "payout-made")
