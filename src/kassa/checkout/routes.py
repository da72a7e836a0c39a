"""The hosted checkout page (`/pay/{order id}`): server-rendered, works without JavaScript.

Routes (none in the OpenAPI schema):

- `GET  /pay/{id}`         the page; `GET /pay/{id}/panel` is its live part alone (for the script)
- `GET  /pay/{id}/status`  public JSON status, long-polled with `version` and `timeout_ms`
- `POST /pay/{id}/method`  choose a payment method (form, redirects back)
- `POST /pay/{id}/cancel`  cancel the open order, then go to its `cancel_url`
- `POST /pay/{id}/test`    test orders only: pretend payments and blocks (`action=full|part|over|confirm`)
- `POST /pay/{id}/gateway` a gateway rail's method (a card gateway): a fresh signed form to its page
- `POST /pay/{id}/return`  where the gateway sends the payer back: its result is taken like its
                           notification (verified by the rail), then back to the page
- `GET  /pay/static/{name}` the stylesheet and script, content-hashed

Forms answer with a 303 redirect (post/redirect/get); when the script sends them with
`Accept: application/json` they answer with JSON instead and the page updates through the status.

The page speaks the language picked on it (`?lang=`, kept by its links and forms), else the order's
`locale`, else the browser's `Accept-Language`, else English (kassa.i18n, docs/i18n.md).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from kassa.api.auth import runtime_of
from kassa.api.longpoll import wait_for_change
from kassa.checkout.assets import ASSETS, asset_url
from kassa.checkout.present import TEST_ACTIONS, Checkout, amount_for, present, status_payload
from kassa.checkout.security import page_headers, same_origin_post
from kassa.checkout.templating import base_path, environment
from kassa.errors import KassaError, NotFound
from kassa.i18n import N_, Language, match, negotiate
from kassa.services.gateways import GatewayUrls, gateway_notify_url
from kassa.services.merchants import Merchant

router = APIRouter(include_in_schema=False)
log = logging.getLogger("kassa.checkout")

ORDER_ID = re.compile(r"^[A-Za-z0-9_]{1,64}$")
MAX_FORM_BYTES = 4096
STATUS_WAIT_MAX_MS = 60_000
NOTICES = {
    "not_open": N_("This order is no longer open, so it cannot be canceled."),
    "method": N_("That payment method could not be chosen; the order may have changed."),
    "nothing_due": N_("Nothing is left to pay."),
    "no_pending": N_("There is no pending test payment to confirm."),
    "rejected": N_("That did not work; the page shows the order's current state."),
    "bad_form": N_("That form could not be read. Please try again."),
}


def _picked(request: Request) -> str | None:
    """The language chosen with the picker (`?lang=`), when it is one Kassa has."""
    return match(request.query_params.get("lang"))


def _language(request: Request, order: dict[str, Any] | None = None) -> Language:
    locale = order["locale"] if order else None
    return negotiate(request.query_params.get("lang"), locale, request.headers.get("accept-language"))


def _urls(prefix: str, order_id: str, lang: Language, picked: str | None) -> dict[str, str]:
    """The page's links and form targets, keeping a picked language; the script's two always name
    the page's language, so what it swaps in reads the same."""
    page = f"{prefix}/pay/{order_id}"
    keep = f"?lang={picked}" if picked else ""
    return {
        "page": page + keep,
        "picker": page,
        "panel": f"{page}/panel?lang={lang.code}",
        "status": f"{page}/status?lang={lang.code}",
        "method": f"{page}/method{keep}",
        "cancel": f"{page}/cancel{keep}",
        "test": f"{page}/test{keep}",
        "gateway": f"{page}/gateway{keep}",
        "css": prefix + asset_url("checkout.css"),
        "js": prefix + asset_url("checkout.js"),
    }


def _html(
    template: str,
    lang: Language,
    status: int = 200,
    form_targets: tuple[str | None, ...] = (),
    **context: Any,
) -> Response:
    body = environment("kassa.checkout", lang.code).get_template(template).render(**context)
    return HTMLResponse(body, status_code=status, headers=page_headers(form_targets))


def _json(body: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        media_type="application/json",
        headers=page_headers(),
    )


def _message_page(request: Request, status: int, title: str, text: str) -> Response:
    """A page with one message; `title` and `text` are msgids, shown in the request's language."""
    lang = _language(request)
    urls = {"css": base_path(request) + asset_url("checkout.css")}
    return _html("message.html", lang, status, title=lang.gettext(title), text=lang.gettext(text), urls=urls)


def _not_found(request: Request) -> Response:
    if _wants_json(request):
        return _json(NotFound("no such order", param="id").body(), 404)
    return _message_page(
        request,
        404,
        N_("Order not found"),
        N_("There is no order at this address. Check the link the shop gave you, or go back to the shop."),
    )


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


async def _load(request: Request, order_id: str) -> tuple[dict[str, Any], Merchant] | None:
    if not ORDER_ID.match(order_id):
        return None
    try:
        return await runtime_of(request).orders.get_public(order_id)
    except NotFound:
        return None


def _present(request: Request, order: dict[str, Any], merchant: Merchant, lang: Language) -> Checkout:
    return present(order, merchant.name, runtime_of(request).clock.now(), lang)


# ----- pages --------------------------------------------------------------------------------------


@router.get("/pay/static/{name}")
async def static_asset(request: Request, name: str) -> Response:
    return ASSETS.response(request, name)


@router.get("/pay/{order_id}")
async def checkout_page(request: Request, order_id: str, notice: str | None = None) -> Response:
    loaded = await _load(request, order_id)
    if loaded is None:
        return _not_found(request)
    order, merchant = loaded
    lang, picked = _language(request, order), _picked(request)
    co = _present(request, order, merchant, lang)
    waiting = (
        await runtime_of(request).refunds.waiting_for_address(order_id) if order["amount_confirmed"] else []
    )
    keep = f"?lang={picked}" if picked else ""
    return _html(
        "order.html",
        lang,
        form_targets=(co.cancel_url,),
        co=co,
        urls=_urls(base_path(request), order_id, lang, picked),
        picker_url=f"{base_path(request)}/pay/{order_id}",
        notice=lang.gettext(NOTICES[notice]) if notice in NOTICES else None,
        refunds=[(lang.money(r["amount"], r["currency"]), r["destination_url"] + keep) for r in waiting],
    )


@router.get("/pay/{order_id}/panel")
async def checkout_panel(request: Request, order_id: str) -> Response:
    """The live part of the page alone; the script swaps it in when the status changes."""
    loaded = await _load(request, order_id)
    if loaded is None:
        return _not_found(request)
    order, merchant = loaded
    lang, picked = _language(request, order), _picked(request)
    co = _present(request, order, merchant, lang)
    urls = _urls(base_path(request), order_id, lang, picked)
    return _html("_panel.html", lang, form_targets=(co.cancel_url,), co=co, urls=urls)


@router.get("/pay/{order_id}/status")
async def checkout_status(
    request: Request,
    order_id: str,
    version: Annotated[int | None, Query(ge=0)] = None,
    timeout_ms: Annotated[int, Query(ge=0, le=600_000)] = 0,
) -> Response:
    """The order's public status; with `version` equal to the current one, waits for a change."""
    runtime = runtime_of(request)
    loaded = await _load(request, order_id)
    if loaded is None:
        return _json(NotFound("no such order", param="id").body(), 404)
    order, merchant = loaded
    wait_ms = min(timeout_ms, runtime.settings.long_poll_max_ms, STATUS_WAIT_MAX_MS)
    if version is not None and version == order["version"] and wait_ms > 0:
        with runtime.hub.subscription(order_id, version) as changed:
            # Re-check after subscribing, so a change in between is not missed.
            if await runtime.orders.version(order_id) == version:
                await wait_for_change(request, changed, wait_ms / 1000)
            loaded = await _load(request, order_id)
        if loaded is None:
            return _json(NotFound("no such order", param="id").body(), 404)
        order, merchant = loaded
    return _json(status_payload(order, _present(request, order, merchant, _language(request, order))))


# ----- forms --------------------------------------------------------------------------------------


async def _read_form(request: Request) -> dict[str, str] | None:
    """A small urlencoded form, or None when it is too big or unreadable."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_FORM_BYTES):
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        return dict(parse_qsl(body.decode("utf-8"), max_num_fields=10))
    except (UnicodeDecodeError, ValueError):
        return None


def _back(request: Request, order_id: str, notice: str | None = None, message: str | None = None) -> Response:
    """Answer a form: PRG redirect to the page (with a notice code and the picked language), or JSON
    for the script."""
    if _wants_json(request):
        body: dict[str, Any] = {"ok": notice is None}
        if notice is not None:
            body["notice"] = notice
            body["message"] = message or _language(request).gettext(NOTICES[notice])
        return _json(body, 200 if notice is None else 409)
    picked = _picked(request)
    query = "&".join(([f"lang={picked}"] if picked else []) + ([f"notice={notice}"] if notice else []))
    url = f"{base_path(request)}/pay/{order_id}" + (f"?{query}" if query else "")
    return RedirectResponse(url, 303, headers=page_headers())


def _cross_site(request: Request) -> Response | None:
    settings = runtime_of(request).settings
    if same_origin_post(request.headers, request.url.scheme, settings.base_url):
        return None
    refused = N_(
        "This form was sent from another site, so it was not accepted. Open the payment page and try again."
    )
    if _wants_json(request):
        message = _language(request).gettext(refused)
        return _json({"ok": False, "notice": "cross_site", "message": message}, 403)
    return _message_page(request, 403, N_("Form refused"), refused)


async def _posted(request: Request, order_id: str) -> tuple[dict[str, Any], Merchant] | Response:
    """The order a page's form was posted for, or the answer to give (404, or 403 cross-site)."""
    loaded = await _load(request, order_id)
    if loaded is None:
        return _not_found(request)
    refused = _cross_site(request)
    return refused if refused is not None else loaded


@router.post("/pay/{order_id}/method")
async def choose_method(request: Request, order_id: str) -> Response:
    target = await _posted(request, order_id)
    if isinstance(target, Response):
        return target
    form = await _read_form(request)
    if form is None or not form.get("method"):
        return _back(request, order_id, "bad_form")
    try:
        await runtime_of(request).orders.choose_method(None, order_id, form["method"][:40])
    except KassaError:
        return _back(request, order_id, "method")
    return _back(request, order_id)


@router.post("/pay/{order_id}/cancel")
async def cancel_order(request: Request, order_id: str) -> Response:
    target = await _posted(request, order_id)
    if isinstance(target, Response):
        return target
    try:
        order = await runtime_of(request).orders.cancel(None, order_id)
    except NotFound:
        return _not_found(request)
    except KassaError:
        return _back(request, order_id, "not_open")
    cancel_url = order["cancel_url"]
    if order["status"] != "canceled" or not cancel_url:
        return _back(request, order_id)
    if _wants_json(request):
        return _json({"ok": True, "redirect_url": cancel_url})
    return RedirectResponse(cancel_url, 303, headers=page_headers())


@router.post("/pay/{order_id}/test")
async def test_action(request: Request, order_id: str) -> Response:
    """The test panel's buttons. 404 unless the order is a test order."""
    loaded = await _load(request, order_id)
    if loaded is None or not loaded[0]["test"]:
        return _not_found(request)
    order, merchant = loaded
    refused = _cross_site(request)
    if refused is not None:
        return refused
    form = await _read_form(request)
    action = form.get("action") if form else None
    if action not in TEST_ACTIONS:
        return _back(request, order_id, "bad_form")
    runtime = runtime_of(request)
    try:
        if action == "confirm":
            mined = await runtime.test_payments.mine(merchant.pk, 1, order_id=order_id)
            if not mined["payments_updated"]:
                return _back(request, order_id, "no_pending")
        else:
            amount = amount_for(order, action)
            if amount is None:
                return _back(request, order_id, "nothing_due")
            await runtime.test_payments.pay(None, order_id, amount)
    except NotFound:
        return _not_found(request)
    except KassaError as exc:
        return _back(request, order_id, "rejected", exc.message)
    return _back(request, order_id)


@router.post("/pay/{order_id}/gateway")
async def open_gateway(request: Request, order_id: str) -> Response:
    """An auto-submitting form to the gateway's page, signed now (gateways refuse stale forms)."""
    target = await _posted(request, order_id)
    if isinstance(target, Response):
        return target
    order, merchant = target
    runtime = runtime_of(request)
    base = runtime.settings.base_url
    chosen = next((q for q in order["payment_methods"] if q["method"] == order["method"]), None)
    if chosen is None:
        return _back(request, order_id, "method")
    urls = GatewayUrls(
        notify_url=gateway_notify_url(base, chosen["rail"], merchant.id),
        return_url=f"{base}/pay/{order_id}/return",
        back_url=f"{base}/pay/{order_id}",
    )
    lang = _language(request, order)
    try:
        form, _ = await runtime.gateways.form(order_id, urls, language=lang.tag)
    except KassaError as exc:
        return _back(request, order_id, "rejected", exc.message)
    prefix = base_path(request)
    return _html(
        "gateway.html",
        lang,
        form_targets=(form.url,),
        form=form,
        co=_present(request, order, merchant, lang),
        urls={"css": prefix + asset_url("checkout.css"), "js": prefix + asset_url("checkout.js")},
    )


@router.post("/pay/{order_id}/return")
async def gateway_return(request: Request, order_id: str) -> Response:
    """The payer back from the gateway's page (a cross-site POST: the rail verifies what it carries)."""
    loaded = await _load(request, order_id)
    if loaded is None:
        return _not_found(request)
    order, merchant = loaded
    chosen = next((q for q in order["payment_methods"] if q["method"] == order["method"]), None)
    body = await request.body()
    try:
        fields = dict(parse_qsl(body.decode("utf-8"), max_num_fields=20)) if body else {}
    except (UnicodeDecodeError, ValueError):
        fields = {}
    if chosen is not None and fields:
        try:
            await runtime_of(request).gateways.receive(merchant.pk, chosen["rail"], fields)
        except KassaError as exc:  # the notification decides; the page shows the order as it is
            log.info("order %s: the gateway's return was not taken: %s", order_id, exc.message)
    return RedirectResponse(f"{base_path(request)}/pay/{order_id}", 303, headers=page_headers())


@router.get("/pay/{rest:path}")
async def not_found(request: Request, rest: str) -> Response:
    """Anything else under /pay/ is a mangled link: HTML 404 (or back to the page without `/`)."""
    order_id = rest.removesuffix("/")
    if order_id != rest and ORDER_ID.match(order_id):
        return RedirectResponse(f"{base_path(request)}/pay/{order_id}", 308, headers=page_headers())
    return _not_found(request)
