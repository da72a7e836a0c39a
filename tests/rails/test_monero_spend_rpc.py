"""Spending with kassa.rails.monero.rpc against real monerod + monero-wallet-rpc (regtest).

The session-wide network (tests/support/monero_fixtures.py) is shared: these tests spend from a
wallet pair of their own (a view-only wallet and the full wallet of the same fresh keys, started
once per module) and pay into subaddresses they create on the shared merchant wallet, looking only
at those. What each test shows is in its docstring; amounts are atomic units (1 XMR = 10**12).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import pytest

from kassa.rails.monero.rpc import (
    ATOMIC_UNITS_PER_XMR,
    WALLET_RPC_ERROR_CODE_BAD_HEX,
    WALLET_RPC_ERROR_CODE_BAD_SIGNED_TX_DATA,
    WALLET_RPC_ERROR_CODE_BAD_TX_METADATA,
    WALLET_RPC_ERROR_CODE_BAD_UNSIGNED_TX_DATA,
    WALLET_RPC_ERROR_CODE_GENERIC_TRANSFER_ERROR,
    WALLET_RPC_ERROR_CODE_NOT_ENOUGH_MONEY,
    WALLET_RPC_ERROR_CODE_NOT_ENOUGH_UNLOCKED_MONEY,
    WALLET_RPC_ERROR_CODE_SIGNED_SUBMISSION,
    WALLET_RPC_ERROR_CODE_WATCH_ONLY,
    WALLET_RPC_ERROR_CODE_WRONG_ADDRESS,
    MoneroRpcError,
    MoneroWalletRpc,
    Transfer,
)
from tests.support.monero_regtest import MoneroRegtest, WalletKeys

XMR = ATOMIC_UNITS_PER_XMR
# A 1-input, 2-output (destination + change) transfer at priority 0 on a young regtest chain: weight
# 1507, fee 1_808_400_000 (1.2e6 per weight unit) in every run so far. Asserted loosely: the fee per
# byte follows the block reward and the weight the varint sizes of ring offsets.
TYPICAL_FEE_RANGE = range(10**8, 10**10)


@dataclass
class Pair:
    """One set of fresh keys in three wallet-rpcs: a view-only wallet, the full wallet synced with
    the chain (a hot wallet) and the full wallet ``--offline`` (a cold signer)."""

    keys: WalletKeys
    view_name: str
    spend_name: str
    view_url: str
    spend_url: str
    signer_url: str


@pytest.fixture(scope="module")
def pair(monero_regtest: MoneroRegtest) -> Pair:
    """Fresh keys, funded with eight 2 XMR outputs, unlocked, wallets synced (~12 s)."""
    view, keys = monero_regtest.start_view_only_wallet_rpc("spend-view")
    spend = monero_regtest.start_spend_wallet_rpc("spend-hot", keys)
    signer = monero_regtest.start_spend_wallet_rpc("spend-cold", keys, offline=True)
    monero_regtest.fund([(keys.address, 2 * XMR)] * 8)
    monero_regtest.sync_wallet(view.name)
    monero_regtest.sync_wallet(spend.name)
    return Pair(keys, view.name, spend.name, view.url, spend.url, signer.url)


@pytest.fixture
async def spender(pair: Pair) -> AsyncIterator[MoneroWalletRpc]:
    async with MoneroWalletRpc(pair.spend_url) as wallet:
        yield wallet


@pytest.fixture
async def viewer(pair: Pair) -> AsyncIterator[MoneroWalletRpc]:
    async with MoneroWalletRpc(pair.view_url) as wallet:
        yield wallet


@pytest.fixture
async def signer(pair: Pair) -> AsyncIterator[MoneroWalletRpc]:
    async with MoneroWalletRpc(pair.signer_url) as wallet:
        yield wallet


@pytest.fixture
async def merchant(monero_regtest: MoneroRegtest) -> AsyncIterator[MoneroWalletRpc]:
    """The shared merchant view-only wallet: the receiving side (own subaddresses only)."""
    assert monero_regtest.merchant_rpc_login is not None
    user, password = monero_regtest.merchant_rpc_login
    async with MoneroWalletRpc(monero_regtest.merchant_wallet_url, user, password) as wallet:
        yield wallet


async def mine(net: MoneroRegtest, n: int, *wallets: str) -> None:
    """Mine ``n`` blocks, then refresh the named wallet-rpcs up to the daemon's height."""
    await asyncio.to_thread(net.mine, n)
    for name in wallets:
        await asyncio.to_thread(net.sync_wallet, name)


async def received(
    wallet: MoneroWalletRpc, index: int, done: Callable[[list[Transfer]], bool], *, within: float = 5.0
) -> list[Transfer]:
    """refresh + get_transfers(in, pool) of one subaddress until ``done``."""
    deadline = time.monotonic() + within
    while True:
        await wallet.refresh()
        transfers = await wallet.get_transfers(incoming=True, pool=True, subaddr_indices=[index])
        if done(transfers):
            return transfers
        if time.monotonic() > deadline:
            pytest.fail(f"subaddress {index}: still {transfers!r} after {within} s")
        await asyncio.sleep(0.1)


async def unlocked_at_least(net: MoneroRegtest, pair: Pair, wallet: MoneroWalletRpc, amount: int) -> None:
    """Top the pair up (a fresh 2 XMR output per missing 2 XMR) when earlier tests spent it."""
    balance = await wallet.get_balance()
    if balance.unlocked_balance < amount:
        missing = -(-(amount - balance.unlocked_balance) // (2 * XMR)) + 1
        await asyncio.to_thread(net.fund, [(pair.keys.address, 2 * XMR)] * missing)
        await asyncio.to_thread(net.sync_wallet, pair.view_name)
        await asyncio.to_thread(net.sync_wallet, pair.spend_name)


# ------------------------------------------------------------------------------------ addresses


@pytest.mark.slow
async def test_validate_address(pair: Pair, viewer: MoneroWalletRpc) -> None:
    primary = await viewer.validate_address(pair.keys.address)
    assert (primary.valid, primary.integrated, primary.subaddress) == (True, False, False)
    assert primary.nettype == "mainnet"  # regtest (nettype "fakechain") uses mainnet addresses

    sub = await viewer.create_address("refund-to")
    subaddress = await viewer.validate_address(sub.address)
    assert (subaddress.valid, subaddress.integrated, subaddress.subaddress) == (True, False, True)

    integrated_address = (await viewer.call("make_integrated_address"))["integrated_address"]
    integrated = await viewer.validate_address(integrated_address)
    assert (integrated.valid, integrated.integrated, integrated.subaddress) == (True, True, False)
    assert integrated.nettype == "mainnet"

    # One character changed: the checksum (last 4 bytes of the base58 payload) no longer matches.
    last = pair.keys.address[-1]
    corrupted = pair.keys.address[:-1] + ("2" if last != "2" else "3")
    for bad in (corrupted, "hello", "", pair.keys.address[:-1]):
        for any_net_type in (False, True):
            answer = await viewer.validate_address(bad, any_net_type=any_net_type)
            assert (answer.valid, answer.integrated, answer.subaddress, answer.nettype) == (
                False,
                False,
                False,
                "",
            ), bad

    with pytest.raises(MoneroRpcError) as caught:
        await viewer.transfer([("hello", XMR)])
    assert caught.value.code == WALLET_RPC_ERROR_CODE_WRONG_ADDRESS


@pytest.mark.slow
async def test_default_spend_wallet_is_the_merchants_full_wallet(monero_regtest: MoneroRegtest) -> None:
    server = await asyncio.to_thread(monero_regtest.start_spend_wallet_rpc, "merchant-full")
    async with MoneroWalletRpc(server.url) as wallet:
        assert await wallet.is_view_only() is False
        assert (await wallet.get_address()).address == monero_regtest.merchant_address
        assert await wallet.get_height() == await asyncio.to_thread(monero_regtest.daemon_height)


# ------------------------------------------------------------------------------------ hot wallet


@pytest.mark.slow
async def test_prepare_without_relay_then_relay_is_idempotent(
    monero_regtest: MoneroRegtest, pair: Pair, spender: MoneroWalletRpc, merchant: MoneroWalletRpc
) -> None:
    """``do_not_relay`` publishes nothing and leaves no trace in the sending wallet; ``relay_tx``
    publishes exactly that hash, and relaying the same metadata again (in the pool, then mined)
    answers the same hash without error or a second payment."""
    net = monero_regtest
    await spender.refresh()
    await unlocked_at_least(net, pair, spender, 2 * XMR)
    destination = await merchant.create_address("refund_relay")
    amount = 1_234_567_890
    before = await spender.get_balance()
    pool_before = net.pool_txids()

    prepared = await spender.transfer([(destination.address, amount)], do_not_relay=True)
    assert prepared.amount == amount
    assert prepared.fee in TYPICAL_FEE_RANGE
    assert 1400 < prepared.weight < 1600
    print(f"1-output transfer: fee {prepared.fee}, weight {prepared.weight}")  # shown with -s
    assert len(prepared.tx_hash) == 64 and len(prepared.tx_key) == 64
    assert prepared.tx_metadata and not prepared.unsigned_txset and not prepared.needs_signing
    assert len(prepared.spent_key_images) == 1
    assert net.pool_txids() == pool_before
    # The wallet forgot it: not found, not pending, balance untouched.
    assert await spender.get_transfer_by_txid(prepared.tx_hash) == []
    pending = await spender.call("get_transfers", {"out": True, "pending": True, "pool": True})
    assert prepared.tx_hash not in json.dumps(pending)
    assert await spender.get_balance() == before

    assert await spender.relay_tx(prepared.tx_metadata) == prepared.tx_hash
    assert net.pool_txids() - pool_before == {prepared.tx_hash}
    (outgoing,) = await spender.get_transfer_by_txid(prepared.tx_hash)
    assert (outgoing.type, outgoing.amount, outgoing.fee) == ("pending", amount, prepared.fee)
    assert (await spender.get_balance()).balance == before.balance - amount - prepared.fee

    (seen,) = await received(merchant, destination.address_index, lambda ts: bool(ts))
    assert (seen.txid, seen.amount, seen.in_pool) == (prepared.tx_hash, amount, True)

    # Again while in the pool: same hash, still one transaction.
    assert await spender.relay_tx(prepared.tx_metadata) == prepared.tx_hash
    assert net.pool_txids() - pool_before == {prepared.tx_hash}

    await mine(net, 1, pair.spend_name)
    assert prepared.tx_hash not in net.pool_txids()
    (mined,) = await received(merchant, destination.address_index, lambda ts: bool(ts) and not ts[0].in_pool)
    assert (mined.txid, mined.amount, mined.confirmations) == (prepared.tx_hash, amount, 1)
    (outgoing,) = await spender.get_transfer_by_txid(prepared.tx_hash)
    assert (outgoing.type, outgoing.confirmations) == ("out", 1)
    settled = await spender.get_balance()

    # Again once mined, with the hash: the wallet has it in a block, nothing is sent.
    assert await spender.relay_tx(prepared.tx_metadata, tx_hash=prepared.tx_hash) == prepared.tx_hash
    assert [t.type for t in await spender.get_transfer_by_txid(prepared.tx_hash)] == ["out"]
    assert await spender.get_balance() == settled

    # Without the hash: same answer, not back in the pool, nothing paid twice, but the wallet adds a
    # phantom "pending" copy and counts the change twice until its transfers are rebuilt.
    assert await spender.relay_tx(prepared.tx_metadata) == prepared.tx_hash
    assert prepared.tx_hash not in net.pool_txids()
    (again,) = await received(merchant, destination.address_index, lambda ts: bool(ts))
    assert (again.txid, again.confirmations) == (prepared.tx_hash, 1)
    entries = await spender.get_transfer_by_txid(prepared.tx_hash)
    assert sorted(t.type for t in entries) == ["out", "pending"]
    (spent_output,) = [
        t
        for t in (await spender.call("incoming_transfers", {"transfer_type": "all"}))["transfers"]
        if t["key_image"] in prepared.spent_key_images
    ]
    change = spent_output["amount"] - amount - prepared.fee
    inflated = await spender.get_balance()
    assert inflated.balance == settled.balance + change
    assert inflated.unlocked_balance == settled.unlocked_balance
    await spender.call("rescan_blockchain")
    await asyncio.to_thread(net.sync_wallet, pair.spend_name)
    assert [t.type for t in await spender.get_transfer_by_txid(prepared.tx_hash)] == ["out"]
    assert await spender.get_balance() == settled

    with pytest.raises(MoneroRpcError) as garbage:
        await spender.relay_tx("00")
    assert garbage.value.code == WALLET_RPC_ERROR_CODE_BAD_TX_METADATA
    with pytest.raises(MoneroRpcError) as not_hex:
        await spender.relay_tx("zz")
    assert not_hex.value.code == WALLET_RPC_ERROR_CODE_BAD_HEX


@pytest.mark.slow
async def test_preparing_twice_spends_the_same_single_input_and_the_second_relay_is_refused(
    monero_regtest: MoneroRegtest, pair: Pair, spender: MoneroWalletRpc, merchant: MoneroWalletRpc
) -> None:
    """A one-input transfer prepared twice picks the same output both times: after the first is
    relayed, the second is refused as a double spend and the wallet keeps no trace of it."""
    net = monero_regtest
    await spender.refresh()
    await unlocked_at_least(net, pair, spender, 2 * XMR)
    destination = await merchant.create_address("refund_twice")
    pool_before = net.pool_txids()

    first = await spender.transfer([(destination.address, XMR // 2)], do_not_relay=True)
    second = await spender.transfer([(destination.address, XMR // 2)], do_not_relay=True)
    assert first.tx_hash != second.tx_hash  # new tx key, new ring members
    assert len(first.spent_key_images) == 1
    assert second.spent_key_images == first.spent_key_images

    assert await spender.relay_tx(first.tx_metadata) == first.tx_hash
    with pytest.raises(MoneroRpcError) as caught:
        await spender.relay_tx(second.tx_metadata)
    assert caught.value.code == WALLET_RPC_ERROR_CODE_GENERIC_TRANSFER_ERROR
    assert caught.value.message == "Failed to commit tx."
    assert net.pool_txids() - pool_before == {first.tx_hash}
    assert await spender.get_transfer_by_txid(second.tx_hash) == []

    await mine(net, 1, pair.spend_name)
    with pytest.raises(MoneroRpcError) as after_mining:
        await spender.relay_tx(second.tx_metadata)
    assert after_mining.value.code == WALLET_RPC_ERROR_CODE_GENERIC_TRANSFER_ERROR
    transfers = await received(merchant, destination.address_index, lambda ts: bool(ts) and not ts[0].in_pool)
    assert [(t.txid, t.amount) for t in transfers] == [(first.tx_hash, XMR // 2)]


@pytest.mark.slow
async def test_preparing_twice_from_disjoint_outputs_pays_twice(
    monero_regtest: MoneroRegtest, pair: Pair, spender: MoneroWalletRpc, merchant: MoneroWalletRpc
) -> None:
    """Nothing stops two prepared transactions with different inputs from both being mined. Here
    the inputs are forced apart with ``subaddr_indices``; without it, a transfer that needs several
    inputs picks them at random (4 preparations of a 2-input transfer gave 4 different input sets),
    so preparing a payout again instead of relaying the first metadata can pay it twice."""
    net = monero_regtest
    one = await spender.create_address("payout_source_1")
    two = await spender.create_address("payout_source_2")
    await asyncio.to_thread(net.fund, [(one.address, XMR), (two.address, XMR)])
    await asyncio.to_thread(net.sync_wallet, pair.spend_name)
    destination = await merchant.create_address("payout_twice")
    pool_before = net.pool_txids()

    first = await spender.transfer(
        [(destination.address, XMR // 4)], subaddr_indices=[one.address_index], do_not_relay=True
    )
    second = await spender.transfer(
        [(destination.address, XMR // 4)], subaddr_indices=[two.address_index], do_not_relay=True
    )
    assert not set(first.spent_key_images) & set(second.spent_key_images)
    assert await spender.relay_tx(first.tx_metadata) == first.tx_hash
    assert await spender.relay_tx(second.tx_metadata) == second.tx_hash
    assert net.pool_txids() - pool_before == {first.tx_hash, second.tx_hash}
    await mine(net, 1)
    transfers = await received(
        merchant, destination.address_index, lambda ts: len(ts) == 2 and not any(t.in_pool for t in ts)
    )
    assert sorted(t.txid for t in transfers) == sorted([first.tx_hash, second.tx_hash])
    assert sum(t.amount for t in transfers) == 2 * (XMR // 4)


@pytest.mark.slow
async def test_not_enough_money_and_not_enough_unlocked_money(
    monero_regtest: MoneroRegtest, pair: Pair, spender: MoneroWalletRpc
) -> None:
    net = monero_regtest
    with pytest.raises(MoneroRpcError) as too_much:
        await spender.transfer([(net.payer_address, 10**6 * XMR)], do_not_relay=True)
    assert (too_much.value.code, too_much.value.message) == (
        WALLET_RPC_ERROR_CODE_NOT_ENOUGH_MONEY,
        "not enough money",
    )
    assert too_much.value.code == -17

    # An account whose only money was mined 1 block ago: the balance is there, but locked.
    account = await spender.call("create_account", {"label": "locked"})
    index = account["account_index"]
    await asyncio.to_thread(net.fund, [(account["address"], XMR)], unlock=False)
    await asyncio.to_thread(net.sync_wallet, pair.spend_name)
    balance = await spender.get_balance(index)
    assert (balance.balance, balance.unlocked_balance, balance.blocks_to_unlock) == (XMR, 0, 9)
    with pytest.raises(MoneroRpcError) as locked:
        await spender.transfer([(net.payer_address, XMR // 2)], account_index=index, do_not_relay=True)
    assert (locked.value.code, locked.value.message) == (
        WALLET_RPC_ERROR_CODE_NOT_ENOUGH_UNLOCKED_MONEY,
        "not enough unlocked money",
    )
    assert locked.value.code == -37

    # 10 blocks on top of the one that mined it: spendable. After 9 in all it is still locked.
    await mine(net, 8, pair.spend_name)
    assert (await spender.get_balance(index)).blocks_to_unlock == 1
    await mine(net, 1, pair.spend_name)
    unlocked = await spender.get_balance(index)
    assert (unlocked.unlocked_balance, unlocked.blocks_to_unlock) == (XMR, 0)
    prepared = await spender.transfer([(net.payer_address, XMR // 2)], account_index=index, do_not_relay=True)
    assert prepared.amount == XMR // 2


# ------------------------------------------------------------------------------------ cold signing


async def sync_key_images(viewer: MoneroWalletRpc, signer: MoneroWalletRpc) -> None:
    """outputs: view-only -> signer; signed key images: signer -> view-only."""
    await signer.import_outputs(await viewer.export_outputs())
    await viewer.import_key_images(await signer.export_key_images())


@pytest.mark.slow
async def test_cold_signing_round_trip(
    monero_regtest: MoneroRegtest,
    pair: Pair,
    viewer: MoneroWalletRpc,
    signer: MoneroWalletRpc,
    spender: MoneroWalletRpc,
    merchant: MoneroWalletRpc,
) -> None:
    """The view-only wallet builds, the offline full wallet signs, the view-only wallet publishes.
    Before building, the view-only wallet needs the key images of its outputs, from the signer."""
    net = monero_regtest
    await mine(net, 1, pair.view_name, pair.spend_name)  # no earlier spend left in the pool
    await unlocked_at_least(net, pair, spender, 2 * XMR)
    truth = await spender.get_balance()  # the hot wallet saw its own spends (earlier tests)
    stale = await viewer.get_balance()  # the view-only wallet did not: it still counts them
    assert stale.balance > truth.balance
    destination = await merchant.create_address("refund_cold")
    amount = 987_654_321_000
    pool_before = net.pool_txids()
    start = time.monotonic()

    outputs = await viewer.export_outputs()
    assert outputs.startswith("4d6f6e65726f206f7574707574206578706f7274")  # b"Monero output export"
    imported = await signer.import_outputs(outputs)
    assert imported > 0
    images = await signer.export_key_images()
    assert len(images) == imported
    assert all(len(i.key_image) == 64 and len(i.signature) == 128 for i in images)
    result = await viewer.import_key_images(images)
    assert 0 < result.height < await viewer.get_height()  # the block of the newest output covered
    assert result.spent == stale.balance - truth.balance  # what the hot wallet spent, fees included
    assert await viewer.get_balance() == truth  # now it knows what is spent
    keys_synced = time.monotonic() - start

    unsigned = await viewer.transfer([(destination.address, amount)])
    assert unsigned.needs_signing and unsigned.unsigned_txset
    assert unsigned.amount == amount and unsigned.fee in TYPICAL_FEE_RANGE
    assert unsigned.spent_key_images == ()  # the view-only wallet cannot know them
    assert net.pool_txids() == pool_before  # without do_not_relay, still nothing published

    (described,) = await signer.describe_transfer(unsigned.unsigned_txset)
    assert described.recipients == ((destination.address, amount),)
    assert described.fee == unsigned.fee
    assert described.amount_in == described.amount_out + described.fee
    assert described.change_address == pair.keys.address
    assert described.amount_out == amount + described.change_amount
    assert (described.ring_size, described.unlock_time) == (16, 0)

    signed = await signer.sign_transfer(unsigned.unsigned_txset)
    (tx_hash,) = signed.tx_hashes
    assert len(signed.tx_keys) == 1 and len(signed.tx_keys[0]) == 64
    assert tx_hash != unsigned.tx_hash  # the view-only answer's hash is not the final one
    assert net.pool_txids() == pool_before  # signing publishes nothing

    assert await viewer.submit_transfer(signed.signed_txset) == [tx_hash]
    elapsed = time.monotonic() - start
    assert net.pool_txids() - pool_before == {tx_hash}
    assert elapsed < 10, f"cold-signing round trip took {elapsed:.2f} s"
    print(f"cold signing: key images synced in {keys_synced:.2f} s, round trip {elapsed:.2f} s")
    # Submitting the same set again: same hash, still one transaction.
    assert await viewer.submit_transfer(signed.signed_txset) == [tx_hash]
    assert net.pool_txids() - pool_before == {tx_hash}

    (seen,) = await received(merchant, destination.address_index, lambda ts: bool(ts))
    assert (seen.txid, seen.amount) == (tx_hash, amount)
    check = await merchant.check_tx_key(tx_hash, signed.tx_keys[0], destination.address)
    assert check.received == amount and check.in_pool
    (outgoing,) = await viewer.get_transfer_by_txid(tx_hash)
    assert (outgoing.type, outgoing.amount, outgoing.fee) == ("pending", amount, unsigned.fee)

    await mine(net, 1, pair.view_name, pair.spend_name)
    (mined,) = await received(merchant, destination.address_index, lambda ts: not ts[0].in_pool)
    assert mined.confirmations == 1
    (outgoing,) = await viewer.get_transfer_by_txid(tx_hash)
    assert outgoing.type == "out"
    # The hot wallet (same keys) sees the spend too, and both agree again.
    assert await viewer.get_balance() == await spender.get_balance()

    # Only a full wallet signs or describes.
    for call in (viewer.sign_transfer, viewer.describe_transfer):
        with pytest.raises(MoneroRpcError) as watch_only:
            await call(unsigned.unsigned_txset)
        assert watch_only.value.code == WALLET_RPC_ERROR_CODE_WATCH_ONLY
    with pytest.raises(MoneroRpcError) as bad_unsigned:
        await signer.sign_transfer("00")
    assert bad_unsigned.value.code == WALLET_RPC_ERROR_CODE_BAD_UNSIGNED_TX_DATA
    with pytest.raises(MoneroRpcError) as bad_signed:
        await viewer.submit_transfer("00")
    assert bad_signed.value.code == WALLET_RPC_ERROR_CODE_BAD_SIGNED_TX_DATA


@pytest.mark.slow
async def test_view_only_transfer_with_stale_key_images_is_rejected_at_submission(
    monero_regtest: MoneroRegtest,
    pair: Pair,
    viewer: MoneroWalletRpc,
    signer: MoneroWalletRpc,
    spender: MoneroWalletRpc,
) -> None:
    """A view-only wallet builds a transaction without up-to-date key images, but it cannot tell
    spent outputs from unspent ones: after the hot wallet spent the account's only unlocked
    output, the transaction signs fine and the daemon rejects it. Fresh key images fix the view."""
    net = monero_regtest
    # An account of its own (same index in both wallets) with exactly one output.
    account = await spender.call("create_account", {"label": "stale"})
    assert (await viewer.call("create_account", {"label": "stale"}))["address"] == account["address"]
    index = account["account_index"]
    await asyncio.to_thread(net.fund, [(account["address"], XMR)])
    await asyncio.to_thread(net.sync_wallet, pair.view_name)
    await asyncio.to_thread(net.sync_wallet, pair.spend_name)

    spent = await spender.transfer([(net.payer_address, XMR // 2)], account_index=index)
    await mine(net, 1, pair.view_name, pair.spend_name)  # its change stays locked for 10 blocks
    stale = await viewer.get_balance(index)
    assert stale.unlocked_balance == XMR  # the spent output still counts as unspent
    assert (await spender.get_balance(index)).unlocked_balance == 0

    unsigned = await viewer.transfer([(net.payer_address, XMR // 4)], account_index=index)
    await signer.import_outputs(await viewer.export_outputs())
    signed = await signer.sign_transfer(unsigned.unsigned_txset)
    pool_before = net.pool_txids()
    with pytest.raises(MoneroRpcError) as rejected:
        await viewer.submit_transfer(signed.signed_txset)
    assert rejected.value.code == WALLET_RPC_ERROR_CODE_SIGNED_SUBMISSION
    assert rejected.value.message == "Failed to submit signed tx: transaction was rejected by daemon"
    assert net.pool_txids() == pool_before

    await sync_key_images(viewer, signer)
    fresh = await viewer.get_balance(index)
    assert fresh == await spender.get_balance(index)
    assert (fresh.balance, fresh.unlocked_balance) == (XMR - XMR // 2 - spent.fee, 0)  # the change
    with pytest.raises(MoneroRpcError) as locked:
        await viewer.transfer([(net.payer_address, XMR // 4)], account_index=index)
    assert locked.value.code == WALLET_RPC_ERROR_CODE_NOT_ENOUGH_UNLOCKED_MONEY


@pytest.mark.slow
async def test_export_key_images_is_refused_on_a_view_only_wallet(
    monero_regtest: MoneroRegtest, pair: Pair, viewer: MoneroWalletRpc
) -> None:
    """monero-wallet-rpc 0.18 aborts (SIGABRT) on export_key_images from a view-only wallet that
    has outputs: the client refuses before asking, and the server stays up."""
    assert (await viewer.get_balance()).balance > 0
    with pytest.raises(MoneroRpcError) as caught:
        await viewer.export_key_images()
    assert caught.value.code == WALLET_RPC_ERROR_CODE_WATCH_ONLY
    assert monero_regtest.wallet_server(pair.view_name).process.running()
    assert await viewer.get_height() > 0


@pytest.mark.slow
async def test_import_outputs_into_a_synced_wallet_overwrites_what_it_knows_was_spent(
    monero_regtest: MoneroRegtest, pair: Pair, viewer: MoneroWalletRpc, spender: MoneroWalletRpc
) -> None:
    """Why the signer is an offline wallet: ``import_outputs`` replaces the wallet's outputs with
    the view-only wallet's copies, spent flags included, block heights not. A hot wallet that spent
    an output the view-only wallet has no key image for counts it as unspent again, and its locked
    change as unlocked (``rescan_spent`` asks the daemon and repairs the balance, not the locks).
    Last in the module: it leaves the hot wallet's history rewritten (seen on 0.18: a later refresh
    may stop at "Error parsing blocks: Invalid index", or the balance may drop to 0)."""
    net = monero_regtest
    account = await spender.call("create_account", {"label": "rewritten"})
    assert (await viewer.call("create_account", {"label": "rewritten"}))["address"] == account["address"]
    index = account["account_index"]
    await asyncio.to_thread(net.fund, [(account["address"], XMR)])
    await asyncio.to_thread(net.sync_wallet, pair.spend_name)
    await spender.transfer([(net.payer_address, XMR // 2)], account_index=index)
    await mine(net, 1, pair.view_name, pair.spend_name)
    truth = await spender.get_balance(index)
    stale = await viewer.get_balance(index)  # no key image yet for the new output: not seen spent
    assert stale.balance == truth.balance + XMR

    await spender.import_outputs(await viewer.export_outputs())
    rewritten = await spender.get_balance(index)
    assert rewritten.balance == stale.balance  # the spent output is back
    # ... and everything counts as unlocked: the imported copies carry no block height.
    assert (rewritten.unlocked_balance, rewritten.blocks_to_unlock) == (stale.balance, 0)
    assert truth.unlocked_balance == 0
    await spender.call("rescan_spent")
    assert (await spender.get_balance(index)).balance == truth.balance


# ------------------------------------------------------------------------------------ no servers


def mock_wallet(handler: Callable[[dict[str, object]], dict[str, object]]) -> MoneroWalletRpc:
    def transport(request: httpx.Request) -> httpx.Response:
        payload = json.loads(request.content)
        return httpx.Response(200, json={"id": payload["id"], "jsonrpc": "2.0", "result": handler(payload)})

    return MoneroWalletRpc(
        "http://wallet.test", client=httpx.AsyncClient(transport=httpx.MockTransport(transport))
    )


async def test_transfer_sends_integers_and_asks_for_key_and_metadata() -> None:
    seen: list[dict[str, object]] = []

    def handler(payload: dict[str, object]) -> dict[str, object]:
        seen.append(payload)
        return {
            "amount": 3,
            "fee": 5,
            "tx_hash": "ab" * 32,
            "tx_key": "",
            "tx_metadata": "",
            "unsigned_txset": "deadbeef",
            "spent_key_images": {"key_images": ["01" + "00" * 31]},
            "weight": 1507,
        }

    async with mock_wallet(handler) as wallet:
        result = await wallet.transfer(
            [("A", 1), ("B", 2**64 - 1)], account_index=2, subaddr_indices=[3, 1, 3], priority=1
        )
        for bad_amount in (1.5, True, "1"):
            with pytest.raises(TypeError, match="atomic units"):
                await wallet.transfer([("A", bad_amount)])  # type: ignore[list-item]
        for out_of_range in (0, -1, 2**64):
            with pytest.raises(ValueError, match="between 1 and"):
                await wallet.transfer([("A", out_of_range)])
        with pytest.raises(ValueError, match="at least one destination"):
            await wallet.transfer([])
    assert len(seen) == 1
    assert seen[0]["params"] == {
        "destinations": [{"address": "A", "amount": 1}, {"address": "B", "amount": 2**64 - 1}],
        "account_index": 2,
        "subaddr_indices": [1, 3],
        "priority": 1,
        "do_not_relay": False,
        "get_tx_key": True,
        "get_tx_metadata": True,
    }
    assert result.needs_signing
    assert result.spent_key_images == ()  # a view-only wallet's placeholder is dropped
    assert (result.amount, result.fee, result.weight) == (3, 5, 1507)
