"""Helpers shared by the rate tests (fixtures live in conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx

from kassa.clock import ManualClock
from kassa.rates import Pair, Rate, RateUnavailable

RECORDED = Path(__file__).parent / "recorded"
# Just after the `last_updated_at` of the recorded CoinGecko answer (2024-03-25 08:45:00 UTC).
T0 = datetime(2024, 3, 25, 8, 45, 30, tzinfo=UTC)

Handler = Callable[[httpx.Request], httpx.Response]
MakeClient = Callable[[Handler], httpx.AsyncClient]


def recorded(name: str, status: int = 200) -> httpx.Response:
    return httpx.Response(
        status, content=(RECORDED / name).read_bytes(), headers={"content-type": "application/json"}
    )


class FakeSource:
    """A scripted rate source that counts its fetches."""

    def __init__(
        self, name: str, clock: ManualClock, values: dict[Pair, str], *, fail: Exception | None = None
    ) -> None:
        self.name = name
        self.clock = clock
        self.values = values
        self.fail = fail
        self.calls: list[list[Pair]] = []

    async def fetch(self, pairs: Sequence[Pair]) -> dict[Pair, Rate]:
        self.calls.append(list(pairs))
        if self.fail is not None:
            raise self.fail
        found = {
            p: Rate(p[0], p[1], Decimal(self.values[p]), self.name, self.clock.now())
            for p in pairs
            if p in self.values
        }
        if pairs and not found:
            raise RateUnavailable(pairs, self.name, "not scripted")
        return found
