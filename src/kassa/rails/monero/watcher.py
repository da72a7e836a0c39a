"""The Monero watcher: follows the merchant's view-only wallet and reports every incoming transfer.

One pass (every `poll_interval` seconds, or at once when `POST /api/v1/payment-methods/monero/notify`
wakes it, e.g. from monero-wallet-rpc's ``--tx-notify``):

1. ``refresh``: the wallet scans new blocks and the daemon's pool (it learns nothing otherwise);
2. ``get_transfers {in, pool, min_height: cursor}`` of the configured account, in ONE call, so a
   transaction that moves from the pool into a block is seen in exactly one of the two lists;
3. report each transfer to a subaddress as a :class:`~kassa.rails.base.Sighting` whose reference is
   ``txid:account:subaddress`` (the wallet merges the outputs of one transaction to one subaddress,
   so this is unique per transfer and stable from pool to block): new ones, and those the core still
   has pending whose confirmations changed;
4. payments the core has pending that this wallet showed before but that are now neither in the
   pool nor in a block, in two passes in a row, each after a fresh refresh, and that
   ``get_transfer_by_txid`` no longer knows either, are reported rejected (dropped from the pool or
   reorged out);
5. save the cursor: ``REORG_MARGIN`` blocks below the lowest block holding a payment the core still
   has pending (or below the wallet's height when there is none). A restart resumes from there and
   re-reports what it finds, which the core ignores (it is idempotent by reference): nothing is
   skipped and nothing counted twice.

Errors (wallet unreachable, wrong password, no wallet open) propagate: the supervisor logs them,
shows them on /readyz and restarts the watcher with backoff.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

from kassa.rails.base import RailConfig, Reporter, Sighting, Wake
from kassa.rails.monero.rail import MoneroSettings, wallet_client
from kassa.rails.monero.rpc import MoneroRpcError, MoneroWalletRpc, Transfer

log = logging.getLogger("kassa.rails.monero")

REORG_MARGIN: Final = 10
"""Blocks below the lowest unsettled transfer (or the wallet height) the watcher looks again."""
DROP_STRIKES: Final = 2
"""Passes in a row a pending transfer must be missing before it is reported rejected."""
REFRESH_TIMEOUT: Final = 120.0
"""A refresh of a wallet that is far behind can take long; the watcher fails (and says so) after this."""
STATE_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class Seen:
    """A transfer the core has pending, as this wallet last showed it (persisted, for drop detection)."""

    address: str
    amount: int
    height: int  # 0 while in the pool


def parse_reference(reference: str) -> tuple[str, int, int] | None:
    """``"<txid>:<account>:<subaddress>"`` -> (txid, account, subaddress); None if not one of ours."""
    parts = reference.split(":")
    if len(parts) != 3 or len(parts[0]) != 64 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return parts[0], int(parts[1]), int(parts[2])


def effective_confirmations(transfer: Transfer) -> int:
    """Confirmations to report: 0 in the pool, and 0 while a non-standard unlock_time still locks
    the outputs (money the merchant cannot spend yet must not make an order final)."""
    if transfer.in_pool:
        return 0
    if transfer.unlock_time != 0 and transfer.locked:
        return 0
    return transfer.confirmations


class MoneroWatcher:
    def __init__(self, config: RailConfig, settings: MoneroSettings) -> None:
        self.config = config
        self.settings = settings
        self.account = settings.account_index
        self.cursor = 0
        self.address: str | None = None
        self.seen: dict[str, Seen] = {}
        self.reported: dict[str, int] = {}  # identity -> confirmations reported by this process
        self.strikes: dict[str, int] = {}
        self.looked_up: set[str] = set()  # pending references this run could not find: not again
        self.passes = 0

    def __repr__(self) -> str:
        return f"MoneroWatcher({self.config.merchant_id!r}, {self.settings.wallet_rpc_url!r})"

    async def run(self, reporter: Reporter, wake: Wake) -> None:
        async with wallet_client(self.settings, timeout=30.0) as wallet:
            await self.start(wallet, reporter)
            while True:
                await self.run_pass(wallet, reporter)
                await wake(self.settings.poll_interval)

    async def start(self, wallet: MoneroWalletRpc, reporter: Reporter) -> None:
        """Load the saved state and look at the wallet once (warn about a hot wallet)."""
        state = await reporter.load_state()
        self._load(state)
        address = (await wallet.get_address(self.account, [0])).address
        if self.address is not None and self.address != address:
            log.warning(
                "monero: merchant %s: the wallet changed (%s... -> %s...): rescanning its transfers; "
                "payments seen only in the old wallet are no longer watched for drops",
                self.config.merchant_id,
                self.address[:12],
                address[:12],
            )
            self.cursor = 0
            self.seen.clear()
        self.address = address
        try:
            if not await wallet.is_view_only():
                log.warning(
                    "monero: merchant %s: the wallet at %s holds its SPEND KEY; Kassa only needs a "
                    "view-only wallet, and a hot wallet on the gateway puts the funds at risk",
                    self.config.merchant_id,
                    self.settings.wallet_rpc_url,
                )
            if self.settings.auto_refresh_period is not None:
                await wallet.auto_refresh(True, self.settings.auto_refresh_period)
        except MoneroRpcError as exc:  # e.g. a wallet RPC that refuses these calls: watch anyway
            log.warning("monero: merchant %s: %s", self.config.merchant_id, exc)
        log.info(
            "monero: watching merchant %s's wallet %s... from height %d",
            self.config.merchant_id,
            address[:12],
            self.cursor,
        )

    def _load(self, state: dict[str, Any]) -> None:
        if state.get("v") != STATE_VERSION:
            return
        self.cursor = int(state.get("cursor", 0))
        address = state.get("address")
        self.address = address if isinstance(address, str) else None
        seen = state.get("seen", {})
        if isinstance(seen, dict):
            for ref, entry in seen.items():
                if isinstance(entry, list) and len(entry) == 3:
                    self.seen[ref] = Seen(str(entry[0]), int(entry[1]), int(entry[2]))

    def _state(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "cursor": self.cursor,
            "address": self.address,
            "seen": {ref: [s.address, s.amount, s.height] for ref, s in sorted(self.seen.items())},
        }

    async def run_pass(self, wallet: MoneroWalletRpc, reporter: Reporter) -> None:
        before = self._state()
        await wallet.refresh(http_timeout=REFRESH_TIMEOUT)
        transfers = await wallet.get_transfers(
            incoming=True, pool=True, min_height=self.cursor, account_index=self.account
        )
        height = await wallet.get_height()
        pending = await reporter.pending_references()
        current: dict[str, Transfer] = {}
        for transfer in transfers:
            if self._ours(transfer):
                current[transfer.identity] = transfer

        # Payments the core has pending that this query did not return: below the cursor (after a
        # deep reorg, or an old state), or gone from the wallet. Those of another account (the
        # merchant changed account_index) are not this pass's business.
        missing = [ref for ref in sorted(pending - current.keys()) if self._account_of(ref) == self.account]
        gone: list[str] = []
        for ref in missing:
            if ref not in self.seen and ref in self.looked_up:
                continue
            found = await self._lookup(wallet, ref)
            if found is not None:
                current[ref] = found
            elif ref in self.seen:
                gone.append(ref)
            else:
                self.looked_up.add(ref)  # not this wallet's (e.g. before a wallet change)

        reported_now: set[str] = set()
        for ref, transfer in current.items():
            confirmations = effective_confirmations(transfer)
            last = self.reported.get(ref)
            if last is None or (ref in pending and confirmations != last):
                if transfer.double_spend_seen:
                    log.warning(
                        "monero: merchant %s: transfer %s is marked double_spend_seen by the daemon",
                        self.config.merchant_id,
                        ref,
                    )
                await reporter.report(
                    Sighting(
                        destination=transfer.address,
                        reference=ref,
                        amount=transfer.amount,
                        confirmations=confirmations,
                    )
                )
                self.reported[ref] = confirmations
                reported_now.add(ref)

        if gone:
            await self._drops(wallet, reporter, gone)
        self.strikes = {ref: n for ref, n in self.strikes.items() if ref in gone}  # in a row only

        # What is still unsettled: pending in the core (or just reported, which may have made it so).
        seen: dict[str, Seen] = {}
        for ref, transfer in current.items():
            if ref in pending or ref in reported_now:
                seen[ref] = Seen(transfer.address, transfer.amount, transfer.height)
        for ref in gone:
            if ref in self.strikes:  # missing, not rejected yet: keep watching it
                seen[ref] = self.seen[ref]
        self.seen = seen
        self.reported = {ref: n for ref, n in self.reported.items() if ref in current}
        lowest = min([height, *(s.height for s in seen.values() if s.height > 0)])
        self.cursor = max(0, lowest - REORG_MARGIN)
        self.passes += 1
        if self._state() != before:
            await reporter.save_state(self._state())

    @staticmethod
    def _account_of(ref: str) -> int | None:
        parsed = parse_reference(ref)
        return parsed[1] if parsed is not None else None

    def _ours(self, transfer: Transfer) -> bool:
        """Incoming transfers to a subaddress of the account (orders never get the primary address)."""
        return (
            transfer.type in ("in", "pool")
            and transfer.subaddr_index.major == self.account
            and transfer.subaddr_index.minor != 0
        )

    async def _lookup(self, wallet: MoneroWalletRpc, ref: str) -> Transfer | None:
        parsed = parse_reference(ref)
        if parsed is None:
            return None
        txid, major, _minor = parsed
        if major != self.account:
            return None
        for transfer in await wallet.get_transfer_by_txid(txid, account_index=major):
            if transfer.identity == ref and self._ours(transfer):
                return transfer
        return None

    async def _drops(self, wallet: MoneroWalletRpc, reporter: Reporter, gone: list[str]) -> None:
        """Count a strike for each missing transfer; report it rejected at DROP_STRIKES, provided the
        wallet is still the one that showed it."""
        due = []
        for ref in gone:
            self.strikes[ref] = self.strikes.get(ref, 0) + 1
            if self.strikes[ref] >= DROP_STRIKES:
                due.append(ref)
        if not due:
            return
        address = (await wallet.get_address(self.account, [0])).address
        if address != self.address:
            raise RuntimeError(
                f"the wallet behind {self.settings.wallet_rpc_url} changed while watching "
                f"({(self.address or '')[:12]}... -> {address[:12]}...): restarting"
            )
        for ref in due:
            seen = self.seen[ref]
            log.warning(
                "monero: merchant %s: transfer %s (%d piconero) left the pool or the chain: rejected",
                self.config.merchant_id,
                ref,
                seen.amount,
            )
            await reporter.report(
                Sighting(
                    destination=seen.address,
                    reference=ref,
                    amount=seen.amount,
                    confirmations=0,
                    rejected=True,
                )
            )
            del self.strikes[ref]
            self.reported.pop(ref, None)
