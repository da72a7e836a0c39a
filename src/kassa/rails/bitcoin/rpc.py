"""Async JSON-RPC client for Bitcoin Core >= 0.21 and its forks (Litecoin Core 0.21).

Only what a receiving watcher and ``kassa rails check`` need is wrapped; every answer is parsed into
a frozen dataclass whose field names follow the RPC's (checked against Litecoin Core 0.21.2.1 on
regtest, tests/rails/test_bitcoin_rpc.py).

Amounts: the node sends JSON numbers in coins (BTC, LTC) with 8 decimals. Answers are parsed with
``parse_float=Decimal`` and converted exactly to integer satoshis by :func:`to_sats`; amounts sent
to the node are exact strings from :func:`sats_to_btc_str`. No float is ever involved.

Wallet calls go to ``<url>/wallet/<quoted name>`` when the client has a ``wallet``; node calls go
to ``<url>/``. A URL ending in ``/wallet/<name>`` selects that wallet.

Errors (all :class:`BitcoinError`):

* :class:`BitcoinUnreachable`: nothing answered (connection refused, DNS failure, timeout, reset);
* :class:`BitcoinAuthenticationError`: HTTP 401 (empty body), wrong ``rpcuser``/``rpcpassword``;
* :class:`BitcoinHttpError`: any other answer that is not a JSON-RPC answer (403 from
  ``rpcallowip``, 404 for an unknown path, 503 "work queue depth exceeded", ...);
* :class:`BitcoinRpcError`: a JSON-RPC error object. Core sends those with HTTP 500, or 404 for an
  unknown method; the status does not matter. ``code`` 0 marks a malformed answer.

What 0.21 reports for pending, replaced, conflicted and reorganised payments is written down in
tests/rails/test_bitcoin_rpc.py's docstring. Litecoin Core's mempool refuses BIP125 replacements by
default (``mempoolreplacement=0``), although transactions still say ``bip125-replaceable`` "yes".

Credentials and request parameters never appear in log records or exception messages; URLs are
shown without any ``user:password@`` part.
"""

from __future__ import annotations

import decimal
import itertools
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Literal, overload
from urllib.parse import quote, unquote

import httpx

from kassa.rails.rpc_base import HttpFailure, JsonRpcFailure, OwnedClient, Unreachable

__all__ = [
    "SATS_PER_COIN",
    "AddressInfo",
    "BitcoinAuthenticationError",
    "BitcoinError",
    "BitcoinHttpError",
    "BitcoinRpc",
    "BitcoinRpcError",
    "BitcoinUnreachable",
    "BlockHeader",
    "BlockchainInfo",
    "DescriptorInfo",
    "ImportResult",
    "LoadedWallet",
    "MempoolEntry",
    "NetworkInfo",
    "OutPoint",
    "RawTransaction",
    "SinceBlock",
    "TxOutput",
    "WalletInfo",
    "WalletTransaction",
    "WalletTx",
    "sats_to_btc_str",
    "since_block",
    "to_sats",
]

logger = logging.getLogger(__name__)

SATS_PER_COIN: Final = 100_000_000

# RPC error codes (src/rpc/protocol.h) and what Litecoin Core 0.21 sends with them.
RPC_MISC_ERROR: Final = -1  # also bad parameter types: "JSON value is not an integer as expected"
RPC_INVALID_ADDRESS_OR_KEY: Final = -5  # "Transaction not in mempool", "Invalid or non-wallet
# transaction id", "Block not found", "Invalid address", "Missing checksum" (descriptors)
RPC_INVALID_PARAMETER: Final = -8  # "Block height out of range", "txid must be of length 64 ..."
RPC_WALLET_ERROR: Final = -4  # 0.21 also uses it for "already loaded" / "Database already exists"
# and "Compiled without sqlite support (required for descriptor wallets)"
RPC_VERIFY_ERROR: Final = -25  # sendrawtransaction: inputs missing or spent
RPC_VERIFY_REJECTED: Final = -26  # sendrawtransaction: rejected by policy, e.g. an insufficient fee
RPC_VERIFY_ALREADY_IN_CHAIN: Final = -27
RPC_IN_WARMUP: Final = -28  # "Loading block index...", "Verifying blocks...", ...
RPC_WALLET_NOT_FOUND: Final = -18  # wallet not loaded, no wallet loaded, or no such wallet file
RPC_WALLET_ALREADY_LOADED: Final = -35  # Core >= 22 only; 0.21 answers -4 (see wallet_already_loaded)
RPC_METHOD_NOT_FOUND: Final = -32601
RPC_PARSE_ERROR: Final = -32700

_DEFAULT_TIMEOUT: Final = 10.0
_EXACT = decimal.Context(prec=60, traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow])


# --------------------------------------------------------------------------------------------------
# Amounts


def to_sats(amount: Decimal | int) -> int:
    """An amount in coins as the node sends it (a :class:`~decimal.Decimal`) → integer satoshis.

    Raises :class:`ValueError` when it is not a whole number of satoshis (or not finite), and
    :class:`TypeError` for a float or bool: floats cannot hold 8 decimals exactly.
    """
    if isinstance(amount, bool) or not isinstance(amount, Decimal | int):
        raise TypeError(f"amounts are Decimal (or int) coins, not {type(amount).__name__}")
    if not Decimal(amount).is_finite():
        raise ValueError(f"not an amount: {amount!r}")
    try:
        scaled = _EXACT.multiply(Decimal(amount), SATS_PER_COIN)
        whole = scaled.to_integral_value(context=_EXACT)
    except decimal.DecimalException as exc:
        raise ValueError(f"not an amount: {amount!r}") from exc
    if whole != scaled:
        raise ValueError(f"not a whole number of satoshis: {amount!r}")
    return int(whole)


def sats_to_btc_str(sats: int) -> str:
    """Integer satoshis → the exact coin amount with 8 decimals (``1`` → ``"0.00000001"``)."""
    if isinstance(sats, bool) or not isinstance(sats, int):
        raise TypeError(f"satoshi amounts are ints, not {type(sats).__name__}")
    sign = "-" if sats < 0 else ""
    whole, fraction = divmod(abs(sats), SATS_PER_COIN)
    return f"{sign}{whole}.{fraction:08d}"


# --------------------------------------------------------------------------------------------------
# Errors


class BitcoinError(Exception):
    """Base class of every error raised by :class:`BitcoinRpc`."""


class BitcoinUnreachable(BitcoinError, Unreachable):
    """Nothing usable came back from the node: connection failure or timeout."""

    server = "Bitcoin RPC"


class BitcoinHttpError(BitcoinError, HttpFailure):
    """The node answered, but not with a JSON-RPC answer (HTTP error status, not JSON, ...)."""

    server = "Bitcoin RPC"


class BitcoinAuthenticationError(BitcoinHttpError):
    """HTTP 401: wrong or missing rpcuser/rpcpassword (or cookie)."""


class BitcoinRpcError(BitcoinError, JsonRpcFailure):
    """A JSON-RPC error object, e.g. ``{"code": -18, "message": "Requested wallet does not exist or
    is not loaded"}``. ``code`` 0 is never sent by the node: it marks a malformed answer."""

    @property
    def wallet_already_loaded(self) -> bool:
        """``loadwallet`` of a loaded wallet: -35 on Core >= 22, -4 "... already loaded." on 0.21."""
        return self.code == RPC_WALLET_ALREADY_LOADED or (
            self.code == RPC_WALLET_ERROR and "already loaded" in self.message
        )


# --------------------------------------------------------------------------------------------------
# Answer types


@dataclass(frozen=True, slots=True)
class BlockchainInfo:
    """``getblockchaininfo``. ``blocks`` is the height of the best block (0 = genesis only)."""

    chain: str  # "main", "test", "regtest", "signet"
    blocks: int
    headers: int
    bestblockhash: str
    initialblockdownload: bool
    verificationprogress: Decimal
    pruned: bool


@dataclass(frozen=True, slots=True)
class NetworkInfo:
    """``getnetworkinfo``: ``version`` e.g. 210201, ``subversion`` e.g. "/LitecoinCore:0.21.2.1/"."""

    version: int
    subversion: str


@dataclass(frozen=True, slots=True)
class BlockHeader:
    """``getblockheader``. ``confirmations`` is -1 for a block that is not on the best chain."""

    hash: str
    height: int
    confirmations: int
    time: int
    previousblockhash: str | None  # None for the genesis block


@dataclass(frozen=True, slots=True)
class MempoolEntry:
    """``getmempoolentry`` (fees from ``fees.base`` / ``fees.modified``)."""

    fee_sats: int
    modified_fee_sats: int
    vsize: int
    time: int
    height: int  # chain height when the transaction entered the mempool
    bip125_replaceable: bool  # it, or an unconfirmed ancestor, signals replaceability


@dataclass(frozen=True, slots=True)
class OutPoint:
    txid: str
    vout: int


@dataclass(frozen=True, slots=True)
class TxOutput:
    n: int
    value_sats: int
    script_pubkey: str  # hex
    address: str | None  # None for scripts without a single address (OP_RETURN, bare multisig)


@dataclass(frozen=True, slots=True)
class RawTransaction:
    """``getrawtransaction`` verbose. ``vin`` omits coinbase inputs; ``blockhash`` is None and
    ``confirmations`` 0 while in the mempool."""

    txid: str
    hash: str  # wtxid
    hex: str
    vin: tuple[OutPoint, ...]
    vout: tuple[TxOutput, ...]
    blockhash: str | None
    confirmations: int


@dataclass(frozen=True, slots=True)
class LoadedWallet:
    """``createwallet`` / ``loadwallet``."""

    name: str
    warning: str


@dataclass(frozen=True, slots=True)
class WalletInfo:
    """``getwalletinfo``. ``scanning`` is None when no rescan runs, else its progress (0 to 1)."""

    walletname: str
    private_keys_enabled: bool
    descriptors: bool  # False when absent (pre-0.21 legacy wallets)
    scanning: Decimal | None
    keypoolsize: int


@dataclass(frozen=True, slots=True)
class DescriptorInfo:
    """``getdescriptorinfo``. ``descriptor`` is normalised (``h`` → ``'``) with ITS checksum
    appended, while ``checksum`` is the checksum of the string passed in: they differ when the
    input used ``h``. Pass ``descriptor`` to ``deriveaddresses`` / ``importmulti``."""

    descriptor: str
    checksum: str
    isrange: bool
    issolvable: bool
    hasprivatekeys: bool


@dataclass(frozen=True, slots=True)
class ImportResult:
    """One entry of ``importmulti`` / ``importdescriptors``, in request order."""

    success: bool
    warnings: tuple[str, ...]
    error_code: int | None
    error_message: str | None


@dataclass(frozen=True, slots=True)
class AddressInfo:
    """``getaddressinfo``. A watched address is ``iswatchonly`` and not ``ismine``."""

    address: str
    ismine: bool
    iswatchonly: bool
    solvable: bool
    desc: str | None  # absent when not solvable
    hdkeypath: str | None  # e.g. "m/84'/1'/0'/0/3"; absent when not derived from an HD key


@dataclass(frozen=True, slots=True)
class WalletTx:
    """One entry of ``listsinceblock`` (``transactions`` or ``removed``): one output of ``txid``
    (``vout``) seen by the wallet, with ``category`` "receive", "send", "generate", "immature" or
    "orphan". ``amount_sats`` is signed as the node sends it (negative for sends).

    ``confirmations`` is 0 in the mempool and NEGATIVE when a conflicting transaction is mined
    (-1 once it has one confirmation); ``blockhash``/``blockheight``/``blocktime`` are set only when
    ``confirmations > 0``, ``trusted`` only when it is not, ``abandoned`` only for sends.
    ``bip125_replaceable`` is "yes", "no" or "unknown" ("no" once mined).
    """

    txid: str
    vout: int
    address: str | None
    category: str
    amount_sats: int
    confirmations: int
    blockhash: str | None
    blockheight: int | None
    blocktime: int | None
    bip125_replaceable: str
    trusted: bool | None
    abandoned: bool | None
    walletconflicts: tuple[str, ...]
    label: str | None
    time: int


@dataclass(frozen=True, slots=True)
class SinceBlock:
    """``listsinceblock``: ``removed`` lists entries of blocks disconnected since the cursor (a
    reorg); ``lastblock`` is the block ``target_confirmations - 1`` deep, the next cursor."""

    transactions: tuple[WalletTx, ...]
    removed: tuple[WalletTx, ...]
    lastblock: str


@dataclass(frozen=True, slots=True)
class WalletTransaction:
    """``gettransaction``: the wallet's view of one transaction; ``amount_sats`` is the net amount
    (for a watch-only wallet: the sum of its receive entries). Same ``confirmations`` / block fields
    semantics as :class:`WalletTx`; ``details`` are :class:`WalletTx` as listsinceblock would list
    them, and EMPTY for a conflicted transaction (negative ``confirmations``): 0.21 drops receive
    entries of depth < 0, while ``amount_sats`` and ``walletconflicts`` stay."""

    txid: str
    amount_sats: int
    confirmations: int
    blockhash: str | None
    blockheight: int | None
    blocktime: int | None
    bip125_replaceable: str
    walletconflicts: tuple[str, ...]
    trusted: bool | None
    time: int
    details: tuple[WalletTx, ...]  # one per output the wallet cares about, with this tx's fields
    hex: str


# --------------------------------------------------------------------------------------------------
# Parsing helpers: strict about types, tolerant of fields other versions leave out.


def _malformed(method: str, what: str) -> BitcoinRpcError:
    return BitcoinRpcError(0, f"malformed answer: {what}", method)


def _obj(value: Any, method: str, what: str = "result") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _malformed(method, f"{what} is not an object")
    return value


def _typed(value: Any, kind: type[Any], method: str, what: str = "result") -> Any:
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise _malformed(method, f"{what} missing or not {kind.__name__}")
    return value


def _req(obj: Mapping[str, Any], key: str, kind: type[Any], method: str) -> Any:
    return _typed(obj.get(key), kind, method, f"field {key!r}")


def _opt(obj: Mapping[str, Any], key: str, kind: type[Any]) -> Any:
    value = obj.get(key)
    if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
        return value
    return None


def _sats(obj: Mapping[str, Any], key: str, method: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise _malformed(method, f"amount {key!r} missing or not a number")
    try:
        return to_sats(value)
    except ValueError as exc:
        raise _malformed(method, f"amount {key!r}: {exc}") from exc


def _strs(obj: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = obj.get(key)
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def _list(value: Any, method: str, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise _malformed(method, f"{what} is not a list")
    return value


def _wallet_tx(entry: Any, method: str) -> WalletTx:
    obj = _obj(entry, method, "transaction entry")
    return WalletTx(
        txid=_req(obj, "txid", str, method),
        vout=_req(obj, "vout", int, method),
        address=_opt(obj, "address", str),
        category=_req(obj, "category", str, method),
        amount_sats=_sats(obj, "amount", method),
        confirmations=_req(obj, "confirmations", int, method),
        blockhash=_opt(obj, "blockhash", str),
        blockheight=_opt(obj, "blockheight", int),
        blocktime=_opt(obj, "blocktime", int),
        bip125_replaceable=_opt(obj, "bip125-replaceable", str) or "unknown",
        trusted=_opt(obj, "trusted", bool),
        abandoned=_opt(obj, "abandoned", bool),
        walletconflicts=_strs(obj, "walletconflicts"),
        label=_opt(obj, "label", str),
        time=_req(obj, "time", int, method),
    )


def since_block(result: Any) -> SinceBlock:
    """``listsinceblock``'s result (parsed with Decimal numbers) as a :class:`SinceBlock`."""
    m = "listsinceblock"
    r = _obj(result, m)
    return SinceBlock(
        transactions=tuple(_wallet_tx(e, m) for e in _list(r.get("transactions"), m, "transactions")),
        removed=tuple(_wallet_tx(e, m) for e in _list(r.get("removed", []), m, "removed")),
        lastblock=_req(r, "lastblock", str, m),
    )


def _import_results(result: Any, method: str) -> list[ImportResult]:
    results = []
    for entry in _list(result, method, "result"):
        obj = _obj(entry, method, "import result")
        error = obj.get("error")
        error_obj = error if isinstance(error, dict) else {}
        results.append(
            ImportResult(
                success=_req(obj, "success", bool, method),
                warnings=_strs(obj, "warnings"),
                error_code=_opt(error_obj, "code", int),
                error_message=_opt(error_obj, "message", str),
            )
        )
    return results


def _output_address(script_pubkey: Mapping[str, Any]) -> str | None:
    address: str | None = _opt(script_pubkey, "address", str)  # Core >= 22
    if address is None:
        addresses = _strs(script_pubkey, "addresses")  # Core 0.21
        address = addresses[0] if len(addresses) == 1 else None
    return address


def _raw_transaction(result: Any, method: str) -> RawTransaction:
    obj = _obj(result, method)
    vin = tuple(
        OutPoint(txid=_req(i, "txid", str, method), vout=_req(i, "vout", int, method))
        for i in (_obj(e, method, "vin entry") for e in _list(obj.get("vin"), method, "vin"))
        if "coinbase" not in i
    )
    vout = []
    for entry in _list(obj.get("vout"), method, "vout"):
        out = _obj(entry, method, "vout entry")
        spk = _obj(out.get("scriptPubKey"), method, "scriptPubKey")
        vout.append(
            TxOutput(
                n=_req(out, "n", int, method),
                value_sats=_sats(out, "value", method),
                script_pubkey=_req(spk, "hex", str, method),
                address=_output_address(spk),
            )
        )
    return RawTransaction(
        txid=_req(obj, "txid", str, method),
        hash=_req(obj, "hash", str, method),
        hex=_req(obj, "hex", str, method),
        vin=vin,
        vout=tuple(vout),
        blockhash=_opt(obj, "blockhash", str),
        confirmations=_opt(obj, "confirmations", int) or 0,
    )


def _reject_floats(value: Any) -> None:
    if isinstance(value, float):
        raise TypeError("no floats in RPC parameters: send amounts as sats_to_btc_str() strings")
    if isinstance(value, Mapping):
        for item in value.values():
            _reject_floats(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _reject_floats(item)


def _split_url(url: str) -> tuple[str, str | None, str | None, str | None]:
    """(base URL without userinfo nor ``/wallet/<name>``, username, password, wallet name)."""
    parsed = httpx.URL(url)
    username = parsed.username or None
    password = parsed.password or None
    path = parsed.path
    wallet = None
    head, sep, tail = path.rpartition("/wallet/")
    if sep and tail and "/" not in tail.rstrip("/"):
        path, wallet = head, unquote(tail.rstrip("/"))
    parsed = parsed.copy_with(username=None, password=None, path=path.rstrip("/") or "/")
    return str(parsed).rstrip("/"), username, password, wallet


# --------------------------------------------------------------------------------------------------
# Client


class BitcoinRpc(OwnedClient):
    """Client of one bitcoind-compatible node and, optionally, one of its wallets.

    ``url`` e.g. ``http://127.0.0.1:8332`` (credentials in it are used when ``username`` /
    ``password`` are None; a ``/wallet/<name>`` suffix sets ``wallet``). HTTP basic auth with
    ``rpcuser`` / ``rpcpassword`` (or ``__cookie__`` and the cookie file's secret). Pass ``client``
    to share an :class:`httpx.AsyncClient` (it is then not closed by :meth:`aclose`).
    """

    def __init__(
        self,
        url: str,
        username: str | None,
        password: str | None,
        *,
        wallet: str | None = None,
        timeout: float = _DEFAULT_TIMEOUT,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        base, url_user, url_password, url_wallet = _split_url(url)
        if wallet is not None and url_wallet is not None and wallet != url_wallet:
            raise ValueError(f"wallet {wallet!r} given, but the URL names wallet {url_wallet!r}")
        self.url = base
        self.wallet = wallet if wallet is not None else url_wallet
        self._username = username if username is not None else url_user
        password = password if password is not None else url_password
        self._auth = httpx.BasicAuth(self._username, password or "") if self._username is not None else None
        self._timeout = timeout
        super().__init__(client, timeout)
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        wallet = f", wallet={self.wallet!r}" if self.wallet is not None else ""
        user = f", username={self._username!r}" if self._username is not None else ""
        return f"{type(self).__name__}({self.url!r}{user}{wallet})"

    @property
    def wallet_url(self) -> str | None:
        """The wallet endpoint (without credentials), or None without a wallet."""
        return f"{self.url}/wallet/{quote(self.wallet, safe='')}" if self.wallet is not None else None

    async def call(self, method: str, *params: Any, wallet: bool = True) -> Any:
        """Call ``method`` with positional ``params`` and return its ``result`` (numbers with a
        fraction as :class:`~decimal.Decimal`). ``wallet=False`` sends it to the node endpoint even
        when the client has a wallet. Parameters are never logged: some carry secrets."""
        _reject_floats(params)
        endpoint = (self.wallet_url if wallet else None) or self.url + "/"
        shown = endpoint.rstrip("/")
        request_id = next(self._ids)
        body = json.dumps({"jsonrpc": "1.0", "id": request_id, "method": method, "params": list(params)})
        logger.debug("bitcoin rpc %s -> %s (id %d)", method, shown, request_id)
        try:
            response = await self._client.post(
                endpoint,
                content=body,
                headers={"Content-Type": "application/json"},
                auth=self._auth if self._auth is not None else httpx.USE_CLIENT_DEFAULT,
                timeout=self._timeout,
            )
        except httpx.TimeoutException as exc:
            reason = f"no answer within {self._timeout:g} s ({type(exc).__name__})"
            raise BitcoinUnreachable(shown, method, reason) from exc
        except httpx.TransportError as exc:
            reason = f"{type(exc).__name__}: {str(exc) or type(exc).__name__}"
            raise BitcoinUnreachable(shown, method, reason) from exc

        status = response.status_code
        if status == httpx.codes.UNAUTHORIZED:
            who = f"user {self._username!r}" if self._username is not None else "no credentials"
            raise BitcoinAuthenticationError(
                shown, method, status, f"authentication failed ({who}); check rpcuser and rpcpassword"
            )
        try:
            answer = json.loads(response.text, parse_float=Decimal)
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or ("result" not in answer and "error" not in answer):
            detail = "answer is not a JSON-RPC object" if status == httpx.codes.OK else response.reason_phrase
            if status == httpx.codes.FORBIDDEN:
                detail = "forbidden: this client's address is not in the node's rpcallowip"
            raise BitcoinHttpError(shown, method, status, detail)
        error = answer.get("error")
        if error is not None:
            error_obj = error if isinstance(error, dict) else {}
            code = _opt(error_obj, "code", int)
            message = _opt(error_obj, "message", str)
            raise BitcoinRpcError(code or 0, message if message is not None else repr(error), method)
        if status != httpx.codes.OK:
            raise BitcoinHttpError(shown, method, status, response.reason_phrase)
        return answer.get("result")

    # ------------------------------------------------------------------------------ node

    async def getblockchaininfo(self) -> BlockchainInfo:
        m = "getblockchaininfo"
        r = _obj(await self.call(m, wallet=False), m)
        progress = r.get("verificationprogress")
        return BlockchainInfo(
            chain=_req(r, "chain", str, m),
            blocks=_req(r, "blocks", int, m),
            headers=_req(r, "headers", int, m),
            bestblockhash=_req(r, "bestblockhash", str, m),
            initialblockdownload=_req(r, "initialblockdownload", bool, m),
            # 1 on a fresh regtest chain arrives as an int
            verificationprogress=Decimal(progress) if isinstance(progress, Decimal | int) else Decimal(0),
            pruned=_req(r, "pruned", bool, m),
        )

    async def getnetworkinfo(self) -> NetworkInfo:
        m = "getnetworkinfo"
        r = _obj(await self.call(m, wallet=False), m)
        return NetworkInfo(version=_req(r, "version", int, m), subversion=_req(r, "subversion", str, m))

    async def getblockcount(self) -> int:
        return int(_typed(await self.call("getblockcount", wallet=False), int, "getblockcount"))

    async def getbestblockhash(self) -> str:
        m = "getbestblockhash"
        return str(_typed(await self.call(m, wallet=False), str, m))

    async def getblockhash(self, height: int) -> str:
        """Hash of the best-chain block at ``height``; error -8 when above the tip."""
        return str(_typed(await self.call("getblockhash", height, wallet=False), str, "getblockhash"))

    async def getblockheader(self, blockhash: str) -> BlockHeader | None:
        """None for an unknown block (error -5 "Block not found")."""
        m = "getblockheader"
        try:
            r = _obj(await self.call(m, blockhash, True, wallet=False), m)
        except BitcoinRpcError as exc:
            if exc.code == RPC_INVALID_ADDRESS_OR_KEY:
                return None
            raise
        return BlockHeader(
            hash=_req(r, "hash", str, m),
            height=_req(r, "height", int, m),
            confirmations=_req(r, "confirmations", int, m),
            time=_req(r, "time", int, m),
            previousblockhash=_opt(r, "previousblockhash", str),
        )

    async def getmempoolentry(self, txid: str) -> MempoolEntry | None:
        """None when ``txid`` is not in the mempool (error -5 "Transaction not in mempool")."""
        m = "getmempoolentry"
        try:
            r = _obj(await self.call(m, txid, wallet=False), m)
        except BitcoinRpcError as exc:
            if exc.code == RPC_INVALID_ADDRESS_OR_KEY:
                return None
            raise
        fees = _obj(r.get("fees"), m, "fees")
        return MempoolEntry(
            fee_sats=_sats(fees, "base", m),
            modified_fee_sats=_sats(fees, "modified", m),
            vsize=_req(r, "vsize", int, m),
            time=_req(r, "time", int, m),
            height=_req(r, "height", int, m),
            bip125_replaceable=_req(r, "bip125-replaceable", bool, m),
        )

    @overload
    async def getrawtransaction(self, txid: str, verbose: Literal[False] = False) -> str | None: ...

    @overload
    async def getrawtransaction(self, txid: str, verbose: Literal[True]) -> RawTransaction | None: ...

    async def getrawtransaction(self, txid: str, verbose: bool = False) -> str | RawTransaction | None:
        """The transaction's hex (or decoded), from the mempool or, with ``txindex=1``, the chain.
        None when the node does not know it (error -5)."""
        m = "getrawtransaction"
        try:
            result = await self.call(m, txid, verbose, wallet=False)
        except BitcoinRpcError as exc:
            if exc.code == RPC_INVALID_ADDRESS_OR_KEY:
                return None
            raise
        return _raw_transaction(result, m) if verbose else str(_typed(result, str, m))

    async def sendrawtransaction(self, hex_tx: str) -> str:
        """Publish a signed transaction; returns its txid (also when already in the mempool)."""
        m = "sendrawtransaction"
        return str(_typed(await self.call(m, hex_tx, wallet=False), str, m))

    async def getdescriptorinfo(self, descriptor: str) -> DescriptorInfo:
        m = "getdescriptorinfo"
        r = _obj(await self.call(m, descriptor, wallet=False), m)
        return DescriptorInfo(
            descriptor=_req(r, "descriptor", str, m),
            checksum=_req(r, "checksum", str, m),
            isrange=_req(r, "isrange", bool, m),
            issolvable=_req(r, "issolvable", bool, m),
            hasprivatekeys=_req(r, "hasprivatekeys", bool, m),
        )

    async def deriveaddresses(self, descriptor: str, range_: tuple[int, int] | None = None) -> list[str]:
        """Addresses of ``descriptor`` (which needs its checksum), indexes ``range_`` inclusive."""
        m = "deriveaddresses"
        params: list[Any] = [descriptor] if range_ is None else [descriptor, list(range_)]
        return [_typed(a, str, m) for a in _list(await self.call(m, *params, wallet=False), m, "result")]

    # ------------------------------------------------------------------------------ wallets

    async def listwallets(self) -> list[str]:
        m = "listwallets"
        return [_typed(w, str, m) for w in _list(await self.call(m, wallet=False), m, "result")]

    async def loadwallet(self, name: str) -> LoadedWallet:
        """Errors: -18 when there is no such wallet, see :attr:`BitcoinRpcError.wallet_already_loaded`."""
        m = "loadwallet"
        r = _obj(await self.call(m, name, wallet=False), m)
        return LoadedWallet(name=_req(r, "name", str, m), warning=_opt(r, "warning", str) or "")

    async def createwallet(
        self,
        name: str,
        disable_private_keys: bool = True,
        blank: bool = True,
        descriptors: bool | None = None,
    ) -> LoadedWallet:
        """Create and load a wallet (a blank watch-only one by default).

        ``descriptors=None`` leaves the node's default (legacy on 0.21). Litecoin Core 0.21 is built
        without sqlite: ``descriptors=True`` fails with -4 "Compiled without sqlite support (required
        for descriptor wallets)". An existing wallet gives -4 "... Database already exists."
        """
        m = "createwallet"
        params: list[Any] = [name, disable_private_keys, blank]
        if descriptors is not None:
            params += ["", False, descriptors]  # passphrase, avoid_reuse, descriptors
        r = _obj(await self.call(m, *params, wallet=False), m)
        return LoadedWallet(name=_req(r, "name", str, m), warning=_opt(r, "warning", str) or "")

    async def getwalletinfo(self) -> WalletInfo:
        m = "getwalletinfo"
        r = _obj(await self.call(m), m)
        scanning = r.get("scanning")  # false, or {"duration": s, "progress": 0..1}
        progress = None
        if isinstance(scanning, dict):
            value = scanning.get("progress")
            progress = Decimal(value) if isinstance(value, Decimal | int) else Decimal(0)
        return WalletInfo(
            walletname=_req(r, "walletname", str, m),
            private_keys_enabled=_req(r, "private_keys_enabled", bool, m),
            descriptors=_opt(r, "descriptors", bool) or False,
            scanning=progress,
            keypoolsize=_opt(r, "keypoolsize", int) or 0,
        )

    async def importmulti(
        self, requests: Sequence[Mapping[str, Any]], rescan: bool = False
    ) -> list[ImportResult]:
        """Import scripts/descriptors into a legacy wallet; one result per request (failures are
        results, not exceptions). Without ``rescan`` only new blocks and the mempool are scanned."""
        m = "importmulti"
        return _import_results(await self.call(m, [dict(r) for r in requests], {"rescan": rescan}), m)

    async def importdescriptors(self, requests: Sequence[Mapping[str, Any]]) -> list[ImportResult]:
        """Descriptor wallets only (legacy ones answer -4 "importdescriptors is not available for
        non-descriptor wallets"); ``"timestamp": "now"`` avoids a rescan."""
        m = "importdescriptors"
        return _import_results(await self.call(m, [dict(r) for r in requests]), m)

    async def getaddressinfo(self, address: str) -> AddressInfo:
        """Error -5 "Invalid address" for a malformed (or other network's) address."""
        m = "getaddressinfo"
        r = _obj(await self.call(m, address), m)
        return AddressInfo(
            address=_req(r, "address", str, m),
            ismine=_req(r, "ismine", bool, m),
            iswatchonly=_req(r, "iswatchonly", bool, m),
            solvable=_opt(r, "solvable", bool) or False,
            desc=_opt(r, "desc", str),
            hdkeypath=_opt(r, "hdkeypath", str),
        )

    # ------------------------------------------------------------------------------ watching

    async def listsinceblock(
        self,
        blockhash: str | None = None,
        target_confirmations: int = 1,
        include_watchonly: bool = True,
        include_removed: bool = True,
    ) -> SinceBlock:
        """Wallet transactions in blocks after ``blockhash`` (all of them with None) plus the
        mempool, and with ``include_removed`` those of blocks disconnected since (a reorg).
        Error -5 "Block not found" for an unknown ``blockhash``."""
        m = "listsinceblock"
        return since_block(
            await self.call(m, blockhash, target_confirmations, include_watchonly, include_removed)
        )

    async def gettransaction(self, txid: str, include_watchonly: bool = True) -> WalletTransaction | None:
        """None when the wallet does not know ``txid`` (-5 "Invalid or non-wallet transaction id")."""
        m = "gettransaction"
        try:
            r = _obj(await self.call(m, txid, include_watchonly), m)
        except BitcoinRpcError as exc:
            if exc.code == RPC_INVALID_ADDRESS_OR_KEY:
                return None
            raise
        # Each details entry gets the transaction-level fields, as listsinceblock entries have them.
        details = tuple(
            _wallet_tx({**r, **_obj(entry, m, "details entry")}, m)
            for entry in _list(r.get("details", []), m, "details")
        )
        return WalletTransaction(
            txid=_req(r, "txid", str, m),
            amount_sats=_sats(r, "amount", m),
            confirmations=_req(r, "confirmations", int, m),
            blockhash=_opt(r, "blockhash", str),
            blockheight=_opt(r, "blockheight", int),
            blocktime=_opt(r, "blocktime", int),
            bip125_replaceable=_opt(r, "bip125-replaceable", str) or "unknown",
            walletconflicts=_strs(r, "walletconflicts"),
            trusted=_opt(r, "trusted", bool),
            time=_req(r, "time", int, m),
            details=details,
            hex=_req(r, "hex", str, m),
        )
