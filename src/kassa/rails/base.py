"""The rail contract every payment rail implements (see docs/rails.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Protocol


@dataclass(frozen=True, slots=True)
class QuoteRequest:
    order_id: str
    amount: int  # in the order currency's minor units
    currency: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Quote:
    method: str  # what the customer picks, e.g. "XMR" or "test"
    currency: str  # the currency the customer pays in
    amount: int  # due, in that currency's minor units (rounded up)
    rate: Decimal  # order currency units per one unit of `currency`
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Destination:
    address: str | None = None
    payment_uri: str | None = None


class Rail(Protocol):
    """What the core needs of a rail. `name` is its entry-point name."""

    name: ClassVar[str]
    test: ClassVar[bool]  # orders paid through it are test orders

    def methods(self) -> list[str]: ...

    async def quote(self, request: QuoteRequest, method: str) -> Quote: ...

    async def prepare(self, request: QuoteRequest, quote: Quote) -> Destination: ...


def settings_of(raw: Any) -> dict[str, Any]:
    return dict(raw) if isinstance(raw, dict) else {}
