"""kassa.rails.evm.rpc against a real local Hardhat 2.29 node (chain id 31337), plus unit tests of the
hex, address and log decoding and of the HTTP handling (with httpx's MockTransport).

The node tests share one session-wide node (tests/support/hardhat_fixtures.py): each pays fresh
random addresses or deploys its own token, and leaves automine on and its snapshots reverted.

What Hardhat 2.29.1 does, checked below; a watcher built on this client relies on it.

Automine off (test_automine_off_keeps_a_transaction_pending), ``evm_setAutomine false``:
  ``eth_sendTransaction`` returns the hash at once and the transaction waits in the pool:
  ``eth_getTransactionByHash`` gives it with ``blockNumber``, ``blockHash`` and ``transactionIndex``
  null, ``eth_getTransactionReceipt`` is null, ``eth_blockNumber`` does not move and the ``latest``
  block does not list it. ``eth_getBlockByNumber("pending")`` lists it in a block whose ``number``
  is null (so this client's BlockTag has no "pending"). Interval mining is off too: nothing is mined
  until ``hardhat_mine`` / ``evm_mine``, which put the pooled transactions into the next block.

``evm_snapshot`` / ``evm_revert`` as a reorg (test_snapshot_revert_is_a_reorg):
  * ``evm_snapshot`` returns an id ("0x1", "0x2", ...). ``evm_revert(id)`` returns true and uses the
    id up, with every snapshot taken after it: reverting to either again returns false.
  * After the revert the chain is exactly as it was at the snapshot: ``eth_blockNumber`` is back to
    the snapshot's height, ``eth_getBlockByNumber`` of a height above it is null and
    ``eth_getBlockByHash`` of a reverted block is null. Transactions mined after the snapshot are
    GONE: ``eth_getTransactionByHash`` and the receipt are null, they do NOT go back to the pool as
    in a real reorg (the pool is restored as it was at the snapshot: a transaction sent after the
    snapshot and still pending is dropped as well), and their balance changes are undone.
  * Blocks mined afterwards at the same heights get a DIFFERENT hash only when their content
    differs: a Hardhat block is a deterministic function of its parent, timestamp, transactions and
    the prevRandao (mixHash) sequence, which the revert rewinds too. An empty block mined, reverted
    and mined again with the same timestamp (the same second, or evm_setNextBlockTimestamp) comes back
    with THE SAME hash; a reverted block that held a transaction, replaced by one that holds another
    (or none), has a different hash, and so do all its descendants. A watcher therefore sees a
    changed hash at a height it has seen exactly when what it saw there may have changed.

Other Hardhat answers: an unknown method is error -32004 "Method ... is not supported" (geth: -32601);
a reverting ``eth_call`` is error -32603 whose message carries the revert reason; ``safe`` and
``finalized`` are the latest block (no finality on a dev chain); ``eth_accounts`` lists lower-case
addresses; a JSON-RPC batch is answered in one HTTP response, in request order.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kassa.rails.evm.rpc import (
    RPC_INTERNAL_ERROR,
    RPC_METHOD_NOT_SUPPORTED,
    TRANSFER_TOPIC,
    Erc20Transfer,
    EvmAuthenticationError,
    EvmContractError,
    EvmHttpError,
    EvmRpc,
    EvmRpcError,
    EvmUnreachable,
    Log,
    address_topic,
    decode_abi_string,
    decode_transfer,
    hex_to_bytes,
    hex_to_int,
    int_to_hex,
    keccak256,
    normalize_address,
    safe_url,
    to_checksum_address,
)
from tests.support.hardhat_node import CHAIN_ID, HardhatNode
from tests.support.monero_regtest import free_loopback_ports

ETH = 10**18


def random_address() -> str:
    return "0x" + secrets.token_hex(20)


def random_hash() -> str:
    return "0x" + secrets.token_hex(32)


# ------------------------------------------------------------------------------------ hex


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0x0", 0),
        ("0x1b4", 436),
        ("0x00ff", 255),  # leading zeros are tolerated
        ("0xDEADbeef", 0xDEADBEEF),
        ("0x" + "f" * 64, 2**256 - 1),
        ("0x21e19e0c9bab2400000", 10_000 * ETH),  # a dev account's balance
    ],
)
def test_hex_to_int_known_values(text: str, value: int) -> None:
    assert hex_to_int(text) == value


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "0x",
        "1b4",
        "0X1b4",
        "0x-1",
        "-0x1",
        "+0x1",
        "0x 1",
        " 0x1",
        "0x1 ",
        "0x1_0",
        "0xg",
        "0x1.5",
        "0x١",
    ],
)
def test_hex_to_int_refuses_malformed_text(bad: str) -> None:
    with pytest.raises(ValueError, match="not a hex quantity"):
        hex_to_int(bad)


@pytest.mark.parametrize("bad", [None, 436, 4.36, True, b"0x1", ["0x1"]])
def test_hex_to_int_refuses_non_strings(bad: object) -> None:
    with pytest.raises(ValueError, match="not a hex quantity"):
        hex_to_int(bad)


def test_hex_to_int_refuses_more_than_256_bits() -> None:
    with pytest.raises(ValueError, match="256 bits"):
        hex_to_int(hex(2**256))
    assert hex_to_int("0x" + "0" * 100 + "1") == 1  # the value counts, not the length
    with pytest.raises(ValueError, match="64 bits"):
        hex_to_int(hex(2**64), bits=64)


@given(st.integers(min_value=0, max_value=2**256 - 1))
def test_quantities_round_trip_exactly(value: int) -> None:
    text = int_to_hex(value)
    assert text == text.lower() and (text == "0x0" or not text.startswith("0x0"))  # compact
    assert hex_to_int(text) == value
    assert hex_to_int(text.upper().replace("0X", "0x")) == value


def test_int_to_hex_refuses_negatives_bools_and_floats() -> None:
    with pytest.raises(ValueError, match="negative"):
        int_to_hex(-1)
    with pytest.raises(TypeError):
        int_to_hex(True)
    with pytest.raises(TypeError):
        int_to_hex(1.0)  # type: ignore[arg-type]


def test_hex_to_bytes() -> None:
    assert hex_to_bytes("0x") == b""
    assert hex_to_bytes("0xDEadBEef") == bytes.fromhex("deadbeef")
    for bad in ["0xabc", "abcd", "0xzz", None]:
        with pytest.raises(ValueError, match="not hex data"):
            hex_to_bytes(bad)


# ------------------------------------------------------------------------------------ addresses


EIP55_VECTORS = [  # from EIP-55 itself
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
]


@pytest.mark.parametrize("checksummed", EIP55_VECTORS)
def test_eip55_checksums(checksummed: str) -> None:
    lower = "0x" + checksummed[2:].lower()
    assert to_checksum_address(lower) == checksummed
    assert to_checksum_address("0x" + checksummed[2:].upper()) == checksummed
    assert normalize_address(checksummed) == lower
    assert normalize_address("0x" + checksummed[2:].upper()) == lower  # all-caps: no checksum
    last_letter = max(i for i, c in enumerate(checksummed) if c.isalpha() and i > 1)
    flipped = checksummed[:last_letter] + checksummed[last_letter].swapcase() + checksummed[last_letter + 1 :]
    with pytest.raises(ValueError, match="EIP-55"):
        normalize_address(flipped)


@pytest.mark.parametrize("bad", ["", "0x", "0x" + "a" * 39, "0x" + "a" * 41, "a" * 40, "0x" + "g" * 40, None])
def test_normalize_address_refuses_non_addresses(bad: object) -> None:
    with pytest.raises(ValueError, match="not an address"):
        normalize_address(bad)


def test_keccak_and_transfer_topic() -> None:
    assert keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert TRANSFER_TOPIC == "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


def test_address_topic_pads_to_32_bytes() -> None:
    topic = address_topic(EIP55_VECTORS[0])
    assert topic == "0x000000000000000000000000" + EIP55_VECTORS[0][2:].lower()
    assert len(hex_to_bytes(topic)) == 32


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://mainnet.infura.io/v3/0123456789abcdef", "https://mainnet.infura.io/…"),
        ("https://eth.example:8443/?apikey=SECRET", "https://eth.example:8443/…"),
        ("https://alice:pw@rpc.example/", "https://rpc.example"),
        ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
        ("http://[::1]:8545/key", "http://[::1]:8545/…"),
    ],
)
def test_safe_url_shows_no_path_query_or_credentials(url: str, shown: str) -> None:
    assert safe_url(url) == shown


# ------------------------------------------------------------------------------------ decode_transfer


def transfer_log(
    frm: str, to: str, amount: int, *, token: str = EIP55_VECTORS[1], extra_topics: tuple[str, ...] = ()
) -> Log:
    return Log(
        address=token,
        topics=(TRANSFER_TOPIC, address_topic(frm), address_topic(to), *extra_topics),
        data="0x" + amount.to_bytes(32, "big").hex(),
        block_number=7,
        block_hash=random_hash(),
        transaction_hash=random_hash(),
        transaction_index=0,
        log_index=0,
        removed=False,
    )


addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())


@given(addresses, addresses, addresses, st.integers(min_value=0, max_value=2**256 - 1))
def test_decode_transfer_round_trip(token: str, frm: str, to: str, amount: int) -> None:
    decoded = decode_transfer(transfer_log(frm, to, amount, token=token))
    assert decoded == Erc20Transfer(token, frm, to, amount)
    assert decoded.amount == amount  # exact, past 2**64 too


def test_decode_transfer_refuses_an_erc721_transfer() -> None:
    # ERC-721 Transfer(address indexed from, address indexed to, uint256 indexed tokenId): the same
    # topic 0, a 4th topic and no data.
    log = transfer_log(random_address(), random_address(), 0, extra_topics=("0x" + "00" * 31 + "05",))
    with pytest.raises(ValueError, match="4 topics"):
        decode_transfer(log)
    with pytest.raises(ValueError, match="4 topics"):
        decode_transfer(replace(log, data="0x"))  # as ERC-721 really sends it


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"topics": (TRANSFER_TOPIC,)}, "1 topics"),
        ({"topics": ()}, "0 topics"),
        ({"data": "0x"}, "0 bytes"),
        ({"data": "0x" + "00" * 31}, "31 bytes"),
        ({"data": "0x" + "00" * 64}, "64 bytes"),
        ({"data": "0x123"}, "not hex data"),
    ],
)
def test_decode_transfer_refuses_malformed_logs(change: dict[str, Any], error: str) -> None:
    log = transfer_log(random_address(), random_address(), 1)
    with pytest.raises(ValueError, match=error):
        decode_transfer(replace(log, **change))


def test_decode_transfer_refuses_other_events_and_dirty_padding() -> None:
    log = transfer_log(random_address(), random_address(), 1)
    approval = "0x" + keccak256(b"Approval(address,address,uint256)").hex()
    with pytest.raises(ValueError, match="topic 0"):
        decode_transfer(replace(log, topics=(approval, *log.topics[1:])))
    dirty = "0x01" + log.topics[2][4:]  # non-zero byte in the 12-byte padding
    with pytest.raises(ValueError, match="zero-padded address"):
        decode_transfer(replace(log, topics=(*log.topics[:2], dirty)))


# ------------------------------------------------------------------------------------ ABI strings


def abi_string(text: bytes, offset: int = 32) -> bytes:
    padded = text + b"\0" * (-len(text) % 32)
    return offset.to_bytes(32, "big") + b"\0" * (offset - 32) + len(text).to_bytes(32, "big") + padded


def test_decode_abi_string_and_bytes32() -> None:
    assert decode_abi_string(abi_string(b"USDC")) == "USDC"
    assert decode_abi_string(abi_string(b"")) == ""
    assert decode_abi_string(abi_string("€uro".encode())) == "€uro"
    assert decode_abi_string(abi_string(b"x" * 40)) == "x" * 40  # longer than a word
    assert decode_abi_string(abi_string(b"OFF", offset=64)) == "OFF"  # offset followed, not assumed
    assert decode_abi_string(b"MKR".ljust(32, b"\0")) == "MKR"  # bytes32 (MakerDAO's MKR, SAI)
    assert decode_abi_string(b"\0" * 32) == ""


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\0" * 31,
        b"\0" * 33,
        (64).to_bytes(32, "big") + (3).to_bytes(32, "big"),  # offset past the end
        (32).to_bytes(32, "big") + (100).to_bytes(32, "big") + b"abc".ljust(32, b"\0"),  # too long
        (33).to_bytes(32, "big") + b"\0" * 64,  # unaligned offset
        abi_string(b"\xff\xfe"),  # not UTF-8
    ],
)
def test_decode_abi_string_refuses_garbage(raw: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - several messages, all ValueError
        decode_abi_string(raw)


# ------------------------------------------------------------------------------------ HTTP (mocked)


def mocked(
    handler: Callable[[httpx.Request], httpx.Response], url: str = "https://rpc.example/v3/KEY123"
) -> EvmRpc:
    return EvmRpc(url, client=httpx.AsyncClient(transport=httpx.MockTransport(handler)))


def rpc_answer(request: httpx.Request, result: object) -> httpx.Response:
    body = json.loads(request.content)
    return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": result})


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_credentials_are_authentication_errors_without_the_key(status: int) -> None:
    rpc = mocked(lambda request: httpx.Response(status, text="invalid project id KEY123"))
    with pytest.raises(EvmAuthenticationError) as caught:
        await rpc.eth_blockNumber()
    assert caught.value.status_code == status
    assert caught.value.url == "https://rpc.example/…"
    assert "KEY123" not in str(caught.value)
    assert "KEY123" not in repr(rpc)


async def test_key_in_the_path_is_sent_but_never_shown() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(502, text="<html>Bad Gateway</html>")

    rpc = mocked(handler)
    with pytest.raises(EvmHttpError) as caught:
        await rpc.eth_chainId()
    assert str(seen[0].url) == "https://rpc.example/v3/KEY123"
    assert caught.value.status_code == 502
    assert "KEY123" not in str(caught.value)


async def test_basic_auth_from_the_url_and_bearer_tokens() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return rpc_answer(request, "0x1")

    async with EvmRpc(
        "https://alice:pw@rpc.example", client=httpx.AsyncClient(transport=httpx.MockTransport(handler))
    ) as rpc:
        assert rpc.url == "https://rpc.example"
        assert "pw" not in repr(rpc)
        assert await rpc.eth_chainId() == 1
    assert seen[-1].headers["Authorization"].startswith("Basic ")
    assert seen[-1].url.userinfo == b""
    async with EvmRpc(
        "https://rpc.example",
        bearer_token="T0K",
        client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
    ) as rpc:
        assert await rpc.eth_chainId() == 1
    assert seen[-1].headers["Authorization"] == "Bearer T0K"
    with pytest.raises(ValueError, match="not both"):
        EvmRpc("https://u:p@rpc.example", bearer_token="T0K")
    with pytest.raises(ValueError, match="http"):
        EvmRpc("ws://rpc.example/KEY123")


async def test_rate_limit_with_a_json_rpc_body_is_an_rpc_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        error = {"code": -32005, "message": "daily request count exceeded"}
        return httpx.Response(429, json={"jsonrpc": "2.0", "id": body["id"], "error": error})

    with pytest.raises(EvmRpcError) as caught:
        await mocked(handler).eth_blockNumber()
    assert caught.value.code == -32005
    assert caught.value.method == "eth_blockNumber"


@pytest.mark.parametrize("result", [12, "12", "0x", None, "0x-1", hex(2**256)])
async def test_malformed_quantities_are_code_0(result: object) -> None:
    with pytest.raises(EvmRpcError) as caught:
        await mocked(lambda request: rpc_answer(request, result)).eth_blockNumber()
    assert caught.value.code == 0
    assert caught.value.malformed


async def test_not_json_rpc_is_an_http_error() -> None:
    with pytest.raises(EvmHttpError, match="not a JSON-RPC answer"):
        await mocked(lambda request: httpx.Response(200, text="hello")).eth_blockNumber()
    with pytest.raises(EvmHttpError, match="not a JSON-RPC answer"):
        await mocked(lambda request: httpx.Response(200, json={"jsonrpc": "2.0"})).eth_blockNumber()


async def test_batch_answers_are_matched_by_id() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        calls = json.loads(request.content)
        answers = [
            {"jsonrpc": "2.0", "id": c["id"], "result": hex(int(c["params"][0], 16) * 2)}
            if c["params"][0] != "0x3"
            else {"jsonrpc": "2.0", "id": c["id"], "error": {"code": -32000, "message": "nope"}}
            for c in calls
        ]
        return httpx.Response(200, json=list(reversed(answers)))  # any order

    rpc = mocked(handler)
    assert await rpc.batch([("double", ["0x1"]), ("double", ["0x2"])]) == ["0x2", "0x4"]
    with pytest.raises(EvmRpcError, match="nope") as caught:
        await rpc.batch([("double", ["0x1"]), ("double", ["0x3"])])
    assert caught.value.code == -32000
    results = await rpc.batch([("double", ["0x3"]), ("double", ["0x5"])], return_errors=True)
    assert isinstance(results[0], EvmRpcError) and results[1] == "0xa"
    assert await rpc.batch([]) == []


async def test_batch_with_missing_answers_or_refused_whole() -> None:
    rpc = mocked(lambda request: httpx.Response(200, json=[]))
    with pytest.raises(EvmRpcError, match="no answer for id"):
        await rpc.batch([("eth_chainId", [])])
    refused = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "batch too large"}}
    rpc = mocked(lambda request: httpx.Response(200, json=refused))
    with pytest.raises(EvmRpcError, match="batch too large") as caught:
        await rpc.batch([("eth_chainId", []), ("eth_blockNumber", [])])
    assert caught.value.code == -32600


async def test_float_params_and_bad_arguments_are_refused_before_sending() -> None:
    rpc = mocked(lambda request: pytest.fail("nothing may be sent"))
    with pytest.raises(TypeError, match="float"):
        await rpc.call("eth_getBalance", "0x" + "00" * 20, 1.5)
    with pytest.raises(ValueError, match="block tag"):
        await rpc.eth_getBlockByNumber("pending")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        await rpc.eth_getBlockByNumber(-1)
    with pytest.raises(ValueError, match="topic 2"):
        await rpc.eth_getLogs(0, 1, None, [TRANSFER_TOPIC, None, "0x1234"])
    with pytest.raises(ValueError, match="EIP-55"):
        await rpc.erc20_balance(EIP55_VECTORS[0], "0x" + EIP55_VECTORS[1][2:].swapcase())


# ------------------------------------------------------------------------------------ real node


@pytest.fixture
async def rpc(hardhat_node: HardhatNode) -> AsyncIterator[EvmRpc]:
    async with EvmRpc(hardhat_node.url) as client:
        yield client


@pytest.mark.slow
async def test_chain_id_and_block_number_grow_with_mining(hardhat_node: HardhatNode, rpc: EvmRpc) -> None:
    assert await rpc.eth_chainId() == CHAIN_ID == 31337
    assert await rpc.net_version() == "31337"
    before = await rpc.eth_blockNumber()
    hardhat_node.mine(3)
    assert await rpc.eth_blockNumber() == before + 3
    latest = await rpc.eth_getBlockByNumber("latest")
    assert latest is not None and latest.number == before + 3
    for tag in ("safe", "finalized"):  # no finality on a dev chain: the latest block
        block = await rpc.eth_getBlockByNumber(tag)  # type: ignore[arg-type]
        assert block is not None and block.hash == latest.hash
    genesis = await rpc.eth_getBlockByNumber("earliest")
    assert genesis is not None and genesis.number == 0
    assert await rpc.eth_getBlockByNumber(before + 1000) is None
    assert await rpc.eth_getBlockByHash(random_hash()) is None
    parent = await rpc.eth_getBlockByHash(latest.parent_hash, full=False)
    assert parent is not None and parent.number == before + 2


@pytest.mark.slow
async def test_eth_transfer_in_a_block_with_exact_wei(hardhat_node: HardhatNode, rpc: EvmRpc) -> None:
    payer, to = hardhat_node.accounts[2], random_address()
    value = 1_000 * ETH + 1  # 10**21 + 1 wei > 2**64
    assert value > 2**64
    txhash = hardhat_node.send_eth(to, value, sender=payer)
    receipt = await rpc.eth_getTransactionReceipt(txhash)
    assert receipt is not None and receipt.succeeded and receipt.logs == ()
    assert receipt.from_ == payer and receipt.to == to and receipt.contract_address is None

    block = await rpc.eth_getBlockByNumber(receipt.block_number)
    assert block is not None and block.hash == receipt.block_hash
    [tx] = [t for t in block.transactions if t.hash == txhash]
    assert (tx.from_, tx.to, tx.value, tx.input) == (payer, to, value, "0x")
    assert (tx.block_number, tx.block_hash) == (block.number, block.hash)
    assert tx.transaction_index == receipt.transaction_index
    assert block.transaction_hashes == tuple(t.hash for t in block.transactions)

    by_hash = await rpc.eth_getBlockByHash(block.hash, full=False)
    assert by_hash is not None and by_hash.transactions == () and txhash in by_hash.transaction_hashes
    assert await rpc.eth_getTransactionByHash(txhash) == tx
    assert await rpc.eth_getTransactionByHash(random_hash()) is None
    assert await rpc.eth_getTransactionReceipt(random_hash()) is None
    assert await rpc.eth_getBalance(to) == value == hardhat_node.balance(to)
    assert await rpc.eth_getBalance(to, block.number - 1) == 0


@pytest.mark.slow
async def test_erc20_transfer_found_by_logs_and_decoded(hardhat_node: HardhatNode, rpc: EvmRpc) -> None:
    token = hardhat_node.deploy_token("Kassa Test Dollar", "KTD", 6)
    payer, merchant, other = hardhat_node.accounts[3], random_address(), random_address()
    amount = 2**200 + 12_345  # any uint256, exactly
    hardhat_node.mint(token, payer, 2 * amount)
    start = await rpc.eth_blockNumber()
    txhash = hardhat_node.send_token(token, merchant, amount, sender=payer)
    hardhat_node.send_token(token, other, 1, sender=payer)
    end = await rpc.eth_blockNumber()

    logs = await rpc.eth_getLogs(start, end, token, [TRANSFER_TOPIC, None, address_topic(merchant)])
    [log] = logs
    assert log.transaction_hash == txhash and not log.removed
    assert decode_transfer(log) == (token, payer, merchant, amount)
    receipt = await rpc.eth_getTransactionReceipt(txhash)
    assert receipt is not None and receipt.logs == (log,)

    # Any of several tokens, any of several recipients; checksummed input is fine.
    both = await rpc.eth_getLogs(
        start,
        end,
        [to_checksum_address(token), random_address()],
        [TRANSFER_TOPIC, None, [address_topic(merchant), address_topic(other)]],
    )
    assert [decode_transfer(entry).to for entry in both] == [merchant, other]
    assert (
        await rpc.eth_getLogs(start, end, token, [TRANSFER_TOPIC, None, address_topic(random_address())])
        == ()
    )
    everything = await rpc.eth_getLogs(0, end, token)  # mint (from 0x0) + the two transfers
    assert [decode_transfer(entry).from_ for entry in everything] == ["0x" + "00" * 20, payer, payer]

    assert await rpc.erc20_decimals(token) == 6
    assert await rpc.erc20_symbol(token) == "KTD"
    assert await rpc.erc20_balance(token, merchant) == amount == hardhat_node.token_balance(token, merchant)
    assert await rpc.erc20_balance(token, merchant, start) == 0


@pytest.mark.slow
async def test_erc20_helpers_on_something_else(hardhat_node: HardhatNode, rpc: EvmRpc) -> None:
    with pytest.raises(EvmContractError, match="no data"):
        await rpc.erc20_decimals(random_address())  # no code there: eth_call returns "0x"
    with pytest.raises(EvmContractError, match="no data"):
        await rpc.erc20_symbol(hardhat_node.accounts[0])
    token = hardhat_node.deploy_token("Reverts", "REV", 0)
    call = "0xa9059cbb" + address_topic(random_address())[2:] + f"{1:064x}"  # transfer(to, 1): no balance
    with pytest.raises(EvmRpcError) as caught:
        await rpc.eth_call(token, call)
    assert caught.value.code == RPC_INTERNAL_ERROR
    assert "insufficient balance" in caught.value.message


@pytest.mark.slow
async def test_automine_off_keeps_a_transaction_pending(hardhat_node: HardhatNode, rpc: EvmRpc) -> None:
    to = random_address()
    hardhat_node.automine(False)
    try:
        height = await rpc.eth_blockNumber()
        txhash = hardhat_node.send_eth(to, 5 * ETH)
        pending = await rpc.eth_getTransactionByHash(txhash)
        assert pending is not None and pending.value == 5 * ETH
        assert (pending.block_number, pending.block_hash, pending.transaction_index) == (None, None, None)
        assert await rpc.eth_getTransactionReceipt(txhash) is None
        assert await rpc.eth_blockNumber() == height
        latest = await rpc.eth_getBlockByNumber("latest")
        assert latest is not None and txhash not in latest.transaction_hashes
        raw_pending = hardhat_node.call("eth_getBlockByNumber", "pending", False)
        assert raw_pending["number"] is None and txhash in raw_pending["transactions"]
        assert await rpc.eth_getBalance(to) == 0

        hardhat_node.mine()
    finally:
        hardhat_node.automine(True)
    receipt = await rpc.eth_getTransactionReceipt(txhash)
    assert receipt is not None and receipt.block_number == height + 1
    block = await rpc.eth_getBlockByNumber("latest")
    assert block is not None and block.number == height + 1 and txhash in block.transaction_hashes
    assert await rpc.eth_getBalance(to) == 5 * ETH


@pytest.mark.slow
async def test_snapshot_revert_is_a_reorg(hardhat_node: HardhatNode, rpc: EvmRpc) -> None:
    """See the module docstring for what Hardhat does; each point is checked here."""
    outer = hardhat_node.snapshot()
    try:
        base = await rpc.eth_blockNumber()
        base_block = await rpc.eth_getBlockByNumber(base)
        assert base_block is not None

        # An empty block, reverted, mined again with the same timestamp: the same hash.
        stamp = base_block.timestamp + 100
        snap = hardhat_node.snapshot()
        hardhat_node.call("evm_setNextBlockTimestamp", stamp)
        hardhat_node.mine()
        empty = await rpc.eth_getBlockByNumber(base + 1)
        hardhat_node.revert(snap)
        assert await rpc.eth_blockNumber() == base
        hardhat_node.call("evm_setNextBlockTimestamp", stamp)
        hardhat_node.mine()
        again = await rpc.eth_getBlockByNumber(base + 1)
        assert empty is not None and again is not None
        assert again.hash == empty.hash and again.timestamp == stamp

        # A block holding a payment, then two more blocks: reverted, the payment is gone for good.
        height = await rpc.eth_blockNumber()
        snap = hardhat_node.snapshot()
        later = hardhat_node.snapshot()
        to = random_address()
        txhash = hardhat_node.send_eth(to, 3 * ETH)
        hardhat_node.mine(2)
        paid = await rpc.eth_getBlockByNumber(height + 1)
        tip = await rpc.eth_getBlockByNumber(height + 3)
        assert paid is not None and txhash in paid.transaction_hashes and tip is not None
        hardhat_node.automine(False)
        try:
            dropped = hardhat_node.send_eth(random_address(), 1)  # pending at the revert
        finally:
            hardhat_node.automine(True)

        hardhat_node.revert(snap)
        assert await rpc.eth_blockNumber() == height
        assert await rpc.eth_getBlockByNumber(height + 1) is None
        assert await rpc.eth_getBlockByHash(paid.hash) is None
        assert await rpc.eth_getTransactionByHash(txhash) is None  # not back in the pool
        assert await rpc.eth_getTransactionReceipt(txhash) is None
        assert await rpc.eth_getTransactionByHash(dropped) is None  # the pool was reverted too
        assert await rpc.eth_getBalance(to) == 0
        assert hardhat_node.call("evm_revert", snap) is False  # used up
        assert hardhat_node.call("evm_revert", later) is False  # taken after it: dropped too

        # New blocks at the same heights: different hashes, since the content differs.
        hardhat_node.mine(3)
        replaced = await rpc.get_blocks([height + 1, height + 2, height + 3])
        first, _, last = replaced
        assert first is not None and first.hash != paid.hash and first.transaction_hashes == ()
        assert last is not None and last.hash != tip.hash
    finally:
        hardhat_node.revert(outer)


@pytest.mark.slow
async def test_batch_against_the_node(hardhat_node: HardhatNode, rpc: EvmRpc) -> None:
    hardhat_node.mine(2)
    tip = await rpc.eth_blockNumber()
    blocks = await rpc.get_blocks([tip - 1, tip, tip + 1], full=False)
    assert [b.number if b is not None else None for b in blocks] == [tip - 1, tip, None]
    assert blocks[1] is not None and blocks[0] is not None and blocks[1].parent_hash == blocks[0].hash

    chain_id, number = await rpc.batch([("eth_chainId", []), ("eth_blockNumber", [])])
    assert (hex_to_int(chain_id), hex_to_int(number)) == (CHAIN_ID, tip)
    with pytest.raises(EvmRpcError) as caught:
        await rpc.batch([("eth_chainId", []), ("no_such_method", [])])
    assert caught.value.code == RPC_METHOD_NOT_SUPPORTED and caught.value.method == "no_such_method"
    results = await rpc.batch([("no_such_method", []), ("eth_chainId", [])], return_errors=True)
    assert isinstance(results[0], EvmRpcError) and results[1] == hex(CHAIN_ID)

    txs = [hardhat_node.send_eth(random_address(), n + 1) for n in range(3)]
    receipts = await rpc.get_receipts([*txs, random_hash()])
    assert [r.transaction_hash if r is not None else None for r in receipts] == [*txs, None]


@pytest.mark.slow
async def test_unknown_method_is_an_rpc_error_with_the_code(rpc: EvmRpc) -> None:
    with pytest.raises(EvmRpcError) as caught:
        await rpc.call("eth_noSuchMethod")
    assert caught.value.code == RPC_METHOD_NOT_SUPPORTED == -32004
    assert caught.value.unsupported_method
    assert "eth_noSuchMethod" in caught.value.message


@pytest.mark.slow
async def test_unreachable_url() -> None:
    (port,) = free_loopback_ports(1)
    async with EvmRpc(f"http://127.0.0.1:{port}/SECRETKEY", timeout=2) as client:
        with pytest.raises(EvmUnreachable) as caught:
            await client.eth_blockNumber()
    assert caught.value.method == "eth_blockNumber"
    assert caught.value.url == f"http://127.0.0.1:{port}/…"
    assert "SECRETKEY" not in str(caught.value)
