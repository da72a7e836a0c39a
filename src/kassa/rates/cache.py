"""A rate cache that never serves a rate older than its max age."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from kassa.clock import Clock
from kassa.rates.base import Pair, Rate, RateSource, RateUnavailable


class RateCache:
    """Serves rates from `source`, fetched at most once per pair at a time.

    A rate is served while its age (now - fetched_at) is below `max_age`, and never after. From
    `refresh_after` on (default: `max_age`), `get` fetches anew but, should that fail, still serves the
    cached rate while it is under `max_age`. Concurrent `get`s of a pair share one fetch.
    """

    def __init__(
        self,
        source: RateSource,
        clock: Clock,
        max_age: timedelta,
        refresh_after: timedelta | None = None,
    ) -> None:
        refresh_after = max_age if refresh_after is None else refresh_after
        if max_age <= timedelta(0):
            raise ValueError(f"max_age must be positive, got {max_age}")
        if not timedelta(0) <= refresh_after <= max_age:
            raise ValueError(f"refresh_after must be between 0 and max_age ({max_age}), got {refresh_after}")
        self._source = source
        self._clock = clock
        self._max_age = max_age
        self._refresh_after = refresh_after
        self._rates: dict[Pair, Rate] = {}
        self._inflight: dict[Pair, asyncio.Task[Rate]] = {}

    def ages(self) -> dict[Pair, tuple[float, bool]]:
        """Each cached pair's age in seconds and whether it is still served (for /metrics)."""
        ages = {pair: self._age(rate) for pair, rate in self._rates.items()}
        return {pair: (age.total_seconds(), age < self._max_age) for pair, age in ages.items()}

    def _age(self, rate: Rate) -> timedelta:
        return self._clock.now() - rate.fetched_at

    def _usable(self, pair: Pair) -> Rate | None:
        rate = self._rates.get(pair)
        return rate if rate is not None and self._age(rate) < self._max_age else None

    async def get(self, base: str, quote: str) -> Rate:
        pair = (base, quote)
        cached = self._usable(pair)
        if cached is not None and self._age(cached) < self._refresh_after:
            return cached
        task = self._inflight.get(pair)
        if task is None:
            task = asyncio.create_task(self._fetch(pair))
            self._inflight[pair] = task
            task.add_done_callback(lambda done: self._done(pair, done))
        try:
            # shield: a caller that gives up must not cancel the fetch the other callers wait on
            fetched = await asyncio.shield(task)
        except Exception:
            cached = self._usable(pair)  # the refresh failed: the cached rate may still be young enough
            if cached is not None:
                return cached
            raise
        rate = self._usable(pair)  # the fetched rate, or a newer one stored meanwhile
        if rate is None:
            raise RateUnavailable(
                [pair],
                self._source.name,
                f"its rate is {self._age(fetched)} old, the limit is {self._max_age}",
            )
        return rate

    async def _fetch(self, pair: Pair) -> Rate:
        rate = (await self._source.fetch([pair])).get(pair)
        if rate is None:
            raise RateUnavailable([pair], self._source.name, "the source did not return this pair")
        current = self._rates.get(pair)
        if current is None or rate.fetched_at >= current.fetched_at:
            self._rates[pair] = rate
        return rate

    def _done(self, pair: Pair, task: asyncio.Task[Rate]) -> None:
        if self._inflight.get(pair) is task:
            del self._inflight[pair]
        if not task.cancelled():
            task.exception()  # retrieved here, so a fetch whose callers all left logs no warning
