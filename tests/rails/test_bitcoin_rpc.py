"""kassa.rails.bitcoin.rpc against a real litecoind 0.21 regtest node, plus amount unit tests.

The regtest tests share one session-wide node (tests/support/litecoin_fixtures.py); each makes its
own watch-only wallet with its own BIP84 key, so they never see each other's payments.

What Litecoin Core 0.21.2.1 reports to a watch-only (legacy, importmulti) wallet, checked below:

Pending, then mined (test_payments_seen_at_zero_conf_then_confirmed):
  listsinceblock(cursor) lists one entry per (txid, vout) to a watched address, category "receive",
  confirmations 0, no blockhash/blockheight/blocktime, trusted false (the payer is not us),
  bip125-replaceable "yes" for a signalling tx, walletconflicts []. ``lastblock`` is the tip.
  Once mined: confirmations 1, blockhash/blockheight/blocktime set, no ``trusted`` field,
  bip125-replaceable "no".

target_confirmations=N: ``lastblock`` is the block at height tip - (N - 1); N larger than the
  chain gives the genesis block. Entries are listed regardless of N.

BIP125 replacement (test_replacement_then_conflict; needs ``mempoolreplacement=1``, see below):
  1. After the replacement R enters the mempool, the original T is gone from it
     (getmempoolentry(T) → error -5, i.e. None) but the wallet still reports T exactly as pending:
     gettransaction(T) confirmations 0, trusted false, details intact, and walletconflicts [R].
     listsinceblock(cursor) lists BOTH T and R at 0 confirmations, each with the other in
     walletconflicts. Only walletconflicts (or getmempoolentry) tells T is doomed.
  2. Once R is mined: gettransaction(T) confirmations -1 (then -2, -3, ... one less per block),
     trusted false, walletconflicts [R], bip125-replaceable still "yes", amount still T's, but
     ``details`` is EMPTY (0.21 skips receive entries of depth < 0). listsinceblock(cursor before R's
     block) no longer lists T at all, neither in transactions nor in removed; it lists R (1 conf).
  A Litecoin node with its default ``mempoolreplacement=0`` refuses the replacement outright:
  sendrawtransaction → -26 "txn-mempool-conflict", although T says bip125-replaceable "yes"
  (test_litecoin_default_refuses_replacements).

Reorg back to the mempool (test_invalidated_block_returns_payment_to_mempool): after
  invalidateblock(B), B holding T:
  listsinceblock(B) → removed: [T with confirmations 0, no blockhash] (its CURRENT state, not the
  one it had in B) and transactions: [T, 0 conf] too; lastblock is the new tip (B's parent).
  listsinceblock(B's parent) lists T at 0 conf, removed []. gettransaction(T): confirmations 0, no
  blockhash, walletconflicts []. getblockheader(B).confirmations -1. reconsiderblock(B) → T back
  at 1 conf in B.

Reorg that double-spends (test_reorg_to_a_double_spend): T in B is replaced by a chain where a
  conflicting C is mined instead (mine_conflicting):
  listsinceblock(B) → removed: [T with NEGATIVE confirmations (-depth of C), walletconflicts [C]],
  transactions: [C...] if C pays a watched address. listsinceblock(cursor at or below B's parent)
  does not list T at all. gettransaction(T): negative confirmations, details [] as above.
  So a watcher whose cursor predates the payment's block must re-check pending payments with
  gettransaction (and getmempoolentry): listsinceblock alone never reports the conflict.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from embit import bip32, script
from embit.networks import NETWORKS
from hypothesis import given
from hypothesis import strategies as st

from kassa.rails.bitcoin.rpc import (
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_METHOD_NOT_FOUND,
    RPC_VERIFY_ALREADY_IN_CHAIN,
    RPC_WALLET_ERROR,
    RPC_WALLET_NOT_FOUND,
    BitcoinAuthenticationError,
    BitcoinHttpError,
    BitcoinRpc,
    BitcoinRpcError,
    BitcoinUnreachable,
    SinceBlock,
    WalletTx,
    sats_to_btc_str,
    to_sats,
)
from tests.support.litecoin_regtest import LitecoinRegtest, LitecoinRpcCallError
from tests.support.monero_regtest import free_loopback_ports

REGTEST = {**NETWORKS["regtest"], "bech32": "rltc"}  # embit's regtest is Bitcoin's ("bcrt")
RANGE_END = 20


# ------------------------------------------------------------------------------------ amounts


@given(st.integers(min_value=-(84 * 10**6 * 10**8), max_value=84 * 10**6 * 10**8))
def test_sats_round_trip_exactly(sats: int) -> None:
    text = sats_to_btc_str(sats)
    assert len(text.split(".")[1]) == 8
    assert to_sats(Decimal(text)) == sats


@pytest.mark.parametrize(
    ("text", "sats"),
    [
        ("0.00000001", 1),
        ("20999999.99999999", 2_099_999_999_999_999),
        ("0E-8", 0),
        ("1.5", 150_000_000),
        ("-0.00010000", -10_000),
        ("84000000.00000000", 8_400_000_000_000_000),
    ],
)
def test_to_sats_known_values(text: str, sats: int) -> None:
    assert to_sats(Decimal(text)) == sats
    assert Decimal(sats_to_btc_str(sats)) == Decimal(text)


def test_sats_to_btc_str_formats_eight_decimals() -> None:
    assert sats_to_btc_str(1) == "0.00000001"
    assert sats_to_btc_str(2_099_999_999_999_999) == "20999999.99999999"
    assert sats_to_btc_str(0) == "0.00000000"
    assert sats_to_btc_str(-150_000_000) == "-1.50000000"


@pytest.mark.parametrize(
    "bad", [Decimal("0.000000001"), Decimal("1E-9"), Decimal("NaN"), Decimal("Infinity")]
)
def test_to_sats_refuses_fractions_of_a_satoshi(bad: Decimal) -> None:
    with pytest.raises(ValueError, match=r"satoshi|amount"):
        to_sats(bad)


def test_no_floats_anywhere() -> None:
    with pytest.raises(TypeError):
        to_sats(0.1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sats_to_btc_str(1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sats_to_btc_str(True)


async def test_float_params_are_refused_before_sending() -> None:
    async with BitcoinRpc("http://127.0.0.1:9", "u", "p") as rpc:
        with pytest.raises(TypeError, match="float"):
            await rpc.call("sendtoaddress", "addr", 0.1)


async def test_url_credentials_and_wallet_are_split_off() -> None:
    async with BitcoinRpc("http://alice:s3cret@127.0.0.1:9/wallet/my%20shop", None, None) as rpc:
        assert rpc.url == "http://127.0.0.1:9"
        assert rpc.wallet == "my shop"
        assert rpc.wallet_url == "http://127.0.0.1:9/wallet/my%20shop"
        assert "s3cret" not in repr(rpc)
        with pytest.raises(BitcoinUnreachable) as caught:
            await rpc.getwalletinfo()
        assert "s3cret" not in str(caught.value)
        assert caught.value.url == "http://127.0.0.1:9/wallet/my%20shop"
    with pytest.raises(ValueError, match="wallet"):
        BitcoinRpc("http://127.0.0.1:9/wallet/a", None, None, wallet="b")


# ------------------------------------------------------------------------------------ helpers


class Watched:
    """A blank watch-only wallet with a ranged BIP84 descriptor [0, RANGE_END] imported."""

    def __init__(self, node: LitecoinRegtest, name: str) -> None:
        self.name = name
        self.root = bip32.HDKey.from_seed(secrets.token_bytes(64), version=NETWORKS["regtest"]["xprv"])
        account = self.root.derive("m/84h/1h/0h").to_public()
        self.descriptor = f"wpkh([{self.root.my_fingerprint.hex()}/84h/1h/0h]{account.to_string()}/0/*)"
        self.url = node.create_watch_only_wallet(name)

    def address(self, index: int) -> str:
        """The address as a BIP84 derivation done in Python gives it."""
        return str(script.p2wpkh(self.root.derive(f"m/84h/1h/0h/0/{index}")).address(REGTEST))


@pytest.fixture
def node(litecoin_regtest: LitecoinRegtest) -> LitecoinRegtest:
    return litecoin_regtest.start()  # in case a test stopped it


@pytest.fixture
async def rpc(node: LitecoinRegtest) -> AsyncIterator[BitcoinRpc]:
    async with BitcoinRpc(node.rpc_url, node.rpc_user, node.rpc_password) as client:
        yield client


async def watched_wallet(node: LitecoinRegtest, prefix: str) -> tuple[Watched, BitcoinRpc]:
    """A new watch-only wallet with its descriptor imported, and a client bound to it."""
    watched = Watched(node, f"{prefix}-{secrets.token_hex(4)}")
    client = BitcoinRpc(watched.url, node.rpc_user, node.rpc_password)
    info = await client.getdescriptorinfo(watched.descriptor)
    request = {
        "desc": info.descriptor,
        "range": [0, RANGE_END],
        "timestamp": "now",
        "watchonly": True,
        "keypool": False,
    }
    [result] = await client.importmulti([request])
    assert result.success, result
    return watched, client


def vout_of(since: SinceBlock, txid: str, address: str) -> int:
    return next(e.vout for e in since.transactions if e.txid == txid and e.address == address)


def only(entries: tuple[WalletTx, ...], txid: str, vout: int | None = None) -> WalletTx:
    found = [e for e in entries if e.txid == txid and (vout is None or e.vout == vout)]
    assert len(found) == 1, (txid, vout, entries)
    return found[0]


# ------------------------------------------------------------------------------------ transport


@pytest.mark.slow
async def test_unreachable_port() -> None:
    (port,) = free_loopback_ports(1)
    async with BitcoinRpc(f"http://127.0.0.1:{port}", "kassa", "secret", timeout=2) as client:
        with pytest.raises(BitcoinUnreachable) as caught:
            await client.getblockchaininfo()
    assert caught.value.method == "getblockchaininfo"
    assert "secret" not in str(caught.value)


@pytest.mark.slow
async def test_wrong_password(node: LitecoinRegtest) -> None:
    async with BitcoinRpc(node.rpc_url, node.rpc_user, "not-the-password") as client:
        with pytest.raises(BitcoinAuthenticationError) as caught:
            await client.getblockcount()
    assert caught.value.status_code == 401
    assert "not-the-password" not in str(caught.value)
    assert node.rpc_password not in str(caught.value)


@pytest.mark.slow
async def test_rpc_errors_carry_the_code(node: LitecoinRegtest, rpc: BitcoinRpc) -> None:
    with pytest.raises(BitcoinRpcError) as caught:  # sent with HTTP 404
        await rpc.call("nosuchmethod")
    assert caught.value.code == RPC_METHOD_NOT_FOUND
    with pytest.raises(BitcoinRpcError) as caught:  # HTTP 500, "Requested wallet does not exist ..."
        async with BitcoinRpc(node.wallet_url("never-created"), node.rpc_user, node.rpc_password) as client:
            await client.getwalletinfo()
    assert caught.value.code == RPC_WALLET_NOT_FOUND
    with pytest.raises(BitcoinRpcError) as caught:
        await rpc.loadwallet("never-created")
    assert caught.value.code == RPC_WALLET_NOT_FOUND
    with pytest.raises(BitcoinRpcError) as caught:
        await rpc.getblockhash(10**7)
    assert caught.value.code == -8
    async with BitcoinRpc(node.rpc_url + "/not-rpc", node.rpc_user, node.rpc_password) as client:
        with pytest.raises(BitcoinHttpError) as http_caught:  # 404 with an empty body
            await client.getblockcount()
    assert http_caught.value.status_code == 404
    assert not isinstance(http_caught.value, BitcoinAuthenticationError)


# ------------------------------------------------------------------------------------ node


@pytest.mark.slow
async def test_node_information(node: LitecoinRegtest, rpc: BitcoinRpc) -> None:
    info = await rpc.getblockchaininfo()
    assert info.chain == "regtest"
    assert info.blocks == info.headers == await rpc.getblockcount()
    assert info.bestblockhash == await rpc.getblockhash(info.blocks) == await rpc.getbestblockhash()
    assert not info.initialblockdownload
    assert info.verificationprogress == 1
    assert isinstance(info.verificationprogress, Decimal)
    assert not info.pruned
    network = await rpc.getnetworkinfo()
    assert network.version >= 210000
    assert "LitecoinCore:0.21" in network.subversion
    header = await rpc.getblockheader(info.bestblockhash)
    assert header is not None
    assert (header.height, header.confirmations) == (info.blocks, 1)
    assert header.previousblockhash == await rpc.getblockhash(info.blocks - 1)
    genesis = await rpc.getblockheader(await rpc.getblockhash(0))
    assert genesis is not None and genesis.previousblockhash is None
    assert await rpc.getblockheader("00" * 32) is None


@pytest.mark.slow
async def test_wallet_management(node: LitecoinRegtest, rpc: BitcoinRpc) -> None:
    name = f"manage-{secrets.token_hex(4)}"
    created = await rpc.createwallet(name)
    assert created.name == name
    assert name in await rpc.listwallets()
    with pytest.raises(BitcoinRpcError) as caught:
        await rpc.createwallet(name)
    assert caught.value.code == RPC_WALLET_ERROR
    assert "Database already exists" in caught.value.message
    with pytest.raises(BitcoinRpcError) as caught:
        await rpc.loadwallet(name)
    assert caught.value.wallet_already_loaded
    # Litecoin Core 0.21 is built without sqlite: no descriptor wallets.
    with pytest.raises(BitcoinRpcError) as caught:
        await rpc.createwallet(f"{name}-desc", descriptors=True)
    assert caught.value.code == RPC_WALLET_ERROR
    assert "sqlite" in caught.value.message
    async with BitcoinRpc(node.rpc_url, node.rpc_user, node.rpc_password, wallet=name) as wallet:
        info = await wallet.getwalletinfo()
        assert info.walletname == name
        assert not info.private_keys_enabled
        assert not info.descriptors
        assert info.scanning is None
        assert info.keypoolsize == 0
        with pytest.raises(BitcoinRpcError) as caught:
            await wallet.importdescriptors([{"desc": "addr(rltc1qtp5clz24d2mvkd56nc0rpwu5s2y8ust3fhhv7z)"}])
        assert caught.value.code == RPC_WALLET_ERROR


@pytest.mark.slow
async def test_watch_only_descriptor_import(node: LitecoinRegtest) -> None:
    watched, wallet = await watched_wallet(node, "import")
    async with wallet:
        info = await wallet.getdescriptorinfo(watched.descriptor)
        assert info.isrange and info.issolvable and not info.hasprivatekeys
        # normalised (h → ') with its own checksum; ``checksum`` is that of the string passed in
        assert info.descriptor.startswith(watched.descriptor.replace("84h/1h/0h", "84'/1'/0'") + "#")
        assert info.descriptor.rsplit("#", 1)[1] != info.checksum
        with pytest.raises(BitcoinRpcError) as caught:
            await wallet.deriveaddresses(watched.descriptor, (0, 1))
        assert caught.value.code == RPC_INVALID_ADDRESS_OR_KEY  # "Missing checksum"
        addresses = await wallet.deriveaddresses(info.descriptor, (0, RANGE_END + 1))
        assert addresses == [watched.address(i) for i in range(RANGE_END + 2)]
        for index in (0, 7, RANGE_END):
            address = await wallet.getaddressinfo(addresses[index])
            assert address.iswatchonly and not address.ismine and address.solvable
            assert address.hdkeypath == f"m/84'/1'/0'/0/{index}"
            assert address.desc is not None and address.desc.startswith("wpkh([")
        outside = await wallet.getaddressinfo(addresses[RANGE_END + 1])
        assert not outside.iswatchonly and not outside.ismine
        assert outside.desc is None and outside.hdkeypath is None
        with pytest.raises(BitcoinRpcError) as caught:
            await wallet.getaddressinfo("not-an-address")
        assert caught.value.code == RPC_INVALID_ADDRESS_OR_KEY
        [failed] = await wallet.importmulti([{"desc": watched.descriptor, "timestamp": "now"}])
        assert not failed.success
        assert (failed.error_code, failed.error_message) == (RPC_INVALID_ADDRESS_OR_KEY, "Missing checksum")


# ------------------------------------------------------------------------------------ watching


@pytest.mark.slow
async def test_payments_seen_at_zero_conf_then_confirmed(node: LitecoinRegtest, rpc: BitcoinRpc) -> None:
    watched, wallet = await watched_wallet(node, "pay")
    async with wallet:
        cursor = await rpc.getbestblockhash()
        a0, a1, a2 = watched.address(0), watched.address(1), watched.address(2)
        both = node.pay_many({a0: 12_345_678, a1: 5_000})
        single = node.pay(a2, 1_234_567_891)
        since = await wallet.listsinceblock(cursor)
        assert since.lastblock == cursor
        assert since.removed == ()
        first = only(since.transactions, both, vout_of(since, both, a0))
        second = only(since.transactions, both, vout_of(since, both, a1))
        third = only(since.transactions, single)
        assert (first.address, first.amount_sats) == (a0, 12_345_678)
        assert (second.address, second.amount_sats) == (a1, 5_000)
        assert (third.address, third.amount_sats) == (a2, 1_234_567_891)
        for entry in (first, second, third):
            assert entry.category == "receive"
            assert entry.confirmations == 0
            assert entry.blockhash is None and entry.blockheight is None and entry.blocktime is None
            assert entry.trusted is False
            assert entry.bip125_replaceable == "yes"
            assert entry.walletconflicts == ()
        assert first.vout != second.vout
        pending = await rpc.getmempoolentry(both)
        assert pending is not None and pending.bip125_replaceable and pending.fee_sats > 0
        tx = await wallet.gettransaction(both)
        assert tx is not None
        assert tx.confirmations == 0 and tx.amount_sats == 12_345_678 + 5_000
        assert {(d.address, d.amount_sats, d.vout) for d in tx.details} == {
            (a0, 12_345_678, first.vout),
            (a1, 5_000, second.vout),
        }
        assert all(d.txid == both and d.confirmations == 0 for d in tx.details)
        raw = await rpc.getrawtransaction(both, verbose=True)
        assert raw is not None and raw.txid == both and raw.blockhash is None
        assert {(o.address, o.value_sats) for o in raw.vout} >= {(a0, 12_345_678), (a1, 5_000)}
        assert raw.hex == tx.hex == await rpc.getrawtransaction(both)

        [block] = node.mine(1)
        assert await rpc.getmempoolentry(both) is None
        since = await wallet.listsinceblock(cursor)
        assert since.lastblock == block
        for txid in (both, single):
            for entry in (e for e in since.transactions if e.txid == txid):
                assert entry.confirmations == 1
                assert entry.blockhash == block
                assert entry.blockheight == node.height()
                assert entry.blocktime is not None
                assert entry.trusted is None
                assert entry.bip125_replaceable == "no"
        assert len(since.transactions) == 3
        assert (await wallet.listsinceblock(block)).transactions == ()
        # Publishing again: -27 once mined (while pending, the same txid comes back).
        with pytest.raises(BitcoinRpcError) as caught:
            await rpc.sendrawtransaction(raw.hex)
        assert caught.value.code == RPC_VERIFY_ALREADY_IN_CHAIN
        assert await rpc.getrawtransaction("00" * 32) is None
        assert await wallet.gettransaction("00" * 32) is None


@pytest.mark.slow
async def test_target_confirmations_sets_lastblock_depth(node: LitecoinRegtest, rpc: BitcoinRpc) -> None:
    watched, wallet = await watched_wallet(node, "depth")
    async with wallet:
        cursor = await rpc.getbestblockhash()
        txid = node.pay(watched.address(3), 100_000)
        blocks = node.mine(5)
        tip = node.height()
        for target in (1, 2, 3, 5):
            since = await wallet.listsinceblock(cursor, target_confirmations=target)
            assert since.lastblock == blocks[-target]
            header = await rpc.getblockheader(since.lastblock)
            assert header is not None and header.height == tip - (target - 1)
            assert only(since.transactions, txid).confirmations == 5
        since = await wallet.listsinceblock(None, target_confirmations=tip + 10)
        assert since.lastblock == await rpc.getblockhash(0)
        assert only(since.transactions, txid).confirmations == 5


@pytest.mark.slow
async def test_replacement_then_conflict(node: LitecoinRegtest, rpc: BitcoinRpc) -> None:
    watched, wallet = await watched_wallet(node, "rbf")
    async with wallet:
        cursor = await rpc.getbestblockhash()
        original = node.pay(watched.address(0), 300_000)
        assert await rpc.getmempoolentry(original) is not None
        replacement = node.replace(original, watched.address(1))

        # 1. replacement in the mempool
        assert await rpc.getmempoolentry(original) is None
        assert await rpc.getmempoolentry(replacement) is not None
        tx = await wallet.gettransaction(original)
        assert tx is not None
        assert (tx.confirmations, tx.trusted, tx.walletconflicts) == (0, False, (replacement,))
        assert [(d.address, d.amount_sats) for d in tx.details] == [(watched.address(0), 300_000)]
        since = await wallet.listsinceblock(cursor)
        old, new = only(since.transactions, original), only(since.transactions, replacement)
        assert (old.confirmations, old.walletconflicts) == (0, (replacement,))
        assert (new.confirmations, new.walletconflicts, new.address) == (0, (original,), watched.address(1))

        # 2. replacement mined
        [block] = node.mine(1)
        tx = await wallet.gettransaction(original)
        assert tx is not None
        assert tx.confirmations == -1
        assert tx.details == ()  # receive entries of a conflicted transaction are not listed
        assert tx.amount_sats == 300_000
        assert (tx.trusted, tx.walletconflicts, tx.bip125_replaceable) == (False, (replacement,), "yes")
        assert tx.blockhash is None
        since = await wallet.listsinceblock(cursor)
        assert [e.txid for e in since.transactions] == [replacement]
        assert since.removed == ()
        assert only(since.transactions, replacement).blockhash == block
        node.mine(2)
        tx = await wallet.gettransaction(original)
        assert tx is not None and tx.confirmations == -3


@pytest.mark.slow
async def test_invalidated_block_returns_payment_to_mempool(node: LitecoinRegtest, rpc: BitcoinRpc) -> None:
    watched, wallet = await watched_wallet(node, "reorg")
    async with wallet:
        parent = await rpc.getbestblockhash()
        txid = node.pay(watched.address(4), 400_000)
        [block] = node.mine(1)
        assert only((await wallet.listsinceblock(parent)).transactions, txid).blockhash == block
        node.invalidate(block)
        try:
            assert await rpc.getmempoolentry(txid) is not None
            since = await wallet.listsinceblock(block)
            assert since.lastblock == parent
            removed = only(since.removed, txid)
            assert (removed.confirmations, removed.blockhash, removed.amount_sats) == (0, None, 400_000)
            assert only(since.transactions, txid).confirmations == 0
            since = await wallet.listsinceblock(parent)
            assert since.removed == ()
            assert only(since.transactions, txid).confirmations == 0
            tx = await wallet.gettransaction(txid)
            assert tx is not None
            assert (tx.confirmations, tx.blockhash, tx.walletconflicts) == (0, None, ())
            header = await rpc.getblockheader(block)
            assert header is not None and header.confirmations == -1
        finally:
            node.reconsider(block)
        tx = await wallet.gettransaction(txid)
        assert tx is not None and (tx.confirmations, tx.blockhash) == (1, block)


@pytest.mark.slow
async def test_reorg_to_a_double_spend(node: LitecoinRegtest, rpc: BitcoinRpc) -> None:
    watched, wallet = await watched_wallet(node, "double")
    async with wallet:
        parent = await rpc.getbestblockhash()
        txid = node.pay(watched.address(5), 500_000)
        old_block = node.mine(2)[0]
        conflict_block = node.mine_conflicting(txid, watched.address(6))
        header = await rpc.getblockheader(old_block)
        assert header is not None and header.confirmations == -1  # a stale branch now
        depth = node.height() - (await rpc.getblockheader(conflict_block)).height + 1  # type: ignore[union-attr]
        assert depth == 3

        since = await wallet.listsinceblock(old_block)
        removed = only(since.removed, txid)
        assert removed.confirmations == -depth
        assert removed.blockhash is None
        (conflict,) = removed.walletconflicts
        assert only(since.transactions, conflict).blockhash == conflict_block
        assert only(since.transactions, conflict).address == watched.address(6)

        since = await wallet.listsinceblock(parent)
        assert txid not in {e.txid for e in since.transactions + since.removed}
        tx = await wallet.gettransaction(txid)
        assert tx is not None
        assert (tx.confirmations, tx.details, tx.walletconflicts) == (-depth, (), (conflict,))
        assert await rpc.getmempoolentry(txid) is None


@pytest.mark.slow
async def test_litecoin_default_refuses_replacements() -> None:
    with LitecoinRegtest(mempool_replacement=False, initial_blocks=101) as other:
        address = other.call("getnewaddress", wallet="payer")
        txid = other.pay(address, 100_000)
        assert other.call("getmempoolentry", txid)["bip125-replaceable"] is True
        with pytest.raises(LitecoinRpcCallError) as caught:
            other.replace(txid, address)
        assert (caught.value.code, caught.value.rpc_message) == (-26, "txn-mempool-conflict")


@pytest.mark.slow
async def test_restart_keeps_wallets(node: LitecoinRegtest) -> None:
    watched, wallet = await watched_wallet(node, "restart")
    async with wallet:
        txid = node.pay(watched.address(0), 100_000)
        node.mine(1)
    # (An idle keep-alive connection would hold the node's shutdown for rpcservertimeout.)
    started = time.monotonic()
    node.stop()
    assert time.monotonic() - started < 5
    async with BitcoinRpc(watched.url, node.rpc_user, node.rpc_password) as wallet:
        with pytest.raises(BitcoinUnreachable):
            await wallet.getwalletinfo()
        node.start()
        assert watched.name in await wallet.listwallets()
        tx = await wallet.gettransaction(txid)
        assert tx is not None and tx.confirmations == 1
