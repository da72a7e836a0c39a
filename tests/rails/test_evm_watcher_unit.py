"""The EVM watcher against an in-process eth-tester chain (py-evm): fast, no database, no node process.

Each test gets a fresh chain (tests/support/eth_tester_node.py: eth-tester behind a JSON-RPC ASGI app
that EvmRpc reaches through httpx.ASGITransport), the test token deployed as USDC (6 decimals), a
merchant key from a fresh seed, and an in-memory Reporter. The watcher runs pass by pass
(`run_pass`); `start` runs it through `run` (loading the saved state) for exactly one pass.
The end-to-end tests against a real Hardhat node are tests/rails/test_evm_rail.py.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from embit.bip32 import HDKey

from kassa.rails.base import RailConfig, Sighting
from kassa.rails.evm.keys import EvmKey, parse_evm_key
from kassa.rails.evm.rail import EvmSettings
from kassa.rails.evm.watcher import EvmWatcher
from tests.support.eth_tester_node import CHAIN_ID, URL, TesterChain

CONFIRMATIONS = 3  # what the in-memory core waits for before a payment is final
MINTED = 10**12  # test USDC given to dev accounts 1 to 4


class StopWatching(Exception):
    """Raised by the test's `wake` to end `EvmWatcher.run` after its passes."""


@dataclass
class MemoryReporter:
    """The core's side of a watcher, in memory: sightings recorded in order."""

    count: int = 0  # how many addresses the core handed out (`derived`)
    required: int = CONFIRMATIONS
    sightings: list[Sighting] = field(default_factory=list)  # every one, in order
    state: dict[str, Any] = field(default_factory=dict)
    saves: int = 0
    taken: int = 0  # how many of `sightings` `take` returned

    async def report(self, sighting: Sighting) -> None:
        self.sightings.append(copy.copy(sighting))

    async def pending_references(self) -> set[str]:
        """Reported, neither rejected nor yet at the required confirmations."""
        last = self.latest()
        return {r for r, s in last.items() if not s.rejected and s.confirmations < self.required}

    async def derived(self) -> int:
        return self.count

    async def submitted_references(self) -> set[str]:
        return set()

    async def load_state(self) -> dict[str, Any]:
        return copy.deepcopy(self.state)

    async def save_state(self, state: dict[str, Any]) -> None:
        self.state = copy.deepcopy(state)
        self.saves += 1

    def latest(self) -> dict[str, Sighting]:
        """The last sighting of each reference."""
        return {s.reference: s for s in self.sightings}

    def take(self) -> list[Sighting]:
        """The sightings since the last take."""
        new, self.taken = self.sightings[self.taken :], len(self.sightings)
        return new


def fresh_key() -> EvmKey:
    """The account key m/44'/60'/0' of a new seed, as a wallet exports it."""
    xpub = HDKey.from_seed(secrets.token_bytes(32)).derive("m/44h/60h/0h").to_public().to_string()
    return parse_evm_key(str(xpub))


def settings_for(key: EvmKey, token: str) -> EvmSettings:
    return EvmSettings.model_validate(
        {
            "xpub": key.xpub,
            "chains": [
                {
                    "chain_id": CHAIN_ID,
                    "name": "Tester",
                    "rpc_urls": [URL],
                    "confirmations": CONFIRMATIONS,
                    "tokens": [{"address": token, "symbol": "USDC", "decimals": 6}],
                }
            ],
        }
    )


class AliasedKey:
    """The merchant's key, except that `index` derives `address` (a contract): how a watched address
    whose incoming transaction reverts looks (a derived address is a plain account, which cannot)."""

    def __init__(self, key: EvmKey, index: int, address: str) -> None:
        self.key, self.index, self.alias = key, index, address
        self.xpub = key.xpub
        self.key_id = key.key_id

    def address(self, index: int) -> str:
        return self.addresses(index, 1)[0]

    def addresses(self, start: int, count: int) -> list[str]:
        out = self.key.addresses(start, count)
        if start <= self.index < start + count:
            out[self.index - start] = self.alias
        return out


@dataclass
class World:
    chain: TesterChain
    token: str
    key: EvmKey
    settings: EvmSettings
    config: RailConfig
    reporter: MemoryReporter
    watcher: EvmWatcher

    def address(self, index: int) -> str:
        return self.key.address(index)

    def new_watcher(self, key: EvmKey | None = None) -> EvmWatcher:
        watcher = EvmWatcher(self.config, self.settings, key if key is not None else self.key)
        watcher.connect = lambda url: self.chain.rpc()
        return watcher

    async def scan(self) -> list[Sighting]:
        """One pass of the watcher; the sightings it reported."""
        await self.watcher.run_pass(self.reporter)
        return self.reporter.take()

    def ref(self, txhash: str, token_transfer: int | None = None) -> str:
        ref = f"{CHAIN_ID}:{txhash}"
        return ref if token_transfer is None else f"{ref}:t{token_transfer}"


async def start(watcher: EvmWatcher, reporter: MemoryReporter) -> None:
    """`watcher.run` for exactly one pass: the saved state loaded, as after a restart."""

    async def wake(seconds: float) -> bool:
        raise StopWatching

    with pytest.raises(StopWatching):
        await watcher.run(reporter, wake)


@pytest.fixture
async def chain() -> AsyncIterator[TesterChain]:
    tester = TesterChain()
    yield tester
    await tester.aclose()


@pytest.fixture
async def world(chain: TesterChain) -> World:
    token = chain.deploy_token("Test USD", "USDC", 6)
    for account in chain.accounts[1:5]:
        chain.mint(token, account, MINTED)
    key = fresh_key()
    settings = settings_for(key, token)
    config = RailConfig(
        merchant_pk=1, merchant_id="m_unit", rail="evm", settings=settings.model_dump(mode="json")
    )
    reporter = MemoryReporter(count=5)
    watcher = EvmWatcher(config, settings, key)
    watcher.connect = lambda url: chain.rpc()
    w = World(chain, token, key, settings, config, reporter, watcher)
    assert await w.scan() == []  # the chain so far: mints to dev accounts only
    return w


def one(sightings: list[Sighting]) -> Sighting:
    assert len(sightings) == 1, sightings
    return sightings[0]


# ============================================================================ what a pass finds


async def test_native_transfer_exact_wei_and_reference(world: World) -> None:
    wei = 2**64 + 123_456_789  # more than 64 bits
    txhash = world.chain.send_eth(world.address(2), wei)
    s = one(await world.scan())
    assert s == Sighting(world.address(2), world.ref(txhash), wei, 1, False, False, "ETH")
    assert s.destination == world.key.address(2)  # as handed out (EIP-55)


async def test_token_transfer_exact_amount_and_reference(world: World) -> None:
    txhash = world.chain.send_token(world.token, world.address(3), 12_345_678, sender=world.chain.accounts[1])
    s = one(await world.scan())
    assert s == Sighting(world.address(3), world.ref(txhash, 0), 12_345_678, 1, False, False, "USDC")


async def test_several_orders_both_kinds_in_one_block_one_pass(world: World) -> None:
    chain, accounts = world.chain, world.chain.accounts
    chain.automine(False)
    eth0 = chain.send_eth(world.address(0), 10**15 + 1, sender=accounts[5])
    eth1 = chain.send_eth(world.address(1), 2 * 10**15 + 3, sender=accounts[6])
    usdc2 = chain.send_token(world.token, world.address(2), 7_000_001, sender=accounts[1])
    usdc0 = chain.send_token(world.token, world.address(0), 9_000_009, sender=accounts[2])  # a 2nd method
    height = chain.mine()
    assert {chain.receipt(h)["block_number"] for h in (eth0, eth1, usdc2, usdc0)} == {height}

    got = {s.reference: s for s in await world.scan()}
    assert got == {
        world.ref(eth0): Sighting(world.address(0), world.ref(eth0), 10**15 + 1, 1, False, False, "ETH"),
        world.ref(eth1): Sighting(world.address(1), world.ref(eth1), 2 * 10**15 + 3, 1, False, False, "ETH"),
        world.ref(usdc2, 0): Sighting(
            world.address(2), world.ref(usdc2, 0), 7_000_001, 1, False, False, "USDC"
        ),
        world.ref(usdc0, 0): Sighting(
            world.address(0), world.ref(usdc0, 0), 9_000_009, 1, False, False, "USDC"
        ),
    }


async def test_transfers_to_addresses_not_watched_are_ignored(world: World) -> None:
    chain = world.chain
    chain.send_eth(chain.accounts[7], 10**18)  # a dev account
    chain.send_eth(world.address(5), 10**18)  # derived, but not handed out yet (derived() == 5)
    chain.send_token(world.token, chain.accounts[8], 1_000, sender=chain.accounts[1])
    chain.send_token(world.token, world.address(6), 1_000, sender=chain.accounts[1])
    chain.send_eth(world.address(1), 0)  # nothing moved
    assert await world.scan() == []


async def test_erc20_transfer_of_a_contract_not_configured_is_ignored(world: World) -> None:
    chain = world.chain
    other = chain.deploy_token("Fake USD", "USDC", 6)  # same symbol and decimals, another contract
    chain.mint(other, world.address(1), 5_000_000)  # a Transfer from 0x0 to a watched address
    chain.mint(other, chain.accounts[1], 5_000_000)
    chain.send_token(other, world.address(2), 4_000_000, sender=chain.accounts[1])
    assert await world.scan() == []
    # the configured token still counts, in the same pass as the other's
    chain.send_token(other, world.address(2), 1, sender=chain.accounts[1])
    real = chain.send_token(world.token, world.address(2), 2, sender=chain.accounts[1])
    s = one(await world.scan())
    assert (s.reference, s.amount, s.method) == (world.ref(real, 0), 2, "USDC")


async def test_a_reverted_native_transaction_is_not_reported(world: World) -> None:
    """ETH sent to a contract without a payable fallback is mined with status 0: it moved nothing.
    For the watcher to look at it, the contract's address stands as the merchant's address 3."""
    chain = world.chain
    watcher = world.new_watcher(cast(EvmKey, AliasedKey(world.key, 3, world.token)))
    reporter = MemoryReporter(count=5)
    await watcher.run_pass(reporter)
    assert reporter.take() == []
    chain.automine(False)
    failed = chain.send_eth(world.token, 10**17, gas=100_000, sender=chain.accounts[5])
    paid = chain.send_eth(world.address(4), 10**17, sender=chain.accounts[6])  # same block, succeeds
    broke = chain.send_token(world.token, world.address(1), 1, sender=chain.accounts[7])  # holds no USDC
    chain.mine()
    assert [chain.receipt(h)["status"] for h in (failed, paid, broke)] == [0, 1, 0]
    assert chain.receipt(failed)["to"].lower() == world.token
    await watcher.run_pass(reporter)
    s = one(reporter.take())
    assert (s.reference, s.destination, s.amount) == (world.ref(paid), world.address(4), 10**17)


# ============================================================================ confirmations


async def test_confirmations_grow_and_are_reported_only_while_pending(world: World) -> None:
    chain = world.chain
    eth = chain.send_eth(world.address(0), 5 * 10**15)
    usdc = chain.send_token(world.token, world.address(1), 10_000_000, sender=chain.accounts[1])
    first = {s.reference: s.confirmations for s in await world.scan()}
    assert first == {world.ref(eth): 2, world.ref(usdc, 0): 1}  # usdc mined one block later
    assert await world.scan() == []  # nothing changed: nothing reported
    chain.mine()
    assert {s.reference: s.confirmations for s in await world.scan()} == {
        world.ref(eth): 3,
        world.ref(usdc, 0): 2,
    }
    chain.mine()
    # eth reached the required 3 at the last pass: the core no longer waits on it
    assert {s.reference: s.confirmations for s in await world.scan()} == {world.ref(usdc, 0): 3}
    chain.mine(3)
    assert await world.scan() == []
    assert await world.reporter.pending_references() == set()


async def test_pending_native_transfer_at_zero_then_mined_same_reference(world: World) -> None:
    chain = world.chain
    chain.automine(False)
    txhash = chain.send_eth(world.address(1), 3 * 10**16)
    s = one(await world.scan())
    assert s == Sighting(world.address(1), world.ref(txhash), 3 * 10**16, 0, False, False, "ETH")
    assert await world.scan() == []  # still pending: not reported again
    chain.mine()
    s = one(await world.scan())
    assert (s.reference, s.confirmations, s.rejected, s.amount) == (world.ref(txhash), 1, False, 3 * 10**16)
    chain.mine()
    assert [(s.reference, s.confirmations) for s in await world.scan()] == [(world.ref(txhash), 2)]


async def test_pending_transfer_that_leaves_the_pool_is_rejected_after_two_passes(world: World) -> None:
    chain = world.chain
    chain.automine(False)
    txhash = chain.send_eth(world.address(2), 10**16)
    assert one(await world.scan()).confirmations == 0
    chain.drop_pending()
    assert await world.scan() == []  # one strike: perhaps being mined
    s = one(await world.scan())
    assert (s.reference, s.rejected, s.confirmations) == (world.ref(txhash), True, 0)
    assert await world.scan() == []


# ============================================================================ reorganisations


@pytest.mark.parametrize("new_blocks", [6, 4, 1], ids=["longer", "as-long", "shorter"])
async def test_reorg_rejects_payments_the_new_chain_lacks(world: World, new_blocks: int) -> None:
    chain = world.chain
    fork = chain.snapshot()
    height = chain.block_number()
    first = chain.send_eth(world.address(3), 10**15)  # every block above the fork goes
    chain.automine(False)
    eth = chain.send_eth(world.address(0), 4 * 10**15, sender=chain.accounts[5])
    usdc = chain.send_token(world.token, world.address(1), 3_000_000, sender=chain.accounts[1])
    chain.mine(2)
    chain.automine(True)  # (mines one more, empty)
    assert chain.block_number() == height + 4
    seen = {s.reference for s in await world.scan()}
    assert seen == {world.ref(first), world.ref(eth), world.ref(usdc, 0)}

    chain.revert(fork)
    assert chain.block_number() == height
    chain.mine(new_blocks)
    got = await world.scan()
    assert {s.reference: (s.rejected, s.amount, s.destination) for s in got} == {
        world.ref(first): (True, 10**15, world.address(3)),
        world.ref(eth): (True, 4 * 10**15, world.address(0)),
        world.ref(usdc, 0): (True, 3_000_000, world.address(1)),
    }
    chain.mine()
    assert await world.scan() == []  # rejected once
    # the watcher follows the new chain: a payment there is found
    again = chain.send_eth(world.address(0), 4 * 10**15)
    assert [(s.reference, s.rejected) for s in await world.scan()] == [(world.ref(again), False)]


async def test_state_saved_and_a_new_watcher_resumes_and_sees_a_reorg(world: World) -> None:
    chain = world.chain
    chain.mine(30)
    fork = chain.snapshot()
    eth = chain.send_eth(world.address(4), 6 * 10**15)
    usdc = chain.send_token(world.token, world.address(4), 6_000_000, sender=chain.accounts[2])
    chain.mine()
    tip = chain.block_number()
    assert {s.reference for s in await world.scan()} == {world.ref(eth), world.ref(usdc, 0)}
    state = world.reporter.state
    assert world.reporter.saves >= 2
    saved = state["chains"][str(CHAIN_ID)]
    assert saved["next"] == tip + 1
    assert saved["hashes"][str(tip)] == chain.block_hash(tip)

    # a restart: a new watcher loads the state and scans from its cursor, not START_BACK below the tip
    chain.mine(2)
    chain.app.calls.clear()
    restarted = world.new_watcher()
    reporter = MemoryReporter(count=5, state=state)
    await start(restarted, reporter)
    scanned = _full_blocks_asked(chain)
    assert min(scanned) == tip  # the parent of the cursor, to check it is still there
    assert sorted(scanned) == [tip, tip + 1, tip + 2]
    # what it found before is reported again (idempotent in the core), with its depth now
    assert {(s.reference, s.confirmations) for s in reporter.take()} == {
        (world.ref(eth), 5),
        (world.ref(usdc, 0), 4),
    }

    # a reorganisation below the cursor, of blocks only the first watcher scanned
    chain.revert(fork)
    chain.mine(6)
    assert chain.block_number() == tip + 3
    await restarted.run_pass(reporter)
    got = reporter.take()
    assert {(s.reference, s.rejected) for s in got} == {(world.ref(eth), True), (world.ref(usdc, 0), True)}


def _full_blocks_asked(chain: TesterChain) -> list[int]:
    return [
        int(params[0], 16)
        for method, params in chain.app.calls
        if method == "eth_getBlockByNumber" and params[0] != "pending" and params[1] is True
    ]


# ============================================================================ watched addresses


async def test_watched_addresses_grow_with_derived(world: World) -> None:
    chain = world.chain
    assert len(world.watcher.watched) == 5
    world.reporter.count = 8
    late = chain.send_eth(world.address(7), 10**15)
    s = one(await world.scan())
    assert (s.reference, s.destination) == (world.ref(late), world.address(7))
    assert len(world.watcher.watched) == 8
    assert world.watcher.watched[world.address(7).lower()] == world.address(7)
    world.reporter.count = 40
    usdc = chain.send_token(world.token, world.address(39), 1, sender=chain.accounts[3])
    got = {s.reference: (s.destination, s.method, s.confirmations) for s in await world.scan()}
    assert got == {
        world.ref(usdc, 0): (world.address(39), "USDC", 1),
        world.ref(late): (world.address(7), "ETH", 2),  # one block deeper, still pending
    }
    assert len(world.watcher.watched) == 40


async def test_address_handed_out_during_a_pass_and_paid_at_once(world: World) -> None:
    chain = world.chain
    paid: list[str] = []

    def hand_out_and_pay() -> None:  # the core hands out index 5 and the customer pays at once
        world.reporter.count = 6
        paid.append(chain.send_eth(world.address(5), 10**16))

    chain.app.before_next("eth_blockNumber", hand_out_and_pay)
    first = await world.scan()
    chain.mine()
    later = first + await world.scan()
    assert paid
    assert {s.reference for s in later} == {world.ref(paid[0])}  # seen (then deeper), not missed


# ============================================================================ two chains

SECOND_ID = 1337
SECOND_URL = "http://tester-b"


@pytest.fixture
async def two_chains(
    chain: TesterChain,
) -> AsyncIterator[tuple[TesterChain, TesterChain, EvmWatcher, EvmKey]]:
    """The tester chain with the token, and a second one (chain id 1337, ETH only), one watcher."""
    second = TesterChain(chain_id=SECOND_ID, url=SECOND_URL)
    token = chain.deploy_token("Test USD", "USDC", 6)
    key = fresh_key()
    settings = settings_for(key, token)
    settings = EvmSettings.model_validate(
        {
            **settings.model_dump(mode="json"),
            "chains": [
                *settings.model_dump(mode="json")["chains"],
                {"chain_id": SECOND_ID, "name": "Second", "rpc_urls": [SECOND_URL], "confirmations": 3},
            ],
        }
    )
    config = RailConfig(
        merchant_pk=2, merchant_id="m_two", rail="evm", settings=settings.model_dump(mode="json")
    )
    watcher = EvmWatcher(config, settings, key)
    nodes = {chain.url: chain, second.url: second}
    watcher.connect = lambda url: nodes[url].rpc()
    yield chain, second, watcher, key
    await second.aclose()


async def test_two_chains_each_payment_named_by_its_chain(
    two_chains: tuple[TesterChain, TesterChain, EvmWatcher, EvmKey],
) -> None:
    first, second, watcher, key = two_chains
    reporter = MemoryReporter(count=3)
    await watcher.run_pass(reporter)
    assert reporter.take() == []
    a = first.send_eth(key.address(0), 10**15)
    b = second.send_eth(key.address(0), 2 * 10**15)  # the same address on the other chain
    await watcher.run_pass(reporter)
    got = {s.reference: (s.destination, s.amount, s.method) for s in reporter.take()}
    assert got == {
        f"{CHAIN_ID}:{a}": (key.address(0), 10**15, f"ETH@{CHAIN_ID}"),
        f"{SECOND_ID}:{b}": (key.address(0), 2 * 10**15, f"ETH@{SECOND_ID}"),
    }


async def test_two_chains_a_transfer_that_leaves_the_pool_is_rejected(
    two_chains: tuple[TesterChain, TesterChain, EvmWatcher, EvmKey],
) -> None:
    first, _, watcher, key = two_chains
    reporter = MemoryReporter(count=3)
    await watcher.run_pass(reporter)
    first.automine(False)
    txhash = first.send_eth(key.address(1), 10**16)
    await watcher.run_pass(reporter)
    assert [(s.reference, s.confirmations) for s in reporter.take()] == [(f"{CHAIN_ID}:{txhash}", 0)]
    first.drop_pending()
    for _ in range(4):
        await watcher.run_pass(reporter)
    assert [(s.reference, s.rejected) for s in reporter.take()] == [(f"{CHAIN_ID}:{txhash}", True)]


# ============================================================================ the shim itself


async def test_tester_chain_answers_like_a_node(chain: TesterChain) -> None:
    async with chain.rpc() as node:
        assert await node.eth_chainId() == CHAIN_ID
        token = chain.deploy_token("Test USD", "USDC", 6)
        assert (await node.erc20_decimals(token), await node.erc20_symbol(token)) == (6, "USDC")
        tip = await node.eth_blockNumber()
        assert tip == chain.block_number()
        assert (await node.get_blocks([tip + 1]))[0] is None
        chain.automine(False)
        txhash = chain.send_eth(chain.accounts[3], 10**18)
        (pending,) = await node.pending_transactions()
        assert (pending.hash, pending.value, pending.block_number) == (txhash, 10**18, None)
        assert await node.eth_getTransactionReceipt(txhash) is None
        with pytest.raises(RuntimeError, match="already has a pending transaction"):
            chain.send_eth(chain.accounts[4], 1)  # from account 0 again: eth-tester would replace it
        chain.mine()
        receipt = await node.eth_getTransactionReceipt(txhash)
        assert receipt is not None and receipt.status == 1 and receipt.block_number == tip + 1
        assert await node.pending_transactions() == ()


def test_the_tester_chain_leaves_the_recursion_limit_alone() -> None:
    """py-evm raises it to 100,000 on import; the test session shares the interpreter (a request
    nested 100,000 deep would then overflow the C stack instead of being refused)."""
    import sys

    assert sys.getrecursionlimit() <= 10_000
