"""kassa.rails.monero.rpc against real monerod + monero-wallet-rpc (regtest), plus transport errors.

The regtest tests share one session-wide network (tests/support/monero_fixtures.py); each creates
its own subaddresses so they do not see each other's payments.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from kassa.rails.monero.rpc import (
    ATOMIC_UNITS_PER_XMR,
    MoneroAuthenticationError,
    MoneroDaemonRpc,
    MoneroHttpError,
    MoneroRpcError,
    MoneroUnreachable,
    MoneroWalletRpc,
    SubaddressIndex,
    Transfer,
)
from tests.support.monero_regtest import MoneroRegtest

XMR = ATOMIC_UNITS_PER_XMR


def merchant_rpc(net: MoneroRegtest) -> MoneroWalletRpc:
    assert net.merchant_rpc_login is not None
    user, password = net.merchant_rpc_login
    return MoneroWalletRpc(net.merchant_wallet_url, user, password)


@pytest.fixture
async def merchant(monero_regtest: MoneroRegtest) -> AsyncIterator[MoneroWalletRpc]:
    async with merchant_rpc(monero_regtest) as wallet:
        yield wallet


@pytest.fixture
async def daemon(monero_regtest: MoneroRegtest) -> AsyncIterator[MoneroDaemonRpc]:
    async with MoneroDaemonRpc(monero_regtest.daemon_url) as rpc:
        yield rpc


async def poll_transfers(
    wallet: MoneroWalletRpc,
    index: int,
    done: Callable[[list[Transfer]], bool],
    *,
    within: float = 5.0,
) -> tuple[list[Transfer], float]:
    """refresh + get_transfers(in, pool) for one subaddress until ``done``; returns (transfers, s)."""
    start = time.monotonic()
    while True:
        await wallet.refresh()
        transfers = await wallet.get_transfers(incoming=True, pool=True, subaddr_indices=[index])
        elapsed = time.monotonic() - start
        if done(transfers):
            return transfers, elapsed
        if elapsed > within:
            pytest.fail(f"subaddress {index}: still {transfers!r} after {within} s")
        await asyncio.sleep(0.1)


# ------------------------------------------------------------------------------------ regtest


@pytest.mark.slow
async def test_merchant_wallet_is_view_only_and_payer_is_not(
    monero_regtest: MoneroRegtest, merchant: MoneroWalletRpc
) -> None:
    assert await merchant.is_view_only() is True
    async with MoneroWalletRpc(monero_regtest.payer_wallet_url) as payer:
        assert await payer.is_view_only() is False
    addresses = await merchant.get_address()
    assert addresses.address == monero_regtest.merchant_address
    version = await merchant.get_version()
    assert version.major >= 1


@pytest.mark.slow
async def test_create_address_gives_distinct_labelled_subaddresses(merchant: MoneroWalletRpc) -> None:
    first = await merchant.create_address("ord_first")
    second = await merchant.create_address("ord_second")
    assert first.address != second.address
    assert second.address_index == first.address_index + 1
    assert first.account_index == 0
    listed = await merchant.get_address(address_indices=[first.address_index, second.address_index])
    assert listed.by_index(first.address_index).label == "ord_first"
    assert listed.by_index(second.address_index).label == "ord_second"
    assert listed.by_index(second.address_index).address == second.address
    assert not listed.by_index(first.address_index).used


@pytest.mark.slow
async def test_payment_is_seen_in_pool_then_confirmed(
    monero_regtest: MoneroRegtest, merchant: MoneroWalletRpc, daemon: MoneroDaemonRpc
) -> None:
    sub = await merchant.create_address("ord_pool_then_block")
    amount = 1_234_567_890_123
    payment = await asyncio.to_thread(monero_regtest.transfer, [(sub.address, amount)])

    seen, elapsed = await poll_transfers(merchant, sub.address_index, lambda ts: bool(ts), within=5)
    assert elapsed < 3, f"pool payment took {elapsed:.2f} s to show"
    (pooled,) = seen
    assert pooled.in_pool
    assert pooled.type == "pool"
    assert pooled.txid == payment.txid
    assert pooled.amount == amount
    assert pooled.amounts == (amount,)
    assert pooled.confirmations == 0
    assert pooled.height == 0
    assert pooled.subaddr_index == SubaddressIndex(0, sub.address_index)
    assert pooled.address == sub.address
    assert pooled.unlock_time == 0
    assert not pooled.double_spend_seen
    assert pooled.timestamp > 0

    # A view-only wallet can check the payer's proof (tx key) while the tx is in the pool.
    check = await merchant.check_tx_key(payment.txid, payment.tx_key, sub.address)
    assert check.received == amount
    assert check.in_pool

    # Pool entries ignore the height filter.
    far = await merchant.get_transfers(min_height=10**9, subaddr_indices=[sub.address_index])
    assert [t.identity for t in far] == [pooled.identity]

    height_before = (await daemon.get_info()).height
    await asyncio.to_thread(monero_regtest.mine, 1)
    confirmed, _ = await poll_transfers(
        merchant, sub.address_index, lambda ts: bool(ts) and not ts[0].in_pool
    )
    (mined,) = confirmed
    assert mined.type == "in"
    assert mined.height == height_before  # the block mined on top of a chain of height_before
    assert mined.confirmations == 1
    assert mined.amount == amount
    assert mined.identity == pooled.identity == f"{payment.txid}:0:{sub.address_index}"

    await asyncio.to_thread(monero_regtest.mine, 4)
    later, _ = await poll_transfers(merchant, sub.address_index, lambda ts: ts[0].confirmations == 5)
    assert later[0].height == mined.height
    assert later[0].locked

    # min_height is inclusive in our API (exclusive on the wire); pool entries are not height-filtered.
    assert [t.txid for t in await merchant.get_transfers(min_height=mined.height)].count(payment.txid) == 1
    assert payment.txid not in [t.txid for t in await merchant.get_transfers(min_height=mined.height + 1)]
    assert payment.txid not in [t.txid for t in await merchant.get_transfers(incoming=False, pool=True)]

    by_txid = await merchant.get_transfer_by_txid(payment.txid)
    assert [t.identity for t in by_txid] == [mined.identity]
    assert by_txid[0].confirmations == 5


@pytest.mark.slow
async def test_outputs_to_one_subaddress_are_merged_per_transaction(
    monero_regtest: MoneroRegtest, merchant: MoneroWalletRpc
) -> None:
    """One tx with two outputs to subaddress A and one to B: two entries, A's amounts summed."""
    a = await merchant.create_address("ord_merge_a")
    b = await merchant.create_address("ord_merge_b")
    payment = await asyncio.to_thread(
        monero_regtest.transfer, [(a.address, 1 * XMR), (a.address, XMR // 2), (b.address, XMR // 4)]
    )
    await merchant.refresh()
    entries = await merchant.get_transfers(
        incoming=True, pool=True, subaddr_indices=[a.address_index, b.address_index]
    )
    by_index = {t.subaddr_index.minor: t for t in entries}
    assert set(by_index) == {a.address_index, b.address_index}
    assert len(entries) == 2
    assert {t.txid for t in entries} == {payment.txid}
    assert by_index[a.address_index].amount == XMR + XMR // 2
    assert sorted(by_index[a.address_index].amounts) == [XMR // 2, XMR]
    assert by_index[b.address_index].amount == XMR // 4
    assert len({t.identity for t in entries}) == 2
    by_txid = await merchant.get_transfer_by_txid(payment.txid)
    assert {t.identity for t in by_txid} == {t.identity for t in entries}


@pytest.mark.slow
async def test_wallet_height_follows_daemon_height(
    monero_regtest: MoneroRegtest, merchant: MoneroWalletRpc, daemon: MoneroDaemonRpc
) -> None:
    info = await daemon.get_info()
    assert info.synchronized
    assert info.offline
    assert info.nettype == "fakechain"  # what --regtest reports
    await merchant.refresh()
    assert await merchant.get_height() == info.height

    generated = await daemon.generate_blocks(2, monero_regtest.payer_address)
    assert len(generated.blocks) == 2
    assert generated.height == info.height + 1  # height of the last block mined
    assert (await daemon.get_info()).height == info.height + 2
    refreshed = await merchant.refresh()
    assert refreshed.blocks_fetched >= 2
    assert await merchant.get_height() == info.height + 2


@pytest.mark.slow
async def test_wrong_password_fails_clearly(monero_regtest: MoneroRegtest) -> None:
    assert monero_regtest.merchant_rpc_login is not None
    user, password = monero_regtest.merchant_rpc_login
    async with MoneroWalletRpc(monero_regtest.merchant_wallet_url, user, "not-" + password) as wrong:
        with pytest.raises(MoneroAuthenticationError) as caught:
            await wrong.get_height()
    message = str(caught.value)
    assert caught.value.status_code == 401
    assert monero_regtest.merchant_wallet_url in message
    assert "get_height" in message
    assert repr(user) in message
    assert password not in message

    async with MoneroWalletRpc(monero_regtest.merchant_wallet_url) as anonymous:
        with pytest.raises(MoneroAuthenticationError, match="no credentials"):
            await anonymous.get_height()


@pytest.mark.slow
async def test_concurrent_calls_share_one_digest_session(merchant: MoneroWalletRpc) -> None:
    heights = await asyncio.gather(*(merchant.get_height() for _ in range(20)))
    assert len(set(heights)) == 1
    addresses = await asyncio.gather(*(merchant.create_address(f"ord_concurrent_{i}") for i in range(5)))
    assert len({a.address_index for a in addresses}) == 5


@pytest.mark.slow
async def test_digest_auth_survives_new_connections(monero_regtest: MoneroRegtest) -> None:
    """epee keeps the digest nonce per TCP connection. When httpx drops an idle connection (after
    ``keepalive_expiry``, 5 s by default) the next request reuses a stale nonce on a new connection,
    gets a 401 with a fresh challenge and answers it on that same connection."""
    assert monero_regtest.merchant_rpc_login is not None
    user, password = monero_regtest.merchant_rpc_login
    statuses: list[int] = []

    async def record(response: httpx.Response) -> None:
        statuses.append(response.status_code)

    short_keepalive = httpx.AsyncClient(
        limits=httpx.Limits(keepalive_expiry=0.1), event_hooks={"response": [record]}
    )
    async with (
        short_keepalive,
        MoneroWalletRpc(monero_regtest.merchant_wallet_url, user, password, client=short_keepalive) as wallet,
    ):
        heights = []
        for _ in range(3):
            heights.append(await wallet.get_height())
            await asyncio.sleep(0.3)
        assert len(set(heights)) == 1
    assert statuses == [401, 200] * 3  # each new connection: stale nonce refused, then accepted


@pytest.mark.slow
async def test_credentials_in_the_url_use_digest_auth_and_stay_out_of_messages(
    monero_regtest: MoneroRegtest,
) -> None:
    assert monero_regtest.merchant_rpc_login is not None
    user, password = monero_regtest.merchant_rpc_login
    base = monero_regtest.merchant_wallet_url
    url = base.replace("http://", f"http://{user}:{password}@") + "/json_rpc"
    async with MoneroWalletRpc(url) as wallet:
        assert await wallet.get_height() > 0
        assert wallet.url == base
        assert password not in repr(wallet)
        with pytest.raises(MoneroRpcError) as caught:
            await wallet.call("no_such_method")
    assert caught.value.code == -32601
    assert caught.value.method == "no_such_method"


@pytest.mark.slow
async def test_get_transfer_by_txid_unknown_and_malformed(merchant: MoneroWalletRpc) -> None:
    assert await merchant.get_transfer_by_txid("00" * 32) == []
    with pytest.raises(ValueError, match="64 hex"):
        await merchant.get_transfer_by_txid("zz")


# ------------------------------------------------------------------------------------ no servers


async def test_connection_refused_raises_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    async with MoneroWalletRpc(url, "user", "hunter2", timeout=2) as wallet:
        with pytest.raises(MoneroUnreachable) as caught:
            await wallet.get_height()
    message = str(caught.value)
    assert url in message
    assert "get_height" in message
    assert "ConnectError" in message
    assert "hunter2" not in message
    async with MoneroDaemonRpc(url) as rpc:
        with pytest.raises(MoneroUnreachable, match="monerod at"):
            await rpc.get_info()


async def test_silent_server_times_out_as_unreachable() -> None:
    with socket.socket() as sock:  # accepts connections (backlog) but never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        async with MoneroWalletRpc(url, timeout=0.3) as wallet:
            with pytest.raises(MoneroUnreachable, match=r"no answer within 0\.3 s"):
                await wallet.refresh()


def mock_wallet(handler: Callable[[dict[str, object]], httpx.Response]) -> MoneroWalletRpc:
    def transport(request: httpx.Request) -> httpx.Response:
        return handler(json.loads(request.content))

    client = httpx.AsyncClient(transport=httpx.MockTransport(transport))
    return MoneroWalletRpc("http://wallet.test", client=client)


async def test_json_rpc_error_and_http_errors_are_typed() -> None:
    def handler(payload: dict[str, object]) -> httpx.Response:
        if payload["method"] == "query_key":
            return httpx.Response(
                200, json={"id": payload["id"], "jsonrpc": "2.0", "result": {"key": "0" * 64}}
            )
        if payload["method"] == "get_height":
            return httpx.Response(500, text="boom")
        if payload["method"] == "refresh":
            return httpx.Response(200, text="<html>")
        return httpx.Response(
            200,
            json={"id": payload["id"], "jsonrpc": "2.0", "error": {"code": -13, "message": "No wallet file"}},
        )

    async with mock_wallet(handler) as wallet:
        assert await wallet.is_view_only() is True  # an all-zero spend key
        with pytest.raises(MoneroHttpError, match="HTTP 500"):
            await wallet.get_height()
        with pytest.raises(MoneroHttpError, match="not JSON"):
            await wallet.refresh()
        with pytest.raises(MoneroRpcError) as caught:
            await wallet.create_address("x")
    assert (caught.value.code, caught.value.message, caught.value.method) == (
        -13,
        "No wallet file",
        "create_address",
    )


async def test_transfer_entries_are_parsed_as_the_0_18_wallet_sends_them() -> None:
    pool_entry = {
        "address": "8Bsub",
        "amount": 3,
        "amounts": [1, 2],
        "double_spend_seen": False,
        "fee": 5,
        "height": 0,
        "locked": True,
        "note": "",
        "payment_id": "0000000000000000",
        "subaddr_index": {"major": 0, "minor": 7},
        "subaddr_indices": [{"major": 0, "minor": 7}],
        "suggested_confirmations_threshold": 1,
        "timestamp": 1795327067,
        "txid": "ab" * 32,
        "type": "pool",
        "unlock_time": 0,
    }  # no "confirmations" in pool entries
    in_entry = {
        **pool_entry,
        "type": "in",
        "height": 101,
        "confirmations": 2,
        "subaddr_index": {"major": 0, "minor": 8},
    }
    seen: list[dict[str, object]] = []

    def handler(payload: dict[str, object]) -> httpx.Response:
        seen.append(payload)
        return httpx.Response(
            200,
            json={"id": payload["id"], "jsonrpc": "2.0", "result": {"in": [in_entry], "pool": [pool_entry]}},
        )

    async with mock_wallet(handler) as wallet:
        incoming, pooled = await wallet.get_transfers(min_height=101, subaddr_indices=[8, 7, 8])
    assert seen[0]["params"] == {
        "in": True,
        "pool": True,
        "account_index": 0,
        "filter_by_height": True,
        "min_height": 100,
        "subaddr_indices": [7, 8],
    }
    assert pooled.in_pool
    assert pooled.confirmations == 0
    assert pooled.amounts == (1, 2)
    assert pooled.identity == f"{'ab' * 32}:0:7"
    assert not incoming.in_pool
    assert incoming.confirmations == 2
    assert incoming.height == 101
    assert incoming.identity == f"{'ab' * 32}:0:8"
