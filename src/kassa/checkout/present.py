"""What the checkout page shows for an order: pure functions of the public order view and the time.

The page, its live-updated panel and the status endpoint all come from `present`, so the words a
customer reads are the same with or without JavaScript. Words, amounts and times are in the
customer's language (a kassa.i18n.Language).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import segno
from markupsafe import Markup

from kassa.i18n import ENGLISH, N_, Language
from kassa.rails.registry import UnknownRail, get_rail

TEST_METHOD = "test"
TEST_ACTIONS = ("full", "part", "over", "confirm")
_TEST_LABELS = {
    "full": N_("Pay in full (%(amount)s)"),
    "part": N_("Pay part (%(amount)s)"),
    "over": N_("Overpay (%(amount)s)"),
}
_LIVE = ("open", "processing")


@dataclass(frozen=True, slots=True)
class CartRow:
    name: str
    quantity: int
    price: str
    total: str


@dataclass(frozen=True, slots=True)
class MethodOption:
    method: str
    label: str
    amount: str


@dataclass(frozen=True, slots=True)
class TestAction:
    action: str
    label: str


@dataclass(frozen=True, slots=True)
class Checkout:
    """Everything the templates need; no field is secret (no email, metadata or callback URL)."""

    order_id: str
    merchant: str
    status: str
    exception: str | None
    state: str  # choose, open, processing, paid, overpaid, paid_late, expired, underpaid, canceled, invalid
    tone: str  # info, success, warning, danger
    title: str
    message: str
    version: int
    test: bool
    description: str | None
    cart: tuple[CartRow, ...]
    amount: str
    method_label: str | None
    pay_amount: str | None
    received: str | None
    remaining: str | None
    address: str | None
    note: str | None  # the rail's line for the payer: the chain to pay on, a warning
    qr_svg: Markup | None
    gateway: bool  # the payer pays on the gateway's page (a card gateway): a button, no address
    methods: tuple[MethodOption, ...]
    seconds_left: int | None
    time_left: str | None
    timer_paused: bool
    time_up: bool
    confirmations: int | None
    confirmations_required: int
    paid_at: str | None
    success_url: str | None
    cancel_url: str | None
    redirect_url: str | None
    can_cancel: bool
    test_actions: tuple[TestAction, ...]


def parse_time(value: str | None) -> datetime | None:
    """The views' ISO strings (`...Z`) back to aware datetimes."""
    if value is None:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def format_duration(seconds: int) -> str:
    """`75` -> `"1:15"`, `3725` -> `"1:02:05"`, `90000` -> `"25:00:00"` (digits only: the same in
    every language)."""
    hours, rest = divmod(max(0, seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def _on_gateway_page(rail: str) -> bool:
    try:
        return bool(get_rail(rail).gateway_page)
    except UnknownRail:  # no longer installed: show what the order holds
        return False


def method_label(method: str, currency: str, lang: Language = ENGLISH) -> str:
    return lang.gettext("Test payment") if method == TEST_METHOD else f"{method.upper()} ({currency})"


def qr_svg(data: str) -> Markup:
    """An inline SVG QR code (scales with its box: viewBox, no fixed size)."""
    code = segno.make(data, error="m", micro=False)
    svg = code.svg_inline(
        omitsize=True, border=4, dark="#000", light="#fff", svgclass="qr-code", lineclass=None
    )
    return Markup(svg)  # noqa: S704 - segno's own output, no user text inside


def state_of(order: Mapping[str, Any]) -> str:
    status: str = order["status"]
    exception = order["exception"]
    if status == "open":
        return "choose" if order["method"] is None and len(order["payment_methods"]) > 1 else "open"
    if status == "paid":
        return exception if exception in ("overpaid", "paid_late") else "paid"
    if status == "expired":
        return "underpaid" if exception == "underpaid" else "expired"
    return status


def _money(lang: Language, amount: int | None, currency: str | None) -> str | None:
    if amount is None or currency is None:
        return None
    return lang.money(amount, currency)


def _test_quote(order: Mapping[str, Any]) -> Mapping[str, Any] | None:
    quotes: Sequence[Mapping[str, Any]] = order["payment_methods"]
    return next((q for q in quotes if q["method"] == TEST_METHOD), None)


def amount_for(order: Mapping[str, Any], action: str) -> int | None:
    """Minor units a test button sends: full = what is still due, part = half of it (at least 1),
    over = what is due plus 10% of the amount due. None when the button makes no sense now."""
    quote = _test_quote(order)
    if quote is None:
        return None
    due: int = order["amount_due"] if order["method"] == TEST_METHOD else quote["amount"]
    remaining: int = max(0, due - order["amount_received"])
    if action == "full":
        return remaining or None
    if action == "part":
        return max(1, remaining // 2) if remaining else None
    if action == "over":
        return remaining + max(1, due // 10)
    return None


def _pending(order: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [p for p in order["payments"] if p["status"] == "pending"]


def _test_actions(order: Mapping[str, Any], state: str, lang: Language) -> tuple[TestAction, ...]:
    if not order["test"] or _test_quote(order) is None:
        return ()
    if state not in ("choose", "open", "processing", "expired", "underpaid"):
        return ()
    quote = _test_quote(order)
    assert quote is not None
    actions: list[TestAction] = []
    for action, label in _TEST_LABELS.items():
        amount = amount_for(order, action)
        if amount is not None:
            actions.append(
                TestAction(action, lang.gettext(label, amount=lang.money(amount, quote["currency"])))
            )
    if _pending(order):
        actions.append(TestAction("confirm", lang.gettext("Confirm (add a block)")))
    return tuple(actions)


def _words(
    lang: Language,
    state: str,
    merchant: str,
    received: str | None,
    pay_amount: str | None,
    remaining: str | None,
) -> tuple[str, str, str]:
    """(tone, title, message) for a state."""
    _ = lang.gettext
    if state == "choose":
        return (
            "info",
            _("Choose how to pay"),
            _("Pick a payment method to get the amount and address for %(merchant)s.", merchant=merchant),
        )
    if state == "open":
        if received and remaining:
            return (
                "warning",
                _("Partly paid"),
                _(
                    "Received %(received)s. Send the remaining %(remaining)s before the timer runs out.",
                    received=received,
                    remaining=remaining,
                ),
            )
        return (
            "info",
            _("Waiting for your payment"),
            _("Send exactly %(amount)s to the address below.", amount=pay_amount),
        )
    if state == "processing":
        return (
            "info",
            _("Payment seen"),
            _("Your payment was seen; waiting for confirmations. Timer paused."),
        )
    if state == "paid":
        return (
            "success",
            _("Paid"),
            _(
                "Thank you. Your payment of %(amount)s to %(merchant)s is confirmed.",
                amount=received,
                merchant=merchant,
            ),
        )
    if state == "overpaid":
        return (
            "success",
            _("Paid (more than due)"),
            _(
                "Your payment is confirmed. You sent %(received)s, more than the %(due)s due; "
                "ask %(merchant)s to refund the difference.",
                received=received,
                due=pay_amount,
                merchant=merchant,
            ),
        )
    if state == "paid_late":
        return (
            "success",
            _("Paid (late)"),
            _("Your payment arrived after the time to pay had run out; it was accepted and is confirmed."),
        )
    if state == "expired":
        return (
            "warning",
            _("Expired"),
            _("The time to pay ran out before a payment arrived. Do not send money for this order."),
        )
    if state == "underpaid":
        return (
            "danger",
            _("Expired: not enough received"),
            _(
                "The time to pay ran out after only %(received)s of %(due)s arrived. "
                "%(merchant)s will refund the money received. Do not send more.",
                received=received,
                due=pay_amount,
                merchant=merchant,
            ),
        )
    if state == "canceled":
        return "warning", _("Canceled"), _("This order was canceled. Do not send money for it.")
    if state == "invalid":
        return (
            "danger",
            _("Payment not confirmed"),
            _(
                "A payment was seen but was not confirmed in time. Contact %(merchant)s about this order.",
                merchant=merchant,
            ),
        )
    return "info", state, ""


def present(order: Mapping[str, Any], merchant: str, now: datetime, lang: Language = ENGLISH) -> Checkout:
    """Build the page model of an order view (from `OrderService.get_public`) at `now`, in `lang`."""
    state = state_of(order)
    currency: str = order["currency"]
    pay_currency: str | None = order["payment_currency"]
    chosen = next((q for q in order["payment_methods"] if q["method"] == order["method"]), None)
    pay_amount = _money(lang, order["amount_due"], pay_currency)
    received_units: int = order["amount_received"]
    received = _money(lang, received_units, pay_currency) if received_units else None
    remaining_units = (order["amount_due"] or 0) - received_units
    remaining = _money(lang, remaining_units, pay_currency) if chosen and remaining_units > 0 else None

    seconds_left: int | None = None
    time_up = False
    expires_at = parse_time(order["expires_at"])
    if order["status"] == "open" and expires_at is not None:
        seconds_left = max(0, int((expires_at - now).total_seconds()))
        time_up = seconds_left == 0
    timer_paused = order["status"] == "processing"

    tone, title, message = _words(lang, state, merchant, received, pay_amount, remaining)
    if time_up:
        tone, title = "warning", lang.gettext("Time is up")
        message = lang.gettext(
            "The time to pay has run out. Do not send money now; this page will show the outcome."
        )

    show_destination = state == "open" and not time_up and chosen is not None
    gateway = chosen is not None and _on_gateway_page(chosen["rail"])
    if gateway and state == "open" and not time_up and not received:
        message = lang.gettext(
            "Pay %(amount)s on the payment page: the button below takes you there.", amount=pay_amount
        )
    address = chosen["address"] if chosen and state in _LIVE and not gateway else None
    pending = _pending(order)
    cart = tuple(
        CartRow(
            line["name"],
            line["quantity"],
            lang.money(line["price"], currency),
            lang.money(line["price"] * line["quantity"], currency),
        )
        for line in order["cart"] or ()
    )
    paid_at = parse_time(order["paid_at"])
    success_url: str | None = order["success_url"]
    if success_url:  # BTCPay's placeholders, for orders made through the Greenfield front
        shop_ref = (order["metadata"] or {}).get("orderId") or order["order_id"] or ""
        success_url = success_url.replace("{InvoiceId}", order["id"]).replace("{OrderId}", str(shop_ref))
    return Checkout(
        order_id=order["id"],
        merchant=merchant,
        status=order["status"],
        exception=order["exception"],
        state=state,
        tone=tone,
        title=title,
        message=message,
        version=order["version"],
        test=bool(order["test"]),
        description=order["description"],
        cart=cart,
        amount=lang.money(order["amount"], currency),
        method_label=method_label(chosen["method"], chosen["currency"], lang) if chosen else None,
        pay_amount=pay_amount,
        received=received,
        remaining=remaining,
        address=address,
        note=chosen.get("note") if chosen and address else None,
        qr_svg=(
            qr_svg(chosen["payment_uri"] or chosen["address"])
            if show_destination and chosen and not gateway
            else None
        ),
        gateway=gateway and show_destination,
        methods=tuple(
            MethodOption(
                q["method"],
                method_label(q["method"], q["currency"], lang),
                lang.money(q["amount"], q["currency"]),
            )
            for q in order["payment_methods"]
        )
        if state == "choose"
        else (),
        seconds_left=seconds_left,
        time_left=format_duration(seconds_left) if seconds_left is not None else None,
        timer_paused=timer_paused,
        time_up=time_up,
        confirmations=min(p["confirmations"] for p in pending) if pending else None,
        confirmations_required=order["confirmations"],
        paid_at=lang.datetime(paid_at) if paid_at else None,
        success_url=success_url,
        cancel_url=order["cancel_url"],
        redirect_url=success_url if state == "paid" and order.get("auto_redirect", True) else None,
        can_cancel=order["status"] == "open",
        test_actions=_test_actions(order, state, lang),
    )


def status_payload(order: Mapping[str, Any], co: Checkout) -> dict[str, Any]:
    """The public JSON status (`GET /pay/{id}/status`): only what the customer may see."""
    return {
        "object": "checkout_status",
        "id": order["id"],
        "status": order["status"],
        "exception": order["exception"],
        "state": co.state,
        "version": order["version"],
        "title": co.title,
        "message": co.message,
        "tone": co.tone,
        "test": co.test,
        "currency": order["currency"],
        "amount": order["amount"],
        "payment_currency": order["payment_currency"],
        "amount_due": order["amount_due"],
        "amount_received": order["amount_received"],
        "amount_confirmed": order["amount_confirmed"],
        "amount_display": co.amount,
        "amount_due_display": co.pay_amount,
        "amount_received_display": co.received,
        "amount_remaining_display": co.remaining,
        "confirmations": co.confirmations,
        "confirmations_required": co.confirmations_required,
        "expires_at": order["expires_at"],
        "seconds_left": co.seconds_left,
        "timer_paused": co.timer_paused,
        "redirect_url": co.redirect_url,
    }
