"""Pricing an order in each payment method's currency at a fresh exchange rate."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from kassa.domain.currencies import get_currency
from kassa.errors import Conflict
from kassa.rails.base import MethodSpec, Quote, QuoteRequest
from kassa.rates import RateCache, RateUnavailable, convert_minor


class Quoter:
    def __init__(self, rates: RateCache, lifetime: timedelta) -> None:
        self.rates = rates
        self.lifetime = lifetime

    async def quote(self, request: QuoteRequest, spec: MethodSpec, now: datetime) -> Quote:
        """The amount due in the method's currency, rounded up, never from a stale rate; the quote's
        deadline is the order's expiry or the quote lifetime, whichever comes first."""
        currency = (spec.currency or request.currency).upper()
        expires_at = min(request.expires_at, now + self.lifetime)
        if currency == request.currency:
            return Quote(spec.method, currency, request.amount, Decimal(1), expires_at)
        try:
            rate = await self.rates.get(currency, request.currency)
        except RateUnavailable as exc:
            raise Conflict(
                f"no fresh {currency}/{request.currency} exchange rate to price {spec.method}: {exc}",
                code="rate_unavailable",
                param="payment_methods",
            ) from None
        amount = convert_minor(
            request.amount,
            get_currency(request.currency).exponent,
            get_currency(currency).exponent,
            rate.value,
        )
        return Quote(spec.method, currency, amount, rate.value, expires_at)
