"""Slows down password guessing: too many failures for one key within a window are refused for a
while. In-process (each API process counts its own), which bounds guessing per process."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

WINDOW_SECONDS = 300.0
MAX_FAILURES = 10


class FailureThrottle:
    def __init__(
        self,
        now: Callable[[], float],
        max_failures: int = MAX_FAILURES,
        window: float = WINDOW_SECONDS,
        max_keys: int = 100_000,
    ) -> None:
        self.now = now
        self.max_failures = max_failures
        self.window = window
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, key: str) -> int | None:
        """Seconds until `key` may try again, or None when it may try now."""
        times = self._recent(key)
        if len(times) < self.max_failures:
            return None
        return max(1, int(times[0] + self.window - self.now()) + 1)

    def failed(self, key: str) -> None:
        if key not in self._failures and len(self._failures) >= self.max_keys:
            self._failures.pop(next(iter(self._failures)))  # bounded memory: forget the oldest key
        self._failures.setdefault(key, deque(maxlen=self.max_failures)).append(self.now())

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)

    def _recent(self, key: str) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        cutoff = self.now() - self.window
        while times and times[0] <= cutoff:
            times.popleft()
        return times
