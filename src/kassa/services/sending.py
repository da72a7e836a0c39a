"""Sending money out exactly once (refunds and payouts, docs/payouts.md).

The rail builds and signs the transaction without broadcasting it (`prepare_send`); Kassa records
it, then asks the rail to broadcast it (`relay`). A crash anywhere leaves one of two states: nothing
recorded (nothing went out: a new transaction is built), or a recorded transaction that may or may
not have gone out. For the latter Kassa first asks the wallet whether it knows the transaction, and
only broadcasts it again if not: the same transaction broadcast twice is still one payment, since
it spends the same outputs.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from kassa.faults import crash_point
from kassa.rails.base import Prepared, Rail, RailConfig, SendRequest


def dump(prepared: Prepared) -> str:
    return json.dumps(
        {
            "reference": prepared.reference,
            "received": str(prepared.received),
            "network_fee": str(prepared.network_fee),
            "blob": prepared.blob,
            "final": prepared.final,
        }
    )


def load(stored: str) -> Prepared:
    data = json.loads(stored)
    return Prepared(
        data["reference"], int(data["received"]), int(data["network_fee"]), data["blob"], data["final"]
    )


async def send_once(
    rail: Rail,
    config: RailConfig,
    request: SendRequest,
    stored: str | None,
    keep: Callable[[Prepared], Awaitable[Prepared]],
) -> Prepared:
    """The transaction that went out for `request`: the recorded one (`stored`) if the wallet knows
    it went out, else it broadcast now; or a new one, recorded through `keep` (which returns what
    is recorded: another worker's transaction if it was first) before it is broadcast."""
    if stored is None:
        prepared = await keep(await rail.prepare_send(config, request))
    else:
        prepared = load(stored)
        seen = await rail.outgoing(config, prepared.reference)
        if seen.state in ("pending", "confirmed"):
            return prepared  # it went out before Kassa could record it: never again
    await rail.relay(config, prepared)
    crash_point(f"relayed:{config.rail}")
    return prepared
