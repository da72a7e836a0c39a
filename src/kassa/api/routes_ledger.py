"""`/api/v1/balances` and `/api/v1/ledger/entries`: what the merchant is owed, and why (docs/ledger.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from kassa.api.auth import merchant_pk, require, runtime_of
from kassa.api.routes_orders import ERRORS, json_response
from kassa.api.schemas import BalanceList, LedgerEntryList
from kassa.domain.ledger import PostingKind
from kassa.services.api_keys import Principal

router = APIRouter(tags=["ledger"])

Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=200)]


@router.get(
    "/balances",
    response_model=BalanceList,
    responses=ERRORS,
    summary="Every account's balance, per currency (live money; `test=true` for test money)",
)
async def balances(
    request: Request,
    test: bool = False,
    principal: Principal = Depends(require("merchant:read")),
) -> Response:
    data = await runtime_of(request).ledger.balances(merchant_pk(principal), test)
    return json_response({"object": "list", "data": data})


@router.get(
    "/ledger/entries",
    response_model=LedgerEntryList,
    responses=ERRORS,
    summary="Ledger entries, newest first",
)
async def ledger_entries(
    request: Request,
    limit: Limit = 10,
    starting_after: Cursor = None,
    order: Annotated[str | None, Query(max_length=40, description="an order id (ord_…)")] = None,
    kind: Annotated[PostingKind | None, Query(description="the posting's kind")] = None,
    principal: Principal = Depends(require("merchant:read")),
) -> Response:
    data, more = await runtime_of(request).ledger.entries(
        merchant_pk(principal),
        limit=limit,
        starting_after=starting_after,
        order_id=order,
        kind=kind.value if kind else None,
    )
    return json_response({"object": "list", "data": data, "has_more": more})
