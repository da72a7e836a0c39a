"""The bare reference for `bench/create_orders`: FastAPI + Pydantic that only validates and echoes.

It has the same request model shape as Kassa's `POST /api/v1/orders` (`kassa.api.schemas.OrderCreate`:
same fields, same constraints, unknown fields refused) but no database, no auth lookup and no
middleware. It is served exactly as `kassa serve --workers 1` serves Kassa: `uvicorn.run(...)` in one
process with the default (auto) loop and HTTP implementation, i.e. uvloop + httptools from
uvicorn[standard], no access log, no proxy headers.

    python bench/create_orders/bare_app.py --port 8001 [--host 127.0.0.1] [--log-level warning]

It deliberately does not import `kassa`, so it is the floor of what one process of this stack can do.
"""

from __future__ import annotations

import argparse
import re
from typing import Annotated, Any

from fastapi import FastAPI, Header
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict

_CURRENCY = re.compile(r"^[A-Za-z]{3,5}$")


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must be an http(s) URL")
    return value


def _currency(value: str) -> str:
    if not _CURRENCY.match(value):
        raise ValueError("unknown currency")
    return value.upper()


MinorUnits = Annotated[int, Strict(), Field(ge=0, lt=2**256)]
PositiveMinorUnits = Annotated[int, Strict(), Field(gt=0, lt=2**256)]
HttpUrl = Annotated[str, Field(min_length=8, max_length=2000), AfterValidator(_http_url)]
Email = Annotated[str, Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
CurrencyCode = Annotated[str, Field(min_length=3, max_length=5), AfterValidator(_currency)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CartLineIn(_Strict):
    name: str = Field(min_length=1, max_length=500)
    price: MinorUnits
    quantity: Annotated[int, Strict(), Field(ge=1, le=1_000_000)] = 1
    image: HttpUrl | None = None


class OrderCreate(_Strict):
    amount: PositiveMinorUnits | None = None
    currency: CurrencyCode
    cart: list[CartLineIn] | None = Field(default=None, max_length=100)
    order_id: str | None = Field(default=None, min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")
    description: str | None = Field(default=None, max_length=1000)
    email: Email | None = None
    confirmations: Annotated[int, Strict(), Field(ge=0, le=1000)] | None = None
    expires_in: Annotated[int, Strict(), Field(ge=1, le=30 * 86400)] | None = None
    success_url: HttpUrl | None = None
    cancel_url: HttpUrl | None = None
    callback_url: HttpUrl | None = None
    fulfillment_url: HttpUrl | None = None
    session_id: str | None = Field(default=None, min_length=1, max_length=200)
    payment_methods: list[Annotated[str, Field(min_length=1, max_length=40)]] | None = Field(
        default=None, max_length=20
    )
    metadata: dict[Annotated[str, Field(max_length=40)], Any] = Field(default_factory=dict, max_length=50)


app = FastAPI(title="bare reference", openapi_url=None, docs_url=None, redoc_url=None)


@app.post("/api/v1/orders", status_code=201)
async def create_order(
    body: OrderCreate, authorization: Annotated[str | None, Header()] = None
) -> OrderCreate:
    return body


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ready"}


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    # The same call `kassa serve` makes (src/kassa/cli.py), minus the factory.
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        workers=1,
        access_log=False,
        log_level=args.log_level,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
