"""The customer's refund page (`/refund/{token}`): where a payer gives the address a refund goes to.

The token is the signed, expiring link (services/refund_links.py): it is the capability, as an order
id is for the checkout page. Works without JavaScript; the address is checked by the refund's rail.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response

from kassa.api.auth import runtime_of
from kassa.checkout.templating import environment, render_page
from kassa.domain.money import Money
from kassa.errors import KassaError
from kassa.services.refund_links import LinkExpired, LinkInvalid

router = APIRouter(include_in_schema=False)
_env = environment("kassa.checkout")
MAX_FORM_BYTES = 4096
STATES = {
    "pending_destination": "Tell us where to send your refund.",
    "pending": "Your refund is being prepared; the shop sends it.",
    "sent": "Your refund is on its way.",
    "confirmed": "Your refund has arrived.",
    "failed": "Your refund could not be sent; the shop has been told.",
    "canceled": "This refund was canceled by the shop.",
}


def _page(request: Request, status: int, **context: Any) -> Response:
    return render_page(request, _env, "refund.html", status, **context)


def _message(request: Request, status: int, text: str) -> Response:
    return render_page(request, _env, "message.html", status, title="Refund", text=text)


async def _load(request: Request, token: str) -> tuple[dict[str, Any], str] | Response:
    try:
        return await runtime_of(request).refunds.for_link(token[:500])
    except LinkExpired as exc:
        return _message(request, 410, str(exc))
    except LinkInvalid as exc:
        return _message(request, 404, str(exc))


def _context(refund: dict[str, Any], merchant: str, error: str | None = None) -> dict[str, Any]:
    return {
        "merchant": merchant,
        "refund": refund,
        "amount": Money(refund["amount"], refund["currency"]).display(),
        "words": STATES.get(refund["status"], refund["status"]),
        "error": error,
    }


@router.get("/refund/{token}")
async def refund_page(request: Request, token: str) -> Response:
    loaded = await _load(request, token)
    if isinstance(loaded, Response):
        return loaded
    return _page(request, 200, **_context(*loaded))


@router.post("/refund/{token}")
async def give_destination(request: Request, token: str) -> Response:
    loaded = await _load(request, token)
    if isinstance(loaded, Response):
        return loaded
    refund, merchant = loaded
    body = await request.body()
    try:
        form = dict(parse_qsl(body[:MAX_FORM_BYTES].decode("utf-8"), max_num_fields=5))
    except (UnicodeDecodeError, ValueError):
        form = {}
    destination = form.get("destination", "").strip()
    if not destination:
        return _page(request, 400, **_context(refund, merchant, "Enter the address to send the refund to."))
    try:
        after = await runtime_of(request).refunds.set_destination(token[:500], destination)
    except (LinkExpired, LinkInvalid) as exc:
        return _message(request, 410, str(exc))
    except KassaError as exc:
        return _page(request, exc.status, **_context(refund, merchant, exc.message))
    return _page(request, 200, **_context(after, merchant))
