"""@servebase/payment's routes, at the seed's paths (shared/seeds/servebase-payment.md).

- `POST /pay/sign` (and `/api/pay/sign`, where servebase's client library posts): a payment record
  (a Kassa order, its slug the order id) and the signed payload for the configured gateway's page.
- `POST /pay/check` (and `/api/pay/check`): `{payload: {slug}}` -> `{state, createdtime, paidtime}`.
- `POST /extapi/pay/notify`, `/extapi/pay/gw/{name}/notify`: the gateway's notification, verified
  by the rail, matched to the stored payment by the core (services/gateways.py).
- `/ext/pay/done`, `/ext/pay/gw/{name}/done`: where the gateway sends the payer back; a POST carrying
  NewebPay's result is taken like a notification, then the page shows the state.
- The dummy gateway (the test rail): its page `/ext/pay/gw/dummy` and `/extapi/pay/gw/dummy/pay`,
  which pays (or, with `result=failed`, fails) the payment.

Errors are servebase's lderror objects (wire.py); the done and dummy pages answer HTML.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy.exc import IntegrityError

from kassa.api.auth import authorize, runtime_of
from kassa.checkout.security import page_headers
from kassa.checkout.templating import environment, render_page
from kassa.compat.servebase import wire
from kassa.compat.servebase.settings import PaymentSettings
from kassa.compat.servebase.wire import ServebaseError
from kassa.domain.money import Money
from kassa.errors import KassaError, NotFound
from kassa.runtime import Runtime
from kassa.services.gateways import GatewayUrls
from kassa.services.merchants import Merchant
from kassa.services.orders import NewOrder

router = APIRouter(include_in_schema=False)

RAILS = {"dummy": "test", "newebpay": "newebpay"}
MAX_KEY = 2**53 - 1  # the record's key is "always a number": one a JavaScript client keeps exactly

_env = environment("kassa.compat.servebase")


@dataclass(frozen=True, slots=True)
class Front:
    cfg: PaymentSettings
    merchant: Merchant
    rail: str
    base_url: str


def _lderror(exc: ServebaseError) -> Response:
    return Response(
        wire.dumps(exc.body()),
        wire.LDERROR_STATUS,
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _from_kassa(exc: KassaError, ident: int) -> ServebaseError:
    return ServebaseError(wire.NOT_FOUND if isinstance(exc, NotFound) else ident, exc.message)


def _rail_settings(cfg: PaymentSettings) -> dict[str, Any]:
    gw = cfg.gateways.newebpay
    if cfg.gateway != "newebpay" or gw is None:
        return {}
    return {
        "merchant_id": gw.MerchantID,
        "hash_key": gw.hashkey,
        "hash_iv": gw.hashiv,
        "testing": gw.testing,
        "gateway_url": gw.gateway_url,
    }


async def _front(request: Request) -> Front:
    """The configured gateway and merchant; the first call enables the gateway's rail for the
    merchant with the file's settings (the file is the operator's word, as in servebase)."""
    front: Front | None = getattr(request.app.state, "servebase_front", None)
    if front is not None:
        return front
    runtime = runtime_of(request)
    cfg = runtime.settings.payment
    if cfg is None:
        raise ServebaseError(wire.NOT_FOUND, "payment is not configured on this server")
    lock: asyncio.Lock | None = getattr(request.app.state, "servebase_lock", None)
    if lock is None:
        lock = request.app.state.servebase_lock = asyncio.Lock()
    async with lock:
        ready: Front | None = getattr(request.app.state, "servebase_front", None)
        if ready is not None:
            return ready
        try:
            merchant = await runtime.merchants.get(cfg.merchant)
        except NotFound:
            raise ServebaseError(
                wire.NOT_FOUND, "payment.merchant names no merchant of this server"
            ) from None
        rail = RAILS[cfg.gateway]
        await _ensure_rail(runtime, merchant.pk, rail, _rail_settings(cfg))
        front = Front(cfg, merchant, rail, runtime.settings.base_url)
        request.app.state.servebase_front = front
        return front


async def _ensure_rail(runtime: Runtime, merchant_pk: int, rail: str, wanted: dict[str, Any]) -> None:
    current = await runtime.payment_methods.config(merchant_pk, rail)
    if current is not None and all(current.settings.get(k) == v for k, v in wanted.items()):
        return
    settings = {**(current.settings if current else {}), **wanted}
    try:
        await runtime.payment_methods.configure(merchant_pk, rail, settings)
    except IntegrityError:  # another process enabled it at the same moment: now it is an update
        await runtime.payment_methods.configure(merchant_pk, rail, settings)


async def _authorize_sign(request: Request, front: Front) -> None:
    if front.cfg.sign == "open":
        return
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    try:
        principal = await authorize(
            runtime_of(request), key.strip() if scheme.lower() == "bearer" else None, "orders:write"
        )
    except KassaError as exc:
        raise ServebaseError(wire.PERMISSION, exc.message) from None
    if principal.merchant_pk != front.merchant.pk:
        raise ServebaseError(wire.PERMISSION, "this API key is not the payment merchant's")


async def _json_object(request: Request, what: str, ident: int = wire.BAD_REQUEST) -> dict[str, Any]:
    body = wire.parse_json(await request.body())
    if not isinstance(body, dict):
        raise ServebaseError(ident, f"{what} must be a JSON object")
    return body


async def _fields(request: Request) -> dict[str, str]:
    """A notification's fields: a form (NewebPay) or a JSON object of strings."""
    raw = await request.body()
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json" or raw.lstrip().startswith(b"{"):
        body = wire.parse_json(raw)
        if not isinstance(body, dict) or not all(isinstance(v, str) for v in body.values()):
            raise ServebaseError(wire.BAD_NOTICE, "the notification must be an object of strings")
        return body
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(raw))
    except (UnicodeDecodeError, ValueError):
        raise ServebaseError(wire.BAD_NOTICE, "the notification is not a form") from None
    fields = dict(pairs)
    if len(fields) != len(pairs) or any("\x00" in k or "\x00" in v for k, v in pairs):
        raise ServebaseError(wire.BAD_NOTICE, "the notification repeats a field or holds NUL")
    return fields


async def _page_fields(request: Request) -> dict[str, str]:
    """A page's query, and its posted fields when it is a POST."""
    fields = dict(request.query_params)
    if request.method == "POST":
        fields.update(await _fields(request))
    return fields


def _urls(front: Front) -> GatewayUrls:
    gw = front.cfg.gateways.newebpay
    return GatewayUrls(
        notify_url=(gw and gw.NotifyURL) or f"{front.base_url}/extapi/pay/notify",
        return_url=(gw and gw.ReturnURL) or f"{front.base_url}/ext/pay/done",
    )


# ----- the frontend's API -----------------------------------------------------------------------


@router.post("/pay/sign")
@router.post("/api/pay/sign")
async def sign(request: Request) -> Response:
    runtime = runtime_of(request)
    try:
        front = await _front(request)
        await _authorize_sign(request, front)
        body = await _json_object(request, "the request body")
        payload = body.get("payload")
        if not isinstance(payload, dict):
            raise ServebaseError(wire.BAD_REQUEST, "payload must be an object with at least amount")
        gateway = body.get("gateway") or front.cfg.gateway
        if gateway != front.cfg.gateway:
            raise ServebaseError(
                wire.BAD_REQUEST,
                f"gateway {str(gateway)[:40]!r} is not configured; this server uses {front.cfg.gateway!r}",
            )
        amount = wire.amount(payload, front.cfg.currency)
        name, desc = wire.text(payload, "name"), wire.text(payload, "desc")
        scope, language = wire.text(payload, "scope"), wire.text(payload, "lng")
        email = wire.email(payload)
        key = secrets.randbelow(MAX_KEY) + 1
        try:
            created = await runtime.orders.create(
                front.merchant.pk,
                NewOrder(
                    currency=front.cfg.currency,
                    amount=amount,
                    description=desc or name,
                    email=email,
                    payment_methods=[_method(front)],
                    metadata={"servebase": {"key": key, "scope": scope, "name": name}},
                ),
            )
            slug = created.order["id"]
            if front.cfg.gateway == "newebpay":
                form, _ = await runtime.gateways.form(slug, _urls(front), language=language)
                url, method, data = form.url, form.method, dict(form.fields)
            else:
                url, method = f"{front.base_url}/ext/pay/gw/dummy", "POST"
                data = {"slug": slug, "key": str(key), "amount": wire.plain(amount, front.cfg.currency)}
                data.update({k: v for k, v in (("name", name), ("desc", desc), ("scope", scope)) if v})
        except KassaError as exc:
            raise _from_kassa(exc, wire.BAD_REQUEST) from None
    except ServebaseError as exc:
        return _lderror(exc)
    answer = {"url": url, "method": method, "payload": data, "slug": slug, "state": "pending", "key": key}
    return wire.json_response(answer)


def _method(front: Front) -> str:
    return "newebpay" if front.cfg.gateway == "newebpay" else "test"


@router.post("/pay/check")
@router.post("/api/pay/check")
async def check(request: Request) -> Response:
    try:
        front = await _front(request)
        body = await _json_object(request, "the request body", wire.BAD_NOTICE)
        payload = body.get("payload")
        if not isinstance(payload, dict):
            raise ServebaseError(wire.BAD_NOTICE, "payload must be an object with slug")
        order = await _order(request, front, payload.get("slug"))
    except ServebaseError as exc:
        return _lderror(exc)
    if order is None:
        return wire.json_response({})  # as servebase: no such row
    return wire.json_response(
        {"state": wire.state(order), "createdtime": order["created_at"], "paidtime": order["paid_at"]}
    )


async def _order(request: Request, front: Front, slug: object) -> dict[str, Any] | None:
    if not wire.is_slug(slug):
        return None
    assert isinstance(slug, str)
    try:
        return await runtime_of(request).orders.get(front.merchant.pk, slug)
    except NotFound:
        return None


# ----- notifications ----------------------------------------------------------------------------


async def _take_notice(request: Request, front: Front, fields: dict[str, str]) -> dict[str, Any]:
    """Record a notification; the order after it."""
    runtime = runtime_of(request)
    if front.cfg.gateway == "dummy":
        order = await _order(request, front, fields.get("slug"))
        if order is None:
            raise ServebaseError(wire.NOT_FOUND, "no payment with that slug")
        quote = next((q for q in order["payment_methods"] if q["rail"] == "test"), None)
        if quote is None or not quote["address"]:
            raise ServebaseError(wire.BAD_NOTICE, "this payment is not the dummy gateway's")
        result = fields.get("result") or fields.get("state") or "paid"
        result = {"complete": "paid", "fail": "failed"}.get(result, result)
        fields = {"address": quote["address"], "result": result}
    try:
        return (await runtime.gateways.receive(front.merchant.pk, front.rail, fields)).order
    except KassaError as exc:
        raise _from_kassa(exc, wire.BAD_NOTICE) from None


@router.post("/extapi/pay/notify")
@router.post("/extpi/pay/notify")  # the seed's spelling of it, too
async def notify(request: Request) -> Response:
    return await _notify(request, None)


@router.post("/extapi/pay/gw/{name}/notify")
async def notify_gateway(request: Request, name: str) -> Response:
    return await _notify(request, name)


async def _front_for(request: Request, name: str | None) -> Front:
    """The front, when `name` (a gateway-specific route's) is the configured gateway or not given."""
    front = await _front(request)
    if name is not None and name != front.cfg.gateway:
        raise ServebaseError(wire.NOT_FOUND, f"gateway {name[:40]!r} is not configured")
    return front


async def _notify(request: Request, name: str | None) -> Response:
    try:
        front = await _front_for(request, name)
        await _take_notice(request, front, await _fields(request))
    except ServebaseError as exc:
        return _lderror(exc)
    return Response(b"", 200)


# ----- pages ------------------------------------------------------------------------------------


def _page(request: Request, template: str, status: int, **context: Any) -> Response:
    return render_page(request, _env, template, status, **context)


def _error_page(request: Request, exc: ServebaseError) -> Response:
    status = 404 if exc.ident == wire.NOT_FOUND else 400
    return _page(request, "servebase_message.html", status, title="Payment", message=exc.message)


def _summary(front: Front, order: dict[str, Any]) -> dict[str, Any]:
    meta = (order.get("metadata") or {}).get("servebase") or {}
    return {
        "slug": order["id"],
        "name": meta.get("name") or order["description"] or "Payment",
        "amount": Money(order["amount"], order["currency"]).display(),
        "state": wire.state(order),
    }


@router.api_route("/ext/pay/done", methods=["GET", "POST"])
async def done(request: Request) -> Response:
    return await _done(request, None)


@router.api_route("/ext/pay/gw/{name}/done", methods=["GET", "POST"])
async def done_gateway(request: Request, name: str) -> Response:
    return await _done(request, name)


async def _done(request: Request, name: str | None) -> Response:
    try:
        front = await _front_for(request, name)
        fields = await _page_fields(request)
        if "TradeInfo" in fields:  # NewebPay posts its result here too: taken like its notification
            order: dict[str, Any] | None = await _take_notice(request, front, fields)
        else:
            order = await _order(request, front, fields.get("slug"))
        if order is None:
            raise ServebaseError(wire.NOT_FOUND, "no payment with that slug")
    except ServebaseError as exc:
        return _error_page(request, exc)
    return _page(request, "servebase_done.html", 200, payment=_summary(front, order))


@router.api_route("/ext/pay/gw/dummy", methods=["GET", "POST"])
@router.api_route("/ext/pay/gw/dummy/", methods=["GET", "POST"])
async def dummy_page(request: Request) -> Response:
    try:
        front = await _front_for(request, "dummy")
        fields = await _page_fields(request)
        order = await _order(request, front, fields.get("slug"))
        if order is None:
            raise ServebaseError(wire.NOT_FOUND, "no payment with that slug")
    except ServebaseError as exc:
        return _error_page(request, exc)
    summary = _summary(front, order)
    prefix = urlsplit(front.base_url).path.rstrip("/")
    return _page(
        request,
        "servebase_dummy.html",
        200,
        payment=summary,
        open=summary["state"] in ("pending", "failed"),
        pay_url=f"{prefix}/extapi/pay/gw/dummy/pay",
    )


@router.post("/extapi/pay/gw/dummy/pay")
async def dummy_pay(request: Request) -> Response:
    """Pay (or fail, `result=failed`) a dummy payment; a form post is sent on to the done page."""
    is_form = not (await request.body()).lstrip().startswith(b"{")
    try:
        front = await _front_for(request, "dummy")
        fields = await _fields(request)
        order = await _take_notice(request, front, fields)
    except ServebaseError as exc:
        return _error_page(request, exc) if is_form else _lderror(exc)
    if is_form:
        url = f"{front.base_url}/ext/pay/gw/dummy/done?slug={quote(order['id'], safe='')}"
        return RedirectResponse(url, 303, headers=page_headers())
    return Response(b"", 200)
