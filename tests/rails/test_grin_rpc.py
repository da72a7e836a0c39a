"""kassa.rails.grin.rpc against the loopback Grin stand-in (tests/support/grin_stand_in.py), and
kassa.rails.grin.slate.parse_slate, including a fuzz test."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kassa.rails.grin.rpc import (
    GrinAuthenticationError,
    GrinForeignApi,
    GrinNodeApi,
    GrinOwnerApi,
    GrinProtocolError,
    GrinRefused,
    GrinRpcError,
    GrinUnreachable,
    TxLogEntry,
)
from kassa.rails.grin.slate import SlateError, SlateInfo, parse_slate, slate_version_of
from tests.support.grin_stand_in import (
    NODE_API_SECRET,
    OWNER_API_SECRET,
    WALLET_PASSWORD,
    GrinStandIn,
    make_slate_v3,
    make_slate_v4,
)

GRIN = 10**9


@pytest.fixture
def grin() -> Iterator[GrinStandIn]:
    with GrinStandIn() as stand_in:
        yield stand_in


@pytest.fixture
async def foreign(grin: GrinStandIn) -> AsyncIterator[GrinForeignApi]:
    async with GrinForeignApi(grin.wallet_url, timeout=5) as api:
        yield api


@pytest.fixture
async def owner(grin: GrinStandIn) -> AsyncIterator[GrinOwnerApi]:
    async with GrinOwnerApi(
        grin.wallet_url, api_secret=OWNER_API_SECRET, wallet_password=WALLET_PASSWORD, timeout=5
    ) as api:
        yield api


@pytest.fixture
async def node(grin: GrinStandIn) -> AsyncIterator[GrinNodeApi]:
    async with GrinNodeApi(grin.node_url, api_secret=NODE_API_SECRET, timeout=5) as api:
        yield api


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


# ------------------------------------------------------------------------------------ foreign API


async def raw_call(foreign: GrinForeignApi, method: str, params: Any, id: Any = 1) -> Any:
    """The stand-in's whole JSON-RPC answer, as a proxy would see it."""
    call = {"jsonrpc": "2.0", "method": method, "id": id, "params": params}
    async with httpx.AsyncClient() as client:
        return (await client.post(f"{foreign.url}/v2/foreign", json=call)).json()


async def test_check_version_and_envelope_as_sent(grin: GrinStandIn, foreign: GrinForeignApi) -> None:
    assert await foreign.check_version() == {
        "foreign_api_version": 2,
        "supported_slate_versions": ["V4", "V3"],
    }
    envelope = await raw_call(foreign, "check_version", [], id="proxy-7")
    assert envelope == {
        "id": "proxy-7",
        "jsonrpc": "2.0",
        "result": {"Ok": {"foreign_api_version": 2, "supported_slate_versions": ["V4", "V3"]}},
    }
    unknown = await raw_call(foreign, "build_coinbase", [{"fees": 0, "height": 0, "key_id": None}], id=3)
    assert unknown == {"error": {"code": -32601, "message": "Method not found"}, "id": 3, "jsonrpc": "2.0"}
    assert grin.requests == ["check_version", "check_version", "build_coinbase"]


async def test_receive_tx_v4_answers_the_compact_s2_slate(grin: GrinStandIn, foreign: GrinForeignApi) -> None:
    slate = make_slate_v4(2 * GRIN)
    answer = await foreign.receive_tx(slate)
    assert answer["id"] == slate["id"]
    assert answer["ver"] == "4:2"
    assert answer["sta"] == "S2"
    assert "amt" not in answer and "fee" not in answer  # receive_tx compacts the V4 answer
    (receiver,) = answer["sigs"]  # only the receiver's signature data comes back
    assert set(receiver) == {"xs", "nonce", "part"}
    assert receiver["xs"] != slate["sigs"][0]["xs"]
    (output,) = answer["coms"]
    assert set(output) == {"c", "p"}
    assert answer["off"] != slate["off"]
    assert grin.received == [slate]
    info = parse_slate(answer)
    assert (info.version, info.id, info.state, info.amount) == (4, slate["id"], "S2", 0)


async def test_receive_tx_v3_answers_the_full_s2_slate(grin: GrinStandIn, foreign: GrinForeignApi) -> None:
    slate = make_slate_v3(15 * GRIN // 10)
    answer = await foreign.receive_tx(slate)
    assert answer["version_info"] == slate["version_info"]
    assert answer["amount"] == slate["amount"] and answer["fee"] == slate["fee"]
    sender, receiver = answer["participant_data"]
    assert sender == slate["participant_data"][0]
    assert receiver["id"] == "1"
    assert receiver["part_sig"] is not None and receiver["public_blind_excess"].startswith(("02", "03"))
    assert len(answer["tx"]["body"]["outputs"]) == 2
    assert parse_slate(answer) == SlateInfo(3, slate["id"], 15 * GRIN // 10, None, None)


async def test_duplicate_expired_and_configured_refusals(grin: GrinStandIn, foreign: GrinForeignApi) -> None:
    slate = make_slate_v4(GRIN)
    await foreign.receive_tx(slate)
    with pytest.raises(GrinRefused) as caught:
        await foreign.receive_tx(slate)
    assert caught.value.detail == {"TransactionAlreadyReceived": slate["id"]}
    assert str(caught.value) == f"receive_tx refused: TransactionAlreadyReceived: {slate['id']}"

    with pytest.raises(GrinRefused) as expired:
        await foreign.receive_tx(make_slate_v4(GRIN, ttl=grin.height))
    assert expired.value.detail == "TransactionExpired"

    grin.refuse_next({"GenericError": "wallet is busy"})
    refused = make_slate_v4(GRIN)
    envelope = await raw_call(foreign, "receive_tx", [refused, None, None], id=1)  # proxying sees it verbatim
    assert envelope == {"id": 1, "jsonrpc": "2.0", "result": {"Err": {"GenericError": "wallet is busy"}}}
    assert [s["id"] for s in grin.received] == [slate["id"]]
    await foreign.receive_tx(refused)  # the refusal was for one call only


async def test_invalid_slate_is_a_json_rpc_error(foreign: GrinForeignApi) -> None:
    with pytest.raises(GrinRpcError) as caught:
        await foreign.receive_tx({"hello": "world"})
    assert (caught.value.code, caught.value.method) == (-32602, "receive_tx")


# ------------------------------------------------------------------------------------ owner API


async def test_secure_channel_opens_once_and_reads_the_height(grin: GrinStandIn, owner: GrinOwnerApi) -> None:
    assert await owner.node_height() == grin.height
    grin.mine(3)
    assert await owner.node_height() == grin.height
    assert grin.requests == ["init_secure_api", "open_wallet", "node_height", "node_height"]


async def test_unencrypted_calls_get_the_documented_errors(grin: GrinStandIn, owner: GrinOwnerApi) -> None:
    plain = {"jsonrpc": "2.0", "method": "node_height", "params": {"token": "00" * 32}, "id": 1}
    auth = ("grin", OWNER_API_SECRET)
    async with httpx.AsyncClient(auth=auth) as http:
        before = (await http.post(f"{grin.wallet_url}/v3/owner", json=plain)).json()
        await owner.node_height()
        after = (await http.post(f"{grin.wallet_url}/v3/owner", json=plain)).json()
    assert before == {
        "error": {
            "code": -32001,
            "message": "Encryption must be enabled. Please call 'init_secure_api` first",
        },
        "id": "1",
        "jsonrpc": "2.0",
    }
    assert after["error"]["code"] == -32002
    assert after["error"]["message"].startswith("Encrypted request format error")


async def test_wrong_api_secret_or_password_fail_clearly(grin: GrinStandIn) -> None:
    async with GrinOwnerApi(grin.wallet_url, api_secret="hunter2", wallet_password="pw-secret") as api:
        with pytest.raises(GrinAuthenticationError) as caught:
            await api.node_height()
        assert "hunter2" not in repr(api) and "pw-secret" not in repr(api)
    assert caught.value.status_code == 401
    assert "hunter2" not in str(caught.value) and "pw-secret" not in str(caught.value)
    async with GrinOwnerApi(grin.wallet_url, api_secret=OWNER_API_SECRET, wallet_password="pw-secret") as api:
        with pytest.raises(GrinRefused) as refused:
            await api.node_height()
    assert refused.value.method == "open_wallet"
    assert "pw-secret" not in str(refused.value)


@pytest.mark.parametrize("reset", ["restart_owner_api", "close_wallet"])
async def test_lost_session_or_token_is_recovered_once(
    grin: GrinStandIn, owner: GrinOwnerApi, reset: str
) -> None:
    await owner.node_height()
    getattr(grin, reset)()
    assert await owner.node_height() == grin.height
    assert grin.requests.count("open_wallet") == 2
    assert grin.requests.count("init_secure_api") == 2


async def test_a_session_that_keeps_failing_raises_after_one_retry() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    server_key = ec.generate_private_key(ec.SECP256K1())
    public = server_key.public_key().public_bytes(Encoding.X962, PublicFormat.CompressedPoint).hex()
    methods: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        payload = json.loads(request.content)
        methods.append(payload["method"])
        if payload["method"] == "init_secure_api":
            return httpx.Response(200, json={"id": payload["id"], "jsonrpc": "2.0", "result": {"Ok": public}})
        error = {"code": -32001, "message": "Encryption must be enabled. Please call 'init_secure_api` first"}
        return httpx.Response(200, json={"error": error, "id": "1", "jsonrpc": "2.0"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with (
        client,
        GrinOwnerApi("http://wallet.test", api_secret=None, wallet_password="x", client=client) as api,
    ):
        with pytest.raises(GrinRpcError) as caught:
            await api.node_height()
    assert caught.value.code == -32001
    assert methods == ["init_secure_api", "encrypted_request_v3"] * 2


# ------------------------------------------------------------------------------------ payment lifecycle


async def test_receive_broadcast_mine_confirm(
    grin: GrinStandIn, foreign: GrinForeignApi, owner: GrinOwnerApi, node: GrinNodeApi
) -> None:
    slate = make_slate_v4(3 * GRIN)
    await foreign.receive_tx(slate)
    refreshed, (entry,) = await owner.retrieve_txs(tx_slate_id=slate["id"].upper())
    assert refreshed is True
    assert (entry.tx_type, entry.tx_slate_id, entry.confirmed) == ("TxReceived", slate["id"], False)
    assert (entry.amount_credited, entry.amount_debited, entry.fee) == (3 * GRIN, 0, None)
    assert entry.kernel_lookup_min_height == grin.height
    assert entry.kernel_excess is not None
    assert await node.get_kernel(entry.kernel_excess, entry.kernel_lookup_min_height) is None

    grin.broadcast(slate["id"])
    _, (entry,) = await owner.retrieve_txs()
    assert not entry.confirmed  # in the pool, not yet mined
    mined_at = grin.mine()
    refreshed, (cached,) = await owner.retrieve_txs(refresh_from_node=False)
    assert (refreshed, cached.confirmed) == (False, False)  # the wallet only learns on refresh
    _, (entry,) = await owner.retrieve_txs()
    assert entry.confirmed and entry.confirmation_ts is not None and entry.kernel_excess is not None
    assert await node.get_kernel(entry.kernel_excess, entry.kernel_lookup_min_height) == mined_at
    assert await node.get_kernel(entry.kernel_excess, mined_at + 1) is None
    grin.mine(9)
    assert await node.get_tip() == mined_at + 9


async def test_cancel_and_ttl_expiry(grin: GrinStandIn, foreign: GrinForeignApi, owner: GrinOwnerApi) -> None:
    cancelled, expiring, kept = (
        make_slate_v4(GRIN),
        make_slate_v4(GRIN, ttl=grin.height + 2),
        make_slate_v3(GRIN),
    )
    for slate in (cancelled, expiring, kept):
        await foreign.receive_tx(slate)
    grin.cancel(cancelled["id"])
    grin.mine(2)
    _, entries = await owner.retrieve_txs()
    by_slate = {e.tx_slate_id: e for e in entries}
    assert by_slate[cancelled["id"]].tx_type == "TxReceivedCancelled"
    assert by_slate[expiring["id"]].tx_type == "TxReceivedCancelled"
    assert by_slate[expiring["id"]].ttl_cutoff_height == grin.height
    assert by_slate[kept["id"]].tx_type == "TxReceived"
    _, only = await owner.retrieve_txs(tx_id=by_slate[kept["id"]].id)
    assert [e.tx_slate_id for e in only] == [kept["id"]]
    await foreign.receive_tx(cancelled)  # a cancelled receipt does not block the same slate again


async def test_node_api_auth_and_bad_excess(grin: GrinStandIn, node: GrinNodeApi) -> None:
    assert await node.get_kernel("09" + "ab" * 32) is None
    with pytest.raises(ValueError, match="33-byte commitment"):
        await node.get_kernel("zz")
    async with GrinNodeApi(grin.node_url, api_secret="wrong-node-secret") as bad:
        with pytest.raises(GrinAuthenticationError) as caught:
            await bad.get_tip()
    assert "wrong-node-secret" not in str(caught.value)


# ------------------------------------------------------------------------------------ failures


async def test_unreachable_servers() -> None:
    url = closed_port_url()
    clients = [
        GrinForeignApi(url, timeout=2),
        GrinOwnerApi(
            f"http://grin:hunter2@{url.removeprefix('http://')}", api_secret=None, wallet_password="pw"
        ),
        GrinNodeApi(url, api_secret="hunter2", timeout=2),
    ]
    for api, call in zip(clients, ("check_version", "node_height", "get_tip"), strict=True):
        async with api:
            with pytest.raises(GrinUnreachable) as caught:
                await getattr(api, call)()
        assert caught.value.url == url
        assert "ConnectError" in caught.value.reason
        assert "hunter2" not in str(caught.value) and "hunter2" not in repr(api)


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        (b"<html>busy</html>", 200, "not JSON"),
        (b"[]", 200, "not a JSON object"),
        (b'{"id": 1, "jsonrpc": "2.0", "result": {"Fine": 1}}', 200, "neither 'Ok' nor 'Err'"),
        (b'{"id": 1, "jsonrpc": "2.0"}', 200, "without result"),
        (b'{"id": 1, "jsonrpc": "2.0", "result": {"Ok": "v2"}}', 200, "not an object"),
        (b"Invalid request body", 500, "Invalid request body"),
    ],
)
async def test_malformed_answers(
    grin: GrinStandIn, foreign: GrinForeignApi, node: GrinNodeApi, body: bytes, status: int, detail: str
) -> None:
    grin.answer_next_raw(body, status=status)
    with pytest.raises(GrinProtocolError, match=detail) as caught:
        await foreign.check_version()
    assert caught.value.status_code == (status if status != 200 else None)
    grin.answer_next_raw(body, status=status, on="node")
    with pytest.raises(GrinProtocolError, match=detail):
        await node.get_tip()


async def test_malformed_encrypted_answers(grin: GrinStandIn, owner: GrinOwnerApi) -> None:
    await owner.node_height()
    garbage = {"nonce": "00" * 12, "body_enc": base64.b64encode(b"x" * 40).decode()}
    grin.answer_next_raw(json.dumps({"id": 1, "jsonrpc": "2.0", "result": {"Ok": garbage}}).encode())
    with pytest.raises(GrinProtocolError, match="could not decrypt"):
        await owner.node_height()
    grin.answer_next_raw(b'{"id": 1, "jsonrpc": "2.0", "result": {"Ok": "plain"}}')
    with pytest.raises(GrinProtocolError, match="not an encrypted_response_v3"):
        await owner.retrieve_txs()
    assert await owner.node_height() == grin.height  # the session itself is still fine


def test_tx_log_entry_parses_the_documented_example() -> None:
    documented = {
        "amount_credited": "60000000000",
        "amount_debited": "0",
        "confirmation_ts": "2019-01-15T16:01:26Z",
        "confirmed": True,
        "creation_ts": "2019-01-15T16:01:26Z",
        "fee": None,
        "id": 0,
        "kernel_excess": "0838e19c490038b10f051c9c190a9b1f96d59bbd242f5d3143f50630deb74342ed",
        "kernel_lookup_min_height": 1,
        "num_inputs": 0,
        "num_outputs": 1,
        "parent_key_id": "0200000000000000000000000000000000",
        "stored_tx": None,
        "ttl_cutoff_height": None,
        "tx_slate_id": None,
        "payment_proof": None,
        "reverted_after": None,
        "tx_type": "ConfirmedCoinbase",
    }
    entry = TxLogEntry.from_json(documented)
    assert (entry.id, entry.tx_type, entry.amount_credited, entry.confirmed) == (
        0,
        "ConfirmedCoinbase",
        60 * GRIN,
        True,
    )
    assert TxLogEntry.from_json({**documented, "ttl_cutoff_height": "1234"}).ttl_cutoff_height == 1234
    for broken in ({**documented, "amount_credited": -1}, {**documented, "confirmed": "yes"}, [documented]):
        with pytest.raises(GrinProtocolError):
            TxLogEntry.from_json(broken)


# ------------------------------------------------------------------------------------ parse_slate

SLATE_ID = "0436430c-2b02-624c-2032-570501212b00"


def test_parse_v4_and_v3_slates() -> None:
    assert parse_slate(make_slate_v4(6 * GRIN, SLATE_ID)) == SlateInfo(4, SLATE_ID, 6 * GRIN, "S1", None)
    with_ttl = {**make_slate_v4(1, SLATE_ID.upper(), ttl=5000), "amt": 1}
    assert parse_slate(with_ttl) == SlateInfo(4, SLATE_ID, 1, "S1", 5000)
    assert parse_slate(make_slate_v3(7, SLATE_ID)) == SlateInfo(3, SLATE_ID, 7, None, None)
    v3_ttl = {**make_slate_v3(7, SLATE_ID), "ttl_cutoff_height": "900"}
    assert parse_slate(v3_ttl).ttl_cutoff_height == 900
    assert slate_version_of(make_slate_v4(1)) == 4 and slate_version_of(make_slate_v3(1)) == 3
    assert slate_version_of({"ver": "x"}) is None and slate_version_of([]) is None


def _v4(**changes: Any) -> dict[str, Any]:
    slate = make_slate_v4(GRIN, SLATE_ID)
    slate.update(changes)
    return {k: v for k, v in slate.items() if v is not ...}


@pytest.mark.parametrize(
    ("slate", "message"),
    [
        ([], "must be a JSON object"),
        ("BEGINSLATEPACK. xyz. ENDSLATEPACK.", "armored slatepack"),
        ({"id": SLATE_ID}, "not a Grin slate"),
        (_v4(ver="2:1"), "slate version 2 is not supported; send a V4 or V3 slate"),
        ({**make_slate_v3(1), "version_info": {"version": 2}}, "slate version 2 is not supported"),
        ({**make_slate_v3(1), "ver": "4:2"}, "both"),
        (_v4(ver=4), "must be text"),
        (_v4(ver="four"), "must look like"),
        (_v4(amt=...), "the slate has no amount"),
        ({**make_slate_v3(1), "amount": None}, "amount must be a whole number of nanogrin"),
        (_v4(amt="-1"), "amount must be"),
        (_v4(amt="1.5"), "amount must be"),
        (_v4(amt=" 15"), "amount must be"),
        (_v4(amt=True), "amount must be"),
        (_v4(amt=2**64), "out of range"),
        (_v4(amt=str(2**64)), "out of range"),
        (_v4(fee="lots"), "fee must be"),
        (_v4(ttl=1.0), "TTL must be a block height"),
        (_v4(id="order-42"), "not a UUID"),
        (_v4(id=...), "has no id"),
        (_v4(sta=...), "has no state"),
        (_v4(sta="S9"), "not one of"),
        (_v4(sigs=...), "no signature data"),
        ({**make_slate_v3(1), "tx": None}, "no transaction"),
        ({**make_slate_v3(1), "participant_data": {}}, "no participant data"),
    ],
)
def test_parse_slate_refusals(slate: object, message: str) -> None:
    with pytest.raises(SlateError, match=message):
        parse_slate(slate)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    _containers,
    max_leaves=20,
)
slate_fields = st.sampled_from(
    [
        "ver",
        "id",
        "sta",
        "amt",
        "fee",
        "ttl",
        "sigs",
        "version_info",
        "amount",
        "ttl_cutoff_height",
        "tx",
        "participant_data",
    ]
)


@settings(max_examples=400)
@given(
    base=st.sampled_from([make_slate_v4(GRIN, SLATE_ID), make_slate_v3(GRIN, SLATE_ID), {}]),
    changes=st.dictionaries(slate_fields, json_values, max_size=4),
    anything=json_values,
)
def test_parse_slate_only_ever_raises_slate_error(
    base: dict[str, Any], changes: dict[str, Any], anything: Any
) -> None:
    for candidate in ({**base, **changes}, anything, {"version_info": anything}, {"ver": anything}):
        slate_version_of(candidate)
        try:
            info = parse_slate(candidate)
        except SlateError:
            continue
        assert info.version in (3, 4) and 0 <= info.amount < 2**64
