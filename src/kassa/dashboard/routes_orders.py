"""Orders: the list (search, status, dates, cursor pages, CSV), an order's page with its timeline,
and its cancel and refund buttons. Every read and change goes through the services the API uses."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse

from kassa.api.auth import runtime_of
from kassa.checkout.security import page_headers
from kassa.dashboard.auth import PATH
from kassa.dashboard.pages import PageRoute, checked_form, redirect, render, signed_in
from kassa.domain.money import InvalidMoney, Money
from kassa.domain.orders import OrderStatus
from kassa.errors import InvalidRequest
from kassa.runtime import Runtime
from kassa.services.users import SignedIn

router = APIRouter(include_in_schema=False, route_class=PageRoute)  # mounted at PATH (api/app.py)
PAGE_SIZE = 25
CSV_MAX = 100_000  # rows in one export; narrow the dates for more
CSV_COLUMNS = (
    "id", "order_id", "status", "exception", "amount", "currency", "amount_received", "method",
    "payment_currency", "email", "description", "test", "created_at", "paid_at", "closed_at",
)  # fmt: skip


class Filters:
    """The list's filters from the query string; bad values become a clear 400, not a 500."""

    def __init__(self, request: Request) -> None:
        params = request.query_params
        self.q = params.get("q", "").strip()[:200]
        status = params.get("status", "")
        if status and status not in {s.value for s in OrderStatus}:
            raise InvalidRequest(f"status: no such status {status!r}", param="status")
        self.status = status or None
        self.date_from = _day(params.get("from", ""), "from")
        self.date_to = _day(params.get("to", ""), "to")
        self.after = params.get("after") or None

    def query(self, **extra: str) -> dict[str, str]:
        values = {
            "q": self.q,
            "status": self.status or "",
            "from": self.date_from.isoformat() if self.date_from else "",
            "to": self.date_to.isoformat() if self.date_to else "",
            **extra,
        }
        return {k: v for k, v in values.items() if v}

    async def page(
        self, runtime: Runtime, merchant_pk: int, limit: int, after: str | None, *, full: bool = False
    ) -> tuple[list[Any], bool]:
        """One line per order (the list), or `full` views (the CSV, with amounts received)."""
        by_id = self.q.startswith("ord_")
        read = runtime.orders.page if full else runtime.orders.summaries
        data, more = await read(
            merchant_pk,
            limit=limit,
            starting_after=after,
            status=self.status,
            created_gte=_start(self.date_from),
            created_lt=_start(self.date_to + timedelta(days=1)) if self.date_to else None,
            merchant_order_id=self.q if self.q and not by_id else None,
        )
        return data, more


def _day(value: str, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{name}: not a date (YYYY-MM-DD)", param=name) from None


def _start(day: date | None) -> datetime | None:
    return datetime.combine(day, time(), tzinfo=UTC) if day else None


def _amount(order: dict[str, Any], field: str) -> Money | None:
    """`amount` in the order's currency, `amount_received` in the payment's."""
    value = order.get(field)
    if value is None:
        return None
    currency = order["currency"] if field == "amount" else order.get("payment_currency") or order["currency"]
    return Money(int(value), currency)


def _shown(order: dict[str, Any], field: str) -> str:
    amount = _amount(order, field) if field in ("amount", "amount_received") else None
    value = order.get(field)
    return amount.display() if amount is not None else ("" if value is None else str(value))


@router.get("/orders")
async def orders_page(request: Request, user: SignedIn = Depends(signed_in)) -> Response:
    runtime = runtime_of(request)
    filters = Filters(request)
    if filters.q.startswith("ord_"):  # a Kassa id: straight to the order, when it is ours
        await runtime.orders.get(user.merchant_pk, filters.q)
        return redirect(f"{PATH}/orders/{filters.q}")
    data, more = await filters.page(runtime, user.merchant_pk, PAGE_SIZE, filters.after)
    rows = [{**o, "amount_shown": _shown(o, "amount")} for o in data]
    next_query = filters.query(after=data[-1]["id"]) if more and data else None
    return render(
        request,
        "orders.html",
        user=user,
        orders=rows,
        filters=filters,
        statuses=[s.value for s in OrderStatus],
        next_query=next_query,
        csv_query=filters.query(),
    )


@router.get("/orders.csv")
async def orders_csv(request: Request, user: SignedIn = Depends(signed_in)) -> Response:
    runtime = runtime_of(request)
    filters = Filters(request)
    first, more = await filters.page(runtime, user.merchant_pk, 100, None, full=True)

    async def lines() -> AsyncIterator[str]:
        page, has_more, sent = first, more, 0
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        while True:
            for order in page:
                writer.writerow([_csv_cell(_shown_raw(order, c)) for c in CSV_COLUMNS])
            sent += len(page)
            yield out.getvalue()
            out.seek(0)
            out.truncate()
            if not has_more or not page or sent >= CSV_MAX:
                return
            page, has_more = await filters.page(runtime, user.merchant_pk, 100, page[-1]["id"], full=True)

    headers = {**page_headers(), "Content-Disposition": 'attachment; filename="orders.csv"'}
    return StreamingResponse(lines(), media_type="text/csv; charset=utf-8", headers=headers)


def _shown_raw(order: dict[str, Any], field: str) -> str:
    """CSV cells: amounts as exact decimal text in their currency (not the display with its code)."""
    amount = _amount(order, field) if field in ("amount", "amount_received") else None
    value = order.get(field)
    return amount.to_decimal_string() if amount is not None else ("" if value is None else str(value))


def _csv_cell(value: str) -> str:
    """No formula injection when a spreadsheet opens the file (OWASP's advice: a leading quote)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@router.get("/orders/{order_id}")
async def order_page(request: Request, order_id: str, user: SignedIn = Depends(signed_in)) -> Response:
    runtime = runtime_of(request)
    order = await runtime.orders.get(user.merchant_pk, order_id)
    events, _ = await runtime.webhooks.list_events(
        user.merchant_pk, limit=100, starting_after=None, type=None, object_id=None, order_id=order["id"]
    )
    deliveries = await runtime.webhooks.order_deliveries(user.merchant_pk, order["id"])
    refunds, _ = await runtime.refunds.for_order(user.merchant_pk, order["id"], 100, None)
    return render(
        request,
        "order.html",
        user=user,
        order=order,
        amount=_shown(order, "amount"),
        received=_shown(order, "amount_received"),
        events=list(reversed(events)),  # oldest first: a timeline
        deliveries=deliveries,
        refunds=refunds,
    )


@router.post("/orders/{order_id}/cancel")
async def cancel(request: Request, order_id: str, user: SignedIn = Depends(signed_in)) -> Response:
    await checked_form(request)
    await runtime_of(request).orders.cancel(user.merchant_pk, order_id)
    return redirect(f"{PATH}/orders/{order_id}", "canceled")


@router.post("/orders/{order_id}/refund")
async def refund(request: Request, order_id: str, user: SignedIn = Depends(signed_in)) -> Response:
    form = await checked_form(request)
    runtime = runtime_of(request)
    order = await runtime.orders.get(user.merchant_pk, order_id)
    currency = order["payment_currency"] or order["currency"]
    try:
        amount = Money.from_decimal_string(str(form.get("amount") or "").strip(), currency).amount
    except InvalidMoney as exc:
        raise InvalidRequest(f"amount: {exc}", param="amount") from None
    reason = str(form.get("reason") or "").strip()[:500] or None
    destination = str(form.get("destination") or "").strip() or None
    await runtime.refunds.create(
        user.merchant_pk, order_id, amount, currency=currency, reason=reason, destination=destination
    )
    return redirect(f"{PATH}/orders/{order_id}", "refunded")
