"""Property tests for the Standard Webhooks retry schedule."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kassa.notify.schedule import MAX_ATTEMPTS, MAX_RETRY_AFTER, SCHEDULE, next_attempt_delay

seeds = st.integers(min_value=0, max_value=2**32)
retrying = st.integers(min_value=0, max_value=MAX_ATTEMPTS - 1)


def test_the_schedule_is_the_standard_one() -> None:
    assert MAX_ATTEMPTS == 10
    assert [d.total_seconds() for d in SCHEDULE] == [
        0, 5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 14 * 3600, 20 * 3600, 24 * 3600
    ]  # fmt: skip
    assert timedelta(days=3) < sum(SCHEDULE, timedelta()) < timedelta(days=3, hours=4)


@given(failed=retrying, seed=seeds)
def test_delay_is_the_scheduled_one_within_ten_percent(failed: int, seed: int) -> None:
    delay = next_attempt_delay(failed, None, random.Random(seed))
    assert delay is not None
    assert SCHEDULE[failed] * 0.9 <= delay <= SCHEDULE[failed] * 1.1


@given(failed=st.integers(min_value=MAX_ATTEMPTS, max_value=10**4), seed=seeds, retry=st.none() | st.floats())
def test_gives_up_after_ten_attempts(failed: int, seed: int, retry: float | None) -> None:
    assert next_attempt_delay(failed, retry, random.Random(seed)) is None


@given(failed=retrying, seed=seeds, retry=st.floats(min_value=0, max_value=10 * 86400))
def test_retry_after_only_lengthens_and_is_capped(failed: int, seed: int, retry: float) -> None:
    scheduled = next_attempt_delay(failed, None, random.Random(seed))
    honoured = next_attempt_delay(failed, retry, random.Random(seed))
    assert scheduled is not None
    assert honoured is not None

    assert honoured == max(scheduled, min(timedelta(seconds=retry), MAX_RETRY_AFTER))
    assert honoured >= scheduled
    assert honoured <= max(scheduled, MAX_RETRY_AFTER)


@given(failed=retrying, seed=seeds, retry=st.sampled_from([math.nan, -1.0, -math.inf, 0.0]))
def test_invalid_or_zero_retry_after_is_ignored(failed: int, seed: int, retry: float) -> None:
    assert next_attempt_delay(failed, retry, random.Random(seed)) == next_attempt_delay(
        failed, None, random.Random(seed)
    )


@given(failed=retrying, seed=seeds)
def test_infinite_retry_after_waits_a_day_at_most(failed: int, seed: int) -> None:
    scheduled = next_attempt_delay(failed, None, random.Random(seed))
    assert scheduled is not None
    assert next_attempt_delay(failed, math.inf, random.Random(seed)) == max(scheduled, MAX_RETRY_AFTER)


@given(failed=retrying, seed=seeds, retry=st.none() | st.floats(min_value=0, max_value=86400))
def test_same_seed_same_delay(failed: int, seed: int, retry: float | None) -> None:
    assert next_attempt_delay(failed, retry, random.Random(seed)) == next_attempt_delay(
        failed, retry, random.Random(seed)
    )


def test_jitter_spreads_retries() -> None:
    delays = {next_attempt_delay(3, None, random.Random(seed)) for seed in range(100)}
    assert len(delays) > 90
    assert min(d for d in delays if d) < SCHEDULE[3] < max(d for d in delays if d)


def test_first_attempt_is_immediate() -> None:
    assert next_attempt_delay(0, None, random.Random(1)) == timedelta(0)


def test_negative_count_is_a_bug() -> None:
    with pytest.raises(ValueError, match="negative"):
        next_attempt_delay(-1, None, random.Random(1))
