"""BTCPay Server's Greenfield routes (docs/compat/greenfield.md), each translated to Kassa's services.

Auth is `Authorization: token <Kassa API key>`; a store is a Kassa merchant (`storeId` = merchant id)
and a key reaches only its own merchant's store. Every path also answers with a trailing slash.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from kassa.api.auth import runtime_of
from kassa.compat.greenfield import wire
from kassa.compat.greenfield.webhooks import EVENTS, kassa_types, unix
from kassa.compat.greenfield.wire import GreenfieldError, invalid, not_found, problem
from kassa.domain.money import Money
from kassa.domain.orders import OrderStatus
from kassa.errors import AuthenticationFailed, Conflict, InvalidRequest, KassaError, NotFound
from kassa.rails.base import MethodSpec, QuoteRequest
from kassa.rails.registry import get_rail
from kassa.runtime import Runtime
from kassa.services.api_keys import Principal
from kassa.services.webhooks import EndpointChanges

router = APIRouter(include_in_schema=False)
Handler = Callable[..., Awaitable[Response]]


def route(method: str, path: str) -> Callable[[Handler], Handler]:
    """A route at `path` and at `path/` (BTCPay's clients use both)."""

    def register(handler: Handler) -> Handler:
        router.add_api_route(path, handler, methods=[method])
        router.add_api_route(path + "/", handler, methods=[method])
        return handler

    return register


def _json(body: Any, status: int = 200) -> Response:
    return Response(
        wire.dumps(body), status, media_type="application/json", headers={"Cache-Control": "no-store"}
    )


def _error(exc: GreenfieldError) -> Response:
    response = _json(exc.body, exc.status)
    response.headers.update(exc.headers)
    return response


def _translate(exc: KassaError, what: str = "invoice") -> GreenfieldError:
    """A Kassa service's refusal in Greenfield's shape."""
    if isinstance(exc, NotFound):
        return not_found(what)
    if isinstance(exc, InvalidRequest):
        return invalid(exc.param or "", exc.message)
    if isinstance(exc, AuthenticationFailed):
        return problem(401, "unauthenticated", exc.message)
    if exc.status == 403:
        return problem(403, "missing-permission", exc.message)
    if isinstance(exc, Conflict):
        return problem(400, exc.code.replace("_", "-"), exc.message)
    return problem(exc.status, exc.code.replace("_", "-"), exc.message)


def handles(what: str = "invoice") -> Callable[[Handler], Handler]:
    """Answer GreenfieldErrors and Kassa's own refusals in Greenfield's shape."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def run(*args: Any, **kwargs: Any) -> Response:
            try:
                return await handler(*args, **kwargs)
            except GreenfieldError as exc:
                return _error(exc)
            except KassaError as exc:
                return _error(_translate(exc, what))

        return run

    return wrap


# ----- who is asking -----------------------------------------------------------------------------


async def _principal(request: Request) -> Principal:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() not in ("token", "bearer") or not key.strip():
        raise problem(
            401,
            "unauthenticated",
            "Authentication is required for accessing this endpoint: send 'Authorization: token <API key>'",
        )
    try:
        principal = await runtime_of(request).keys.authenticate(key.strip())
    except AuthenticationFailed:
        raise problem(401, "unauthenticated", "The API key is not valid (or was revoked)") from None
    if principal.merchant_pk is None:
        raise problem(403, "missing-permission", "An admin credential has no store; use a merchant's API key")
    return principal


def _require(principal: Principal, permission: str) -> None:
    if wire.PERMISSIONS[permission] not in principal.scopes:
        raise problem(
            403,
            "missing-permission",
            f'Insufficient API Permissions. Please use an API key with permission "{permission}".',
            missingPermission=permission,
        )


async def _store(request: Request, store_id: str, permission: str) -> tuple[Principal, int]:
    principal = await _principal(request)
    if store_id != principal.merchant_id:
        raise problem(
            403,
            "missing-permission",
            f"This API key has no access to store {store_id[:40]!r}",
            missingPermission=permission,
        )
    _require(principal, permission)
    assert principal.merchant_pk is not None
    return principal, principal.merchant_pk


VIEW = "btcpay.store.canviewinvoices"
CREATE = "btcpay.store.cancreateinvoice"
MODIFY = "btcpay.store.canmodifyinvoices"
REFUND = "btcpay.store.cancreatenonapprovedpullpayments"
SETTINGS = "btcpay.store.canviewstoresettings"
WEBHOOKS = "btcpay.store.webhooks.canmodifywebhooks"

# ----- server, key, stores ---------------------------------------------------------------------


@route("GET", "/api/v1/server/info")
@handles()
async def server_info(request: Request) -> Response:
    principal = await _principal(request)
    assert principal.merchant_pk is not None
    methods = await _offered(runtime_of(request), principal.merchant_pk)
    return _json(
        {
            "version": wire.VERSION,
            "onion": "",
            "supportedPaymentMethods": methods,
            "fullySynched": True,
            "syncStatus": [],
        }
    )


@route("GET", "/api/v1/api-keys/current")
@handles()
async def current_key(request: Request) -> Response:
    principal = await _principal(request)
    assert principal.merchant_id is not None
    return _json(
        {
            "apiKey": principal.key_id,
            "label": "Kassa API key",
            "permissions": wire.permissions(principal.scopes, principal.merchant_id),
        }
    )


@route("GET", "/api/v1/stores")
@handles("store")
async def list_stores(request: Request) -> Response:
    principal = await _principal(request)
    _require(principal, SETTINGS)
    assert principal.merchant_id is not None
    merchant = await runtime_of(request).merchants.get(principal.merchant_id)
    return _json([wire.store(merchant)])


@route("GET", "/api/v1/stores/{store_id}")
@handles("store")
async def get_store(request: Request, store_id: str) -> Response:
    await _store(request, store_id, SETTINGS)
    return _json(wire.store(await runtime_of(request).merchants.get(store_id)))


@route("GET", "/api/v1/stores/{store_id}/payment-methods")
@handles("store")
async def store_payment_methods(request: Request, store_id: str) -> Response:
    _p, merchant_pk = await _store(request, store_id, SETTINGS)
    only_enabled = _flag(request, "onlyEnabled", False) or _flag(request, "enabled", False)
    runtime = runtime_of(request)
    async with runtime.db.read() as conn:
        configs = await runtime.payment_methods.configs(conn, merchant_pk, enabled_only=False)
        enabled = {c.rail for c in await runtime.payment_methods.configs(conn, merchant_pk)}
    methods = [
        {"paymentMethodId": spec.method, "enabled": config.rail in enabled, "currency": spec.currency}
        for config in configs
        for spec in get_rail(config.rail).methods(config)
        if config.rail in enabled or not only_enabled
    ]
    return _json(methods)


def _flag(request: Request, name: str, default: bool) -> bool:
    value = request.query_params.get(name)
    if value is None:
        return default
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise invalid(name, f"{name} must be true or false")


# ----- invoices ----------------------------------------------------------------------------------


async def _offered(runtime: Runtime, merchant_pk: int) -> list[str]:
    async with runtime.db.read() as conn:
        configs = await runtime.payment_methods.configs(conn, merchant_pk)
    return [spec.method for config in configs for spec in get_rail(config.rail).methods(config)]


@route("POST", "/api/v1/stores/{store_id}/invoices")
@handles()
async def create_invoice(request: Request, store_id: str) -> Response:
    _p, merchant_pk = await _store(request, store_id, CREATE)
    runtime = runtime_of(request)
    new = wire.invoice_request(await request.body(), await _offered(runtime, merchant_pk))
    result = await runtime.orders.create(merchant_pk, new)
    return _json(wire.invoice(result.order, store_id))


@route("GET", "/api/v1/stores/{store_id}/invoices")
@handles()
async def list_invoices(request: Request, store_id: str) -> Response:
    _p, merchant_pk = await _store(request, store_id, VIEW)
    params = request.query_params
    skip = _int(params.get("skip"), "skip", 0, 10**9) or 0
    take = _int(params.get("take"), "take", 1, 1000) or 100
    start, end = _date(params.get("startDate"), "startDate"), _date(params.get("endDate"), "endDate")
    if start and end and start > end:
        raise GreenfieldError(
            422,
            [
                {"path": "startDate", "message": "startDate should not be above endDate"},
                {"path": "endDate", "message": "endDate should not be below startDate"},
            ],
        )
    order_ids = [v for v in params.getlist("orderId") if v]
    orders = await runtime_of(request).orders.search(
        merchant_pk,
        statuses=wire.statuses(v for v in params.getlist("status") if v),
        shop_order_ids=order_ids,
        created_gte=start,
        created_lte=end,
        include_archived=_flag(request, "includeArchived", False),
        offset=skip,
        limit=take,
    )
    return _json([wire.invoice(o, store_id) for o in orders])


def _int(value: str | None, name: str, low: int, high: int) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise invalid(name, f"{name} must be a whole number") from None
    if not low <= number <= high:
        raise invalid(name, f"{name} must be {low} to {high}")
    return number


def _date(value: str | None, name: str) -> datetime | None:
    seconds = _int(value, name, 0, 253402300799)
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


async def _invoice(
    request: Request, store_id: str, invoice_id: str, permission: str
) -> tuple[int, dict[str, Any]]:
    _p, merchant_pk = await _store(request, store_id, permission)
    if not invoice_id.startswith("ord_") or len(invoice_id) > 64:
        raise not_found("invoice")
    return merchant_pk, await runtime_of(request).orders.get(merchant_pk, invoice_id)


@route("GET", "/api/v1/stores/{store_id}/invoices/{invoice_id}")
@handles()
async def get_invoice(request: Request, store_id: str, invoice_id: str) -> Response:
    _pk, order = await _invoice(request, store_id, invoice_id, VIEW)
    return _json(wire.invoice(order, store_id))


@route("GET", "/api/v1/invoices/{invoice_id}")
@handles()
async def get_invoice_of_key(request: Request, invoice_id: str) -> Response:
    """The invoice by id alone, within the key's store."""
    principal = await _principal(request)
    assert principal.merchant_id is not None
    _pk, order = await _invoice(request, principal.merchant_id, invoice_id, VIEW)
    return _json(wire.invoice(order, principal.merchant_id))


@route("PUT", "/api/v1/stores/{store_id}/invoices/{invoice_id}")
@handles()
async def update_invoice(request: Request, store_id: str, invoice_id: str) -> Response:
    merchant_pk, order = await _invoice(request, store_id, invoice_id, MODIFY)
    body = wire.parse_body(await request.body(), exact=False)
    if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
        raise invalid("metadata", "metadata is required and must be a JSON object")
    order = await runtime_of(request).orders.set_metadata(merchant_pk, order["id"], body["metadata"])
    return _json(wire.invoice(order, store_id))


@route("DELETE", "/api/v1/stores/{store_id}/invoices/{invoice_id}")
@handles()
async def archive_invoice(request: Request, store_id: str, invoice_id: str) -> Response:
    merchant_pk, order = await _invoice(request, store_id, invoice_id, MODIFY)
    await runtime_of(request).orders.set_archived(merchant_pk, order["id"], True)
    return Response(status_code=200)


@route("POST", "/api/v1/stores/{store_id}/invoices/{invoice_id}/unarchive")
@handles()
async def unarchive_invoice(request: Request, store_id: str, invoice_id: str) -> Response:
    merchant_pk, order = await _invoice(request, store_id, invoice_id, MODIFY)
    if not order["archived"]:
        raise problem(400, "already-unarchived", "Invoice is already unarchived")
    order = await runtime_of(request).orders.set_archived(merchant_pk, order["id"], False)
    return _json(wire.invoice(order, store_id))


MARKS = {"settled": OrderStatus.PAID, "invalid": OrderStatus.INVALID}


@route("POST", "/api/v1/stores/{store_id}/invoices/{invoice_id}/status")
@handles()
async def mark_invoice(request: Request, store_id: str, invoice_id: str) -> Response:
    merchant_pk, order = await _invoice(request, store_id, invoice_id, MODIFY)
    body = wire.parse_body(await request.body())
    value = body.get("status") if isinstance(body, dict) else None
    to = MARKS.get(value.lower()) if isinstance(value, str) else None
    if to is None:
        raise invalid("Status", "Status can only be Invalid or Settled")
    try:
        order = await runtime_of(request).orders.mark(merchant_pk, order["id"], to)
    except Conflict as exc:
        raise invalid(
            "Status",
            f"Status can only be marked to invalid or settled within certain conditions: {exc.message}",
        ) from None
    return _json(wire.invoice(order, store_id))


@route("GET", "/api/v1/stores/{store_id}/invoices/{invoice_id}/payment-methods")
@handles()
async def invoice_payment_methods(request: Request, store_id: str, invoice_id: str) -> Response:
    _pk, order = await _invoice(request, store_id, invoice_id, VIEW)
    only = _flag(request, "onlyAccountedPayments", True)
    if "accounted" in request.query_params:  # btcpay-python-sdk's spelling
        only = _flag(request, "accounted", True)
    if _flag(request, "includeSensitive", False):
        raise problem(
            403,
            "missing-permission",
            "Kassa never shows a payment method's keys through this API",
            missingPermission="btcpay.store.canmodifystoresettings",
        )
    return _json(wire.payment_methods(order, only))


@route("POST", "/api/v1/stores/{store_id}/invoices/{invoice_id}/payment-methods/{method}/activate")
@handles()
async def activate_method(request: Request, store_id: str, invoice_id: str, method: str) -> Response:
    merchant_pk, order = await _invoice(request, store_id, invoice_id, VIEW)
    name = wire.method_name(method, [q["method"] for q in order["payment_methods"]])
    if name is None:
        raise invalid("paymentMethodId", "Invalid payment method")
    quote = next(q for q in order["payment_methods"] if q["method"] == name)
    if quote["address"] is None:
        await runtime_of(request).orders.choose_method(merchant_pk, order["id"], name)
    return Response(status_code=200)


@route("POST", "/api/v1/stores/{store_id}/invoices/{invoice_id}/refund")
@handles()
async def refund_invoice(request: Request, store_id: str, invoice_id: str) -> Response:
    merchant_pk, order = await _invoice(request, store_id, invoice_id, REFUND)
    body = wire.parse_body(await request.body())
    if not isinstance(body, dict):
        raise invalid("", "The body must be a JSON object")
    runtime = runtime_of(request)
    amount, currency = await _refund_amount(runtime, order, body)
    given_name, given_description = body.get("name"), body.get("description")
    name = given_name if isinstance(given_name, str) and given_name else f"Refund {order['id']}"
    description = given_description if isinstance(given_description, str) else ""
    reason = (description or name)[:500]
    try:
        refund = await runtime.refunds.create(
            merchant_pk, order["id"], amount, currency=currency, reason=reason
        )
    except Conflict as exc:
        raise problem(400, "non-refundable", f"Cannot refund this invoice: {exc.message}") from None
    return _json(
        {
            "id": refund["id"],
            "name": name,
            "description": description,
            "currency": refund["currency"],
            "amount": Money(refund["amount"], refund["currency"]).to_decimal_string(),
            "period": None,
            "BOLT11Expiration": runtime.settings.refund_link_days,
            "archived": False,
            "viewLink": refund["destination_url"] or order["checkout_url"],
            "autoApproveClaims": bool(refund["approved"]),
            "startsAt": unix(refund["created_at"]),
            "expiresAt": None,
        }
    )


VARIANTS = ("RateThen", "CurrentRate", "Fiat", "OverpaidAmount", "Custom")


async def _refund_amount(runtime: Runtime, order: dict[str, Any], body: dict[str, Any]) -> tuple[int, str]:
    """What the refund body asks to send back, in the minor units of the coin the order was paid in."""
    chosen = next((q for q in order["payment_methods"] if q["method"] == order["method"]), None)
    if chosen is None or not order["amount_confirmed"]:
        raise problem(400, "non-refundable", "Cannot refund this invoice: nothing final was paid")
    paid_in = chosen["currency"]
    method = body.get("payoutMethodId", body.get("paymentMethod"))
    if method is not None and (
        not isinstance(method, str) or wire.method_name(method, [chosen["method"]]) is None
    ):
        raise invalid(
            "payoutMethodId",
            f"Please select one of the payment methods which were available for the original invoice "
            f"(Kassa refunds in the one it was paid with: {chosen['method']})",
        )
    variant = body.get("refundVariant")
    if variant not in VARIANTS:
        raise invalid("refundVariant", f"`refundVariant` is mandatory: one of {', '.join(VARIANTS)}")
    if variant != "Custom" and (
        body.get("customAmount") is not None or body.get("customCurrency") is not None
    ):
        raise invalid("customAmount", "customAmount and customCurrency go with refundVariant Custom only")
    confirmed = int(order["amount_confirmed"])
    if variant == "RateThen":
        amount = confirmed
    elif variant == "OverpaidAmount":
        if wire.status_of(order)[1] != "PaidOver":
            raise invalid("refundVariant", "Invoice is not overpaid")
        amount = confirmed - int(order["amount_due"])
    elif variant in ("CurrentRate", "Fiat"):
        amount = await _at_current_rate(runtime, order, chosen, int(order["amount"]))
    else:
        currency = body.get("customCurrency")
        if not isinstance(currency, str) or currency.upper() not in (paid_in, order["currency"]):
            raise invalid(
                "customCurrency",
                f"customCurrency must be {paid_in} (paid in) or {order['currency']} (the invoice's)",
            )
        custom = wire.minor_units(body.get("customAmount"), currency.upper(), "customAmount")
        if custom <= 0:
            raise invalid("customAmount", "customAmount must be above 0")
        amount = (
            custom if currency.upper() == paid_in else await _at_current_rate(runtime, order, chosen, custom)
        )
    percent = body.get("subtractPercentage")
    if percent is not None:
        try:
            cut = Decimal(str(percent))
        except ArithmeticError:
            raise invalid("subtractPercentage", "subtractPercentage must be a number") from None
        if not cut.is_finite() or not 0 <= cut <= 100:
            raise invalid("subtractPercentage", "subtractPercentage must be between 0 and 100")
        amount = int((Decimal(amount) * (100 - cut) / 100).to_integral_value(rounding=ROUND_DOWN))
    if amount <= 0:
        raise invalid("refundVariant", "That leaves nothing to refund")
    return amount, paid_in


async def _at_current_rate(
    runtime: Runtime, order: dict[str, Any], chosen: dict[str, Any], amount: int
) -> int:
    """`amount` of the invoice's currency in the paid coin at today's rate."""
    if chosen["currency"] == order["currency"]:
        return amount
    now = runtime.clock.now()
    request = QuoteRequest(order["id"], amount, order["currency"], now + timedelta(minutes=1))
    quote = await runtime.orders.quoter.quote(request, MethodSpec(chosen["method"], chosen["currency"]), now)
    return quote.amount


# ----- webhooks ----------------------------------------------------------------------------------


def _webhook_request(body: Any, creating: bool) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid("", "The body must be a JSON object")
    url = body.get("url")
    if (creating or url is not None) and (not isinstance(url, str) or not url):
        raise invalid("url", "Invalid Url")
    secret = body.get("secret")
    if secret is not None and (not isinstance(secret, str) or len(secret) > 500):
        raise invalid("secret", "secret must be a string of at most 500 characters")
    events = body.get("authorizedEvents")
    everything: Any = True
    specific: Any = []
    if events is not None:
        if not isinstance(events, dict):
            raise invalid("authorizedEvents", "authorizedEvents must be an object")
        everything = events.get("everything", True)
        specific = events.get("specificEvents") or []
        if not isinstance(everything, bool):
            raise invalid("authorizedEvents.everything", "everything must be true or false")
        if not isinstance(specific, list) or not all(isinstance(e, str) for e in specific):
            raise invalid("authorizedEvents.specificEvents", "specificEvents must be a list of event names")
        unknown = [e for e in specific if e not in EVENTS]
        if unknown and not everything:
            raise invalid(
                "authorizedEvents.specificEvents",
                f"Kassa sends no {', '.join(unknown)[:200]}; it sends {', '.join(EVENTS)}",
            )
        if not everything and not specific:
            raise invalid("authorizedEvents.specificEvents", "Give at least one event, or everything: true")
    enabled = body.get("enabled", True)
    redeliver = body.get("automaticRedelivery", True)
    if not isinstance(enabled, bool):
        raise invalid("enabled", "enabled must be true or false")
    if not isinstance(redeliver, bool):
        raise invalid("automaticRedelivery", "automaticRedelivery must be true or false")
    return {
        "url": url,
        "secret": secret,
        "event_types": kassa_types(everything, specific),
        "enabled": enabled,
        "options": {"automaticRedelivery": redeliver, "everything": everything},
    }


async def _webhook(runtime: Runtime, merchant_pk: int, webhook_id: str) -> dict[str, Any]:
    try:
        endpoint = await runtime.webhooks.get_endpoint(merchant_pk, webhook_id)
    except NotFound:
        raise not_found("webhook") from None
    if endpoint["format"] != "greenfield":
        raise not_found("webhook")
    return endpoint


@route("GET", "/api/v1/stores/{store_id}/webhooks")
@handles("webhook")
async def list_webhooks(request: Request, store_id: str) -> Response:
    _p, merchant_pk = await _store(request, store_id, WEBHOOKS)
    endpoints = await runtime_of(request).webhooks.list_endpoints(merchant_pk, format="greenfield")
    return _json([wire.webhook(e) for e in endpoints])


@route("POST", "/api/v1/stores/{store_id}/webhooks")
@handles("webhook")
async def create_webhook(request: Request, store_id: str) -> Response:
    _p, merchant_pk = await _store(request, store_id, WEBHOOKS)
    given = _webhook_request(wire.parse_body(await request.body()), creating=True)
    secret = given["secret"] or _new_secret()
    endpoint = await runtime_of(request).webhooks.create_endpoint(
        merchant_pk,
        given["url"],
        given["event_types"],
        "Greenfield webhook",
        given["enabled"],
        format="greenfield",
        secret=secret,
        options=given["options"],
    )
    return _json(wire.webhook(endpoint, secret))


def _new_secret() -> str:
    return secrets.token_urlsafe(24)


@route("GET", "/api/v1/stores/{store_id}/webhooks/{webhook_id}")
@handles("webhook")
async def get_webhook(request: Request, store_id: str, webhook_id: str) -> Response:
    _p, merchant_pk = await _store(request, store_id, WEBHOOKS)
    return _json(wire.webhook(await _webhook(runtime_of(request), merchant_pk, webhook_id)))


@route("PUT", "/api/v1/stores/{store_id}/webhooks/{webhook_id}")
@handles("webhook")
async def update_webhook(request: Request, store_id: str, webhook_id: str) -> Response:
    _p, merchant_pk = await _store(request, store_id, WEBHOOKS)
    runtime = runtime_of(request)
    await _webhook(runtime, merchant_pk, webhook_id)
    given = _webhook_request(wire.parse_body(await request.body()), creating=False)
    endpoint = await runtime.webhooks.update_endpoint(
        merchant_pk,
        webhook_id,
        EndpointChanges(
            url=given["url"],
            event_types=given["event_types"],
            enabled=given["enabled"],
            secret=given["secret"],
            options=given["options"],
        ),
    )
    return _json(wire.webhook(endpoint))


@route("DELETE", "/api/v1/stores/{store_id}/webhooks/{webhook_id}")
@handles("webhook")
async def delete_webhook(request: Request, store_id: str, webhook_id: str) -> Response:
    _p, merchant_pk = await _store(request, store_id, WEBHOOKS)
    runtime = runtime_of(request)
    await _webhook(runtime, merchant_pk, webhook_id)
    await runtime.webhooks.delete_endpoint(merchant_pk, webhook_id)
    return Response(status_code=200)


@route("GET", "/api/v1/stores/{store_id}/webhooks/{webhook_id}/deliveries")
@handles("webhook")
async def list_deliveries(request: Request, store_id: str, webhook_id: str) -> Response:
    _p, merchant_pk = await _store(request, store_id, WEBHOOKS)
    runtime = runtime_of(request)
    await _webhook(runtime, merchant_pk, webhook_id)
    count = _int(request.query_params.get("count"), "count", 1, 100) or 100
    page, _more = await runtime.webhooks.deliveries(merchant_pk, webhook_id, limit=count, starting_after=None)
    return _json([wire.delivery(d) for d in page])


@route("GET", "/api/v1/stores/{store_id}/webhooks/{webhook_id}/deliveries/{delivery_id}")
@handles("webhookdelivery")
async def get_delivery(request: Request, store_id: str, webhook_id: str, delivery_id: str) -> Response:
    _p, merchant_pk = await _store(request, store_id, WEBHOOKS)
    runtime = runtime_of(request)
    await _webhook(runtime, merchant_pk, webhook_id)
    return _json(wire.delivery(await runtime.webhooks.delivery(merchant_pk, webhook_id, delivery_id)))


@route("POST", "/api/v1/stores/{store_id}/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver")
@handles("webhookdelivery")
async def redeliver(request: Request, store_id: str, webhook_id: str, delivery_id: str) -> Response:
    _p, merchant_pk = await _store(request, store_id, WEBHOOKS)
    runtime = runtime_of(request)
    await _webhook(runtime, merchant_pk, webhook_id)
    found = await runtime.webhooks.delivery(merchant_pk, webhook_id, delivery_id)
    created = await runtime.webhooks.redeliver(merchant_pk, found["event"], webhook_id)
    return _json(created[0]["id"])


# ----- the customer's link -----------------------------------------------------------------------


@router.get("/i/{invoice_id}", include_in_schema=False)
async def invoice_link(invoice_id: str) -> Response:
    """BTCPay's short checkout link: Kassa's checkout page of the order."""
    if not invoice_id.startswith("ord_") or len(invoice_id) > 64 or not invoice_id.isascii():
        return Response("no such invoice", 404, media_type="text/plain")
    return RedirectResponse(f"/pay/{invoice_id}", status_code=302)
