"""The password-guessing throttle."""

from __future__ import annotations

from kassa.services.throttle import FailureThrottle


def test_failures_within_the_window_are_refused_until_it_passes() -> None:
    now = [1000.0]
    throttle = FailureThrottle(lambda: now[0], max_failures=3, window=60)
    for _ in range(3):
        assert throttle.retry_after("m") is None
        throttle.failed("m")
    assert throttle.retry_after("m") == 61
    assert throttle.retry_after("other") is None
    now[0] += 30
    assert throttle.retry_after("m") == 31
    now[0] += 31
    assert throttle.retry_after("m") is None  # the oldest failure left the window


def test_a_success_forgets_the_failures_and_memory_is_bounded() -> None:
    throttle = FailureThrottle(lambda: 0.0, max_failures=2, window=60, max_keys=3)
    throttle.failed("a")
    throttle.succeeded("a")
    throttle.failed("a")
    assert throttle.retry_after("a") is None
    for key in "bcde":
        throttle.failed(key)
    assert len(throttle._failures) == 3
