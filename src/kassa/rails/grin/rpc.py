"""Async clients for grin-wallet's Foreign API (v2), Owner API (v3, secure) and the grin node API (v2).

* Foreign API, ``POST <wallet>/v2/foreign``, what ``grin-wallet send -d http://...`` talks to
  (``check_version``, then ``receive_tx`` with ``[slate, dest_acct_name, r_addr]``):
  https://docs.rs/grin_wallet_api/latest/grin_wallet_api/trait.ForeignRpc.html
* Owner API v3, ``POST <wallet>/v3/owner``: ``init_secure_api`` (ECDH on secp256k1), then every
  call AES-256-GCM encrypted as ``encrypted_request_v3``; see ``init_secure_api`` in
  https://docs.rs/grin_wallet_api/latest/grin_wallet_api/trait.OwnerRpc.html and grin-wallet's
  ``controller/src/controller.rs`` (error codes -32001/-32002, Err rewritten as error -32099).
* Node Foreign API, ``POST <node>/v2/foreign`` (``get_tip``, ``get_kernel``):
  https://docs.rs/grin_api/latest/grin_api/foreign_rpc/trait.ForeignRpc.html

Answers are ``{"id": 1, "jsonrpc": "2.0", "result": {"Ok": ...}}`` or ``{"result": {"Err": ...}}``.
Amounts are integers in nanogrin (1 GRIN = 10**9), sent as decimal strings. Errors (all
:class:`GrinError`): :class:`GrinUnreachable`, :class:`GrinAuthenticationError` (HTTP 401/403),
:class:`GrinProtocolError` (not a Grin answer), :class:`GrinRpcError` (JSON-RPC ``error``),
:class:`GrinRefused` (``Err``). API secrets, the wallet password, the shared key and the wallet token
never reach logs, reprs or exception messages; URLs are shown without ``user:password@``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import json
import logging
import os
import re
from dataclasses import dataclass
from typing import Any, Final, Self

import httpx
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "GrinAuthenticationError",
    "GrinError",
    "GrinForeignApi",
    "GrinNodeApi",
    "GrinOwnerApi",
    "GrinProtocolError",
    "GrinRefused",
    "GrinRpcError",
    "GrinUnreachable",
    "TxLogEntry",
    "describe_err",
]

logger = logging.getLogger(__name__)

# JSON-RPC error codes of the owner API v3 handler (grin-wallet controller/src/controller.rs).
ENCRYPTION_NOT_STARTED: Final = -32001  # "Encryption must be enabled. Please call 'init_secure_api` first"
ENCRYPTION_REQUEST_ERROR: Final = -32002  # malformed or undecryptable encrypted request
OWNER_API_ERR: Final = -32099  # an {"Err": ...} of the owner API, rewritten by the v3 handler
# Err values meaning the wallet token is stale (wallet closed, or reopened with another token).
TOKEN_ERRORS: Final = ("InvalidKeychainMask", "KeychainDoesntExist")

_EXCESS_RE: Final = re.compile(r"0[89][0-9a-fA-F]{64}")
_UUID_RE: Final = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_TOKEN_RE: Final = re.compile(r"[0-9a-fA-F]{64}")
_DIGITS_RE: Final = re.compile(r"[0-9]{1,20}")
_NONCE_BYTES: Final = 12
_DEFAULT_TIMEOUT: Final = 30.0


class GrinError(Exception):
    """Base class of every error raised by the Grin API clients."""


class GrinUnreachable(GrinError):
    """Nothing usable came back: connection failure, reset or timeout."""

    def __init__(self, url: str, method: str, reason: str, *, server: str = "Grin API") -> None:
        self.url = url
        self.method = method
        self.reason = reason
        super().__init__(f"{server} at {url} unreachable while calling {method!r}: {reason}")


class GrinAuthenticationError(GrinError):
    """HTTP 401/403: the API secret (Basic auth ``grin:<secret>``) is wrong or missing."""

    def __init__(self, url: str, method: str, status_code: int, *, server: str = "Grin API") -> None:
        self.url = url
        self.method = method
        self.status_code = status_code
        super().__init__(
            f"{server} at {url} refused the credentials for {method!r} (HTTP {status_code}); "
            "check the API secret"
        )


class GrinProtocolError(GrinError):
    """Not a Grin API answer: HTTP error status, not JSON, missing fields, undecryptable."""

    def __init__(self, detail: str, *, context: str = "Grin API", status_code: int | None = None) -> None:
        self.detail = detail
        self.status_code = status_code
        status = f" (HTTP {status_code})" if status_code is not None else ""
        super().__init__(f"malformed answer from {context}{status}: {detail}")


class GrinRpcError(GrinError):
    """A JSON-RPC ``error`` member, e.g. ``{"code": -32601, "message": "Method not found"}``."""

    def __init__(self, code: int, message: str, method: str) -> None:
        self.code = code
        self.message = message
        self.method = method
        super().__init__(f"{method}: JSON-RPC error {code}: {message}")


class GrinRefused(GrinError):
    """The API answered ``{"Err": ...}``; ``detail`` is that Err value (JSON data)."""

    def __init__(self, detail: Any, method: str) -> None:
        self.detail = detail
        self.method = method
        super().__init__(f"{method} refused: {describe_err(detail)}")


class _SessionLost(GrinRpcError):
    """The owner API no longer knows our shared key (restarted, or another client re-keyed it)."""


class _TokenLost(GrinRefused):
    """The owner API no longer accepts our wallet token (wallet closed or reopened)."""


def describe_err(detail: Any) -> str:
    """A readable sentence for a Grin ``Err`` value: ``"NotFound"``, ``{"Kind": "text"}``, ..."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, dict) and len(detail) == 1:
        ((kind, value),) = detail.items()
        return f"{kind}: {value if isinstance(value, str) else json.dumps(value)}"
    return json.dumps(detail, sort_keys=True)


# --------------------------------------------------------------------------------------------------
# Answer types and parsing


def _u64(value: Any, field: str) -> int:
    """A u64 as grin sends it: a decimal string (``string_or_u64``) or a JSON integer."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**64:
        return value
    if isinstance(value, str) and _DIGITS_RE.fullmatch(value) and int(value) < 2**64:
        return int(value)
    raise GrinProtocolError(f"field {field!r} is not a u64: {value!r}")


def _opt_u64(value: Any, field: str) -> int | None:
    return None if value is None else _u64(value, field)


def _opt_str(value: Any, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise GrinProtocolError(f"field {field!r} is not a string or null")


@dataclass(frozen=True, slots=True)
class TxLogEntry:
    """One entry of the owner API's ``retrieve_txs`` (grin-wallet ``TxLogEntry``).

    ``tx_type`` is ``"TxReceived"``, ``"TxReceivedCancelled"``, ``"TxSent"``, ``"TxSentCancelled"``,
    ``"ConfirmedCoinbase"`` or ``"TxReverted"``. Amounts are nanogrin. ``fee`` is the kernel fee
    field as sent (null on received transactions). ``kernel_excess`` (hex commitment) and
    ``kernel_lookup_min_height`` let the node's ``get_kernel`` find the mined kernel.
    """

    id: int
    tx_slate_id: str | None
    tx_type: str
    confirmed: bool
    amount_credited: int
    amount_debited: int
    fee: int | None
    kernel_excess: str | None
    kernel_lookup_min_height: int | None
    ttl_cutoff_height: int | None
    creation_ts: str
    confirmation_ts: str | None = None
    num_inputs: int = 0
    num_outputs: int = 0
    parent_key_id: str | None = None
    reverted_after: int | None = None  # seconds

    @classmethod
    def from_json(cls, obj: Any) -> TxLogEntry:
        """Parse one entry; :class:`GrinProtocolError` if a field is missing or of the wrong type."""
        if not isinstance(obj, dict):
            raise GrinProtocolError("a TxLogEntry is not an object")
        entry_id = obj.get("id")
        if not isinstance(entry_id, int) or isinstance(entry_id, bool):
            raise GrinProtocolError("TxLogEntry field 'id' is not an integer")
        tx_type, confirmed, created = obj.get("tx_type"), obj.get("confirmed"), obj.get("creation_ts")
        if not (isinstance(tx_type, str) and isinstance(confirmed, bool) and isinstance(created, str)):
            raise GrinProtocolError("TxLogEntry lacks 'tx_type', 'confirmed' or 'creation_ts'")
        slate_id = _opt_str(obj.get("tx_slate_id"), "tx_slate_id")
        lookup = obj.get("kernel_lookup_min_height")
        return cls(
            id=entry_id,
            tx_slate_id=slate_id.lower() if slate_id is not None else None,
            tx_type=tx_type,
            confirmed=confirmed,
            amount_credited=_u64(obj.get("amount_credited"), "amount_credited"),
            amount_debited=_u64(obj.get("amount_debited"), "amount_debited"),
            fee=_opt_u64(obj.get("fee"), "fee"),
            kernel_excess=_opt_str(obj.get("kernel_excess"), "kernel_excess"),
            kernel_lookup_min_height=_opt_u64(lookup, "kernel_lookup_min_height"),
            ttl_cutoff_height=_opt_u64(obj.get("ttl_cutoff_height"), "ttl_cutoff_height"),
            creation_ts=created,
            confirmation_ts=_opt_str(obj.get("confirmation_ts"), "confirmation_ts"),
            num_inputs=_opt_u64(obj.get("num_inputs"), "num_inputs") or 0,
            num_outputs=_opt_u64(obj.get("num_outputs"), "num_outputs") or 0,
            parent_key_id=_opt_str(obj.get("parent_key_id"), "parent_key_id"),
            reverted_after=_opt_u64(obj.get("reverted_after"), "reverted_after"),
        )


def _split_url(url: str) -> tuple[str, str | None, str | None]:
    """Return (url without userinfo and trailing slash, username, password)."""
    parsed = httpx.URL(url)
    bare = str(parsed.copy_with(username=None, password=None)).rstrip("/")
    return bare, parsed.username or None, parsed.password or None


def _error_fields(error: Any) -> tuple[int, str]:
    if isinstance(error, dict):
        code = error.get("code")
        message = error.get("message")
        return (
            code if isinstance(code, int) and not isinstance(code, bool) else 0,
            message if isinstance(message, str) else json.dumps(error, sort_keys=True),
        )
    return 0, json.dumps(error, sort_keys=True)


# --------------------------------------------------------------------------------------------------
# Transport


class _Client:
    _server = "Grin API"
    _path = "/v2/foreign"

    def __init__(
        self,
        url: str,
        *,
        api_secret: str | None = None,
        username: str = "grin",
        timeout: float = _DEFAULT_TIMEOUT,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        """``api_secret``: Basic auth ``<username>:<api_secret>``; credentials in the URL work too."""
        base, url_user, url_password = _split_url(url)
        self.url = base.removesuffix(self._path)
        self._endpoint = f"{self.url}{self._path}"
        password = api_secret if api_secret is not None else url_password
        user = url_user if api_secret is None and url_user is not None else username
        self._username = user if password is not None else None
        self._auth = httpx.BasicAuth(user, password) if password is not None else None
        self._timeout = timeout
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=timeout)
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        user = f", username={self._username!r}" if self._username is not None else ""
        return f"{type(self).__name__}({self.url!r}{user})"

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _protocol_error(self, detail: str, method: str, status_code: int | None = None) -> GrinProtocolError:
        context = f"{self._server} at {self.url} to {method!r}"
        return GrinProtocolError(detail, context=context, status_code=status_code)

    def _object(self, ok: Any, method: str) -> dict[str, Any]:
        if not isinstance(ok, dict):
            raise self._protocol_error(f"the {method} answer is not an object", method)
        return ok

    def _height(self, ok: Any, method: str) -> int:
        try:
            return _u64(self._object(ok, method).get("height"), "height")
        except GrinProtocolError as exc:
            raise self._protocol_error(exc.detail, method) from None

    async def _post(self, payload: dict[str, Any], method: str) -> dict[str, Any]:
        """POST one JSON-RPC request; return the decoded answer object. Params are never logged."""
        logger.debug("%s %s -> %s", self._server, method, self._endpoint)
        try:
            response = await self._client.post(
                self._endpoint,
                content=json.dumps(payload, separators=(",", ":")),
                headers={"content-type": "application/json"},
                auth=self._auth if self._auth is not None else httpx.USE_CLIENT_DEFAULT,
                timeout=self._timeout,
            )
        except httpx.TimeoutException as exc:
            reason = f"no answer within {self._timeout:g} s ({type(exc).__name__})"
            raise GrinUnreachable(self.url, method, reason, server=self._server) from exc
        except httpx.TransportError as exc:
            reason = f"{type(exc).__name__}: {exc or type(exc).__name__}"
            raise GrinUnreachable(self.url, method, reason, server=self._server) from exc
        if response.status_code in (httpx.codes.UNAUTHORIZED, httpx.codes.FORBIDDEN):
            raise GrinAuthenticationError(self.url, method, response.status_code, server=self._server)
        if response.status_code != httpx.codes.OK:
            detail = response.text[:200].strip() or response.reason_phrase
            raise self._protocol_error(detail, method, response.status_code)
        try:
            body = response.json()
        except ValueError as exc:
            raise self._protocol_error("answer is not JSON", method) from exc
        if not isinstance(body, dict):
            raise self._protocol_error("answer is not a JSON object", method)
        return body

    def _unwrap(self, body: dict[str, Any], method: str) -> Any:
        """The ``Ok`` value of a JSON-RPC answer; GrinRpcError / GrinRefused / GrinProtocolError."""
        error = body.get("error")
        if error is not None:
            code, message = _error_fields(error)
            raise GrinRpcError(code, message, method)
        result = body.get("result")
        if not isinstance(result, dict):
            raise self._protocol_error("JSON-RPC answer without result", method)
        if "Err" in result:
            raise GrinRefused(result["Err"], method)
        if "Ok" not in result:
            raise self._protocol_error("result has neither 'Ok' nor 'Err'", method)
        return result["Ok"]

    async def _call(self, method: str, params: Any) -> Any:
        payload = {"jsonrpc": "2.0", "method": method, "id": next(self._ids), "params": params}
        return self._unwrap(await self._post(payload, method), method)


# --------------------------------------------------------------------------------------------------
# Wallet Foreign API


class GrinForeignApi(_Client):
    """Client of a wallet's Foreign API (``grin-wallet listen``), e.g. ``http://127.0.0.1:3415``."""

    _server = "grin-wallet foreign API"
    _path = "/v2/foreign"

    async def check_version(self) -> dict[str, Any]:
        """``{"foreign_api_version": 2, "supported_slate_versions": ["V4", ...]}``."""
        ok = self._object(await self._call("check_version", []), "check_version")
        if not isinstance(ok.get("foreign_api_version"), int):
            raise self._protocol_error("no foreign_api_version", "check_version")
        return ok

    async def receive_tx(
        self, slate: dict[str, Any], dest_acct_name: str | None = None, r_addr: str | None = None
    ) -> dict[str, Any]:
        """Hand an S1 slate to the wallet; return the S2 slate it answers (same slate version)."""
        return self._object(await self._call("receive_tx", [slate, dest_acct_name, r_addr]), "receive_tx")


# --------------------------------------------------------------------------------------------------
# Wallet Owner API v3 (secure)


class GrinOwnerApi(_Client):
    """Client of a wallet's Owner API v3 (``grin-wallet owner_api``), e.g. ``http://127.0.0.1:3420``.

    On first use it runs ``init_secure_api`` (ECDH on secp256k1; the shared key is the x coordinate
    of the shared point) and ``open_wallet``; every later request is an AES-256-GCM
    ``encrypted_request_v3``. When the wallet says the shared key (-32001/-32002) or the token
    (``InvalidKeychainMask``, ``KeychainDoesntExist``) is no longer valid, the session is set up
    again and the call retried once. Calls go one at a time: the wallet holds a single shared key.
    """

    _server = "grin-wallet owner API"
    _path = "/v3/owner"

    def __init__(
        self,
        url: str,
        *,
        api_secret: str | None,
        wallet_password: str,
        wallet_name: str | None = None,
        username: str = "grin",
        timeout: float = _DEFAULT_TIMEOUT,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(url, api_secret=api_secret, username=username, timeout=timeout, client=client)
        self._wallet_password = wallet_password
        self._wallet_name = wallet_name
        self._session: tuple[AESGCM, str] | None = None  # (shared-key cipher, wallet token)
        self._lock = asyncio.Lock()

    async def retrieve_txs(
        self, *, refresh_from_node: bool = True, tx_id: int | None = None, tx_slate_id: str | None = None
    ) -> tuple[bool, list[TxLogEntry]]:
        """The wallet's transaction log (optionally one entry); the bool says it was refreshed."""
        if tx_slate_id is not None:
            if not _UUID_RE.fullmatch(tx_slate_id):
                raise ValueError("tx_slate_id must be a UUID")
            tx_slate_id = tx_slate_id.lower()
        params = {"refresh_from_node": refresh_from_node, "tx_id": tx_id, "tx_slate_id": tx_slate_id}
        ok = await self._owner_call("retrieve_txs", params)
        if not (
            isinstance(ok, list) and len(ok) == 2 and isinstance(ok[0], bool) and isinstance(ok[1], list)
        ):
            raise self._protocol_error("retrieve_txs answer is not [bool, [TxLogEntry...]]", "retrieve_txs")
        try:
            return ok[0], [TxLogEntry.from_json(entry) for entry in ok[1]]
        except GrinProtocolError as exc:
            raise self._protocol_error(exc.detail, "retrieve_txs") from None

    async def node_height(self) -> int:
        """The chain height as the wallet's node reports it."""
        return self._height(await self._owner_call("node_height", {}), "node_height")

    async def _owner_call(self, method: str, params: dict[str, Any]) -> Any:
        async with self._lock:
            for attempt in (1, 2):
                try:
                    if self._session is None:
                        self._session = await self._open_session()
                    cipher, token = self._session
                    return await self._encrypted(cipher, method, {"token": token, **params})
                except (_SessionLost, _TokenLost):
                    self._session = None
                    if attempt == 2:
                        raise
                    logger.info("%s at %s: session no longer valid, opening it again", self._server, self.url)
        raise AssertionError("unreachable")

    async def _open_session(self) -> tuple[AESGCM, str]:
        cipher = AESGCM(await self._init_secure_api())
        params = {"name": self._wallet_name, "password": self._wallet_password}
        token = await self._encrypted(cipher, "open_wallet", params)
        if not isinstance(token, str) or not _TOKEN_RE.fullmatch(token):
            raise self._protocol_error("open_wallet did not answer a token", "open_wallet")
        return cipher, token

    async def _init_secure_api(self) -> bytes:
        private = ec.generate_private_key(ec.SECP256K1())
        ours = private.public_key().public_bytes(Encoding.X962, PublicFormat.CompressedPoint).hex()
        theirs = await self._call("init_secure_api", {"ecdh_pubkey": ours})
        try:
            peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), bytes.fromhex(theirs))
        except (TypeError, ValueError) as exc:
            raise self._protocol_error(
                "init_secure_api did not answer a public key", "init_secure_api"
            ) from exc
        return private.exchange(ec.ECDH(), peer)  # the 32-byte x coordinate of the shared point

    async def _encrypted(self, cipher: AESGCM, method: str, params: dict[str, Any]) -> Any:
        request_id = next(self._ids)
        inner = {"jsonrpc": "2.0", "method": method, "id": request_id, "params": params}
        nonce = os.urandom(_NONCE_BYTES)
        sealed = cipher.encrypt(nonce, json.dumps(inner, separators=(",", ":")).encode(), None)
        outer = {
            "jsonrpc": "2.0",
            "method": "encrypted_request_v3",
            "id": request_id,
            "params": {"nonce": nonce.hex(), "body_enc": base64.b64encode(sealed).decode("ascii")},
        }
        body = await self._post(outer, method)
        error = body.get("error")
        if error is not None:  # unencrypted: the secure channel itself failed
            code, message = _error_fields(error)
            if code in (ENCRYPTION_NOT_STARTED, ENCRYPTION_REQUEST_ERROR):
                raise _SessionLost(code, message, method)
            raise GrinRpcError(code, message, method)
        answer = self._decrypt(cipher, body, method)
        inner_error = answer.get("error")
        if inner_error is not None:
            code, message = _error_fields(inner_error)
            if code == OWNER_API_ERR:
                if any(name in message for name in TOKEN_ERRORS):
                    raise _TokenLost(message, method)
                raise GrinRefused(message, method)
            raise GrinRpcError(code, message, method)
        try:
            return self._unwrap(answer, method)
        except GrinRefused as exc:
            if describe_err(exc.detail) in TOKEN_ERRORS:
                raise _TokenLost(exc.detail, method) from None
            raise

    def _decrypt(self, cipher: AESGCM, body: dict[str, Any], method: str) -> dict[str, Any]:
        result = body.get("result")
        # EncryptedResponse serialises as {"result": {"Ok": {...}}}; the init_secure_api doc sketch
        # shows "Ok" at the top level, so both are read.
        sealed = result.get("Ok") if isinstance(result, dict) else body.get("Ok")
        if not isinstance(sealed, dict):
            raise self._protocol_error("not an encrypted_response_v3", method)
        nonce_hex, body_enc = sealed.get("nonce"), sealed.get("body_enc")
        if not isinstance(nonce_hex, str) or not isinstance(body_enc, str):
            raise self._protocol_error("encrypted answer lacks 'nonce' or 'body_enc'", method)
        try:
            nonce = bytes.fromhex(nonce_hex)
            if len(nonce) != _NONCE_BYTES:
                raise ValueError("nonce length")
            plain = cipher.decrypt(nonce, base64.b64decode(body_enc, validate=True), None)
            answer = json.loads(plain)
        except (ValueError, binascii.Error, InvalidTag) as exc:
            raise self._protocol_error("could not decrypt the answer", method) from exc
        if not isinstance(answer, dict):
            raise self._protocol_error("decrypted answer is not a JSON object", method)
        return answer


# --------------------------------------------------------------------------------------------------
# Node Foreign API


class GrinNodeApi(_Client):
    """Client of a grin node's Foreign API v2, e.g. ``http://127.0.0.1:3413``."""

    _server = "grin node API"
    _path = "/v2/foreign"

    async def get_tip(self) -> int:
        """The height of the node's chain tip."""
        return self._height(await self._call("get_tip", []), "get_tip")

    async def get_kernel(
        self, excess: str, min_height: int | None = None, max_height: int | None = None
    ) -> int | None:
        """The height of the block holding the kernel with this excess; None if not (yet) mined."""
        if not _EXCESS_RE.fullmatch(excess):
            raise ValueError("excess must be a 33-byte commitment in hex (66 digits starting 08 or 09)")
        try:
            ok = await self._call("get_kernel", [excess.lower(), min_height, max_height])
        except GrinRefused as exc:
            if exc.detail == "NotFound":
                return None
            raise
        return self._height(ok, "get_kernel")
