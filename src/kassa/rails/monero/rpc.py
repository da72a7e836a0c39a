"""Async clients for the JSON-RPC interfaces of monero-wallet-rpc and monerod.

Only what the Monero rail needs is wrapped, and every answer is parsed into a frozen dataclass, so the
rest of Kassa never handles the raw dicts. Field names follow the wallet RPC reference
(https://docs.getmonero.org/rpc-library/wallet-rpc/) and were checked against monero-wallet-rpc 0.18
running on a regtest chain (tests/rails/test_monero_rpc.py).

Amounts are integers in atomic units (piconero, 1 XMR = 10**12).

Spending (refunds, payouts): :meth:`MoneroWalletRpc.transfer` with ``do_not_relay=True`` builds and
signs a transaction without publishing it; :meth:`MoneroWalletRpc.relay_tx` publishes it later and
is idempotent (relaying the same metadata again, in the pool or mined, answers the same hash). A
view-only wallet gets an ``unsigned_txset`` instead, signed offline by the full wallet (cold signing:
:meth:`~MoneroWalletRpc.export_outputs`, :meth:`~MoneroWalletRpc.import_outputs`,
:meth:`~MoneroWalletRpc.export_key_images`, :meth:`~MoneroWalletRpc.import_key_images`,
:meth:`~MoneroWalletRpc.sign_transfer`, :meth:`~MoneroWalletRpc.submit_transfer`). Behaviours
checked on 0.18 regtest are in tests/rails/test_monero_spend_rpc.py.

Errors:

* :class:`MoneroUnreachable`: nothing answered (connection refused, DNS failure, timeout, reset);
* :class:`MoneroAuthenticationError`: HTTP 401, wrong or missing ``--rpc-login`` credentials;
* :class:`MoneroHttpError`: any other answer that is not a JSON-RPC answer;
* :class:`MoneroRpcError`: the server answered with a JSON-RPC error object.

All derive from :class:`MoneroError`. Passwords, keys and request parameters never appear in log
records or exception messages; URLs are shown without any ``user:password@`` part.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self

import httpx

__all__ = [
    "ATOMIC_UNITS_PER_XMR",
    "AccountAddresses",
    "AddressValidation",
    "Balance",
    "DaemonInfo",
    "GeneratedBlocks",
    "KeyImageImport",
    "MoneroAuthenticationError",
    "MoneroDaemonRpc",
    "MoneroError",
    "MoneroHttpError",
    "MoneroRpcError",
    "MoneroUnreachable",
    "MoneroWalletRpc",
    "RefreshResult",
    "SignedKeyImage",
    "SignedTransfer",
    "Subaddress",
    "SubaddressIndex",
    "SubaddressInfo",
    "Transfer",
    "TransferDescription",
    "TransferResult",
    "TxKeyCheck",
    "WalletVersion",
]

logger = logging.getLogger(__name__)

ATOMIC_UNITS_PER_XMR: Final = 10**12

# Error codes of monero-wallet-rpc (src/wallet/wallet_errors.h, wallet_rpc_server_error_codes.h); the
# messages are what 0.18 sends.
WALLET_RPC_ERROR_CODE_UNKNOWN_ERROR: Final = -1  # also bad import_outputs / import_key_images data
WALLET_RPC_ERROR_CODE_WRONG_ADDRESS: Final = -2  # "WALLET_RPC_ERROR_CODE_WRONG_ADDRESS: <address>"
# transfer / relay_tx: "Failed to commit tx." when the daemon refuses it, e.g. a double spend.
WALLET_RPC_ERROR_CODE_GENERIC_TRANSFER_ERROR: Final = -4
WALLET_RPC_ERROR_CODE_WRONG_TXID: Final = -8  # also "Transaction not found." for get_transfer_by_txid
WALLET_RPC_ERROR_CODE_NOT_OPEN: Final = -13  # "No wallet file"
WALLET_RPC_ERROR_CODE_NOT_ENOUGH_MONEY: Final = -17  # "not enough money": the balance is too small
WALLET_RPC_ERROR_CODE_ZERO_DESTINATION: Final = -20  # "Transaction has no destination"
WALLET_RPC_ERROR_CODE_BAD_HEX: Final = -26  # "Failed to parse hex."
WALLET_RPC_ERROR_CODE_BAD_TX_METADATA: Final = -27  # "Failed to parse tx metadata."
WALLET_RPC_ERROR_CODE_WATCH_ONLY: Final = -29  # also sign_transfer / describe_transfer on view-only
# "not enough unlocked money": enough in total, but part of it is younger than 10 blocks.
WALLET_RPC_ERROR_CODE_NOT_ENOUGH_UNLOCKED_MONEY: Final = -37
WALLET_RPC_ERROR_CODE_BAD_UNSIGNED_TX_DATA: Final = -39  # "cannot load unsigned_txset"
WALLET_RPC_ERROR_CODE_BAD_SIGNED_TX_DATA: Final = -40  # "Failed to parse signed tx data."
# submit_transfer: "Failed to submit signed tx: transaction was rejected by daemon" (e.g. it spends an
# output already spent: the view-only wallet's key images were stale), or the set was not made by
# this wallet ("Bad output index in selected transfers: 0").
WALLET_RPC_ERROR_CODE_SIGNED_SUBMISSION: Final = -41
WALLET_RPC_ERROR_CODE_ZERO_AMOUNT: Final = -46  # "destination amount is zero"
JSON_RPC_METHOD_NOT_FOUND: Final = -32601

_TXID_RE: Final = re.compile(r"[0-9a-fA-F]{64}")
_MAX_ATOMIC: Final = 2**64 - 1  # amounts are uint64 on the wire
# What a view-only wallet's transfer puts in spent_key_images: it cannot compute the real ones.
_PLACEHOLDER_KEY_IMAGE: Final = "01" + "00" * 31
_DEFAULT_TIMEOUT: Final = 10.0


class MoneroError(Exception):
    """Base class of every error raised by the Monero RPC clients."""


class MoneroUnreachable(MoneroError):
    """Nothing usable came back from the server: connection failure or timeout."""

    def __init__(self, url: str, method: str, reason: str, *, server: str = "Monero RPC") -> None:
        self.url = url
        self.method = method
        self.reason = reason
        super().__init__(f"{server} at {url} unreachable while calling {method!r}: {reason}")


class MoneroHttpError(MoneroError):
    """The server answered, but not with a JSON-RPC answer (HTTP error status, not JSON, ...)."""

    def __init__(
        self, url: str, method: str, status_code: int, detail: str, *, server: str = "Monero RPC"
    ) -> None:
        self.url = url
        self.method = method
        self.status_code = status_code
        self.detail = detail
        super().__init__(f"{server} at {url} answered {method!r} with HTTP {status_code}: {detail}")


class MoneroAuthenticationError(MoneroHttpError):
    """HTTP 401: the RPC server runs with ``--rpc-login`` and the credentials are wrong or missing."""


class MoneroRpcError(MoneroError):
    """A JSON-RPC error object, e.g. ``{"code": -29, "message": "The wallet is watch-only. ..."}``.

    ``code`` 0 is never sent by Monero: it marks a malformed answer or a monerod ``status`` other
    than ``"OK"`` (e.g. ``"BUSY"``).
    """

    def __init__(self, code: int, message: str, method: str) -> None:
        self.code = code
        self.message = message
        self.method = method
        super().__init__(f"{method}: JSON-RPC error {code}: {message}")


# --------------------------------------------------------------------------------------------------
# Answer types


@dataclass(frozen=True, slots=True)
class WalletVersion:
    """``get_version``: the RPC interface version (``version`` is ``major << 16 | minor``)."""

    major: int
    minor: int
    release: bool


@dataclass(frozen=True, slots=True)
class SubaddressIndex:
    """A subaddress index: ``major`` is the account, ``minor`` the subaddress within it."""

    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}/{self.minor}"


@dataclass(frozen=True, slots=True)
class Subaddress:
    """``create_address``: a new subaddress of ``account_index``."""

    address: str
    address_index: int
    account_index: int = 0


@dataclass(frozen=True, slots=True)
class SubaddressInfo:
    """One entry of ``get_address``."""

    address: str
    address_index: int
    label: str
    used: bool


@dataclass(frozen=True, slots=True)
class AccountAddresses:
    """``get_address``: the account's primary address and the requested subaddresses."""

    address: str
    addresses: tuple[SubaddressInfo, ...]

    def by_index(self, address_index: int) -> SubaddressInfo:
        for info in self.addresses:
            if info.address_index == address_index:
                return info
        raise KeyError(address_index)


@dataclass(frozen=True, slots=True)
class RefreshResult:
    """``refresh``: how many blocks were fetched and whether money came in."""

    blocks_fetched: int
    received_money: bool


@dataclass(frozen=True, slots=True)
class Transfer:
    """One entry of ``get_transfers`` / ``get_transfer_by_txid``.

    monero-wallet-rpc reports an incoming transaction as **one entry per (transaction, receiving
    subaddress)**: when a transaction pays several outputs to the same subaddress, they are merged
    into a single entry whose ``amount`` is their sum and whose ``amounts`` lists each output
    (wallet2 ``process_new_transaction`` keys ``tx_money_got_in_outs`` by subaddress index; checked on
    0.18 regtest: two outputs of 1.0 and 0.5 XMR to one subaddress give one entry,
    ``amount`` 1.5 XMR, ``amounts`` [0.5, 1.0] XMR). Outputs of one transaction to *different*
    subaddresses give separate entries with the same ``txid``.

    :attr:`identity` (``txid`` + subaddress index) is therefore a stable key for idempotency: it is
    the same while the transaction sits in the pool and after it is mined (or re-mined after a
    reorg), and distinct for each subaddress a transaction pays.

    ``confirmations`` and ``height`` are 0 while the transaction is in the pool (the RPC omits
    ``confirmations`` there). ``confirmations`` is ``wallet height - height``: 1 right after the
    block containing it is mined. ``timestamp`` is the block's time, or the time the wallet first saw
    it in the pool. ``type`` is ``"in"``, ``"pool"``, ``"out"``, ``"pending"`` or ``"failed"``.
    """

    txid: str
    amount: int
    amounts: tuple[int, ...]
    confirmations: int
    height: int
    subaddr_index: SubaddressIndex
    address: str
    unlock_time: int
    double_spend_seen: bool
    in_pool: bool
    timestamp: int
    type: str
    locked: bool
    fee: int
    payment_id: str

    @property
    def identity(self) -> str:
        """``"<txid>:<account>:<subaddress>"``, stable across pool → block → reorg."""
        return f"{self.txid}:{self.subaddr_index.major}:{self.subaddr_index.minor}"


@dataclass(frozen=True, slots=True)
class TxKeyCheck:
    """``check_tx_key``: what a transaction sent to ``address``, proven with the payer's tx key."""

    received: int
    in_pool: bool
    confirmations: int


@dataclass(frozen=True, slots=True)
class AddressValidation:
    """``validate_address``. ``nettype`` is ``"mainnet"``, ``"testnet"`` or ``"stagenet"`` ("" when
    not valid); regtest uses mainnet addresses, so on regtest a real mainnet address is valid too."""

    valid: bool
    integrated: bool
    subaddress: bool
    nettype: str


@dataclass(frozen=True, slots=True)
class Balance:
    """``get_balance`` of one account. ``unlocked_balance`` is what can be spent now; received
    outputs unlock 10 blocks after the one that mined them (coinbase 60)."""

    balance: int
    unlocked_balance: int
    blocks_to_unlock: int


@dataclass(frozen=True, slots=True)
class TransferResult:
    """``transfer``: one transaction paying every destination.

    From a full wallet: ``tx_hash`` is final, ``tx_metadata`` is what :meth:`MoneroWalletRpc.relay_tx`
    publishes, ``spent_key_images`` the inputs (two transactions sharing one cannot both be mined).
    From a view-only wallet: ``unsigned_txset`` is set, nothing is published, ``spent_key_images`` is
    empty and ``tx_hash`` / ``tx_key`` are NOT those of the transaction the full wallet signs: use
    :attr:`SignedTransfer.tx_hashes`. ``amount`` excludes the fee.
    """

    tx_hash: str
    tx_key: str
    amount: int
    fee: int
    tx_metadata: str
    unsigned_txset: str
    spent_key_images: tuple[str, ...] = ()
    weight: int = 0

    @property
    def needs_signing(self) -> bool:
        """True for a view-only wallet's answer: sign ``unsigned_txset`` with the full wallet."""
        return bool(self.unsigned_txset)


@dataclass(frozen=True, slots=True)
class SignedKeyImage:
    """One entry of ``export_key_images``: an output's key image, signed by the spend key."""

    key_image: str
    signature: str


@dataclass(frozen=True, slots=True)
class KeyImageImport:
    """``import_key_images``: the amounts of the imported outputs the daemon reports spent and
    unspent; ``height`` is the block height of the newest of those outputs (not the chain's)."""

    height: int
    spent: int
    unspent: int


@dataclass(frozen=True, slots=True)
class SignedTransfer:
    """``sign_transfer``: the set to hand to the view-only wallet's ``submit_transfer``, and the
    final hashes (and keys, for payment proofs) of its transactions."""

    signed_txset: str
    tx_hashes: tuple[str, ...]
    tx_keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TransferDescription:
    """One transaction of ``describe_transfer``: what the full wallet is asked to sign."""

    recipients: tuple[tuple[str, int], ...]
    amount_in: int
    amount_out: int
    fee: int
    change_address: str
    change_amount: int
    ring_size: int
    unlock_time: int
    payment_id: str


@dataclass(frozen=True, slots=True)
class DaemonInfo:
    """``get_info`` of monerod. ``height`` is the chain length (top block height + 1)."""

    height: int
    target_height: int
    synchronized: bool
    nettype: str
    offline: bool
    top_block_hash: str
    tx_pool_size: int
    version: str


@dataclass(frozen=True, slots=True)
class GeneratedBlocks:
    """``generateblocks`` (regtest): ``height`` is the height of the last block mined."""

    height: int
    blocks: tuple[str, ...]


# --------------------------------------------------------------------------------------------------
# Parsing helpers: strict about types, tolerant of fields an older or newer RPC leaves out.


def _req(obj: dict[str, Any], key: str, kind: type[Any], method: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MoneroRpcError(0, f"malformed answer: field {key!r} missing or not {kind.__name__}", method)
    return value


def _opt_int(obj: dict[str, Any], key: str, default: int = 0) -> int:
    value = obj.get(key, default)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _opt_bool(obj: dict[str, Any], key: str, default: bool = False) -> bool:
    value = obj.get(key, default)
    return value if isinstance(value, bool) else default


def _opt_str(obj: dict[str, Any], key: str, default: str = "") -> str:
    value = obj.get(key, default)
    return value if isinstance(value, str) else default


def _opt_strs(obj: dict[str, Any], key: str) -> tuple[str, ...]:
    value = obj.get(key)
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def _check_amount(amount: Any) -> int:
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise TypeError(f"amounts are ints in atomic units, not {type(amount).__name__}")
    if not 0 < amount <= _MAX_ATOMIC:
        raise ValueError(f"amount must be between 1 and 2**64 - 1 atomic units, got {amount}")
    return amount


def _subaddr_index(obj: Any, method: str) -> SubaddressIndex:
    if not isinstance(obj, dict):
        raise MoneroRpcError(0, "malformed answer: subaddr_index is not an object", method)
    return SubaddressIndex(major=_req(obj, "major", int, method), minor=_req(obj, "minor", int, method))


def _transfer(obj: Any, method: str) -> Transfer:
    if not isinstance(obj, dict):
        raise MoneroRpcError(0, "malformed answer: transfer entry is not an object", method)
    kind = _opt_str(obj, "type")
    in_pool = kind == "pool"
    amount = _req(obj, "amount", int, method)
    raw_amounts = obj.get("amounts")
    amounts = (
        tuple(a for a in raw_amounts if isinstance(a, int) and not isinstance(a, bool))
        if isinstance(raw_amounts, list)
        else (amount,)
    )
    return Transfer(
        txid=_req(obj, "txid", str, method),
        amount=amount,
        amounts=amounts,
        confirmations=0 if in_pool else _opt_int(obj, "confirmations"),
        height=0 if in_pool else _opt_int(obj, "height"),
        subaddr_index=_subaddr_index(obj.get("subaddr_index"), method),
        address=_opt_str(obj, "address"),
        unlock_time=_opt_int(obj, "unlock_time"),
        double_spend_seen=_opt_bool(obj, "double_spend_seen"),
        in_pool=in_pool,
        timestamp=_opt_int(obj, "timestamp"),
        type=kind,
        locked=_opt_bool(obj, "locked"),
        fee=_opt_int(obj, "fee"),
        payment_id=_opt_str(obj, "payment_id"),
    )


def _split_url(url: str) -> tuple[str, str | None, str | None]:
    """Return (url without userinfo, username, password) so credentials never reach logs."""
    parsed = httpx.URL(url)
    username = parsed.username or None
    password = parsed.password or None
    if username is not None or password is not None:
        parsed = parsed.copy_with(username=None, password=None)
    return str(parsed).rstrip("/"), username, password


# --------------------------------------------------------------------------------------------------
# Transport


class _JsonRpcClient:
    _server_name = "Monero RPC"

    def __init__(
        self,
        url: str,
        username: str | None,
        password: str | None,
        client: httpx.AsyncClient | None,
        timeout: float,
    ) -> None:
        base, url_user, url_password = _split_url(url)
        if base.endswith("/json_rpc"):
            base = base.removesuffix("/json_rpc")
        self.url = base
        self._endpoint = f"{base}/json_rpc"
        self._timeout = timeout
        username = username if username is not None else url_user
        password = password if password is not None else url_password
        self._username = username
        self._owns_client = client is None
        # epee keeps idle connections open (> 190 s seen) and digest nonces live per connection:
        # keeping connections longer than httpx's default 5 s saves a 401 round trip per call.
        self._client = (
            client
            if client is not None
            else httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(keepalive_expiry=60))
        )
        self._ids = itertools.count(1)
        # epee (monerod / monero-wallet-rpc) keeps the digest nonce per TCP connection, while
        # httpx.DigestAuth reuses the last challenge on whichever pooled connection it gets: two
        # requests in flight at once end in 401 (seen with 20 concurrent calls). With credentials,
        # requests therefore go one at a time, which also matches how monero-wallet-rpc serves them.
        # (epee offers MD5 and MD5-sess challenges; httpx answers the first, MD5.)
        self._digest: tuple[httpx.Auth, asyncio.Lock] | None = (
            (httpx.DigestAuth(username, password or ""), asyncio.Lock()) if username is not None else None
        )

    def __repr__(self) -> str:
        user = f", username={self._username!r}" if self._username is not None else ""
        return f"{type(self).__name__}({self.url!r}{user})"

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def call(
        self, method: str, params: dict[str, Any] | None = None, *, http_timeout: float | None = None
    ) -> dict[str, Any]:
        """Call a JSON-RPC method and return its ``result`` object.

        The parameters are never logged: some carry keys or passwords.
        """
        request_id = next(self._ids)
        payload = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}}
        effective_timeout = self._timeout if http_timeout is None else http_timeout
        logger.debug("monero rpc %s -> %s (id %d)", method, self._endpoint, request_id)
        try:
            if self._digest is None:
                response = await self._client.post(self._endpoint, json=payload, timeout=effective_timeout)
            else:
                auth, lock = self._digest
                async with lock:
                    response = await self._client.post(
                        self._endpoint, json=payload, auth=auth, timeout=effective_timeout
                    )
        except httpx.TimeoutException as exc:
            raise MoneroUnreachable(
                self.url,
                method,
                f"no answer within {effective_timeout:g} s ({type(exc).__name__})",
                server=self._server_name,
            ) from exc
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise MoneroUnreachable(
                self.url, method, f"{type(exc).__name__}: {reason}", server=self._server_name
            ) from exc

        if response.status_code == httpx.codes.UNAUTHORIZED:
            who = f"user {self._username!r}" if self._username is not None else "no credentials"
            raise MoneroAuthenticationError(
                self.url,
                method,
                response.status_code,
                f"authentication failed ({who}); check the --rpc-login user and password",
                server=self._server_name,
            )
        if response.status_code != httpx.codes.OK:
            raise MoneroHttpError(
                self.url, method, response.status_code, response.reason_phrase, server=self._server_name
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise MoneroHttpError(
                self.url, method, response.status_code, "answer is not JSON", server=self._server_name
            ) from exc
        if not isinstance(body, dict):
            raise MoneroHttpError(
                self.url,
                method,
                response.status_code,
                "answer is not a JSON object",
                server=self._server_name,
            )
        error = body.get("error")
        if error is not None:
            if isinstance(error, dict):
                code = error.get("code")
                message = error.get("message")
                raise MoneroRpcError(
                    code if isinstance(code, int) else 0,
                    message if isinstance(message, str) else repr(error),
                    method,
                )
            raise MoneroRpcError(0, repr(error), method)
        result = body.get("result")
        if not isinstance(result, dict):
            raise MoneroHttpError(
                self.url,
                method,
                response.status_code,
                "JSON-RPC answer without result",
                server=self._server_name,
            )
        return result


# --------------------------------------------------------------------------------------------------
# monero-wallet-rpc


class MoneroWalletRpc(_JsonRpcClient):
    """Client of one monero-wallet-rpc server (and the wallet it has open).

    ``url`` is the server's base URL, e.g. ``http://127.0.0.1:18083`` (a trailing ``/json_rpc`` is
    accepted). With ``username`` (and ``password``), requests use HTTP Digest authentication, which
    is what ``--rpc-login user:pass`` expects; credentials in the URL are used the same way. Pass
    ``client`` to share an :class:`httpx.AsyncClient` (it is then not closed by :meth:`aclose`).
    """

    _server_name = "monero-wallet-rpc"

    def __init__(
        self,
        url: str,
        username: str | None = None,
        password: str | None = None,
        client: httpx.AsyncClient | None = None,
        timeout: float = _DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(url, username, password, client, timeout)

    async def get_version(self) -> WalletVersion:
        result = await self.call("get_version")
        version = _req(result, "version", int, "get_version")
        return WalletVersion(
            major=version >> 16, minor=version & 0xFFFF, release=_opt_bool(result, "release")
        )

    async def get_height(self) -> int:
        """The wallet's blockchain height: one more than the last block it has scanned."""
        result = await self.call("get_height")
        return int(_req(result, "height", int, "get_height"))

    async def get_address(
        self, account_index: int = 0, address_indices: list[int] | None = None
    ) -> AccountAddresses:
        """The account's address and its subaddresses (all of them, or ``address_indices``)."""
        params: dict[str, Any] = {"account_index": account_index}
        if address_indices is not None:
            params["address_index"] = list(address_indices)
        result = await self.call("get_address", params)
        entries = result.get("addresses", [])
        infos = tuple(
            SubaddressInfo(
                address=_req(entry, "address", str, "get_address"),
                address_index=_req(entry, "address_index", int, "get_address"),
                label=_opt_str(entry, "label"),
                used=_opt_bool(entry, "used"),
            )
            for entry in (entries if isinstance(entries, list) else [])
            if isinstance(entry, dict)
        )
        return AccountAddresses(address=_req(result, "address", str, "get_address"), addresses=infos)

    async def create_address(self, label: str, account_index: int = 0) -> Subaddress:
        """Create the next subaddress of ``account_index``, labelled (e.g. with the order id).

        Works on view-only wallets: subaddresses derive from the public spend key and the view key.
        """
        result = await self.call("create_address", {"account_index": account_index, "label": label})
        return Subaddress(
            address=_req(result, "address", str, "create_address"),
            address_index=_req(result, "address_index", int, "create_address"),
            account_index=account_index,
        )

    async def refresh(
        self, start_height: int | None = None, *, http_timeout: float | None = None
    ) -> RefreshResult:
        """Scan new blocks and the daemon's pool now (monero-wallet-rpc also does so every 20 s)."""
        params: dict[str, Any] = {}
        if start_height is not None:
            params["start_height"] = start_height
        result = await self.call("refresh", params, http_timeout=http_timeout)
        return RefreshResult(
            blocks_fetched=_opt_int(result, "blocks_fetched"),
            received_money=_opt_bool(result, "received_money"),
        )

    async def auto_refresh(self, enable: bool = True, period: int | None = None) -> None:
        """Turn monero-wallet-rpc's own background refresh on or off, every ``period`` seconds.

        The server refreshes every 20 s by default (its idle handler ticks once a second, so 1 s is
        the shortest useful period). ``--tx-notify`` only fires when the wallet refreshes: a short
        period makes it fire soon after a payment reaches the daemon's pool.
        """
        params: dict[str, Any] = {"enable": enable}
        if period is not None:
            if period < 1:
                raise ValueError("period must be at least 1 second")
            params["period"] = period
        await self.call("auto_refresh", params)

    async def get_transfers(
        self,
        incoming: bool = True,
        pool: bool = True,
        min_height: int | None = None,
        subaddr_indices: list[int] | None = None,
        account_index: int = 0,
    ) -> list[Transfer]:
        """Incoming transfers (``in``) and/or those still in the daemon's pool (``pool``).

        ``min_height`` is **inclusive** here (only transfers mined at ``height >= min_height``);
        monero-wallet-rpc's own ``min_height`` is exclusive, so ``min_height - 1`` is sent. It does
        not filter pool transfers. ``subaddr_indices`` restricts to those minor indices of
        ``account_index``. Call :meth:`refresh` first to see the latest state: the wallet only
        learns about the pool and new blocks when it refreshes.

        A transaction leaves ``pool`` and appears in ``in`` once mined; each entry is one
        (transaction, subaddress) pair with outputs to the same subaddress merged, see
        :class:`Transfer`.
        """
        params: dict[str, Any] = {"in": incoming, "pool": pool, "account_index": account_index}
        if min_height is not None and min_height > 0:
            params["filter_by_height"] = True
            params["min_height"] = min_height - 1
        if subaddr_indices:
            params["subaddr_indices"] = sorted(set(subaddr_indices))
        result = await self.call("get_transfers", params)
        transfers: list[Transfer] = []
        for key in ("in", "pool"):
            entries = result.get(key, [])
            if isinstance(entries, list):
                transfers.extend(_transfer(entry, "get_transfers") for entry in entries)
        return transfers

    async def get_transfer_by_txid(self, txid: str, account_index: int | None = None) -> list[Transfer]:
        """Every entry the wallet has for ``txid`` (one per receiving subaddress); ``[]`` if none.

        Raises :class:`ValueError` for a malformed txid (the RPC reports that with the same error
        code as an unknown transaction).
        """
        if not _TXID_RE.fullmatch(txid):
            raise ValueError(f"not a transaction id (64 hex digits): {txid!r}")
        params: dict[str, Any] = {"txid": txid}
        if account_index is not None:
            params["account_index"] = account_index
        try:
            result = await self.call("get_transfer_by_txid", params)
        except MoneroRpcError as exc:
            if exc.code == WALLET_RPC_ERROR_CODE_WRONG_TXID:
                return []
            raise
        entries = result.get("transfers")
        if isinstance(entries, list):
            return [_transfer(entry, "get_transfer_by_txid") for entry in entries]
        single = result.get("transfer")  # servers older than 0.15 only return this one
        return [_transfer(single, "get_transfer_by_txid")] if single is not None else []

    async def is_view_only(self) -> bool:
        """True if the open wallet has no spend key (a watch-only / view-only wallet).

        Asks ``query_key key_type=spend_key``: monero-wallet-rpc 0.18 answers a view-only wallet with
        error -29 "The wallet is watch-only. Cannot retrieve spend key."; an all-zero key (what some
        wallets restored without a spend key hold) is treated the same. Other errors propagate.
        The key itself is dropped at once and never logged.
        """
        try:
            result = await self.call("query_key", {"key_type": "spend_key"})
        except MoneroRpcError as exc:
            if exc.code == WALLET_RPC_ERROR_CODE_WATCH_ONLY:
                return True
            raise
        key = _opt_str(result, "key")
        return not key.strip("0")

    async def check_tx_key(self, txid: str, tx_key: str, address: str) -> TxKeyCheck:
        """Verify with the payer's transaction key what ``txid`` sent to ``address``.

        Works on a view-only wallet; useful when a customer disputes a payment.
        """
        result = await self.call("check_tx_key", {"txid": txid, "tx_key": tx_key, "address": address})
        return TxKeyCheck(
            received=_req(result, "received", int, "check_tx_key"),
            in_pool=_opt_bool(result, "in_pool"),
            confirmations=_opt_int(result, "confirmations"),
        )

    async def validate_address(self, address: str, *, any_net_type: bool = False) -> AddressValidation:
        """Whether ``address`` is a valid address of the daemon's network (of any, with
        ``any_net_type``), and its kind. Garbage and bad checksums answer ``valid=False``, no error."""
        result = await self.call("validate_address", {"address": address, "any_net_type": any_net_type})
        return AddressValidation(
            valid=_req(result, "valid", bool, "validate_address"),
            integrated=_opt_bool(result, "integrated"),
            subaddress=_opt_bool(result, "subaddress"),
            nettype=_opt_str(result, "nettype"),
        )

    async def get_balance(self, account_index: int = 0) -> Balance:
        """The account's balance. A view-only wallet counts outputs spent since its last
        :meth:`import_key_images` as unspent."""
        result = await self.call("get_balance", {"account_index": account_index})
        return Balance(
            balance=_req(result, "balance", int, "get_balance"),
            unlocked_balance=_req(result, "unlocked_balance", int, "get_balance"),
            blocks_to_unlock=_opt_int(result, "blocks_to_unlock"),
        )

    async def transfer(
        self,
        destinations: Sequence[tuple[str, int]],
        *,
        account_index: int = 0,
        subaddr_indices: Sequence[int] | None = None,
        priority: int = 0,
        do_not_relay: bool = False,
        http_timeout: float | None = None,
    ) -> TransferResult:
        """One transaction paying each (address, atomic amount) from ``account_index`` (only from
        ``subaddr_indices`` of it, if given); the fee comes on top.

        With ``do_not_relay`` nothing reaches the daemon and the wallet forgets the transaction
        (``get_transfer_by_txid`` does not find it, the balance is unchanged) until :meth:`relay_tx`.
        So a second call picks inputs again: for a one-input transaction the same output (then only
        the first relayed is accepted), for several inputs a random choice, and both may be mined:
        keep and relay the first answer's ``tx_metadata`` instead of preparing again. Without
        ``do_not_relay``, a timeout leaves unknown whether the transaction was published.
        """
        if not destinations:
            raise ValueError("transfer needs at least one destination")
        params: dict[str, Any] = {
            "destinations": [
                {"address": address, "amount": _check_amount(amount)} for address, amount in destinations
            ],
            "account_index": account_index,
            "priority": priority,
            "do_not_relay": do_not_relay,
            "get_tx_key": True,
            "get_tx_metadata": True,
        }
        if subaddr_indices is not None:
            params["subaddr_indices"] = sorted(set(subaddr_indices))
        result = await self.call("transfer", params, http_timeout=http_timeout)
        unsigned_txset = _opt_str(result, "unsigned_txset")
        spent = result.get("spent_key_images")
        key_images = _opt_strs(spent, "key_images") if isinstance(spent, dict) else ()
        if unsigned_txset:
            key_images = tuple(k for k in key_images if k != _PLACEHOLDER_KEY_IMAGE)
        return TransferResult(
            tx_hash=_req(result, "tx_hash", str, "transfer"),
            tx_key=_opt_str(result, "tx_key"),
            amount=_req(result, "amount", int, "transfer"),
            fee=_req(result, "fee", int, "transfer"),
            tx_metadata=_opt_str(result, "tx_metadata"),
            unsigned_txset=unsigned_txset,
            spent_key_images=key_images,
            weight=_opt_int(result, "weight"),
        )

    async def relay_tx(self, tx_metadata: str, *, tx_hash: str | None = None) -> str:
        """Publish a transaction prepared with ``do_not_relay``; returns its hash.

        The daemon side is idempotent: the same metadata again, in the pool or once mined, answers
        the same hash and pays nothing twice. The wallet side is not: relaying a transaction the
        wallet has already seen mined adds a second, never-cleared ``"pending"`` entry for it, and
        ``get_balance`` then counts its change twice. Pass the prepared ``tx_hash`` to skip the call
        when the wallet already has the transaction in a block. A transaction spending an input that
        another one already spent is refused with :data:`WALLET_RPC_ERROR_CODE_GENERIC_TRANSFER_ERROR`.
        """
        if tx_hash is not None and any(
            entry.type == "out" for entry in await self.get_transfer_by_txid(tx_hash)
        ):
            return tx_hash
        result = await self.call("relay_tx", {"hex": tx_metadata})
        return str(_req(result, "tx_hash", str, "relay_tx"))

    async def export_outputs(self, *, all: bool = True) -> str:
        """Cold signing, view-only side: the wallet's outputs (hex) for the full wallet's
        :meth:`import_outputs` (all of them, or only those since the last export)."""
        result = await self.call("export_outputs", {"all": all})
        return str(_req(result, "outputs_data_hex", str, "export_outputs"))

    async def import_outputs(self, outputs_data_hex: str) -> int:
        """Cold signing, full wallet side: import :meth:`export_outputs`; returns how many."""
        result = await self.call("import_outputs", {"outputs_data_hex": outputs_data_hex})
        return int(_req(result, "num_imported", int, "import_outputs"))

    async def export_key_images(self, *, all: bool = True) -> list[SignedKeyImage]:
        """Cold signing, full wallet side: the signed key images of the imported outputs, for the
        view-only wallet's :meth:`import_key_images` (``all=False``: only new ones; the offset the
        RPC then reports is not returned, so keep the default).

        Refused here with :data:`WALLET_RPC_ERROR_CODE_WATCH_ONLY` on a view-only wallet: there,
        monero-wallet-rpc 0.18 aborts (an assertion in ``generate_ring_signature``) once the wallet
        has outputs, killing the server.
        """
        if await self.is_view_only():
            raise MoneroRpcError(
                WALLET_RPC_ERROR_CODE_WATCH_ONLY,
                "refused: export_key_images on a view-only wallet aborts monero-wallet-rpc 0.18",
                "export_key_images",
            )
        result = await self.call("export_key_images", {"all": all})
        entries = result.get("signed_key_images", [])
        return [
            SignedKeyImage(
                key_image=_req(entry, "key_image", str, "export_key_images"),
                signature=_req(entry, "signature", str, "export_key_images"),
            )
            for entry in (entries if isinstance(entries, list) else [])
            if isinstance(entry, dict)
        ]

    async def import_key_images(
        self, images: Sequence[SignedKeyImage], *, offset: int = 0, http_timeout: float | None = None
    ) -> KeyImageImport:
        """Cold signing, view-only side: import :meth:`export_key_images`, so that the wallet knows
        which outputs are spent, and later sees those outputs spent by itself. Outputs received
        since the last import stay blind: a view-only :meth:`transfer` may pick one already spent,
        and :meth:`submit_transfer` then fails."""
        params: dict[str, Any] = {
            "signed_key_images": [{"key_image": i.key_image, "signature": i.signature} for i in images]
        }
        if offset:
            params["offset"] = offset
        result = await self.call("import_key_images", params, http_timeout=http_timeout)
        return KeyImageImport(
            height=_opt_int(result, "height"),
            spent=_req(result, "spent", int, "import_key_images"),
            unspent=_req(result, "unspent", int, "import_key_images"),
        )

    async def describe_transfer(self, unsigned_txset: str) -> list[TransferDescription]:
        """What an ``unsigned_txset`` pays, one entry per transaction: check it before signing.
        Full wallet only (a view-only one answers :data:`WALLET_RPC_ERROR_CODE_WATCH_ONLY`)."""
        result = await self.call("describe_transfer", {"unsigned_txset": unsigned_txset})
        entries = result.get("desc", [])
        descriptions: list[TransferDescription] = []
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            recipients = entry.get("recipients", [])
            descriptions.append(
                TransferDescription(
                    recipients=tuple(
                        (
                            _req(r, "address", str, "describe_transfer"),
                            _req(r, "amount", int, "describe_transfer"),
                        )
                        for r in (recipients if isinstance(recipients, list) else [])
                        if isinstance(r, dict)
                    ),
                    amount_in=_req(entry, "amount_in", int, "describe_transfer"),
                    amount_out=_req(entry, "amount_out", int, "describe_transfer"),
                    fee=_req(entry, "fee", int, "describe_transfer"),
                    change_address=_opt_str(entry, "change_address"),
                    change_amount=_opt_int(entry, "change_amount"),
                    ring_size=_opt_int(entry, "ring_size"),
                    unlock_time=_opt_int(entry, "unlock_time"),
                    payment_id=_opt_str(entry, "payment_id"),
                )
            )
        return descriptions

    async def sign_transfer(
        self, unsigned_txset: str, *, http_timeout: float | None = None
    ) -> SignedTransfer:
        """Cold signing, full wallet side: sign a view-only wallet's ``unsigned_txset``. Nothing is
        published; signing the same set again succeeds too (only one of them can be mined)."""
        result = await self.call(
            "sign_transfer",
            {"unsigned_txset": unsigned_txset, "get_tx_keys": True},
            http_timeout=http_timeout,
        )
        return SignedTransfer(
            signed_txset=_req(result, "signed_txset", str, "sign_transfer"),
            tx_hashes=_opt_strs(result, "tx_hash_list"),
            tx_keys=_opt_strs(result, "tx_key_list"),
        )

    async def submit_transfer(self, tx_data_hex: str, *, http_timeout: float | None = None) -> list[str]:
        """Cold signing, view-only side: publish :meth:`sign_transfer`'s ``signed_txset`` from the
        wallet that built the unsigned set; returns the hashes. Submitting again while in the pool
        answers the same hashes; a set that spends an already spent output (stale key images) is
        refused with :data:`WALLET_RPC_ERROR_CODE_SIGNED_SUBMISSION`."""
        result = await self.call("submit_transfer", {"tx_data_hex": tx_data_hex}, http_timeout=http_timeout)
        return list(_opt_strs(result, "tx_hash_list"))


# --------------------------------------------------------------------------------------------------
# monerod


class MoneroDaemonRpc(_JsonRpcClient):
    """Client of monerod's JSON-RPC (``/json_rpc``). ``url`` e.g. ``http://127.0.0.1:18081``."""

    _server_name = "monerod"

    def __init__(
        self,
        url: str,
        client: httpx.AsyncClient | None = None,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout: float = _DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(url, username, password, client, timeout)

    def _check_status(self, result: dict[str, Any], method: str) -> None:
        status = result.get("status", "OK")
        if status != "OK":
            raise MoneroRpcError(0, f"daemon status {status!r}", method)

    async def get_info(self) -> DaemonInfo:
        result = await self.call("get_info")
        self._check_status(result, "get_info")
        return DaemonInfo(
            height=_req(result, "height", int, "get_info"),
            target_height=_opt_int(result, "target_height"),
            synchronized=_opt_bool(result, "synchronized"),
            nettype=_opt_str(result, "nettype"),
            offline=_opt_bool(result, "offline"),
            top_block_hash=_opt_str(result, "top_block_hash"),
            tx_pool_size=_opt_int(result, "tx_pool_size"),
            version=_opt_str(result, "version"),
        )

    async def generate_blocks(
        self, n: int, wallet_address: str, *, http_timeout: float | None = None
    ) -> GeneratedBlocks:
        """Mine ``n`` blocks paying ``wallet_address`` (regtest / ``--fixed-difficulty`` only).

        About 80 ms a block on a small machine: pass a larger ``http_timeout`` for big batches.
        """
        if n < 1:
            raise ValueError("n must be at least 1")
        result = await self.call(
            "generateblocks",
            {"amount_of_blocks": n, "wallet_address": wallet_address},
            http_timeout=http_timeout,
        )
        self._check_status(result, "generateblocks")
        blocks = result.get("blocks", [])
        return GeneratedBlocks(
            height=_req(result, "height", int, "generateblocks"),
            blocks=tuple(b for b in blocks if isinstance(b, str)) if isinstance(blocks, list) else (),
        )
