from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal

import pytest

from kassa.clock import ManualClock
from kassa.rates import Pair, Rate, RateCache, RateUnavailable

from .support import FakeSource

XMR_USD = ("XMR", "USD")
MINUTE = timedelta(minutes=1)


async def test_fresh_rate_is_served_from_cache(clock: ManualClock) -> None:
    source = FakeSource("s", clock, {XMR_USD: "150"})
    cache = RateCache(source, clock, max_age=MINUTE)
    first = await cache.get("XMR", "USD")
    clock.advance(59)
    assert await cache.get("XMR", "USD") is first
    assert len(source.calls) == 1


async def test_rate_at_max_age_is_fetched_anew(clock: ManualClock) -> None:
    source = FakeSource("s", clock, {XMR_USD: "150"})
    cache = RateCache(source, clock, max_age=MINUTE)
    await cache.get("XMR", "USD")
    clock.advance(60)
    source.values[XMR_USD] = "151"
    rate = await cache.get("XMR", "USD")
    assert rate.value == 151
    assert rate.fetched_at == clock.now()
    assert len(source.calls) == 2


async def test_stale_rate_is_never_served_when_the_source_fails(clock: ManualClock) -> None:
    source = FakeSource("s", clock, {XMR_USD: "150"})
    cache = RateCache(source, clock, max_age=MINUTE)
    await cache.get("XMR", "USD")
    clock.advance(61)
    source.fail = RateUnavailable([XMR_USD], "s", "HTTP 503")
    with pytest.raises(RateUnavailable, match="HTTP 503"):
        await cache.get("XMR", "USD")


async def test_refresh_failure_serves_cached_rate_while_young_enough(clock: ManualClock) -> None:
    source = FakeSource("s", clock, {XMR_USD: "150"})
    cache = RateCache(source, clock, max_age=5 * MINUTE, refresh_after=MINUTE)
    first = await cache.get("XMR", "USD")
    clock.advance(90)
    source.fail = RateUnavailable([XMR_USD], "s", "HTTP 503")
    assert await cache.get("XMR", "USD") is first  # tried to refresh, failed, still under max_age
    assert len(source.calls) == 2
    clock.advance(210)  # now exactly max_age old
    with pytest.raises(RateUnavailable):
        await cache.get("XMR", "USD")


async def test_refresh_after_fetches_before_max_age(clock: ManualClock) -> None:
    source = FakeSource("s", clock, {XMR_USD: "150"})
    cache = RateCache(source, clock, max_age=5 * MINUTE, refresh_after=MINUTE)
    await cache.get("XMR", "USD")
    clock.advance(61)
    source.values[XMR_USD] = "152"
    assert (await cache.get("XMR", "USD")).value == 152


class OldSource:
    """Returns rates that were already old when fetched (an upstream that stopped updating)."""

    name = "old"

    def __init__(self, clock: ManualClock, age: timedelta) -> None:
        self.clock, self.age = clock, age

    async def fetch(self, pairs: Sequence[Pair]) -> dict[Pair, Rate]:
        return {p: Rate(p[0], p[1], Decimal(1), self.name, self.clock.now() - self.age) for p in pairs}


async def test_a_fetched_rate_already_too_old_is_refused(clock: ManualClock) -> None:
    cache = RateCache(OldSource(clock, timedelta(minutes=2)), clock, max_age=MINUTE)
    with pytest.raises(
        RateUnavailable, match=r"XMR/USD from old: its rate is 0:02:00 old, the limit is 0:01:00"
    ):
        await cache.get("XMR", "USD")


async def test_a_pair_the_source_does_not_return_is_unavailable(clock: ManualClock) -> None:
    class Empty:
        name = "empty"

        async def fetch(self, pairs: Sequence[Pair]) -> dict[Pair, Rate]:
            return {}

    with pytest.raises(RateUnavailable, match="did not return this pair"):
        await RateCache(Empty(), clock, max_age=MINUTE).get("XMR", "USD")


class SlowSource:
    def __init__(self, clock: ManualClock) -> None:
        self.name = "slow"
        self.clock = clock
        self.calls = 0
        self.release = asyncio.Event()

    async def fetch(self, pairs: Sequence[Pair]) -> dict[Pair, Rate]:
        self.calls += 1
        await self.release.wait()
        return {p: Rate(p[0], p[1], Decimal(150), self.name, self.clock.now()) for p in pairs}


async def test_concurrent_gets_share_one_fetch(clock: ManualClock) -> None:
    source = SlowSource(clock)
    cache = RateCache(source, clock, max_age=MINUTE)
    waiting = [asyncio.create_task(cache.get("XMR", "USD")) for _ in range(10)]
    await asyncio.sleep(0)
    source.release.set()
    rates = await asyncio.gather(*waiting)
    assert source.calls == 1
    assert all(r is rates[0] for r in rates)


async def test_concurrent_gets_of_different_pairs_fetch_each(clock: ManualClock) -> None:
    source = SlowSource(clock)
    cache = RateCache(source, clock, max_age=MINUTE)
    waiting = [asyncio.create_task(cache.get(b, "USD")) for b in ("XMR", "BTC", "XMR")]
    await asyncio.sleep(0)
    source.release.set()
    rates = await asyncio.gather(*waiting)
    assert source.calls == 2
    assert [r.base for r in rates] == ["XMR", "BTC", "XMR"]


async def test_a_caller_giving_up_does_not_cancel_the_shared_fetch(clock: ManualClock) -> None:
    source = SlowSource(clock)
    cache = RateCache(source, clock, max_age=MINUTE)
    impatient = asyncio.create_task(cache.get("XMR", "USD"))
    patient = asyncio.create_task(cache.get("XMR", "USD"))
    await asyncio.sleep(0)
    impatient.cancel()
    await asyncio.sleep(0)
    source.release.set()
    assert (await patient).value == 150
    assert impatient.cancelled()
    assert source.calls == 1


async def test_concurrent_gets_share_a_failure_then_retry(clock: ManualClock) -> None:
    source = FakeSource("s", clock, {}, fail=RateUnavailable([XMR_USD], "s", "down"))
    cache = RateCache(source, clock, max_age=MINUTE)
    results = await asyncio.gather(*(cache.get("XMR", "USD") for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, RateUnavailable) for r in results)
    assert len(source.calls) == 1
    source.fail = None
    source.values[XMR_USD] = "150"
    assert (await cache.get("XMR", "USD")).value == 150  # the failure is not cached


@pytest.mark.parametrize(
    ("max_age", "refresh_after", "message"),
    [
        (timedelta(0), None, "max_age must be positive"),
        (MINUTE, 2 * MINUTE, "refresh_after must be between"),
        (MINUTE, -MINUTE, "refresh_after must be between"),
    ],
)
def test_bad_ages_are_refused(
    clock: ManualClock, max_age: timedelta, refresh_after: timedelta | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        RateCache(FakeSource("s", clock, {}), clock, max_age, refresh_after)
