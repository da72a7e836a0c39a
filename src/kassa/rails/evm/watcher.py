"""The EVM watcher: follows each configured chain's blocks over HTTP and reports transfers to the
addresses Kassa handed out.

Watched addresses: the watcher derives them itself from the merchant's key, indexes
``0 .. reporter.derived()`` (the core hands them out, see :mod:`kassa.services.addresses`), into a
dict keyed by the lower-case address: matching a block is set lookups, never a query per order.

One pass per chain (every `poll_interval` seconds):

1. the tip (``eth_blockNumber``) and the blocks from the cursor up to it, at most MAX_BLOCKS in one
   batch request; each block's parent must be the block before it (the stored hash): when it is not,
   the chain was reorganised, and the watcher walks back through its last REORG_DEPTH hashes to the
   fork, forgets what it found above it and scans again from there: a payment of a dropped block that
   the new chain does not hold again is reported rejected (the order goes back; a final payment is
   taken back too, docs/lifecycle.md);
2. native transfers: each transaction of those blocks whose `to` is watched and `value` > 0 (its
   receipt must say it succeeded); token transfers: ``eth_getLogs`` of the configured tokens'
   ``Transfer`` events over the same blocks, decoded, `to` looked up. References are
   ``<chain>:<txhash>`` (native) and ``<chain>:<txhash>:t<k>`` (the k-th watched transfer of the
   transaction), stable when a reorg puts the transaction in another block;
3. native transfers still pending (the node's ``pending`` block) are reported at 0 confirmations; one
   that is neither pending nor mined two passes in a row is reported rejected;
4. confirmations are ``tip - block + 1``; a payment is reported when new, when its confirmations change
   while the core still waits on it, and when it is rejected.

The cursor, the last REORG_DEPTH block hashes and the payments found in them are saved per chain: a
restart resumes from there (payments are idempotent by reference in the core). A chain's nodes are
tried in order (`rpc_urls`); errors propagate when all fail: the supervisor logs them, shows them on
/readyz and restarts the watcher with backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from kassa.rails.base import RailConfig, Reporter, Sighting, Wake
from kassa.rails.evm.keys import EvmKey
from kassa.rails.evm.rail import ChainSettings, EvmSettings, check_tokens, offers
from kassa.rails.evm.rpc import TRANSFER_TOPIC, Block, EvmError, EvmRpc, Log, Tx, decode_transfer

log = logging.getLogger("kassa.rails.evm")

MAX_BLOCKS: Final = 200
"""Blocks fetched in one batch request; a watcher far behind catches up over several passes."""
REORG_DEPTH: Final = 128
"""Block hashes kept per chain: a reorganisation deeper than this is not undone (a safety log)."""
START_BACK: Final = 256
"""Where a chain's first scan starts: this many blocks below the tip (payments made before the
watcher first ran, e.g. while Kassa started)."""
DROP_STRIKES: Final = 2
STATE_VERSION: Final = 1


@dataclass(slots=True)
class Found:
    """A transfer to a watched address, as scanned."""

    address: str  # as the core handed it out (EIP-55)
    amount: int
    method: str
    block: int  # 0 while pending


@dataclass(slots=True)
class ChainState:
    next: int = -1  # the next block to scan; -1: not started
    hashes: dict[int, str] = field(default_factory=dict)
    found: dict[str, Found] = field(default_factory=dict)  # in the last REORG_DEPTH blocks, or pending
    strikes: dict[str, int] = field(default_factory=dict)  # passes a pending transfer was missing


@dataclass(frozen=True, slots=True)
class Match:
    """What one scan of blocks found: references -> transfers."""

    found: dict[str, Found]


def match_blocks(
    blocks: list[Block],
    logs: list[Log],
    chain_id: int,
    watched: dict[str, str],
    native: str | None,
    tokens: dict[str, str],
) -> dict[str, Found]:
    """The transfers to watched addresses in `blocks` (native, by transaction) and `logs` (token
    Transfer events): set lookups only. `watched` maps lower-case address -> as handed out; `tokens`
    lower-case contract -> method."""
    found: dict[str, Found] = {}
    if native is not None:
        for block in blocks:
            for tx in block.transactions:
                to = tx.to
                if to is not None and tx.value > 0 and to in watched:
                    found[f"{chain_id}:{tx.hash}"] = Found(watched[to], tx.value, native, block.number)
    ordinals: dict[str, int] = {}
    for entry in logs:
        method = tokens.get(entry.address)
        if method is None or entry.removed:
            continue
        try:
            transfer = decode_transfer(entry)
        except ValueError:
            continue  # not an ERC-20 Transfer (ERC-721 has four topics)
        if transfer.to not in watched or transfer.amount <= 0:
            continue
        k = ordinals.get(entry.transaction_hash, 0)
        ordinals[entry.transaction_hash] = k + 1
        ref = f"{chain_id}:{entry.transaction_hash}:t{k}"
        found[ref] = Found(watched[transfer.to], transfer.amount, method, entry.block_number)
    return found


class EvmWatcher:
    def __init__(self, config: RailConfig, settings: EvmSettings, key: EvmKey) -> None:
        self.config = config
        self.settings = settings
        self.key = key
        self.watched: dict[str, str] = {}  # lower-case -> as handed out, indexes [0, len)
        self.chains: dict[int, ChainState] = {}
        self.reported: dict[str, tuple[int, bool]] = {}  # confirmations, rejected
        self.checked: set[int] = set()  # chains whose node and tokens were checked this run
        self.connect: Callable[[str], EvmRpc] = lambda url: EvmRpc(url, timeout=30.0)  # tests swap it
        methods = offers(settings)
        self.native: dict[int, str | None] = {c.chain_id: None for c in settings.chains}
        self.tokens: dict[int, dict[str, str]] = {c.chain_id: {} for c in settings.chains}
        for offer in methods.values():
            if offer.token is None:
                self.native[offer.chain.chain_id] = offer.method
            else:
                self.tokens[offer.chain.chain_id][offer.token.address] = offer.method

    def __repr__(self) -> str:
        return f"EvmWatcher({self.config.merchant_id!r})"

    async def run(self, reporter: Reporter, wake: Wake) -> None:
        self._load(await reporter.load_state())
        while True:
            await self.run_pass(reporter)
            await wake(self.settings.poll_interval)

    # ----- state -----------------------------------------------------------------------------

    def _load(self, state: dict[str, Any]) -> None:
        if state.get("v") != STATE_VERSION or state.get("key") != self.key.key_id:
            return
        for chain_id, entry in (state.get("chains") or {}).items():
            cs = ChainState(next=int(entry.get("next", -1)))
            cs.hashes = {int(n): str(h) for n, h in (entry.get("hashes") or {}).items()}
            for ref, f in (entry.get("found") or {}).items():
                cs.found[ref] = Found(str(f[0]), int(f[1]), str(f[2]), int(f[3]))
            self.chains[int(chain_id)] = cs

    def _state(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "key": self.key.key_id,
            "chains": {
                str(chain_id): {
                    "next": cs.next,
                    "hashes": {str(n): h for n, h in cs.hashes.items()},
                    "found": {r: [f.address, str(f.amount), f.method, f.block] for r, f in cs.found.items()},
                }
                for chain_id, cs in self.chains.items()
            },
        }

    # ----- a pass ------------------------------------------------------------------------------

    async def run_pass(self, reporter: Reporter) -> None:
        """One pass over every chain; a chain whose nodes all fail does not stop the others (its
        error is raised after them, for the supervisor to show and retry)."""
        before = self._state()
        pending = await reporter.pending_references()
        failed: EvmError | None = None
        for chain in self.settings.chains:
            try:
                await self._chain_pass(chain, reporter, pending)
            except EvmError as exc:
                failed = failed or exc
        state = self._state()
        if state != before:
            await reporter.save_state(state)
        if failed is not None:
            raise failed

    async def _watch_handed_out(self, reporter: Reporter) -> None:
        """Add the addresses the core handed out since (read AFTER the tip: an address handed out
        later can only be paid in a later block, which the next pass scans)."""
        handed_out = await reporter.derived()
        if handed_out > len(self.watched):
            start = len(self.watched)
            for address in self.key.addresses(start, handed_out - start):
                self.watched[address.lower()] = address

    async def _chain_pass(self, chain: ChainSettings, reporter: Reporter, pending: set[str]) -> None:
        last: EvmError | None = None
        for url in chain.rpc_urls:
            try:
                async with self.connect(url) as node:
                    await self._scan(node, chain, reporter, pending)
                return
            except EvmError as exc:  # the next node, if there is one
                log.warning("evm: chain %s: %s", chain.name, exc)
                last = exc
        assert last is not None
        raise last

    async def _scan(self, node: EvmRpc, chain: ChainSettings, reporter: Reporter, pending: set[str]) -> None:
        chain_id = chain.chain_id
        if chain_id not in self.checked:
            got = await node.eth_chainId()
            if got != chain_id:
                raise EvmError(f"{chain.name}: the node is on chain {got}, not {chain_id}")
            problems = await check_tokens(node, chain)
            if problems:
                raise EvmError("; ".join(problems))
            self.checked.add(chain_id)
        cs = self.chains.setdefault(chain_id, ChainState())
        tip = await node.eth_blockNumber()
        await self._watch_handed_out(reporter)
        if cs.next < 0:
            cs.next = max(0, tip - START_BACK)
        blocks, suspects = await self._fetch(node, cs, tip)
        found: dict[str, Found] = {}
        if blocks:
            first, end = blocks[0].number, blocks[-1].number
            tokens = self.tokens[chain_id]
            logs = list(await node.eth_getLogs(first, end, list(tokens), [TRANSFER_TOPIC])) if tokens else []
            found = await self._succeeded(
                node, match_blocks(blocks, logs, chain_id, self.watched, self.native[chain_id], tokens)
            )
            for block in blocks:
                cs.hashes[block.number] = block.hash
            cs.next = end + 1
        cs.found.update(found)
        # Native transfers waiting in the node's pool: 0 confirmations (a reorged one back there too).
        pool = await self._pool(node, chain_id)
        for ref, item in pool.items():
            if ref not in cs.found or (cs.found[ref].block > 0 and ref in suspects):
                cs.found[ref] = item
        suspects = {ref for ref in suspects if ref not in found and ref not in pool}
        await self._report(reporter, cs, tip, pending, suspects, pool)
        floor = cs.next - REORG_DEPTH
        cs.hashes = {n: h for n, h in cs.hashes.items() if n >= floor}
        cs.found = {
            r: f
            for r, f in cs.found.items()
            if (f.block == 0 and r in pool) or f.block >= floor or r in pending
        }

    async def _fetch(self, node: EvmRpc, cs: ChainState, tip: int) -> tuple[list[Block], set[str]]:
        """The next blocks to scan, after making sure the last one scanned is still in the chain
        (else: back to the fork, and the payments found above it are suspects)."""
        suspects: set[str] = set()
        for _ in range(2):  # at most once more, after unwinding
            parent = cs.next - 1
            known = parent in cs.hashes
            if parent > tip and cs.hashes:
                suspects |= await self._unwind(node, cs, tip)
                continue
            last = min(tip, cs.next + MAX_BLOCKS - 1)
            numbers = ([parent] if known else []) + list(range(cs.next, last + 1))
            if not numbers:
                return [], suspects
            fetched = list(await node.get_blocks(numbers))
            if known:
                head = fetched.pop(0)
                if head is None or head.hash != cs.hashes[parent]:
                    suspects |= await self._unwind(node, cs, tip)
                    continue
            return self._linked(cs, [b for b in fetched if b is not None]), suspects
        return [], suspects

    def _linked(self, cs: ChainState, blocks: list[Block]) -> list[Block]:
        """The fetched blocks up to the first that does not follow its parent (a reorg while
        fetching: the next pass unwinds it)."""
        out: list[Block] = []
        parent = cs.hashes.get(blocks[0].number - 1) if blocks else None
        for block in blocks:
            if parent is not None and block.parent_hash != parent:
                break
            out.append(block)
            parent = block.hash
        return out

    async def _unwind(self, node: EvmRpc, cs: ChainState, tip: int) -> set[str]:
        """Back to the highest kept block the node still has: the payments found above it become
        suspects until the new chain (or the pool) shows them again."""
        heights = sorted((n for n in cs.hashes if n <= tip), reverse=True)
        fork = -1
        for start in range(0, len(heights), 32):
            chunk = heights[start : start + 32]
            for n, block in zip(chunk, await node.get_blocks(chunk, full=False), strict=True):
                if block is not None and block.hash == cs.hashes[n]:
                    fork = n
                    break
            if fork >= 0:
                break
        if fork < 0:
            fork = min(min(cs.hashes) - 1, tip) if cs.hashes else tip
            log.error(
                "evm: merchant %s: a reorganisation deeper than the %d blocks kept: rescanning from %d",
                self.config.merchant_id,
                REORG_DEPTH,
                fork + 1,
            )
        else:
            log.warning(
                "evm: merchant %s: the chain was reorganised above block %d", self.config.merchant_id, fork
            )
        suspects = {ref for ref, f in cs.found.items() if f.block > fork}
        cs.hashes = {n: h for n, h in cs.hashes.items() if n <= fork}
        cs.next = fork + 1
        return suspects

    async def _succeeded(self, node: EvmRpc, found: dict[str, Found]) -> dict[str, Found]:
        """Native transfers whose transaction reverted moved nothing: left out."""
        natives = [ref for ref in found if ref.count(":") == 1]
        if not natives:
            return found
        receipts = await node.get_receipts([ref.split(":")[1] for ref in natives])
        for ref, receipt in zip(natives, receipts, strict=True):
            if receipt is None or receipt.status == 0:
                del found[ref]
        return found

    async def _pool(self, node: EvmRpc, chain_id: int) -> dict[str, Found]:
        native = self.native[chain_id]
        if native is None:
            return {}
        try:
            txs: tuple[Tx, ...] = await node.pending_transactions()
        except EvmError:
            return {}  # a node without a pending block: 0-conf is not seen there
        return {
            f"{chain_id}:{tx.hash}": Found(self.watched[tx.to], tx.value, native, 0)
            for tx in txs
            if tx.to is not None and tx.value > 0 and tx.to in self.watched
        }

    async def _report(
        self,
        reporter: Reporter,
        cs: ChainState,
        tip: int,
        pending: set[str],
        suspects: set[str],
        pool: dict[str, Found],
    ) -> None:
        for ref in suspects:  # dropped with their block, not in the new chain
            item = cs.found.pop(ref, None)
            if item is not None:
                await self._send(reporter, ref, item, 0, rejected=True)
        gone = [r for r, f in cs.found.items() if f.block == 0 and r not in pool]
        cs.strikes = {r: n for r, n in cs.strikes.items() if r in gone}
        for ref in gone:  # left the pool without being mined (replaced, dropped)
            cs.strikes[ref] = cs.strikes.get(ref, 0) + 1
            if cs.strikes[ref] >= DROP_STRIKES:
                item = cs.found.pop(ref)
                del cs.strikes[ref]
                await self._send(reporter, ref, item, 0, rejected=True)
        for ref, item in cs.found.items():
            confirmations = tip - item.block + 1 if item.block else 0
            last = self.reported.get(ref)
            if last is None or (ref in pending and last[0] != confirmations):
                await self._send(reporter, ref, item, confirmations)

    async def _send(
        self, reporter: Reporter, ref: str, item: Found, confirmations: int, rejected: bool = False
    ) -> None:
        if rejected:
            log.warning(
                "evm: merchant %s: transfer %s (%d of %s) left the chain: rejected",
                self.config.merchant_id,
                ref,
                item.amount,
                item.method,
            )
        await reporter.report(
            Sighting(item.address, ref, item.amount, max(confirmations, 0), rejected, False, item.method)
        )
        self.reported[ref] = (confirmations, rejected)
