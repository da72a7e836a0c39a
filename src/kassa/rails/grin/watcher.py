"""Follows the Grin payments Kassa forwarded to the merchant's wallet until they are final.

Each pass asks the wallet for its transaction log (`retrieve_txs`, refreshed from the node) and,
for every received transaction Kassa is waiting on (a pending payment, or a submission whose answer
Kassa missed), looks its kernel up on the node: confirmations = tip - kernel height + 1. A
transaction the wallet cancelled, or whose TTL passed without its kernel on chain, is rejected.
"""

from __future__ import annotations

import logging

from kassa.rails.base import Reporter, Sighting, Wake
from kassa.rails.grin.rail import GrinSettings, node_api, owner_api
from kassa.rails.grin.rpc import GrinNodeApi, TxLogEntry

log = logging.getLogger("kassa.rails.grin")

RECEIVED = "TxReceived"
RECEIVED_CANCELLED = "TxReceivedCancelled"


class GrinWatcher:
    def __init__(self, settings: GrinSettings) -> None:
        self.settings = settings
        # What was last reported per slate: a pass that sees nothing new reports nothing (each report
        # is a transaction on the order). A restart reports everything once again: that is harmless.
        self.reported: dict[str, tuple[int, bool]] = {}

    async def run(self, reporter: Reporter, wake: Wake) -> None:
        async with owner_api(self.settings) as owner, node_api(self.settings) as node:
            while True:
                wanted = await reporter.pending_references() | await reporter.submitted_references()
                if wanted:
                    _, entries = await owner.retrieve_txs(refresh_from_node=True)
                    tip = await node.get_tip()
                    for entry in entries:
                        if entry.tx_slate_id in wanted and entry.tx_type in (RECEIVED, RECEIVED_CANCELLED):
                            sighting = await sighting_of(entry, tip, node)
                            seen = (sighting.confirmations, sighting.rejected)
                            if self.reported.get(sighting.reference) != seen:
                                await reporter.report(sighting)
                                self.reported[sighting.reference] = seen
                self.reported = {ref: seen for ref, seen in self.reported.items() if ref in wanted}
                await wake(self.settings.poll_interval)


async def sighting_of(entry: TxLogEntry, tip: int, node: GrinNodeApi) -> Sighting:
    assert entry.tx_slate_id is not None
    confirmations = 0
    if entry.tx_type == RECEIVED_CANCELLED:
        rejected = True
    else:
        height = None
        if entry.kernel_excess:
            height = await node.get_kernel(entry.kernel_excess, entry.kernel_lookup_min_height)
        if height is not None:
            confirmations = max(tip - height + 1, 0)
        elif entry.confirmed:
            confirmations = 1  # on chain by the wallet's account, kernel not looked up
        expired = entry.ttl_cutoff_height is not None and tip > entry.ttl_cutoff_height
        rejected = confirmations == 0 and expired
    return Sighting(
        destination=None,
        reference=entry.tx_slate_id,
        amount=entry.amount_credited,
        confirmations=confirmations,
        rejected=rejected,
    )
