"""Crash points for the tests that prove a crash loses and doubles nothing.

`crash_point(name)` kills the process with SIGKILL, at once and without cleanup, when the
environment variable KASSA_CRASH_AT names that point; otherwise it does nothing. Only the tests set
it (tests/rails/test_monero_payouts.py kills a worker right after it broadcast a payout:
`relayed:monero`).
"""

from __future__ import annotations

import os
import signal


def crash_point(name: str) -> None:
    if os.environ.get("KASSA_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
