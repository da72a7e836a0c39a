"""Async JSON-RPC 2.0 client for Ethereum nodes (geth, Erigon, Nethermind, Hardhat) and provider URLs.

Only what a receiving watcher and ``kassa rails check`` need is wrapped; every answer is parsed into
a frozen dataclass (checked against a Hardhat 2.29 node, tests/rails/test_evm_rpc.py, which also
writes down what Hardhat does with automine off and on ``evm_snapshot`` / ``evm_revert``).

Quantities: the node sends every number as a hex string (``"0x1b4"``). :func:`hex_to_int` turns
them into Python ints, exactly and of any size up to 2**256 - 1 (wei amounts do not fit 64 bits);
anything else (no ``0x``, an empty ``"0x"``, signs, spaces, underscores, a JSON number, a value of
2**256 or more) is a malformed answer. Leading zeros are tolerated. Numbers sent to the node are
compact hex (:func:`int_to_hex`).

Addresses, hashes and data come back LOWER-CASE everywhere (``0x`` + 40, 64 or an even number of hex
digits), so that they compare as strings; :func:`to_checksum_address` gives the EIP-55 form for
display. Addresses passed in may be in any case, but a mixed-case one must carry a valid EIP-55
checksum (:func:`normalize_address`): a mistyped address is refused rather than watched.

ERC-20 payments are ``Transfer(address indexed from, address indexed to, uint256 value)`` logs:
``eth_getLogs(from, to, token, [TRANSFER_TOPIC, None, address_topic(merchant)])`` finds those to an
address and :func:`decode_transfer` reads one (ERC-721's ``Transfer`` has the same topic 0 but the
token id as a 4th topic and no data: refused).

Errors (all :class:`EvmError`):

* :class:`EvmUnreachable`: nothing answered (connection refused, DNS failure, timeout, reset);
* :class:`EvmAuthenticationError`: HTTP 401 or 403 (wrong or missing credentials / API key);
* :class:`EvmHttpError`: any other answer that is not a JSON-RPC answer (404, 429 or 502 without a
  JSON-RPC body, HTML from a proxy, ...);
* :class:`EvmRpcError`: a JSON-RPC error object, whatever the HTTP status (providers send some with
  429). ``code`` 0 is never sent by a node: it marks a malformed answer. Hardhat answers an unknown
  method with -32004 "Method ... is not supported", geth with -32601 (:attr:`EvmRpcError.unsupported_method`).
* :class:`EvmContractError`: ``eth_call`` of an ERC-20 getter came back empty or undecodable (no
  contract at that address, or not an ERC-20).

Secrets: a provider URL often carries its API key in the path (``https://host/v3/KEY``) or the query.
:attr:`EvmRpc.url` and every message show only ``scheme://host[:port]`` (with ``/…`` when there was
more); ``user:password@`` in the URL becomes HTTP basic auth, ``bearer_token`` an ``Authorization``
header. Request parameters are never logged. (httpx logs full URLs at INFO: kassa.logs keeps its
logger at WARNING.)
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple, TypeAlias

import httpx
from eth_hash.backends import pysha3
from eth_hash.main import Keccak256

from kassa.rails.rpc_base import HttpFailure, JsonRpcFailure, OwnedClient, Unreachable

__all__ = [
    "TRANSFER_TOPIC",
    "Block",
    "BlockId",
    "BlockTag",
    "Erc20Transfer",
    "EvmAuthenticationError",
    "EvmContractError",
    "EvmError",
    "EvmHttpError",
    "EvmRpc",
    "EvmRpcError",
    "EvmUnreachable",
    "Log",
    "Receipt",
    "Tx",
    "address_topic",
    "decode_abi_string",
    "decode_transfer",
    "hex_to_bytes",
    "hex_to_int",
    "int_to_hex",
    "keccak256",
    "normalize_address",
    "parse_block",
    "parse_logs",
    "safe_url",
    "to_checksum_address",
]

logger = logging.getLogger(__name__)

_DEFAULT_TIMEOUT: Final = 10.0

# JSON-RPC / EIP-1474 error codes.
RPC_PARSE_ERROR: Final = -32700
RPC_INVALID_REQUEST: Final = -32600
RPC_METHOD_NOT_FOUND: Final = -32601  # geth, Erigon, Nethermind
RPC_INVALID_PARAMS: Final = -32602
RPC_INTERNAL_ERROR: Final = -32603  # Hardhat: also "execution reverted" of eth_call
RPC_METHOD_NOT_SUPPORTED: Final = -32004  # Hardhat's answer to an unknown method
RPC_LIMIT_EXCEEDED: Final = -32005  # providers' rate limits, too many results from eth_getLogs
RPC_EXECUTION_REVERTED: Final = 3  # geth: eth_call reverted (``data`` holds the revert data)

BlockTag: TypeAlias = Literal["earliest", "latest", "safe", "finalized"]
BlockId: TypeAlias = int | BlockTag
_BLOCK_TAGS: Final = frozenset({"earliest", "latest", "safe", "finalized"})


# --------------------------------------------------------------------------------------------------
# Hex, hashing, addresses

_QUANTITY_RE: Final = re.compile(r"0x[0-9a-fA-F]+")
_DATA_RE: Final = re.compile(r"0x(?:[0-9a-fA-F]{2})*")
_ADDRESS_RE: Final = re.compile(r"0x[0-9a-fA-F]{40}")
_HASH_RE: Final = re.compile(r"0x[0-9a-fA-F]{64}")


_KECCAK: Final = Keccak256(pysha3.backend)  # eth-hash on safe-pysha3, as kassa.rails.evm.keys


def keccak256(data: bytes) -> bytes:
    """Ethereum's Keccak-256 (the original Keccak padding, not NIST SHA3-256)."""
    return _KECCAK(data)


def hex_to_int(value: object, *, bits: int = 256) -> int:
    """A JSON-RPC quantity (``"0x0"``, ``"0x1b4"``) → int. Raises :class:`ValueError` for anything
    that is not ``0x`` followed by at least one hex digit, or for a value of ``2**bits`` or more."""
    if not isinstance(value, str) or _QUANTITY_RE.fullmatch(value) is None:
        raise ValueError(f"not a hex quantity: {_show(value)}")
    number = int(value[2:], 16)
    if number >> bits:
        raise ValueError(f"hex quantity does not fit {bits} bits: {_show(value)}")
    return number


def int_to_hex(number: int) -> str:
    """A non-negative int → compact hex quantity (``0`` → ``"0x0"``)."""
    if isinstance(number, bool) or not isinstance(number, int):
        raise TypeError(f"quantities are ints, not {type(number).__name__}")
    if number < 0:
        raise ValueError(f"quantities are not negative: {number}")
    return hex(number)


def hex_to_bytes(value: object) -> bytes:
    """JSON-RPC data (``"0x"``, ``"0xdeadbeef"``: an even number of hex digits) → bytes.
    Raises :class:`ValueError` otherwise."""
    if not isinstance(value, str) or _DATA_RE.fullmatch(value) is None:
        raise ValueError(f"not hex data: {_show(value)}")
    return bytes.fromhex(value[2:])


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _checksummed(lower_hex40: str) -> str:
    digest = keccak256(lower_hex40.encode("ascii")).hex()
    return "0x" + "".join(
        c.upper() if c.isalpha() and int(d, 16) >= 8 else c
        for c, d in zip(lower_hex40, digest[:40], strict=True)
    )


def normalize_address(address: object) -> str:
    """``0x`` + 40 hex digits → lower-case. An all-lower or all-upper address is taken as it is; a
    mixed-case one must be a valid EIP-55 checksum. Raises :class:`ValueError` otherwise."""
    if not isinstance(address, str) or _ADDRESS_RE.fullmatch(address) is None:
        raise ValueError(f"not an address (0x and 40 hex digits): {_show(address)}")
    digits = address[2:]
    lower = digits.lower()
    if digits not in (lower, digits.upper()) and _checksummed(lower) != "0x" + digits:
        raise ValueError(f"bad EIP-55 checksum (mistyped?): {address}")
    return "0x" + lower


def to_checksum_address(address: str) -> str:
    """The EIP-55 mixed-case form of ``address`` (for display; this module compares lower-case)."""
    return _checksummed(normalize_address(address)[2:])


def address_topic(address: str) -> str:
    """``address`` as a 32-byte log topic (12 zero bytes, then the address): the form of an indexed
    ``address`` argument, e.g. ``Transfer``'s ``to`` in an ``eth_getLogs`` filter."""
    return "0x" + "00" * 12 + normalize_address(address)[2:]


def _hash_param(value: str, what: str = "hash") -> str:
    if not isinstance(value, str) or _HASH_RE.fullmatch(value) is None:
        raise ValueError(f"not a 32-byte {what} (0x and 64 hex digits): {_show(value)}")
    return value.lower()


def _data_param(value: str | bytes) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    hex_to_bytes(value)
    return value.lower()


def _block_param(block: BlockId) -> str:
    if isinstance(block, str):
        if block not in _BLOCK_TAGS:
            raise ValueError(f"not a block tag: {block!r} (one of {sorted(_BLOCK_TAGS)} or a number)")
        return block
    return int_to_hex(block)


def safe_url(url: str) -> str:
    """``url`` as it may be shown: ``scheme://host[:port]``, and ``/…`` when it had a path or a
    query (which may hold an API key). Never the user, password, path or query."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "(invalid URL)"
    host = parsed.host
    if ":" in host:  # IPv6
        host = f"[{host}]"
    shown = f"{parsed.scheme}://{host}" + (f":{parsed.port}" if parsed.port is not None else "")
    if parsed.path.strip("/") or parsed.query:
        shown += "/…"
    return shown


# --------------------------------------------------------------------------------------------------
# Errors


class EvmError(Exception):
    """Base class of every error raised by :class:`EvmRpc`."""


class EvmUnreachable(EvmError, Unreachable):
    """Nothing usable came back from the node: connection failure or timeout."""

    server = "EVM node"


class EvmHttpError(EvmError, HttpFailure):
    """The node answered, but not with a JSON-RPC answer (HTTP error status, not JSON, ...)."""

    server = "EVM node"


class EvmAuthenticationError(EvmHttpError):
    """HTTP 401 or 403: wrong or missing credentials, API key or allow-list entry."""


class EvmRpcError(EvmError, JsonRpcFailure):
    """A JSON-RPC error object, e.g. ``{"code": -32602, "message": "invalid argument 0: ..."}``.
    ``code`` 0 is never sent by a node: it marks a malformed answer. ``data`` is the error's
    ``data`` member (revert data of a failed ``eth_call`` on geth), not shown in the message."""

    def __init__(self, code: int, message: str, method: str, data: Any = None) -> None:
        super().__init__(code, message, method)
        self.data = data

    @property
    def unsupported_method(self) -> bool:
        """The node does not have this method: -32601 (geth & co.) or -32004 (Hardhat)."""
        return self.code in (RPC_METHOD_NOT_FOUND, RPC_METHOD_NOT_SUPPORTED)

    @property
    def malformed(self) -> bool:
        """The answer was not what the method returns (raised by this module, not the node)."""
        return self.code == 0


class EvmContractError(EvmError):
    """An ``eth_call`` answer that does not decode as the called function returns: nothing (there is
    no contract at that address, or it lacks the function) or bytes of the wrong shape."""

    def __init__(self, contract: str, function: str, detail: str) -> None:
        self.contract = contract
        self.function = function
        self.detail = detail
        super().__init__(f"{contract}: {function} {detail}")


# --------------------------------------------------------------------------------------------------
# Answer types


@dataclass(frozen=True, slots=True)
class Tx:
    """A transaction (``eth_getTransactionByHash``, a full block's ``transactions``).
    ``block_number`` / ``block_hash`` / ``transaction_index`` are None while it is pending."""

    hash: str
    from_: str
    to: str | None  # None for a contract creation
    value: int  # wei
    input: str  # hex data, "0x" for a plain transfer
    nonce: int
    block_number: int | None
    block_hash: str | None
    transaction_index: int | None


@dataclass(frozen=True, slots=True)
class Block:
    """``eth_getBlockByNumber`` / ``eth_getBlockByHash``. ``transactions`` is empty when the block
    was fetched with ``full=False``; ``transaction_hashes`` is always filled, in block order."""

    number: int
    hash: str
    parent_hash: str
    timestamp: int  # seconds since the epoch
    transactions: tuple[Tx, ...]
    transaction_hashes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Log:
    """An event log (``eth_getLogs``, a receipt's ``logs``). ``removed`` is True when a reorg
    took its block out of the chain (sent by filters/subscriptions; ``eth_getLogs`` only returns
    logs of the current chain)."""

    address: str  # the emitting contract
    topics: tuple[str, ...]
    data: str
    block_number: int
    block_hash: str
    transaction_hash: str
    transaction_index: int
    log_index: int
    removed: bool


@dataclass(frozen=True, slots=True)
class Receipt:
    """``eth_getTransactionReceipt``: a mined transaction's outcome. ``status`` 1 = success,
    0 = reverted (None before Byzantium, which reported a state root instead)."""

    transaction_hash: str
    status: int | None
    block_number: int
    block_hash: str
    transaction_index: int
    from_: str
    to: str | None
    contract_address: str | None  # set for a contract creation
    gas_used: int
    logs: tuple[Log, ...]

    @property
    def succeeded(self) -> bool:
        return self.status == 1


class Erc20Transfer(NamedTuple):
    """A decoded ERC-20 ``Transfer`` log (a tuple: ``token, from_, to, amount = decode_transfer(log)``)."""

    token: str
    from_: str
    to: str
    amount: int  # in the token's smallest unit


TRANSFER_TOPIC: Final = "0x" + keccak256(b"Transfer(address,address,uint256)").hex()


def decode_transfer(log: Log) -> Erc20Transfer:
    """The ERC-20 transfer in ``log``. Raises :class:`ValueError` unless the log has exactly 3
    topics (``TRANSFER_TOPIC``, from, to: zero-padded addresses) and 32 bytes of data (the amount):
    ERC-721 transfers (4 topics, no data) and other events are refused."""
    if len(log.topics) != 3:
        raise ValueError(f"not an ERC-20 Transfer log: {len(log.topics)} topics, not 3")
    if log.topics[0].lower() != TRANSFER_TOPIC:
        raise ValueError("not a Transfer log: topic 0 is not Transfer(address,address,uint256)")
    data = hex_to_bytes(log.data)
    if len(data) != 32:
        raise ValueError(f"not an ERC-20 Transfer log: {len(data)} bytes of data, not 32")
    return Erc20Transfer(
        token=normalize_address(log.address),
        from_=_topic_address(log.topics[1]),
        to=_topic_address(log.topics[2]),
        amount=int.from_bytes(data, "big"),
    )


def _topic_address(topic: str) -> str:
    raw = hex_to_bytes(topic)
    if len(raw) != 32 or any(raw[:12]):
        raise ValueError(f"topic is not a zero-padded address: {_show(topic)}")
    return "0x" + raw[12:].hex()


def decode_abi_string(raw: bytes) -> str:
    """An ABI-encoded ``string`` return value, or a ``bytes32`` one (exactly 32 bytes, NUL-padded:
    older tokens such as MKR return their symbol that way). Raises :class:`ValueError` when it is
    neither, or not UTF-8."""
    if len(raw) == 32:
        return raw.rstrip(b"\0").decode("utf-8")
    if len(raw) < 64:
        raise ValueError(f"{len(raw)} bytes: neither an ABI string nor a bytes32")
    offset = int.from_bytes(raw[:32], "big")
    if offset % 32 or offset + 32 > len(raw):
        raise ValueError(f"string offset {offset} outside the {len(raw)} bytes returned")
    length = int.from_bytes(raw[offset : offset + 32], "big")
    start = offset + 32
    if length > len(raw) - start:
        raise ValueError(f"string length {length} past the {len(raw)} bytes returned")
    return raw[start : start + length].decode("utf-8")


def _selector(signature: str) -> str:
    return "0x" + keccak256(signature.encode("ascii"))[:4].hex()


_DECIMALS: Final = _selector("decimals()")  # 0x313ce567
_SYMBOL: Final = _selector("symbol()")  # 0x95d89b41
_BALANCE_OF: Final = _selector("balanceOf(address)")  # 0x70a08231


# --------------------------------------------------------------------------------------------------
# Parsing helpers: strict about what is used, tolerant of extra fields.


def _malformed(method: str, what: str) -> EvmRpcError:
    return EvmRpcError(0, f"malformed answer: {what}", method)


def _obj(value: Any, method: str, what: str = "result") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _malformed(method, f"{what} is not an object")
    return value


def _list(value: Any, method: str, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise _malformed(method, f"{what} is not a list")
    return value


def _qty(obj: Mapping[str, Any], key: str, method: str) -> int:
    try:
        return hex_to_int(obj.get(key))
    except ValueError as exc:
        raise _malformed(method, f"field {key!r}: {exc}") from exc


def _opt_qty(obj: Mapping[str, Any], key: str, method: str) -> int | None:
    return None if obj.get(key) is None else _qty(obj, key, method)


def _hash(obj: Mapping[str, Any], key: str, method: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or _HASH_RE.fullmatch(value) is None:
        raise _malformed(method, f"field {key!r} is not a 32-byte hash: {_show(value)}")
    return value.lower()


def _opt_hash(obj: Mapping[str, Any], key: str, method: str) -> str | None:
    return None if obj.get(key) is None else _hash(obj, key, method)


def _addr(obj: Mapping[str, Any], key: str, method: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or _ADDRESS_RE.fullmatch(value) is None:
        raise _malformed(method, f"field {key!r} is not an address: {_show(value)}")
    return value.lower()  # nodes send lower-case or EIP-55: not re-checked


def _opt_addr(obj: Mapping[str, Any], key: str, method: str) -> str | None:
    return None if obj.get(key) is None else _addr(obj, key, method)


def _data(obj: Mapping[str, Any], key: str, method: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or _DATA_RE.fullmatch(value) is None:
        raise _malformed(method, f"field {key!r} is not hex data: {_show(value)}")
    return value.lower()


def _tx(value: Any, method: str) -> Tx:
    t = _obj(value, method, "transaction")
    return Tx(
        hash=_hash(t, "hash", method),
        from_=_addr(t, "from", method),
        to=_opt_addr(t, "to", method),
        value=_qty(t, "value", method),
        input=_data(t, "input", method),
        nonce=_qty(t, "nonce", method),
        block_number=_opt_qty(t, "blockNumber", method),
        block_hash=_opt_hash(t, "blockHash", method),
        transaction_index=_opt_qty(t, "transactionIndex", method),
    )


def _block(value: Any, method: str) -> Block | None:
    if value is None:
        return None
    b = _obj(value, method)
    txs: list[Tx] = []
    hashes: list[str] = []
    for entry in _list(b.get("transactions"), method, "transactions"):
        if isinstance(entry, str):
            hashes.append(_hash({"transaction": entry}, "transaction", method))
        else:
            tx = _tx(entry, method)
            txs.append(tx)
            hashes.append(tx.hash)
    return Block(
        number=_qty(b, "number", method),
        hash=_hash(b, "hash", method),
        parent_hash=_hash(b, "parentHash", method),
        timestamp=_qty(b, "timestamp", method),
        transactions=tuple(txs),
        transaction_hashes=tuple(hashes),
    )


def parse_block(result: Any) -> Block | None:
    """``eth_getBlockByNumber``'s result (a JSON object) as a :class:`Block`."""
    return _block(result, "eth_getBlockByNumber")


def parse_logs(result: Any) -> tuple[Log, ...]:
    """``eth_getLogs``'s result (a JSON list) as :class:`Log` entries."""
    m = "eth_getLogs"
    return tuple(_log(entry, m) for entry in _list(result, m, "result"))


def _log(value: Any, method: str) -> Log:
    entry = _obj(value, method, "log")
    topics = tuple(_hash({"topic": t}, "topic", method) for t in _list(entry.get("topics"), method, "topics"))
    return Log(
        address=_addr(entry, "address", method),
        topics=topics,
        data=_data(entry, "data", method),
        block_number=_qty(entry, "blockNumber", method),
        block_hash=_hash(entry, "blockHash", method),
        transaction_hash=_hash(entry, "transactionHash", method),
        transaction_index=_qty(entry, "transactionIndex", method),
        log_index=_qty(entry, "logIndex", method),
        removed=entry.get("removed") is True,
    )


def _receipt(value: Any, method: str) -> Receipt | None:
    if value is None:
        return None
    r = _obj(value, method)
    return Receipt(
        transaction_hash=_hash(r, "transactionHash", method),
        status=_opt_qty(r, "status", method),
        block_number=_qty(r, "blockNumber", method),
        block_hash=_hash(r, "blockHash", method),
        transaction_index=_qty(r, "transactionIndex", method),
        from_=_addr(r, "from", method),
        to=_opt_addr(r, "to", method),
        contract_address=_opt_addr(r, "contractAddress", method),
        gas_used=_qty(r, "gasUsed", method),
        logs=tuple(_log(e, method) for e in _list(r.get("logs"), method, "logs")),
    )


def _topics_param(topics: Sequence[str | Sequence[str] | None]) -> list[Any]:
    out: list[Any] = []
    for position, topic in enumerate(topics):
        if topic is None:
            out.append(None)
        elif isinstance(topic, str):
            out.append(_hash_param(topic, f"topic {position}"))
        else:
            out.append([_hash_param(t, f"topic {position}") for t in topic])
    return out


def _reject_floats(value: Any) -> None:
    if isinstance(value, float):
        raise TypeError("no floats in RPC parameters: quantities are ints sent as hex (int_to_hex)")
    if isinstance(value, Mapping):
        for item in value.values():
            _reject_floats(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _reject_floats(item)


# --------------------------------------------------------------------------------------------------
# Client


class EvmRpc(OwnedClient):
    """Client of one Ethereum JSON-RPC endpoint (HTTP or HTTPS).

    ``url`` e.g. ``http://127.0.0.1:8545`` or a provider's ``https://host/v3/<key>``; credentials in
    it (``https://user:pw@host``) are used as HTTP basic auth unless ``username`` / ``password`` are
    given; ``bearer_token`` sends ``Authorization: Bearer <token>``. Pass ``client`` to share an
    :class:`httpx.AsyncClient` (it is then not closed by :meth:`aclose`).
    """

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        bearer_token: str | None = None,
        timeout: float = _DEFAULT_TIMEOUT,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            raise ValueError("not a valid URL (not shown: it may hold an API key)") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"not an http(s) URL: {safe_url(url)}")
        if bearer_token is not None and (username is not None or parsed.username):
            raise ValueError("give either basic-auth credentials or a bearer token, not both")
        self.url = safe_url(url)
        self._endpoint = str(parsed.copy_with(username=None, password=None))
        self._username = username if username is not None else (parsed.username or None)
        secret = password if password is not None else (parsed.password or "")
        self._auth = httpx.BasicAuth(self._username, secret) if self._username is not None else None
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if bearer_token is not None:
            self._headers["Authorization"] = f"Bearer {bearer_token}"
        self._timeout = timeout
        super().__init__(client, timeout)
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    # ------------------------------------------------------------------------------ transport

    async def _post(self, payload: Any, method: str) -> Any:
        """POST one JSON-RPC request or batch; the decoded JSON answer, or the error to raise for an
        HTTP-level failure. ``method`` names the call in messages."""
        _reject_floats(payload)
        body = json.dumps(payload)
        try:
            response = await self._client.post(
                self._endpoint,
                content=body,
                headers=self._headers,
                auth=self._auth if self._auth is not None else httpx.USE_CLIENT_DEFAULT,
                timeout=self._timeout,
            )
        except httpx.TimeoutException as exc:
            reason = f"no answer within {self._timeout:g} s ({type(exc).__name__})"
            raise EvmUnreachable(self.url, method, reason) from exc
        except httpx.TransportError as exc:
            # httpx's messages name the host at most ("[Errno 111] Connection refused"), never the path.
            reason = f"{type(exc).__name__}: {str(exc) or type(exc).__name__}"
            raise EvmUnreachable(self.url, method, reason) from exc

        status = response.status_code
        if status in (httpx.codes.UNAUTHORIZED, httpx.codes.FORBIDDEN):
            given = self._auth is not None or "Authorization" in self._headers
            detail = (
                f"{response.reason_phrase or 'refused'}: check the API key in the URL or the credentials"
                f" ({'credentials given' if given else 'no credentials given'})"
            )
            raise EvmAuthenticationError(self.url, method, status, detail)
        try:
            answer = json.loads(response.text)
        except ValueError:
            answer = None
        is_rpc = isinstance(answer, list) or (
            isinstance(answer, dict) and ("result" in answer or "error" in answer)
        )
        if not is_rpc or (status != httpx.codes.OK and not _has_error(answer)):
            detail = "answer is not a JSON-RPC answer" if status == httpx.codes.OK else response.reason_phrase
            raise EvmHttpError(self.url, method, status, detail or f"HTTP {status}")
        return answer

    async def call(self, method: str, *params: Any) -> Any:
        """Call ``method`` with positional ``params`` and return its ``result`` (null → None).
        Parameters are sent as given: quantities must already be hex (:func:`int_to_hex`)."""
        request_id = next(self._ids)
        logger.debug("evm rpc %s -> %s (id %d)", method, self.url, request_id)
        payload = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}
        answer = await self._post(payload, method)
        if not isinstance(answer, dict):
            raise _malformed(method, "a list answered a single request")
        return _result(answer, method)

    async def batch(
        self, calls: Sequence[tuple[str, Sequence[Any]]], *, return_errors: bool = False
    ) -> list[Any]:
        """Send ``calls`` (``(method, params)`` pairs) as ONE JSON-RPC batch request; their results
        in the same order (answers are matched by id, whatever order the node sends them in).

        A call that failed raises its :class:`EvmRpcError` (the first one, in call order), or with
        ``return_errors`` is returned in its place as an :class:`EvmRpcError` instance. A node that
        refuses the whole batch (e.g. a provider's batch-size limit) raises its error."""
        if not calls:
            return []
        ids = [next(self._ids) for _ in calls]
        methods = [method for method, _ in calls]
        label = f"batch[{len(calls)}]({', '.join(sorted(set(methods)))})"
        logger.debug("evm rpc %s -> %s (ids %d-%d)", label, self.url, ids[0], ids[-1])
        payload = [
            {"jsonrpc": "2.0", "id": i, "method": method, "params": list(params)}
            for i, (method, params) in zip(ids, calls, strict=True)
        ]
        answer = await self._post(payload, label)
        if isinstance(answer, dict):  # one answer for the whole batch: an error, or a node without batches
            _result(answer, label)
            raise _malformed(label, "one result answered a batch")
        by_id: dict[int, dict[str, Any]] = {}
        for item in answer:
            if isinstance(item, dict) and isinstance(item.get("id"), int):
                by_id[item["id"]] = item
        results: list[Any] = []
        for request_id, method in zip(ids, methods, strict=True):
            item = by_id.get(request_id)
            try:
                if item is None:
                    raise _malformed(method, f"no answer for id {request_id} in the batch")
                results.append(_result(item, method))
            except EvmRpcError as exc:
                if not return_errors:
                    raise
                results.append(exc)
        return results

    # ------------------------------------------------------------------------------ chain

    async def eth_chainId(self) -> int:
        m = "eth_chainId"
        return _quantity(await self.call(m), m)

    async def net_version(self) -> str:
        """The network id as a decimal string (equal to the chain id on most chains)."""
        m = "net_version"
        result = await self.call(m)
        if not isinstance(result, str):
            raise _malformed(m, "result is not a string")
        return result

    async def eth_blockNumber(self) -> int:
        m = "eth_blockNumber"
        return _quantity(await self.call(m), m)

    async def eth_getBlockByNumber(self, number: BlockId, full: bool = True) -> Block | None:
        """The block at height ``number`` (or ``"latest"``, ``"safe"``, ``"finalized"``,
        ``"earliest"``) with its transactions (only their hashes with ``full=False``); None when
        there is no such block yet."""
        m = "eth_getBlockByNumber"
        return _block(await self.call(m, _block_param(number), full), m)

    async def pending_transactions(self) -> tuple[Tx, ...]:
        """The transactions the node would mine next (the ``"pending"`` block's, which has no
        number of its own): what a watcher sees at 0 confirmations. Empty for a node that keeps no
        pending block."""
        m = "eth_getBlockByNumber"
        result = await self.call(m, "pending", True)
        if result is None:
            return ()
        entries = _list(_obj(result, m).get("transactions"), m, "transactions")
        return tuple(_tx(entry, m) for entry in entries if not isinstance(entry, str))

    async def eth_getBlockByHash(self, block_hash: str, full: bool = True) -> Block | None:
        """None for an unknown block (also one that a reorg took out, once the node forgot it)."""
        m = "eth_getBlockByHash"
        return _block(await self.call(m, _hash_param(block_hash, "block hash"), full), m)

    async def get_blocks(self, numbers: Sequence[BlockId], full: bool = True) -> tuple[Block | None, ...]:
        """:meth:`eth_getBlockByNumber` of each of ``numbers`` in ONE batch request."""
        m = "eth_getBlockByNumber"
        results = await self.batch([(m, [_block_param(n), full]) for n in numbers])
        return tuple(_block(r, m) for r in results)

    async def eth_getBalance(self, address: str, block: BlockId = "latest") -> int:
        """Wei held by ``address`` at ``block``."""
        m = "eth_getBalance"
        return _quantity(await self.call(m, normalize_address(address), _block_param(block)), m)

    async def eth_getLogs(
        self,
        from_block: BlockId,
        to_block: BlockId,
        address: str | Sequence[str] | None = None,
        topics: Sequence[str | Sequence[str] | None] = (),
    ) -> tuple[Log, ...]:
        """Logs of blocks ``from_block``..``to_block`` (inclusive) emitted by ``address`` (one
        contract, any of several, or None for all) whose topics match ``topics``: position by
        position, a topic, a list of alternatives, or None for any. Providers limit the range or
        the number of results (error -32005 and others): ask for fewer blocks then."""
        m = "eth_getLogs"
        query: dict[str, Any] = {"fromBlock": _block_param(from_block), "toBlock": _block_param(to_block)}
        if isinstance(address, str):
            query["address"] = normalize_address(address)
        elif address is not None:
            query["address"] = [normalize_address(a) for a in address]
        if topics:
            query["topics"] = _topics_param(topics)
        return tuple(_log(e, m) for e in _list(await self.call(m, query), m, "result"))

    async def eth_call(self, to: str, data: str | bytes, block: BlockId = "latest") -> str:
        """Run a read-only call of contract ``to`` with calldata ``data``; its return data (hex,
        ``"0x"`` when the address has no code). A revert is an :class:`EvmRpcError` (geth: code 3,
        Hardhat: -32603)."""
        m = "eth_call"
        call = {"to": normalize_address(to), "data": _data_param(data)}
        return _data({"result": await self.call(m, call, _block_param(block))}, "result", m)

    async def eth_getTransactionByHash(self, tx_hash: str) -> Tx | None:
        """None when the node does not know the transaction (never sent, dropped, or reorged out
        and not back in its pool)."""
        m = "eth_getTransactionByHash"
        result = await self.call(m, _hash_param(tx_hash, "transaction hash"))
        return None if result is None else _tx(result, m)

    async def eth_getTransactionReceipt(self, tx_hash: str) -> Receipt | None:
        """None while the transaction is pending (or unknown)."""
        m = "eth_getTransactionReceipt"
        return _receipt(await self.call(m, _hash_param(tx_hash, "transaction hash")), m)

    async def get_receipts(self, tx_hashes: Sequence[str]) -> tuple[Receipt | None, ...]:
        """:meth:`eth_getTransactionReceipt` of each of ``tx_hashes`` in ONE batch request."""
        m = "eth_getTransactionReceipt"
        results = await self.batch([(m, [_hash_param(h, "transaction hash")]) for h in tx_hashes])
        return tuple(_receipt(r, m) for r in results)

    # ------------------------------------------------------------------------------ ERC-20

    async def _erc20_call(self, token: str, function: str, data: str, block: BlockId) -> bytes:
        raw = hex_to_bytes(await self.eth_call(token, data, block))
        if not raw:
            raise EvmContractError(
                normalize_address(token), function, "returned no data: no ERC-20 contract at this address?"
            )
        return raw

    async def erc20_decimals(self, token: str, block: BlockId = "latest") -> int:
        """The token's ``decimals()`` (0 to 255)."""
        raw = await self._erc20_call(token, "decimals()", _DECIMALS, block)
        value = int.from_bytes(raw[:32], "big") if len(raw) >= 32 else None
        if value is None or value > 255:
            raise EvmContractError(normalize_address(token), "decimals()", "did not return a uint8")
        return value

    async def erc20_symbol(self, token: str, block: BlockId = "latest") -> str:
        """The token's ``symbol()``: an ABI ``string``, or a ``bytes32`` for older tokens."""
        raw = await self._erc20_call(token, "symbol()", _SYMBOL, block)
        try:
            return decode_abi_string(raw)
        except ValueError as exc:
            raise EvmContractError(
                normalize_address(token), "symbol()", f"answer not decodable: {exc}"
            ) from exc

    async def erc20_balance(self, token: str, owner: str, block: BlockId = "latest") -> int:
        """``balanceOf(owner)`` in the token's smallest unit."""
        data = _BALANCE_OF + "00" * 12 + normalize_address(owner)[2:]
        raw = await self._erc20_call(token, "balanceOf(address)", data, block)
        if len(raw) < 32:
            raise EvmContractError(normalize_address(token), "balanceOf(address)", "did not return a uint256")
        return int.from_bytes(raw[:32], "big")


def _has_error(answer: Any) -> bool:
    return isinstance(answer, dict) and answer.get("error") is not None


def _result(answer: dict[str, Any], method: str) -> Any:
    error = answer.get("error")
    if error is not None:
        error_obj = error if isinstance(error, dict) else {}
        code = error_obj.get("code")
        message = error_obj.get("message")
        raise EvmRpcError(
            code if isinstance(code, int) and not isinstance(code, bool) else 0,
            message if isinstance(message, str) else repr(error),
            method,
            error_obj.get("data"),
        )
    if "result" not in answer:
        raise _malformed(method, "neither result nor error")
    return answer["result"]


def _quantity(value: Any, method: str) -> int:
    try:
        return hex_to_int(value)
    except ValueError as exc:
        raise _malformed(method, str(exc)) from exc
