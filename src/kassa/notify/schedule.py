"""The Standard Webhooks retry schedule.

Attempts go out immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and 24 h after
the previous failure: 10 attempts over about three days. Each delay gets ±10 % jitter so that
many endpoints failing together (an outage) do not retry in lockstep. A receiver's
``Retry-After`` can only lengthen a delay, and never beyond 24 h.
"""

from __future__ import annotations

import math
import random
from datetime import timedelta

__all__ = ["JITTER", "MAX_ATTEMPTS", "MAX_RETRY_AFTER", "SCHEDULE", "next_attempt_delay"]

SCHEDULE: tuple[timedelta, ...] = (
    timedelta(0),
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
    timedelta(hours=24),
)
MAX_ATTEMPTS = len(SCHEDULE)
JITTER = 0.1
MAX_RETRY_AFTER = timedelta(hours=24)


def next_attempt_delay(
    failed_attempts: int, retry_after: float | None, rng: random.Random
) -> timedelta | None:
    """Delay before the next attempt after ``failed_attempts`` failures, or None to give up.

    ``failed_attempts=0`` is the first attempt (no delay). ``retry_after`` is the receiver's
    ``Retry-After`` in seconds from the last response; it is capped at 24 h, and invalid values
    (negative, NaN) are ignored.
    """
    if failed_attempts < 0:
        raise ValueError("failed_attempts must not be negative")
    if failed_attempts >= MAX_ATTEMPTS:
        return None
    delay = SCHEDULE[failed_attempts] * rng.uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None and not math.isnan(retry_after) and retry_after > 0:
        delay = max(delay, min(timedelta(seconds=min(retry_after, 1e9)), MAX_RETRY_AFTER))
    return delay
