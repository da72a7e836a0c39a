"""An in-process EVM chain for fast EVM rail tests: eth-tester (py-evm) behind a JSON-RPC ASGI app.

Usage::

    chain = TesterChain()
    token = chain.deploy_token("Test USD", "USDC", 6)
    chain.mint(token, chain.accounts[1], 10**9)
    txhash = chain.send_token(token, merchant, 250_000, sender=chain.accounts[1])
    async with chain.rpc() as node:  # an EvmRpc over httpx.ASGITransport: no socket, no process
        assert await node.eth_blockNumber() == chain.block_number()
    await chain.aclose()

web3's ``EthereumTesterProvider`` answers ``make_request(method, params)`` with eth-tester's own
Python values, as web3 wants them before its middleware formats them: ints rather than hex
quantities, snake_case keys, some of them named differently. :func:`JsonRpcApp` is what a node's HTTP
endpoint would be: it takes JSON-RPC 2.0 POSTs (one request or a batch), turns the wire params into
what the provider takes (web3's own request formatters for eth-tester), and turns the results back
into what geth or Hardhat send. What differs from a real node, and how the shim adapts it (never
Kassa's code):

* results: quantities are sent as hex strings, bytes as hex data, keys in the JSON-RPC spelling
  (web3's result key maps for eth-tester; transactions inside a full block are not remapped by web3:
  done here with its transaction map, e.g. ``data`` -> ``input``, ``block_number`` -> ``blockNumber``);
* params: block numbers arrive as hex (``"0x1"``), which eth-tester refuses: web3's request
  formatters turn them (and ``fromBlock`` / ``toBlock`` of ``eth_getLogs``) into ints;
* ``eth_getBlockByNumber("pending", ...)``: eth-tester keeps transactions sent while automine is off
  in a list of its own (``EthereumTester._pending_transactions``), not in py-evm's pending block,
  whose ``transactions`` is therefore always empty. geth and Hardhat list them there: the shim fills
  the pending block's transactions from that list (with null ``blockHash`` / ``blockNumber`` /
  ``transactionIndex``, as nodes send them);
* ``eth_call`` without ``from``: eth-tester refuses it ("missing the required keys: 'from'") and
  makes the caller afford the call's gas (the block gas limit by default); geth and Hardhat call from
  the zero address for free. The shim adds ``from`` = eth-tester's first dev account, as web3's own
  middleware for eth-tester does (view functions do not look at the caller);
* answers carry the request's ``id`` (the provider numbers its answers itself);
* an exception of the provider becomes a JSON-RPC error: ``TransactionFailed`` (an ``eth_call``
  that reverted) code 3 "execution reverted" like geth, anything else -32602 (what eth-tester
  raises is a validation error of the params), an unknown method -32601 (the provider's own).

Checked as they are, needing nothing: ``eth_chainId`` (131277322940537), ``eth_blockNumber``, a
block past the tip (null), ``eth_getLogs`` with a LIST of addresses and hex topics, receipts
(null while pending, ``status`` 0 for a reverted transaction), batches. Not adapted, because the
watcher never asks it: ``eth_getLogs`` with ``toBlock`` past the tip is an error here.

Chain control goes to eth-tester directly (its Python API, synchronous), not through the shim:

* :attr:`TesterChain.accounts`: eth-tester's 10 funded dev accounts (lower-case), unlocked;
* automine is ON: each transaction is mined into its own block at once. :meth:`TesterChain.automine`
  ``(False)`` keeps sent transactions pending until :meth:`TesterChain.mine` (all of them go into the
  first block mined); ``automine(True)`` mines the pending ones into a block at once (eth-tester
  always mines one block when automine is switched on, even with nothing pending);
* while automine is off, ONE pending transaction per sender: eth-tester gives a pending transaction
  its sender's mined nonce and refuses any other, so a second one from the same account would
  replace the first. :meth:`TesterChain.send_transaction` refuses it: send from another account;
  :meth:`TesterChain.drop_pending` empties the pool (a transaction the pool dropped);
* :meth:`TesterChain.snapshot` / :meth:`TesterChain.revert`: ``take_snapshot`` /
  ``revert_to_snapshot``; the blocks above the snapshot and their transactions are gone (a real node
  would put the transactions back in its pool; eth-tester forgets them). Reverting does not use the
  snapshot up;
* a transaction that reverts (e.g. ETH sent to the test token, which has no payable fallback) is
  mined with receipt status 0, as on a real node.

The chain id is eth-tester's fixed 131277322940537 (< 2**53, so Kassa takes it); ``TesterChain(
chain_id=..., url=...)`` answers ``eth_chainId`` with another, for a second chain in one test. The
app records every call (:attr:`JsonRpcApp.calls`) and :meth:`JsonRpcApp.before_next` runs an action
just before the next request of a method (a block mined in the middle of a watcher's pass). The test
token is tests/support/evm/TestToken.sol's compiled artifact (TestToken.json, committed: nothing
compiles); calldata is encoded with eth-abi (a dependency of web3).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from functools import cache
from pathlib import Path
from typing import Any

import httpx

# py-evm raises the interpreter's recursion limit to 100,000 when it is imported (evm/__init__.py).
# The whole test session shares the interpreter: with that limit, a request body nested 100,000 deep
# (tests/compat/test_knockturn.py) overflows the C stack and kills pytest instead of being refused.
# Restored right after the imports below.
_RECURSION_LIMIT = sys.getrecursionlimit()

from eth_abi.abi import encode as abi_encode  # noqa: E402
from eth_tester import EthereumTester, PyEVMBackend  # type: ignore[import-untyped]  # noqa: E402
from eth_tester.exceptions import TransactionFailed  # type: ignore[import-untyped]  # noqa: E402
from web3.providers.eth_tester import EthereumTesterProvider  # noqa: E402
from web3.providers.eth_tester.middleware import (  # noqa: E402
    request_formatters,
    result_formatters,
    transaction_result_formatter,
    transaction_result_remapper,
)

from kassa.rails.evm.rpc import EvmRpc  # noqa: E402

sys.setrecursionlimit(_RECURSION_LIMIT)

CHAIN_ID = 131277322940537  # eth-tester's, fixed (web3's provider answers eth_chainId with it)
URL = "http://tester"
TOKEN_ARTIFACT = Path(__file__).resolve().parent / "evm" / "TestToken.json"

_NATIVE_GAS = 21_000
_CALL_GAS = 200_000
_DEPLOY_GAS = 3_000_000

# Function selectors (first 4 bytes of keccak256 of the signature).
_SEL_MINT = bytes.fromhex("40c10f19")  # mint(address,uint256)
_SEL_TRANSFER = bytes.fromhex("a9059cbb")  # transfer(address,uint256)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@cache
def token_artifact() -> tuple[list[dict[str, Any]], bytes]:
    """(abi, creation bytecode) of TestToken.json."""
    artifact = json.loads(TOKEN_ARTIFACT.read_text())
    return artifact["abi"], bytes.fromhex(str(artifact["bytecode"]).removeprefix("0x"))


def to_wire(value: Any) -> Any:
    """A provider result as a node sends it: ints as hex quantities (bools stay bools), bytes as hex
    data, tuples as lists."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): to_wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_wire(v) for v in value]
    raise TypeError(f"cannot send {type(value).__name__} as JSON-RPC")


def _wire_transaction(tx: Mapping[str, Any]) -> dict[str, Any]:
    remapped: dict[str, Any] = transaction_result_remapper(transaction_result_formatter(dict(tx)))
    return remapped


class JsonRpcApp:
    """An ASGI app answering JSON-RPC 2.0 POSTs (single and batch) from an eth-tester provider; see the
    module docstring for what it adapts."""

    def __init__(self, tester: EthereumTester, chain_id: int = CHAIN_ID) -> None:
        self.tester = tester
        self.chain_id = chain_id
        self.provider = EthereumTesterProvider(tester)
        self.caller = str(tester.get_accounts()[0])
        self.calls: list[tuple[str, list[Any]]] = []  # (method, params as sent), in order
        self._hooks: list[tuple[str, Callable[[], None]]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status = 200
        answer: dict[str, Any] | list[dict[str, Any]]
        try:
            request = json.loads(body)
        except ValueError:
            status, answer = (
                400,
                {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse"}},
            )
        else:
            if isinstance(request, list):
                answer = [self.answer(item) for item in request] if request else self._invalid(None)
            else:
                answer = self.answer(request)
        payload = json.dumps(answer).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", b"%d" % len(payload)),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    def before_next(self, method: str, action: Callable[[], None]) -> None:
        """Run ``action`` once, just before answering the next request of ``method`` (to change the
        chain in the middle of a watcher's pass)."""
        self._hooks.append((method, action))

    @staticmethod
    def _invalid(request_id: Any) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": request_id, "error": {"code": -32600, "message": "invalid request"}}

    def answer(self, request: Any) -> dict[str, Any]:
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return self._invalid(request.get("id") if isinstance(request, dict) else None)
        request_id = request.get("id")
        method: str = request["method"]
        params = list(request.get("params") or [])
        self.calls.append((method, params))
        for hook in [h for h in self._hooks if h[0] == method]:
            self._hooks.remove(hook)
            hook[1]()
        try:
            result = self.result(method, params)
        except _RpcError as exc:
            return {"jsonrpc": "2.0", "id": request_id, "error": {"code": exc.code, "message": str(exc)}}
        except TransactionFailed as exc:
            return {
                "jsonrpc": "2.0",
                "id": request_id,
                "error": {"code": 3, "message": str(exc)},  # web3 wrote "execution reverted: ..."
            }
        except Exception as exc:  # eth-tester's validation errors: bad params
            message = f"{type(exc).__name__}: {exc}"
            return {"jsonrpc": "2.0", "id": request_id, "error": {"code": -32602, "message": message}}
        return {"jsonrpc": "2.0", "id": request_id, "result": result}

    def result(self, method: str, params: list[Any]) -> Any:
        if method in ("eth_call", "eth_estimateGas") and params and isinstance(params[0], dict):
            params[0] = {"from": self.caller, **params[0]}  # eth-tester requires one; nodes do not
        formatter = request_formatters.get(method)  # type: ignore[call-overload]
        if formatter is not None:
            params = list(formatter(params))
        if method == "eth_chainId":
            return hex(self.chain_id)
        response = self.provider.make_request(method, params)  # type: ignore[arg-type]
        if "error" in response:
            error = response["error"]
            raise _RpcError(int(error.get("code", -32603)), str(error.get("message")))
        result = response.get("result")
        if (
            method == "eth_getBlockByNumber"
            and params
            and params[0] == "pending"
            and isinstance(result, dict)
        ):
            result = dict(result)
            full = len(params) > 1 and bool(params[1])
            pending = [self.tester.get_transaction_by_hash(tx["hash"]) for tx in self.pending()]
            for tx in pending:
                tx.update(block_hash=None, block_number=None, transaction_index=None)
            result["transactions"] = pending if full else [tx["hash"] for tx in pending]
        shaper = result_formatters.get(method) if result_formatters is not None else None  # type: ignore[call-overload]
        if shaper is not None:
            result = shaper(result)
        if method in ("eth_getBlockByNumber", "eth_getBlockByHash") and isinstance(result, dict):
            result = dict(result)
            result["transactions"] = [
                _wire_transaction(tx) if isinstance(tx, Mapping) else tx for tx in result["transactions"]
            ]
        elif method == "eth_getTransactionByHash" and isinstance(result, Mapping):
            result = _wire_transaction(result)
        return to_wire(result)

    def pending(self) -> list[dict[str, Any]]:
        pending: list[dict[str, Any]] = [dict(tx) for tx in self.tester._pending_transactions]
        return pending


class _RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class TesterChain:
    """A fresh eth-tester chain (py-evm) with the JSON-RPC shim; see the module docstring."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, *, chain_id: int = CHAIN_ID, url: str = URL) -> None:
        """``chain_id``: what ``eth_chainId`` answers, for tests with two chains (eth-tester still
        signs with its own id, which a watcher does not look at); ``url`` the one :meth:`rpc` gives."""
        self.chain_id, self.url = chain_id, url
        self.tester = EthereumTester(PyEVMBackend())
        # eth-tester declares this list on the class: a tester that never replaced it would share it.
        self.tester._pending_transactions = []
        self.app = JsonRpcApp(self.tester, chain_id)
        self.accounts: list[str] = [str(a).lower() for a in self.tester.get_accounts()]
        self._clients: list[httpx.AsyncClient] = []

    # ------------------------------------------------------------------ RPC

    def rpc(self, *, timeout: float = 30.0) -> EvmRpc:
        """An :class:`EvmRpc` over the in-process app (its client is closed by :meth:`aclose`)."""
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=self.url)
        self._clients.append(client)
        return EvmRpc(self.url, client=client, timeout=timeout)

    async def aclose(self) -> None:
        clients, self._clients = self._clients, []
        for client in clients:
            await client.aclose()

    # ------------------------------------------------------------------ chain control

    def block_number(self) -> int:
        number: int = self.tester.get_block_by_number("latest")["number"]
        return number

    def block_hash(self, number: int) -> str:
        block_hash: str = self.tester.get_block_by_number(number)["hash"]
        return block_hash

    def mine(self, n: int = 1) -> int:
        """Mine ``n`` blocks (pending transactions go into the first); the new height."""
        self.tester.mine_blocks(n)
        return self.block_number()

    def automine(self, on: bool) -> None:
        """Off: sent transactions stay pending until :meth:`mine`. On: mines the pending ones (and
        eth-tester mines a block whenever automine is switched on)."""
        if on:
            self.tester.enable_auto_mine_transactions()
        else:
            self.tester.disable_auto_mine_transactions()

    def snapshot(self) -> int:
        snapshot_id: int = self.tester.take_snapshot()
        return snapshot_id

    def revert(self, snapshot_id: int) -> None:
        """Back to the chain as it was at :meth:`snapshot` (what was mined since is gone)."""
        self.tester.revert_to_snapshot(snapshot_id)

    def drop_pending(self) -> None:
        """Forget the pending transactions, as a node's pool drops (or a replacement evicts) them."""
        self.tester._pending_transactions.clear()

    def receipt(self, txhash: str) -> dict[str, Any]:
        receipt: dict[str, Any] = self.tester.get_transaction_receipt(txhash)
        return receipt

    def balance(self, address: str) -> int:
        balance: int = self.tester.get_balance(_checksum(address))
        return balance

    # ------------------------------------------------------------------ transactions

    def _sender(self, sender: str | None) -> str:
        return _checksum(sender if sender is not None else self.accounts[0])

    def send_transaction(self, tx: dict[str, Any]) -> str:
        """``send_transaction`` from an unlocked dev account; the transaction hash (lower-case).

        While automine is off, at most one pending transaction per sender: eth-tester gives a pending
        transaction its sender's MINED nonce (and refuses any other), so a second one from the same
        account would silently replace the first. Refused here: send from another account."""
        if not self.tester.auto_mine_transactions:
            sender = str(tx["from"]).lower()
            if any(str(p["from"]).lower() == sender for p in self.app.pending()):
                raise RuntimeError(
                    f"{sender} already has a pending transaction: eth-tester would replace it (same "
                    "nonce); send this one from another account, or mine first"
                )
        txhash: str = self.tester.send_transaction(tx)
        return txhash.lower()

    def send_eth(self, to: str, wei: int, sender: str | None = None, gas: int = _NATIVE_GAS) -> str:
        """Send ``wei`` from ``sender`` (dev account 0 by default); the transaction hash."""
        return self.send_transaction(
            {"from": self._sender(sender), "to": _checksum(to), "value": wei, "gas": gas}
        )

    def deploy_token(self, name: str, symbol: str, decimals: int) -> str:
        """Deploy the test token (mined at once, whatever automine says); its address (lower-case)."""
        _, bytecode = token_artifact()
        data = bytecode + abi_encode(["string", "string", "uint8"], [name, symbol, decimals])
        was_on = bool(self.tester.auto_mine_transactions)
        txhash = self.send_transaction(
            {"from": self._sender(None), "data": "0x" + data.hex(), "gas": _DEPLOY_GAS}
        )
        if not was_on:
            self.mine()
        receipt = self.receipt(txhash)
        if receipt.get("status") != 1 or not receipt.get("contract_address"):
            raise RuntimeError(f"deploying the test token failed: {receipt}")
        return str(receipt["contract_address"]).lower()

    def _call_token(self, token: str, selector: bytes, args: bytes, sender: str | None) -> str:
        data = "0x" + (selector + args).hex()
        return self.send_transaction(
            {"from": self._sender(sender), "to": _checksum(token), "data": data, "gas": _CALL_GAS}
        )

    def mint(self, token: str, to: str, amount: int, sender: str | None = None) -> str:
        """``mint(to, amount)`` (open to anyone); the transaction hash."""
        return self._call_token(
            token, _SEL_MINT, abi_encode(["address", "uint256"], [_checksum(to), amount]), sender
        )

    def send_token(self, token: str, to: str, amount: int, sender: str | None = None) -> str:
        """``transfer(to, amount)`` from ``sender`` (dev account 0 by default); the transaction hash."""
        args = abi_encode(["address", "uint256"], [_checksum(to), amount])
        return self._call_token(token, _SEL_TRANSFER, args, sender)


def _checksum(address: str) -> str:
    from kassa.rails.evm.rpc import to_checksum_address

    return to_checksum_address(address)
