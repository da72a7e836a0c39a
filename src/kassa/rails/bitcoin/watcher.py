"""The Bitcoin watcher: a watch-only wallet on the merchant's node, read with ``listsinceblock``.

Start: the wallet named in the settings is loaded, or created blank, watch-only (no private keys
ever); the key's ranged descriptor is imported (``importmulti`` on legacy wallets, which is what
Litecoin Core 0.21 and Bitcoin Core before 23 make; ``importdescriptors`` on descriptor wallets)
``lookahead`` addresses past the last one the core handed out, so the node already watches an
address when a customer first sees it. Addresses handed out while nothing was imported (the
watcher was down) are imported with a rescan from the last pass (or RESCAN_DAYS back).

One pass (every `poll_interval` seconds, or at once when ``walletnotify``/``blocknotify`` calls
``POST /api/v1/payment-methods/{rail}/notify``):

1. ``listsinceblock(cursor, include_removed)``: every receive since the cursor block and in the
   mempool, and what a reorg removed since the cursor block;
2. each output to one of the wallet's addresses is a sighting with reference ``txid:vout``
   (stable from mempool to block), ``replaceable`` while it is unconfirmed and signals BIP 125;
3. a payment watched on (pending in the core, or fewer than KEEP_DEPTH confirmations) that the
   listing no longer names is looked up with ``gettransaction``: negative confirmations mean a
   double spend or replacement was mined (Core 0.21 then keeps no receive details, and lists it
   nowhere: the watcher remembers its address and amount), and it is reported rejected, final or
   not; an unconfirmed one the mempool no longer holds (replaced, evicted) is rejected after
   DROP_STRIKES passes in a row (checked for what the core counts, what was reported, and what the
   wallet sees contested);
4. the cursor becomes the block REORG_MARGIN below the lowest payment watched on (or below the
   tip): a restart resumes there and re-reports what it finds, which the core ignores (idempotent
   by reference).

Errors (node unreachable, wrong password) propagate: the supervisor logs them, shows them on
/readyz and restarts the watcher with backoff.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Final

from kassa.rails.base import RailConfig, Reporter, Sighting, Wake
from kassa.rails.bitcoin.keys import AddressKey
from kassa.rails.bitcoin.rail import BitcoinSettings, node_client
from kassa.rails.bitcoin.rpc import (
    RPC_WALLET_NOT_FOUND,
    BitcoinRpc,
    BitcoinRpcError,
    WalletTx,
)

log = logging.getLogger("kassa.rails.bitcoin")

REORG_MARGIN: Final = 6
"""Blocks below the lowest unsettled payment (or the tip) the next pass lists again."""
KEEP_DEPTH: Final = 12
"""Confirmations after which a payment the core counts as final is no longer watched for reorgs."""
DROP_STRIKES: Final = 2
"""Passes in a row an unconfirmed payment must be missing from the mempool before it is rejected."""
RESCAN_DAYS: Final = 7
"""How far back the first import rescans for addresses handed out before the watcher ever ran."""
RESCAN_SLACK: Final = 2 * 3600
"""Block timestamps may lag: rescans start this much before the time they must cover."""
STATE_REFRESH: Final = 600
"""Seconds after which the state is saved even unchanged (its `last_pass` bounds a later rescan)."""
STATE_VERSION: Final = 1


def is_receive(tx: WalletTx) -> bool:
    """A wallet entry paying one of the wallet's addresses (not a send, not a coinbase)."""
    return tx.category == "receive" and tx.address is not None and tx.amount_sats > 0


def watched(ref: str, address: str, amount: int, height: int) -> WalletTx:
    """A payment as this watcher saved it (its state keeps address, amount and height)."""
    txid, _, vout = ref.partition(":")
    return WalletTx(
        txid=txid,
        vout=int(vout) if vout.isdigit() else 0,
        address=address,
        category="receive",
        amount_sats=amount,
        confirmations=0,
        blockhash=None,
        blockheight=height or None,
        blocktime=None,
        bip125_replaceable="unknown",
        trusted=None,
        abandoned=None,
        walletconflicts=(),
        label=None,
        time=0,
    )


_UNSEEN: Final = (0, True, False)  # not reported: not watched on


def parse_reference(reference: str) -> tuple[str, int] | None:
    txid, _, vout = reference.partition(":")
    if len(txid) != 64 or not vout.isdigit():
        return None
    return txid, int(vout)


class BitcoinWatcher:
    def __init__(self, config: RailConfig, settings: BitcoinSettings, key: AddressKey) -> None:
        self.config = config
        self.settings = settings
        self.key = key
        self.cursor: str | None = None
        self.imported = 0  # addresses [0, imported) are in the node's wallet
        self.last_pass = 0  # unix time of the last pass that imported or listed
        self.seen: dict[str, WalletTx] = {}  # payments watched on (reorgs, drops), as last listed
        self.reported: dict[str, tuple[int, bool, bool]] = {}  # confirmations, rejected, replaceable
        self.strikes: dict[str, int] = {}
        self.unknown: set[str] = set()  # pending references this wallet does not know
        self.descriptors = False  # a descriptor wallet (importdescriptors) or a legacy one

    def __repr__(self) -> str:
        return f"BitcoinWatcher({self.config.merchant_id!r}, {self.settings.node_url!r})"

    async def run(self, reporter: Reporter, wake: Wake) -> None:
        async with node_client(self.settings, timeout=60.0) as node:
            await self.start(node, reporter)
            while True:
                await self.run_pass(node, reporter)
                await wake(self.settings.poll_interval)

    # ----- start: the wallet and the state ---------------------------------------------------------

    async def start(self, node: BitcoinRpc, reporter: Reporter) -> None:
        self._load(await reporter.load_state())
        await self._open_wallet(node)
        info = await node.getwalletinfo()
        if info.private_keys_enabled:
            raise RuntimeError(
                f"wallet {self.settings.wallet!r} on the node can hold private keys: give Kassa a "
                "watch-only wallet of its own (createwallet with disable_private_keys), see docs/bitcoin.md"
            )
        self.descriptors = info.descriptors
        if self.imported and not await self._watches(node, self.imported - 1):
            log.warning(
                "%s: merchant %s: wallet %r lacks the addresses imported before (a new wallet?): "
                "importing again",
                self.config.rail,
                self.config.merchant_id,
                self.settings.wallet,
            )
            self.imported = 0
        log.info(
            "%s: watching merchant %s's key %s... on %s (wallet %r, %d addresses imported)",
            self.config.rail,
            self.config.merchant_id,
            self.key.key_id[:12],
            self.settings.network,
            self.settings.wallet,
            self.imported,
        )

    async def _open_wallet(self, node: BitcoinRpc) -> None:
        if self.settings.wallet in await node.listwallets():
            return
        try:
            await node.loadwallet(self.settings.wallet)
        except BitcoinRpcError as exc:
            if exc.code != RPC_WALLET_NOT_FOUND:
                raise
            log.info("%s: creating watch-only wallet %r on the node", self.config.rail, self.settings.wallet)
            await node.createwallet(self.settings.wallet, disable_private_keys=True, blank=True)

    async def _watches(self, node: BitcoinRpc, index: int) -> bool:
        info = await node.getaddressinfo(self.key.address(index))
        return info.ismine or info.iswatchonly

    def _load(self, state: dict[str, Any]) -> None:
        if state.get("v") != STATE_VERSION or state.get("key") != self.key.key_id:
            return  # a new key (or wallet) starts over: the core's references stay idempotent
        cursor = state.get("cursor")
        self.cursor = cursor if isinstance(cursor, str) else None
        self.imported = int(state.get("imported", 0))
        self.last_pass = int(state.get("last_pass", 0))
        seen = state.get("seen", {})
        if isinstance(seen, dict):
            for ref, entry in seen.items():
                if isinstance(entry, list) and len(entry) == 3:
                    self.seen[ref] = watched(ref, str(entry[0]), int(entry[1]), int(entry[2]))

    def _state(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "key": self.key.key_id,
            "cursor": self.cursor,
            "imported": self.imported,
            "last_pass": self.last_pass,
            "seen": {ref: [t.address, t.amount_sats, t.blockheight or 0] for ref, t in self.seen.items()},
        }

    # ----- imports -----------------------------------------------------------------------------

    async def _import(self, node: BitcoinRpc, handed_out: int) -> None:
        """Keep the node's wallet `lookahead` addresses past those handed out. Indexes handed out
        before they were imported need a rescan (from the last pass, or RESCAN_DAYS back)."""
        lookahead = self.settings.lookahead
        if self.imported >= handed_out + lookahead // 2:
            return
        end = handed_out + lookahead  # import [self.imported, end)
        now = int(time.time())
        if handed_out > self.imported:
            since = self.last_pass - RESCAN_SLACK if self.last_pass else now - RESCAN_DAYS * 86400
            timestamp: int | str = max(0, since)
        else:
            timestamp = "now"
        request = {
            "desc": self.key.descriptor(),
            "range": [self.imported, end - 1],
            "timestamp": timestamp,
        }
        if self.descriptors:
            await node.importdescriptors([{**request, "active": False, "internal": False}])
        else:
            await node.importmulti(
                [{**request, "watchonly": True, "keypool": False, "internal": False}],
                rescan=timestamp != "now",
            )
        log.info(
            "%s: merchant %s: imported addresses %d..%d%s",
            self.config.rail,
            self.config.merchant_id,
            self.imported,
            end - 1,
            f" (rescanning from {timestamp})" if timestamp != "now" else "",
        )
        self.imported = end

    # ----- a pass ------------------------------------------------------------------------------

    async def run_pass(self, node: BitcoinRpc, reporter: Reporter) -> None:
        before = (self.cursor, self.imported, self.seen)
        await self._import(node, await reporter.derived())
        try:
            listing = await node.listsinceblock(self.cursor, include_watchonly=True, include_removed=True)
        except BitcoinRpcError as exc:
            if self.cursor is None or exc.code != -5:  # -5: "Block not found" (another chain)
                raise
            log.warning("%s: the cursor block is unknown to the node: listing from genesis", self.config.rail)
            self.cursor = None
            listing = await node.listsinceblock(None, include_watchonly=True, include_removed=True)
        tip = await node.getblockcount()
        pending = await reporter.pending_references()

        current = {f"{tx.txid}:{tx.vout}": tx for tx in listing.transactions if is_receive(tx)}
        removed = {f"{tx.txid}:{tx.vout}" for tx in listing.removed if is_receive(tx)}
        for ref in sorted((pending | removed | self.seen.keys()) - current.keys()):
            if ref in self.unknown and ref not in self.seen:
                continue
            found = await self._lookup(node, ref)
            if found is not None:
                current[ref] = found
            else:
                self.unknown.add(ref)  # not this wallet's (another key before a change): not again

        gone = await self._out_of_mempool(node, current, pending)
        self.strikes = {ref: self.strikes.get(ref, 0) + 1 for ref in gone}
        await self._report(reporter, current, pending, gone)

        # Watched on: what the core has pending, and every payment not yet KEEP_DEPTH deep (a reorg
        # that double-spends it only shows as the listing no longer naming it).
        reported = self.reported
        self.seen = {
            ref: tx
            for ref, tx in current.items()
            if (ref in pending or 0 <= tx.confirmations < KEEP_DEPTH) and not reported.get(ref, _UNSEEN)[1]
        }
        lowest = min([tip, *(t.blockheight for t in self.seen.values() if t.blockheight)])
        height = max(0, lowest - REORG_MARGIN)
        self.cursor = await node.getblockhash(height) if height > 0 else None
        self.reported = {ref: mark for ref, mark in self.reported.items() if ref in current}
        now = int(time.time())
        if (self.cursor, self.imported, self.seen) != before or now - self.last_pass >= STATE_REFRESH:
            self.last_pass = now
            await reporter.save_state(self._state())

    async def _out_of_mempool(
        self, node: BitcoinRpc, current: dict[str, WalletTx], pending: set[str]
    ) -> set[str]:
        """Unconfirmed outputs whose transaction the node's mempool no longer holds. Asked for what
        the core counts (pending), what this watcher reported, and what the wallet sees contested
        (a replacement spends the same coins); an output seen for the first time without a rival
        is reported as it is, and asked about from the next pass on."""
        reported = self.reported
        unconfirmed = [
            ref
            for ref, tx in current.items()
            if tx.confirmations == 0
            and not tx.abandoned
            and (tx.walletconflicts or ref in pending or ref in reported)
        ]
        absent: dict[str, bool] = {}
        for ref in unconfirmed:
            txid = ref.partition(":")[0]
            if txid not in absent:
                absent[txid] = await node.getmempoolentry(txid) is None
        return {ref for ref in unconfirmed if absent[ref.partition(":")[0]]}

    async def _report(
        self, reporter: Reporter, current: dict[str, WalletTx], pending: set[str], gone: set[str]
    ) -> None:
        """Report what is new, what changed while the core waits on it, and every rejection."""
        strikes, reported, report = self.strikes, self.reported, reporter.report
        for ref, tx in current.items():
            confirmations = tx.confirmations
            dropped = bool(strikes) and strikes.get(ref, 0) >= DROP_STRIKES
            rejected = confirmations < 0 or bool(tx.abandoned) or dropped
            replaceable = confirmations == 0 and tx.bip125_replaceable == "yes"
            mark = (confirmations if confirmations > 0 else 0, rejected, replaceable)
            last = reported.get(ref)
            if last is not None and (last == mark or (ref not in pending and not rejected)):
                continue
            if last is None and not rejected and ref in gone and ref not in pending:
                continue  # first seen already out of the mempool: not counted until it is back or gone
            if rejected:
                log.warning(
                    "%s: merchant %s: payment %s (%d) %s: rejected",
                    self.config.rail,
                    self.config.merchant_id,
                    ref,
                    tx.amount_sats,
                    "was double-spent or replaced" if not dropped else "left the mempool",
                )
                strikes.pop(ref, None)
            await report(Sighting(tx.address, ref, tx.amount_sats, mark[0], rejected, replaceable))
            reported[ref] = mark

    async def _lookup(self, node: BitcoinRpc, ref: str) -> WalletTx | None:
        """A payment the listing did not return. A conflicted transaction (its double spend or
        replacement was mined) keeps no receive details in Core 0.21: what it paid is what this
        watcher saw of it before."""
        parsed = parse_reference(ref)
        if parsed is None:
            return None
        txid, vout = parsed
        tx = await node.gettransaction(txid)
        if tx is None:
            return None
        for detail in tx.details:
            if detail.vout == vout and is_receive(detail):
                return detail
        seen = self.seen.get(ref)
        if seen is not None and tx.confirmations < 0:
            return dataclasses.replace(seen, confirmations=tx.confirmations)
        return None
