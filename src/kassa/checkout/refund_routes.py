"""The customer's refund page (`/refund/{token}`): where a payer gives the address a refund goes to.

The token is the signed, expiring link (services/refund_links.py): it is the capability, as an order
id is for the checkout page. Works without JavaScript; the address is checked by the refund's rail.
The page speaks the language picked on it (`?lang=`), else the order's, else the browser's.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response

from kassa.api.auth import runtime_of
from kassa.checkout.templating import base_path, environment, render_page
from kassa.errors import KassaError
from kassa.i18n import N_, Language, match, negotiate
from kassa.services.refund_links import LinkExpired, LinkInvalid

router = APIRouter(include_in_schema=False)
MAX_FORM_BYTES = 4096
STATES = {
    "pending_destination": N_("Tell us where to send your refund."),
    "pending": N_("Your refund is being prepared; the shop sends it."),
    "sent": N_("Your refund is on its way."),
    "confirmed": N_("Your refund has arrived."),
    "failed": N_("Your refund could not be sent; the shop has been told."),
    "canceled": N_("This refund was canceled by the shop."),
}
EXPIRED = N_("This refund link has expired: ask the shop for a new one.")
INVALID = N_("This refund link is not valid: check it, or ask the shop for a new one.")


def _language(request: Request, order_locale: str | None = None) -> Language:
    return negotiate(request.query_params.get("lang"), order_locale, request.headers.get("accept-language"))


def _page(request: Request, lang: Language, token: str, status: int, **context: Any) -> Response:
    page = f"{base_path(request)}/refund/{token}"
    picked = match(request.query_params.get("lang"))
    env = environment("kassa.checkout", lang.code)
    urls = {"page": page + (f"?lang={picked}" if picked else "")}
    return render_page(request, env, "refund.html", status, urls=urls, picker_url=page, **context)


def _message(request: Request, status: int, text: str) -> Response:
    lang = _language(request)
    env = environment("kassa.checkout", lang.code)
    return render_page(
        request, env, "message.html", status, title=lang.gettext("Refund"), text=lang.gettext(text)
    )


async def _load(request: Request, token: str) -> tuple[dict[str, Any], str, str | None] | Response:
    try:
        return await runtime_of(request).refunds.for_link(token[:500])
    except LinkExpired:
        return _message(request, 410, EXPIRED)
    except LinkInvalid:
        return _message(request, 404, INVALID)


def _context(
    lang: Language, refund: dict[str, Any], merchant: str, error: str | None = None
) -> dict[str, Any]:
    status: str = refund["status"]
    return {
        "merchant": merchant,
        "refund": refund,
        "amount": lang.money(refund["amount"], refund["currency"]),
        "words": lang.gettext(STATES[status]) if status in STATES else status,
        "error": error,
    }


@router.get("/refund/{token}")
async def refund_page(request: Request, token: str) -> Response:
    loaded = await _load(request, token)
    if isinstance(loaded, Response):
        return loaded
    refund, merchant, locale = loaded
    lang = _language(request, locale)
    return _page(request, lang, token, 200, **_context(lang, refund, merchant))


@router.post("/refund/{token}")
async def give_destination(request: Request, token: str) -> Response:
    loaded = await _load(request, token)
    if isinstance(loaded, Response):
        return loaded
    refund, merchant, locale = loaded
    lang = _language(request, locale)
    body = await request.body()
    try:
        form = dict(parse_qsl(body[:MAX_FORM_BYTES].decode("utf-8"), max_num_fields=5))
    except (UnicodeDecodeError, ValueError):
        form = {}
    destination = form.get("destination", "").strip()
    if not destination:
        error = lang.gettext("Enter the address to send the refund to.")
        return _page(request, lang, token, 400, **_context(lang, refund, merchant, error))
    try:
        after = await runtime_of(request).refunds.set_destination(token[:500], destination)
    except LinkExpired:
        return _message(request, 410, EXPIRED)
    except LinkInvalid:
        return _message(request, 410, INVALID)
    except KassaError as exc:  # the rail's words about the address (English)
        return _page(request, lang, token, exc.status, **_context(lang, refund, merchant, exc.message))
    return _page(request, lang, token, 200, **_context(lang, after, merchant))
