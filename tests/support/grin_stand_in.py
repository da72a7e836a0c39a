"""A loopback stand-in for one merchant's grin-wallet and its grin node, answering as the real APIs do.

No Grin binaries run on the test machines, so this plays them over real HTTP on 127.0.0.1:

* ``wallet_url``: ``/v2/foreign`` (``grin-wallet listen``: ``check_version``, ``receive_tx``) and
  ``/v3/owner`` (``grin-wallet owner_api``: ``init_secure_api`` then ``encrypted_request_v3`` with
  ``open_wallet``, ``close_wallet``, ``retrieve_txs``, ``node_height``; Basic auth ``grin:<secret>``);
* ``node_url``: the node's ``/v2/foreign`` (``get_tip``, ``get_kernel``, ``get_version``; Basic auth).

Shapes follow the JSON-RPC examples of grin_wallet_api / grin_api and grin-wallet's
``controller.rs`` (secure channel, error codes -32001/-32002/-32099) and ``api_impl/foreign.rs``
(``receive_tx``: a V4 answer is compacted, amount and fee dropped, only the receiver's signature
kept). Answers are pretty-printed with sorted keys, as serde_json renders a ``Value``.
Cryptographic values (commitments, signatures, proofs) are random hex of the right length.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import secrets
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

Reply = tuple[int, dict[str, str], bytes]
PARENT_KEY_ID = "0200000000000000000000000000000000"
OWNER_API_SECRET = "owner-api-secret"  # the stand-in's defaults, for tests to use
NODE_API_SECRET = "node-api-secret"
WALLET_PASSWORD = "wallet-password"
NOT_STARTED = "Encryption must be enabled. Please call 'init_secure_api` first"


def _pubkey() -> str:
    return secrets.choice(["02", "03"]) + secrets.token_hex(32)


def _commit() -> str:
    return secrets.choice(["08", "09"]) + secrets.token_hex(32)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_slate_v4(
    amount: int, slate_id: str | None = None, *, fee: int = 23_500_000, ttl: int = 0
) -> dict[str, Any]:
    """An S1 slate as ``grin-wallet send`` (>= 4.0) posts it; zero fields are left out, as serde does."""
    slate: dict[str, Any] = {
        "ver": "4:2",
        "id": slate_id or str(uuid.uuid4()),
        "sta": "S1",
        "off": secrets.token_hex(32),
        "amt": str(amount),
        "fee": str(fee),
        "ttl": str(ttl),
        "sigs": [{"xs": _pubkey(), "nonce": _pubkey()}],
    }
    for key in ("amt", "fee", "ttl"):
        if slate[key] == "0":
            del slate[key]
    return slate


def make_slate_v3(
    amount: int, slate_id: str | None = None, *, fee: int = 8_000_000, height: int = 1000
) -> dict[str, Any]:
    """An S1 slate as grin-wallet 3.x posts it: the full transaction, participant 0 only."""
    kernel = dict(features="Plain", fee=str(fee), lock_height="0", excess="00" * 33, excess_sig="00" * 64)
    output = {"features": "Plain", "commit": _commit(), "proof": secrets.token_hex(675)}
    body = {"inputs": [{"features": "Plain", "commit": _commit()}], "outputs": [output], "kernels": [kernel]}
    sender = dict(id="0", public_blind_excess=_pubkey(), public_nonce=_pubkey(), part_sig=None)
    return {
        "version_info": {"version": 3, "orig_version": 3, "block_header_version": 2},
        "num_participants": 2,
        "id": slate_id or str(uuid.uuid4()),
        "tx": {"offset": secrets.token_hex(32), "body": body},
        "amount": str(amount),
        "fee": str(fee),
        "height": str(height),
        "lock_height": "0",
        "ttl_cutoff_height": None,
        "participant_data": [{**sender, "message": None, "message_sig": None}],
        "payment_proof": None,
    }


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _json_reply(obj: Any, status: int = 200) -> Reply:
    body = json.dumps(obj, indent=2, sort_keys=True).encode()
    return status, {"content-type": "application/json", "access-control-allow-origin": "*"}, body


def _ok(request_id: Any, value: Any) -> dict[str, Any]:
    return {"id": request_id, "jsonrpc": "2.0", "result": {"Ok": value}}


def _err(request_id: Any, value: Any) -> dict[str, Any]:
    return {"id": request_id, "jsonrpc": "2.0", "result": {"Err": value}}


def _rpc_error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}, "id": request_id, "jsonrpc": "2.0"}


class _BadParams(Exception):
    pass


def _param(params: Any, index: int, name: str) -> Any:
    """A positional or named parameter, as easy-jsonrpc accepts both; missing -> null."""
    if isinstance(params, list):
        return params[index] if index < len(params) else None
    if isinstance(params, dict):
        return params.get(name)
    raise _BadParams


class GrinStandIn:
    """One merchant wallet plus its node. Thread-safe test controls; use as a context manager."""

    def __init__(
        self,
        *,
        api_secret: str | None = OWNER_API_SECRET,
        node_api_secret: str | None = NODE_API_SECRET,
        wallet_password: str = WALLET_PASSWORD,
        wallet_name: str | None = None,
        height: int = 1000,
    ) -> None:
        self.api_secret = api_secret
        self.node_api_secret = node_api_secret
        self.wallet_password = wallet_password
        self.wallet_name = wallet_name
        self._lock = threading.RLock()
        self._height = height
        self._block_hashes = {height: secrets.token_hex(32)}
        self._mempool: list[str] = []
        self._kernels: dict[str, tuple[int, int]] = {}  # excess -> (height, mmr index)
        self._entries: list[dict[str, Any]] = []
        self._received: list[dict[str, Any]] = []
        self._requests: list[str] = []
        self._refusals: list[Any] = []
        self._raw: dict[str, list[Reply]] = {"wallet": [], "node": []}
        self._lose_next = False
        self._shared_key: bytes | None = None
        self._token: str | None = None
        self._wallet = self._server(self._wallet_reply)
        self._node = self._server(self._node_reply)
        self.wallet_url = f"http://127.0.0.1:{self._wallet.server_address[1]}"
        self.node_url = f"http://127.0.0.1:{self._node.server_address[1]}"
        self._threads = [
            threading.Thread(
                target=server.serve_forever, args=(0.05,), name=f"grin-stand-in-{name}", daemon=True
            )
            for name, server in (("wallet", self._wallet), ("node", self._node))
        ]

    # ------------------------------------------------------------------------------ lifecycle

    @staticmethod
    def _server(reply: Callable[[str, dict[str, str], bytes], Reply]) -> ThreadingHTTPServer:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                self._send(*reply(self.path, headers, raw))

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        return server

    def start(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        for server, thread in zip((self._wallet, self._node), self._threads, strict=True):
            if thread.is_alive():
                server.shutdown()
                thread.join(5)
            server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------ test controls

    @property
    def height(self) -> int:
        with self._lock:
            return self._height

    @property
    def received(self) -> list[dict[str, Any]]:
        """The slates ``receive_tx`` accepted, as they were posted."""
        with self._lock:
            return copy.deepcopy(self._received)

    @property
    def requests(self) -> list[str]:
        """Method names in arrival order (owner calls by their inner, decrypted method)."""
        with self._lock:
            return list(self._requests)

    def mine(self, n: int = 1) -> int:
        """Mine ``n`` blocks; the first takes every broadcast kernel. Returns the new height."""
        with self._lock:
            for _ in range(n):
                self._height += 1
                self._block_hashes[self._height] = secrets.token_hex(32)
                for excess in self._mempool:
                    self._kernels[excess] = (self._height, len(self._kernels) + 1)
                self._mempool.clear()
            return self._height

    def broadcast(self, slate_id: str) -> None:
        """The sender finalized and posted the transaction: its kernel goes into the next block."""
        with self._lock:
            self._mempool.append(self._entry(slate_id)["kernel_excess"])

    def cancel(self, slate_id: str) -> None:
        """The merchant ran ``grin-wallet cancel``: the entry becomes TxReceivedCancelled."""
        with self._lock:
            self._entry(slate_id)["tx_type"] = "TxReceivedCancelled"

    def refuse_next(self, err_value: Any) -> None:
        """The next ``receive_tx`` answers ``{"Err": err_value}``."""
        with self._lock:
            self._refusals.append(err_value)

    def restart_owner_api(self) -> None:
        """As if ``grin-wallet owner_api`` restarted: no shared key, wallet closed."""
        with self._lock:
            self._shared_key = None
            self._token = None

    def close_wallet(self) -> None:
        """Close the wallet (as ``close_wallet`` does): the owner token stops working."""
        with self._lock:
            self._token = None

    def answer_next_raw(
        self, body: bytes, *, status: int = 200, on: Literal["wallet", "node"] = "wallet"
    ) -> None:
        """The next request to that server gets exactly this answer (for malformed-answer tests)."""
        with self._lock:
            self._raw[on].append((status, {"content-type": "application/json"}, body))

    def lose_next_answer(self) -> None:
        """The next Foreign API call is carried out, but its answer comes back garbled (as when
        the connection drops after the wallet signed): the wallet has the slate, the caller does not."""
        with self._lock:
            self._lose_next = True

    def _entry(self, slate_id: str) -> dict[str, Any]:
        for entry in self._entries:
            if entry["tx_slate_id"] == slate_id.lower():
                return entry
        raise KeyError(slate_id)

    # ------------------------------------------------------------------------------ HTTP

    def _authorized(self, headers: dict[str, str], secret: str | None) -> bool:
        if secret is None:
            return True
        expected = "Basic " + base64.b64encode(f"grin:{secret}".encode()).decode()
        return secrets.compare_digest(headers.get("authorization", ""), expected)

    def _parse(self, raw: bytes) -> tuple[Any, Reply | None]:
        try:
            return json.loads(raw), None
        except ValueError as exc:
            return None, (500, {}, f"Invalid request body: {exc}".encode())

    def _wallet_reply(self, path: str, headers: dict[str, str], raw: bytes) -> Reply:
        with self._lock:
            if self._raw["wallet"]:
                return self._raw["wallet"].pop(0)
            if path == "/v2/foreign":
                request, bad = self._parse(raw)
                reply = bad or _json_reply(self._foreign(request))
                if self._lose_next:
                    self._lose_next = False
                    return 200, {"content-type": "application/json"}, b"{ the answer was lost"
                return reply
            if path == "/v3/owner":
                if not self._authorized(headers, self.api_secret):
                    return 401, {"www-authenticate": "Basic realm=GrinOwnerAPI"}, b""
                request, bad = self._parse(raw)
                return bad or _json_reply(self._owner(request))
            return 404, {}, b"Not Found"

    def _node_reply(self, path: str, headers: dict[str, str], raw: bytes) -> Reply:
        with self._lock:
            if self._raw["node"]:
                return self._raw["node"].pop(0)
            if path != "/v2/foreign":
                return 404, {}, b"Not Found"
            if not self._authorized(headers, self.node_api_secret):
                return 401, {"www-authenticate": "Basic realm=GrinAPI"}, b""
            request, bad = self._parse(raw)
            return bad or _json_reply(self._node_rpc(request))

    @staticmethod
    def _envelope(request: Any) -> tuple[Any, str | None, Any]:
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return None, None, None
        return request.get("id"), request["method"], request.get("params")

    # ------------------------------------------------------------------------------ wallet foreign API

    def _foreign(self, request: Any) -> dict[str, Any]:
        request_id, method, params = self._envelope(request)
        if method is None:
            return _rpc_error(None, -32600, "Invalid Request")
        self._requests.append(method)
        try:
            if method == "check_version":
                return _ok(request_id, {"foreign_api_version": 2, "supported_slate_versions": ["V4", "V3"]})
            if method == "receive_tx":
                return self._receive_tx(request_id, _param(params, 0, "slate"))
        except _BadParams:
            return _rpc_error(request_id, -32602, "Invalid params")
        return _rpc_error(request_id, -32601, "Method not found")

    def _receive_tx(self, request_id: Any, slate: Any) -> dict[str, Any]:
        if not isinstance(slate, dict) or not isinstance(slate.get("id"), str):
            raise _BadParams
        version = 4 if "ver" in slate else 3 if isinstance(slate.get("version_info"), dict) else None
        try:
            slate_id = str(uuid.UUID(slate["id"]))
            amount = int(slate.get("amt" if version == 4 else "amount") or 0)
            ttl = int(slate.get("ttl" if version == 4 else "ttl_cutoff_height") or 0)
        except (TypeError, ValueError) as exc:
            raise _BadParams from exc
        if version is None:
            raise _BadParams
        if self._refusals:
            return _err(request_id, self._refusals.pop(0))
        if ttl and self._height >= ttl:
            return _err(request_id, "TransactionExpired")
        if any(e["tx_slate_id"] == slate_id and e["tx_type"] == "TxReceived" for e in self._entries):
            return _err(request_id, {"TransactionAlreadyReceived": slate_id})
        self._received.append(copy.deepcopy(slate))
        self._entries.append(
            {
                "amount_credited": str(amount),
                "amount_debited": "0",
                "confirmation_ts": None,
                "confirmed": False,
                "creation_ts": _now(),
                "fee": None,
                "id": len(self._entries),
                "kernel_excess": _commit(),
                "kernel_lookup_min_height": self._height,
                "num_inputs": 0,
                "num_outputs": 1,
                "parent_key_id": PARENT_KEY_ID,
                "payment_proof": None,
                "reverted_after": None,
                "stored_tx": None,
                "ttl_cutoff_height": str(ttl) if ttl else None,
                "tx_slate_id": slate_id,
                "tx_type": "TxReceived",
            }
        )
        return _ok(request_id, self._s2_v4(slate) if version == 4 else self._s2_v3(slate))

    @staticmethod
    def _s2_v4(slate: dict[str, Any]) -> dict[str, Any]:
        answer = {k: v for k, v in slate.items() if k not in ("amt", "fee", "sigs", "sta", "off")}
        answer["sta"] = "S2"
        answer["off"] = secrets.token_hex(32)
        answer["sigs"] = [{"nonce": _pubkey(), "part": secrets.token_hex(64), "xs": _pubkey()}]
        answer["coms"] = [{"c": _commit(), "p": secrets.token_hex(675)}]
        if isinstance(answer.get("proof"), dict):
            answer["proof"] = {**answer["proof"], "rsig": secrets.token_hex(64)}
        return answer

    @staticmethod
    def _s2_v3(slate: dict[str, Any]) -> dict[str, Any]:
        answer = copy.deepcopy(slate)
        receiver = dict(id="1", message=None, message_sig=None, part_sig=secrets.token_hex(64))
        answer.setdefault("participant_data", []).append(
            {**receiver, "public_blind_excess": _pubkey(), "public_nonce": _pubkey()}
        )
        body = answer.get("tx", {}).get("body", {})
        if isinstance(body.get("outputs"), list):
            body["outputs"].append(
                {"commit": _commit(), "features": "Plain", "proof": secrets.token_hex(675)}
            )
        if isinstance(answer.get("payment_proof"), dict):
            answer["payment_proof"]["receiver_signature"] = secrets.token_hex(64)
        return answer

    # ------------------------------------------------------------------------------ wallet owner API v3

    def _owner(self, request: Any) -> dict[str, Any]:
        request_id, method, params = self._envelope(request)
        if method == "init_secure_api":
            self._requests.append(method)
            return self._init_secure_api(request_id, params)
        if self._shared_key is None:
            self._requests.append(method or "?")
            return _rpc_error("1", -32001, NOT_STARTED)
        key = self._shared_key
        try:
            outer_id, nonce, body_enc = self._encrypted_parts(request)
        except ValueError as exc:
            self._requests.append(method or "?")
            return _rpc_error("1", -32002, f"Encrypted request format error: {exc}")
        try:
            plain = AESGCM(key).decrypt(bytes.fromhex(nonce), base64.b64decode(body_enc, validate=True), None)
            inner = json.loads(plain)
        except (ValueError, binascii.Error, InvalidTag):
            self._requests.append(method or "?")
            return _rpc_error("1", -32002, "Decryption error: EncryptedBody: decryption failed")
        inner_id, inner_method, inner_params = self._envelope(inner)
        self._requests.append(inner_method or "?")
        answer = self._owner_method(inner_id, inner_method, inner_params)
        err = answer.get("result", {}).get("Err") if isinstance(answer.get("result"), dict) else None
        if isinstance(err, str | dict):  # the v3 handler turns an Err into a JSON-RPC error -32099
            message = err if isinstance(err, str) else "".join(f"{k}: {_text(v)}" for k, v in err.items())
            answer = {"error": {"code": -32099, "message": message}, "id": inner_id, "jsonrpc": "2.0"}
        nonce_out = secrets.token_bytes(12)
        sealed = AESGCM(key).encrypt(
            nonce_out, json.dumps(answer, separators=(",", ":"), sort_keys=True).encode(), None
        )
        return {
            "id": outer_id,
            "jsonrpc": "2.0",
            "result": {"Ok": {"body_enc": base64.b64encode(sealed).decode(), "nonce": nonce_out.hex()}},
        }

    @staticmethod
    def _encrypted_parts(request: Any) -> tuple[Any, str, str]:
        if not isinstance(request, dict):
            raise ValueError("invalid type: expected struct EncryptedRequest")
        for field in ("jsonrpc", "method", "id", "params"):
            if field not in request:
                raise ValueError(f"missing field `{field}`")
        params = request["params"]
        if not isinstance(params, dict) or not isinstance(params.get("nonce"), str):
            raise ValueError("missing field `nonce`")
        if not isinstance(params.get("body_enc"), str):
            raise ValueError("missing field `body_enc`")
        if not isinstance(request["id"], int | str) or isinstance(request["id"], bool):
            raise ValueError("data did not match any variant of untagged enum JsonId")
        return request["id"], params["nonce"], params["body_enc"]

    def _init_secure_api(self, request_id: Any, params: Any) -> dict[str, Any]:
        try:
            peer = ec.EllipticCurvePublicKey.from_encoded_point(
                ec.SECP256K1(), bytes.fromhex(_param(params, 0, "ecdh_pubkey"))
            )
        except (_BadParams, TypeError, ValueError):
            return _rpc_error(request_id, -32602, "Invalid params")
        private = ec.generate_private_key(ec.SECP256K1())
        self._shared_key = private.exchange(ec.ECDH(), peer)
        ours = private.public_key().public_bytes(Encoding.X962, PublicFormat.CompressedPoint).hex()
        return _ok(request_id, ours)

    def _owner_method(self, request_id: Any, method: str | None, params: Any) -> dict[str, Any]:
        if method is None:
            return _rpc_error(None, -32600, "Invalid Request")
        try:
            if method == "init_secure_api":  # encrypted re-key: answered with the old key
                return self._init_secure_api(request_id, params)
            if method == "open_wallet":
                if _param(params, 1, "password") != self.wallet_password:
                    return _err(request_id, {"Lifecycle": "Error opening wallet (is password correct?)"})
                if _param(params, 0, "name") != self.wallet_name:
                    return _err(request_id, {"Lifecycle": "Wallet not found"})
                self._token = secrets.token_hex(32)
                return _ok(request_id, self._token)
            if method == "close_wallet":
                self._token = None
                return _ok(request_id, None)
            if method in ("retrieve_txs", "node_height"):
                token = _param(params, 0, "token")
                if not isinstance(token, str):
                    raise _BadParams
                if self._token is None:
                    return _err(request_id, "KeychainDoesntExist")
                if not secrets.compare_digest(token, self._token):
                    return _err(request_id, "InvalidKeychainMask")
                if method == "node_height":
                    node = {"header_hash": self._block_hashes[self._height], "height": str(self._height)}
                    return _ok(request_id, {**node, "updated_from_node": True})
                return self._retrieve_txs(request_id, params)
        except _BadParams:
            return _rpc_error(request_id, -32602, "Invalid params")
        return _rpc_error(request_id, -32601, "Method not found")

    def _retrieve_txs(self, request_id: Any, params: Any) -> dict[str, Any]:
        refresh = _param(params, 1, "refresh_from_node")
        tx_id = _param(params, 2, "tx_id")
        slate_id = _param(params, 3, "tx_slate_id")
        if not isinstance(refresh, bool):
            raise _BadParams
        if refresh:  # what the wallet's updater does: outputs seen on chain, expired TTLs cancelled
            for entry in self._entries:
                if entry["tx_type"] != "TxReceived" or entry["confirmed"]:
                    continue
                mined = self._kernels.get(entry["kernel_excess"])
                if mined is not None and mined[0] <= self._height:
                    entry["confirmed"] = True
                    entry["confirmation_ts"] = _now()
                elif entry["ttl_cutoff_height"] and self._height >= int(entry["ttl_cutoff_height"]):
                    entry["tx_type"] = "TxReceivedCancelled"
        entries = [
            copy.deepcopy(e)
            for e in self._entries
            if (tx_id is None or e["id"] == tx_id)
            and (slate_id is None or e["tx_slate_id"] == str(slate_id).lower())
        ]
        return _ok(request_id, [refresh, entries])

    # ------------------------------------------------------------------------------ node foreign API

    def _node_rpc(self, request: Any) -> dict[str, Any]:
        request_id, method, params = self._envelope(request)
        if method is None:
            return _rpc_error(None, -32600, "Invalid Request")
        self._requests.append(method)
        try:
            if method == "get_tip":
                tip = {"height": self._height, "last_block_pushed": self._block_hashes[self._height]}
                before = self._block_hashes.get(self._height - 1, "00" * 32)
                return _ok(request_id, {**tip, "prev_block_to_last": before, "total_difficulty": 10**6})
            if method == "get_version":
                return _ok(request_id, {"block_header_version": 2, "node_version": "5.3.3"})
            if method == "get_kernel":
                excess = _param(params, 0, "excess")
                low = _param(params, 1, "min_height") or 0
                high = _param(params, 2, "max_height") or self._height
                if not isinstance(excess, str) or not isinstance(low, int) or not isinstance(high, int):
                    raise _BadParams
                found = self._kernels.get(excess.lower())
                if found is None or not low <= found[0] <= high:
                    return _err(request_id, "NotFound")
                kernel: dict[str, Any] = dict(excess=excess.lower(), excess_sig=secrets.token_hex(64))
                kernel["features"] = {"Plain": {"fee": 23_500_000}}
                return _ok(request_id, {"height": found[0], "mmr_index": found[1], "tx_kernel": kernel})
        except _BadParams:
            return _rpc_error(request_id, -32602, "Invalid params")
        return _rpc_error(request_id, -32601, "Method not found")
