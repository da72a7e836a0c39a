"""A loopback stand-in for NewebPay's MPG payment page and its payment notifications.

NewebPay cannot be reached from the test machines, so this plays it over real HTTP on 127.0.0.1:

* ``POST /MPG/mpg_gateway`` takes the form a shop's checkout page posts (``MerchantID``,
  ``TradeInfo``, ``TradeSha``, ``Version``), checks ``TradeSha`` and decrypts ``TradeInfo`` with the
  merchant's HashKey/HashIV configured here (HTTP 400 and a message otherwise), records the trade
  and answers an HTML payment page;
* :meth:`NewebPayStandIn.pay` and :meth:`NewebPayStandIn.fail` then POST the documented
  notification (form-encoded ``Status``, ``MerchantID``, ``Version``, ``TradeInfo``, ``TradeSha``) to
  the trade's ``NotifyURL``. The ``Result`` carries the fields NewebPay sends for the payment type
  (card: ``RespondCode``, ``Auth``, ``Card6No``, ``Card4No`` ...; ATM: ``PayBankCode``,
  ``PayerAccount5Code``; store code: ``CodeNo``, ``StoreType``, ``StoreID``).

The cryptography is written here again on purpose rather than imported from
``kassa.rails.newebpay.mpg``, so a fault there is not mirrored here: incoming ``TradeInfo`` may be
padded to 16- or 32-byte blocks; outgoing ``TradeInfo`` is padded to ``notify_block_size`` (16 by
default, standard PKCS#7). A trade asking ``RespondType=String`` is answered as a flat query string,
any other as JSON. NotifyURL hosts are not restricted (tests use loopback).
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode

import httpx
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

MERCHANT_ID = "MS3430112"  # the stand-in's default merchant, for tests to use
HASH_KEY = "12345678901234567890123456789012"
HASH_IV = "1234567890123456"
GATEWAY_PATH = "/MPG/mpg_gateway"
REQUIRED_PARAMS = ("MerchantID", "RespondType", "TimeStamp", "Version", "MerchantOrderNo", "Amt", "ItemDesc")
_ORDER_NO_RE = re.compile(r"[A-Za-z0-9_]{1,30}")


class GatewayRefusal(Exception):
    """The gateway page refuses the posted form (answered as HTTP 400 with this message)."""


def _aes(key: str, iv: str) -> Cipher[modes.CBC]:
    return Cipher(algorithms.AES(key.encode("ascii")), modes.CBC(iv.encode("ascii")))


def _sha(trade_info: str, key: str, iv: str) -> str:
    return hashlib.sha256(f"HashKey={key}&{trade_info}&HashIV={iv}".encode()).hexdigest().upper()


def _encrypt(text: str, key: str, iv: str, block_size: int) -> str:
    data = text.encode()
    pad = block_size - len(data) % block_size
    encryptor = _aes(key, iv).encryptor()
    return (encryptor.update(data + bytes([pad]) * pad) + encryptor.finalize()).hex()


def _decrypt(trade_info: str, key: str, iv: str) -> str:
    try:
        data = bytes.fromhex(trade_info)
    except ValueError:
        raise GatewayRefusal("TradeInfo is not hex") from None
    if not data or len(data) % 16:
        raise GatewayRefusal("TradeInfo is not whole AES blocks")
    decryptor = _aes(key, iv).decryptor()
    plain = decryptor.update(data) + decryptor.finalize()
    pad = plain[-1]
    if not 1 <= pad <= min(32, len(plain)) or plain[-pad:] != bytes([pad]) * pad:
        raise GatewayRefusal("TradeInfo padding is wrong")
    try:
        return plain[:-pad].decode()
    except UnicodeDecodeError:
        raise GatewayRefusal("TradeInfo is not UTF-8") from None


def _trade_no() -> str:
    """17 digits, as NewebPay's TradeNo (e.g. 23092714215835071): yymmddHHMMSS and 5 more."""
    return time.strftime("%y%m%d%H%M%S") + f"{secrets.randbelow(100_000):05d}"


def _type_fields(payment_type: str) -> dict[str, Any]:
    if payment_type == "CREDIT":
        return {
            "RespondCode": "00",
            "Auth": f"{secrets.randbelow(1_000_000):06d}",
            "Card6No": "400022",
            "Card4No": "1111",
            "Exp": "2912",
            "AuthBank": "KGI",
            "TokenUseStatus": 0,
            "InstFirst": 0,
            "InstEach": 0,
            "Inst": 0,
            "ECI": "",
            "PaymentMethod": "CREDIT",
        }
    if payment_type in ("VACC", "WEBATM"):
        return {"PayBankCode": "809", "PayerAccount5Code": "12345"}
    if payment_type == "CVS":
        return {"CodeNo": "LLL22251222", "StoreType": 1, "StoreID": "001779"}
    return {}


class NewebPayStandIn:
    """NewebPay's MPG gateway page on 127.0.0.1, with test controls to pay or fail its trades."""

    def __init__(
        self,
        merchant_id: str = MERCHANT_ID,
        hash_key: str = HASH_KEY,
        hash_iv: str = HASH_IV,
        *,
        notify_block_size: int = 16,
    ) -> None:
        self.merchants: dict[str, tuple[str, str]] = {merchant_id: (hash_key, hash_iv)}
        self.notify_block_size = notify_block_size
        self.trades: dict[str, dict[str, str]] = {}  # MerchantOrderNo -> decrypted TradeInfo params
        self.notify_forms: list[dict[str, str]] = []  # every notification form posted, in order
        self.refusals: list[str] = []  # messages of the 400 answers
        self.lock = threading.Lock()
        self._thread: threading.Thread | None = None
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.path != GATEWAY_PATH:
                    self._answer(404, "text/plain", b"not found")
                    return
                try:
                    trade = stand_in._accept(raw)
                except GatewayRefusal as exc:
                    with stand_in.lock:
                        stand_in.refusals.append(str(exc))
                    self._answer(400, "text/plain; charset=utf-8", str(exc).encode())
                    return
                self._answer(200, "text/html; charset=utf-8", _page(trade).encode())

            def _answer(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.gateway_url = self.url + GATEWAY_PATH

    def add_merchant(self, merchant_id: str, hash_key: str, hash_iv: str) -> None:
        with self.lock:
            self.merchants[merchant_id] = (hash_key, hash_iv)

    def start(self) -> Self:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self, raw: bytes) -> dict[str, str]:
        try:
            form = dict(parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=True))
        except ValueError:
            raise GatewayRefusal("the body is not a form") from None
        for name in ("MerchantID", "TradeInfo", "TradeSha", "Version"):
            if not form.get(name):
                raise GatewayRefusal(f"{name} is missing")
        with self.lock:
            keys = self.merchants.get(form["MerchantID"])
        if keys is None:
            raise GatewayRefusal("unknown MerchantID")
        if form["TradeSha"] != _sha(form["TradeInfo"], *keys):
            raise GatewayRefusal("TradeSha does not match")
        try:
            params = dict(parse_qsl(_decrypt(form["TradeInfo"], *keys), strict_parsing=True))
        except ValueError:
            raise GatewayRefusal("TradeInfo does not decrypt to a query string") from None
        for name in REQUIRED_PARAMS:
            if not params.get(name):
                raise GatewayRefusal(f"TradeInfo has no {name}")
        if params["MerchantID"] != form["MerchantID"]:
            raise GatewayRefusal("MerchantID differs from TradeInfo's")
        if not _ORDER_NO_RE.fullmatch(params["MerchantOrderNo"]):
            raise GatewayRefusal("MerchantOrderNo is malformed")
        if not params["Amt"].isdigit() or int(params["Amt"]) <= 0:
            raise GatewayRefusal("Amt is not a positive integer")
        if len(params["ItemDesc"]) > 50:
            raise GatewayRefusal("ItemDesc is longer than 50 characters")
        with self.lock:
            if params["MerchantOrderNo"] in self.trades:
                raise GatewayRefusal("MerchantOrderNo was used before")
            self.trades[params["MerchantOrderNo"]] = params
        return params

    def pay(
        self,
        merchant_order_no: str,
        *,
        status: str = "SUCCESS",
        payment_type: str = "CREDIT",
        amount: int | None = None,
        message: str = "授權成功",
    ) -> httpx.Response:
        """POST a notification for a recorded trade to its NotifyURL; returns the shop's answer."""
        with self.lock:
            trade = dict(self.trades[merchant_order_no])
            hash_key, hash_iv = self.merchants[trade["MerchantID"]]
        notify_url = trade.get("NotifyURL")
        if not notify_url:
            raise ValueError(f"trade {merchant_order_no} has no NotifyURL")
        result: dict[str, Any] = {
            "MerchantID": trade["MerchantID"],
            "Amt": int(trade["Amt"]) if amount is None else amount,
            "TradeNo": _trade_no(),
            "MerchantOrderNo": merchant_order_no,
            "RespondType": trade["RespondType"],
            "IP": "127.0.0.1",
            "EscrowBank": "HNCB",
            "PaymentType": payment_type,
            "PayTime": time.strftime("%Y-%m-%d %H:%M:%S"),
            **_type_fields(payment_type),
        }
        if trade["RespondType"] == "String":
            flat = {"Status": status, "Message": message, **result}
            text = urlencode({name: str(value) for name, value in flat.items()})
        else:
            text = json.dumps({"Status": status, "Message": message, "Result": result}, ensure_ascii=False)
        trade_info = _encrypt(text, hash_key, hash_iv, self.notify_block_size)
        form = {
            "Status": status,
            "MerchantID": trade["MerchantID"],
            "Version": trade["Version"],
            "TradeInfo": trade_info,
            "TradeSha": _sha(trade_info, hash_key, hash_iv),
        }
        with self.lock:
            self.notify_forms.append(form)
        return httpx.post(notify_url, data=form, timeout=10.0)

    def fail(
        self, merchant_order_no: str, message: str, *, status: str = "MPG03009", payment_type: str = "CREDIT"
    ) -> httpx.Response:
        """POST a failed-payment notification (``Status`` an MPG error code) to the trade's NotifyURL."""
        return self.pay(merchant_order_no, status=status, payment_type=payment_type, message=message)


def _page(trade: dict[str, str]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(name)}</th><td>{html.escape(trade.get(name, ''))}</td></tr>"
        for name in ("MerchantOrderNo", "Amt", "ItemDesc", "Email")
    )
    return (
        '<!doctype html><html lang="zh-Hant"><head><meta charset="utf-8"><title>藍新金流 MPG</title>'
        f"</head><body><h1>NewebPay MPG (stand-in)</h1><table>{rows}</table></body></html>"
    )
