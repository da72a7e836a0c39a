"""NewebPay MPG (Multi Payment Gateway, Version 2.0): the checkout form and the payment notification.

Wire format, from NewebPay's manual (線上交易─幕前支付技術串接手冊, NDNF) and the PHP sample code it
ships (``create_mpg_aes_encrypt``, ``addpadding``, ``strippadding``):

* The customer's browser POSTs ``MerchantID``, ``TradeInfo``, ``TradeSha`` and ``Version`` to
  :data:`TEST_GATEWAY_URL` or :data:`PRODUCTION_GATEWAY_URL`.
* ``TradeInfo`` is ``hex(AES-256-CBC(HashKey, HashIV, pad(params)))``: the trade parameters
  URL-encoded in the given order as PHP's ``http_build_query`` does (``+`` for a space, UTF-8
  percent-escapes), padded PKCS#7-style to a multiple of 32 bytes as the sample's
  ``addpadding($string, $blocksize = 32)`` does, key and IV the ASCII text of HashKey (32 characters)
  and HashIV (16), hex in lower case.
* ``TradeSha`` is ``upper(hex(SHA256("HashKey=<key>&<TradeInfo>&HashIV=<iv>")))``.
* NewebPay POSTs the outcome to ``NotifyURL``, form-encoded: ``Status``, ``MerchantID``, ``Version``,
  ``TradeInfo``, ``TradeSha``. ``TradeInfo`` decrypts to JSON ``{"Status", "Message", "Result":
  {"MerchantID", "Amt", "TradeNo", "MerchantOrderNo", "PaymentType", "PayTime", ...}}``, or with
  ``RespondType=String`` to one flat query string holding the same names.

Padding: a 32-byte and a 16-byte PKCS#7 padding give the same bytes whenever the text length modulo
32 is 16 or more (the published vectors are such texts), so both are accepted on the way in; any
other padding is refused. Only ``TradeInfo`` is covered by ``TradeSha``: the outer ``Status`` and
``Version`` are not signed, so the status is taken from the decrypted text. ``TradeSha`` must be
upper-case hex, as NewebPay sends it; a lower-case one is refused. The HashKey and HashIV never
appear in exception messages.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, urlencode

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = [
    "MPG_VERSION",
    "PRODUCTION_GATEWAY_URL",
    "TEST_GATEWAY_URL",
    "NewebPayError",
    "Notification",
    "NotificationRejected",
    "checkout_form",
    "decrypt_trade_info",
    "encrypt_trade_info",
    "new_merchant_order_no",
    "trade_sha",
    "verify_notification",
]

TEST_GATEWAY_URL: Final = "https://ccore.newebpay.com/MPG/mpg_gateway"
PRODUCTION_GATEWAY_URL: Final = "https://core.newebpay.com/MPG/mpg_gateway"
MPG_VERSION: Final = "2.0"
MAX_ORDER_NO_LENGTH: Final = 30
MAX_ITEM_DESC_LENGTH: Final = 50
MAX_AMOUNT: Final = 9_999_999_999  # Amt is int(10), whole TWD
MAX_PAD: Final = 32
AES_BLOCK: Final = 16
HASH_KEY_LENGTH: Final = 32
HASH_IV_LENGTH: Final = 16

_ORDER_NO_RE: Final = re.compile(r"[A-Za-z0-9_]{1,30}")
_HEX_RE: Final = re.compile(r"[0-9a-fA-F]*")
_AMOUNT_RE: Final = re.compile(r"[0-9]{1,10}")
_ORDER_NO_ALPHABET: Final = string.ascii_letters + string.digits
_ORDER_NO_PREFIX: Final = "ks_"
_ORDER_NO_RANDOM_CHARS: Final = 22  # 22 * log2(62) ≈ 131 bits


class NewebPayError(ValueError):
    """A NewebPay message cannot be built or read (bad parameter, bad HashKey/HashIV shape)."""


class NotificationRejected(NewebPayError):
    """A notification failed verification; ``reason`` is a short code, the message names no secret.

    Reasons: ``missing_field``, ``bad_sha``, ``bad_hex``, ``bad_length``, ``bad_padding``,
    ``bad_encoding``, ``not_json``, ``merchant_mismatch``, ``bad_field``.
    """

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"NewebPay notification rejected ({reason}): {detail}")


@dataclass(frozen=True, slots=True)
class Notification:
    """A verified notification. Amounts and order numbers are not checked against any payment here."""

    status: str  # "SUCCESS", or an error code such as "MPG03009"
    message: str
    merchant_id: str
    merchant_order_no: str
    amount: int  # whole TWD
    trade_no: str  # NewebPay's trade number; "" when a failed trade has none
    payment_type: str | None  # e.g. "CREDIT", "VACC", "CVS", "WEBATM"
    pay_time: str | None  # e.g. "2023-09-27 14:21:59" (Taipei time)
    raw: dict[str, Any]  # the decrypted Result


def _cipher(hash_key: str, hash_iv: str) -> Cipher[modes.CBC]:
    if not (hash_key.isascii() and len(hash_key) == HASH_KEY_LENGTH):
        raise NewebPayError(f"the HashKey must be {HASH_KEY_LENGTH} ASCII characters")
    if not (hash_iv.isascii() and len(hash_iv) == HASH_IV_LENGTH):
        raise NewebPayError(f"the HashIV must be {HASH_IV_LENGTH} ASCII characters")
    return Cipher(algorithms.AES(hash_key.encode("ascii")), modes.CBC(hash_iv.encode("ascii")))


def encrypt_trade_info(
    params: Mapping[str, str | int], hash_key: str, hash_iv: str, *, block_size: Literal[16, 32] = 32
) -> str:
    """``TradeInfo``: the parameters URL-encoded in order, padded, AES-256-CBC, lower-case hex."""
    pairs: list[tuple[str, str]] = []
    for name, value in params.items():
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise NewebPayError(f"parameter {name!r} must be text or an integer")
        pairs.append((name, str(value)))
    data = urlencode(pairs).encode("ascii")  # quote_plus: everything outside [A-Za-z0-9_.~-] escaped
    pad = block_size - len(data) % block_size
    encryptor = _cipher(hash_key, hash_iv).encryptor()
    return (encryptor.update(data + bytes([pad]) * pad) + encryptor.finalize()).hex()


def trade_sha(trade_info: str, hash_key: str, hash_iv: str) -> str:
    """``TradeSha``: upper-case hex SHA-256 of ``HashKey=<key>&<TradeInfo>&HashIV=<iv>``."""
    text = f"HashKey={hash_key}&{trade_info}&HashIV={hash_iv}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest().upper()


def decrypt_trade_info(trade_info_hex: str, hash_key: str, hash_iv: str) -> str:
    """Decrypt a ``TradeInfo``; strip PKCS#7 padding of 16- or 32-byte blocks; decode UTF-8 strictly."""
    if _HEX_RE.fullmatch(trade_info_hex) is None:
        raise NotificationRejected("bad_hex", "TradeInfo is not hexadecimal")
    if len(trade_info_hex) % 2:
        raise NotificationRejected("bad_length", "TradeInfo has an odd number of hex digits")
    data = bytes.fromhex(trade_info_hex)
    if not data or len(data) % 16:
        raise NotificationRejected("bad_length", "TradeInfo is not a whole number of AES blocks")
    decryptor = _cipher(hash_key, hash_iv).decryptor()
    padded = decryptor.update(data) + decryptor.finalize()
    pad = padded[-1]
    if not 1 <= pad <= min(MAX_PAD, len(padded)) or padded[-pad:] != bytes([pad]) * pad:
        raise NotificationRejected("bad_padding", "TradeInfo padding is not PKCS#7")
    if pad > AES_BLOCK and len(padded) % MAX_PAD:  # more than 16 is PKCS#7 only to 32-byte blocks
        raise NotificationRejected("bad_padding", "TradeInfo padding is neither to 16 nor to 32 bytes")
    try:
        return padded[:-pad].decode("utf-8")
    except UnicodeDecodeError:
        raise NotificationRejected("bad_encoding", "decrypted TradeInfo is not UTF-8") from None


def _envelope(text: str) -> dict[str, Any]:
    """``{"Status", "Message", "Result"}`` from the JSON or the ``String`` (query string) respond type."""
    if text.lstrip().startswith("{"):
        try:
            envelope = json.loads(text)
        except (ValueError, RecursionError):
            raise NotificationRejected("not_json", "decrypted TradeInfo is not JSON") from None
        if not isinstance(envelope, dict):
            raise NotificationRejected("not_json", "decrypted TradeInfo is not a JSON object")
        return envelope
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True, errors="strict")
    except ValueError:
        raise NotificationRejected("not_json", "decrypted TradeInfo is neither JSON nor a query") from None
    flat = dict(pairs)
    if len(flat) != len(pairs):
        raise NotificationRejected("not_json", "decrypted TradeInfo repeats a name")
    status, message = flat.pop("Status", None), flat.pop("Message", "")
    return {"Status": status, "Message": message, "Result": flat}


def _form_field(form: Mapping[str, str], name: str) -> str:
    value = form.get(name)
    if not isinstance(value, str) or not value:
        raise NotificationRejected("missing_field", f"the form has no {name}")
    return value


def _optional_text(result: Mapping[str, Any], name: str) -> str | None:
    value = result.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise NotificationRejected("bad_field", f"Result.{name} is not text")
    return value


def _amount(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        amount = value
    elif isinstance(value, str) and _AMOUNT_RE.fullmatch(value):
        amount = int(value)
    else:
        raise NotificationRejected("bad_field", "Result.Amt is not a whole number")
    if not 0 < amount <= MAX_AMOUNT:
        raise NotificationRejected("bad_field", "Result.Amt is out of range")
    return amount


def verify_notification(
    form: Mapping[str, str], *, merchant_id: str, hash_key: str, hash_iv: str
) -> Notification:
    """Verify a ``NotifyURL`` POST and read it; raises :class:`NotificationRejected` on any fault.

    Order: fields present, ``TradeSha`` (constant time, before any decryption), decryption and
    padding, JSON (or ``String``), the merchant on the form and in ``Result``, the typed fields.
    The caller still checks the amount and order number against its own payment.
    """
    trade_info = _form_field(form, "TradeInfo")
    given_sha = _form_field(form, "TradeSha")
    form_merchant = _form_field(form, "MerchantID")
    if not (trade_info.isascii() and given_sha.isascii()):
        raise NotificationRejected("bad_sha", "TradeSha does not match TradeInfo")
    if not hmac.compare_digest(trade_sha(trade_info, hash_key, hash_iv), given_sha):
        raise NotificationRejected("bad_sha", "TradeSha does not match TradeInfo")
    envelope = _envelope(decrypt_trade_info(trade_info, hash_key, hash_iv))
    result = envelope.get("Result")
    if not isinstance(result, dict):
        raise NotificationRejected("missing_field", "the decrypted TradeInfo has no Result object")
    if form_merchant != merchant_id or result.get("MerchantID") != merchant_id:
        raise NotificationRejected("merchant_mismatch", "the notification is for another merchant")
    status = envelope.get("Status")
    if not isinstance(status, str) or not status:
        raise NotificationRejected("missing_field", "the decrypted TradeInfo has no Status")
    message = envelope.get("Message", "")
    if not isinstance(message, str):
        raise NotificationRejected("bad_field", "Message is not text")
    order_no = result.get("MerchantOrderNo")
    if not isinstance(order_no, str) or not order_no:
        raise NotificationRejected("bad_field", "Result.MerchantOrderNo is not text")
    amount = _amount(result.get("Amt"))
    trade_no = _optional_text(result, "TradeNo")
    if trade_no is None and status == "SUCCESS":
        raise NotificationRejected("missing_field", "a successful trade has no Result.TradeNo")
    return Notification(
        status=status,
        message=message,
        merchant_id=merchant_id,
        merchant_order_no=order_no,
        amount=amount,
        trade_no=trade_no or "",
        payment_type=_optional_text(result, "PaymentType"),
        pay_time=_optional_text(result, "PayTime"),
        raw=result,
    )


def checkout_form(
    *,
    merchant_id: str,
    hash_key: str,
    hash_iv: str,
    merchant_order_no: str,
    amount: int,
    item_desc: str,
    email: str | None,
    notify_url: str,
    return_url: str,
    client_back_url: str | None,
    timestamp: int,
    testing: bool,
    extra: Mapping[str, str | int] | None = None,
) -> tuple[str, dict[str, str]]:
    """The gateway URL and the four fields the customer's browser POSTs there.

    ``extra`` adds further TradeInfo parameters (``CREDIT``, ``VACC``, ``TradeLimit``, ``ExpireDate``,
    ``LangType`` ...) after the ones set here, which it may not replace.
    """
    if not merchant_id:
        raise NewebPayError("the MerchantID is empty")
    if _ORDER_NO_RE.fullmatch(merchant_order_no) is None:
        raise NewebPayError(
            f"MerchantOrderNo must be 1 to {MAX_ORDER_NO_LENGTH} letters, digits or underscores"
        )
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_AMOUNT:
        raise NewebPayError("Amt must be a positive whole number of TWD")
    if not item_desc or len(item_desc) > MAX_ITEM_DESC_LENGTH:
        raise NewebPayError(f"ItemDesc must be 1 to {MAX_ITEM_DESC_LENGTH} characters")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp <= 0:
        raise NewebPayError("TimeStamp must be a positive Unix time")
    params: dict[str, str | int] = {
        "MerchantID": merchant_id,
        "RespondType": "JSON",
        "TimeStamp": timestamp,
        "Version": MPG_VERSION,
        "MerchantOrderNo": merchant_order_no,
        "Amt": amount,
        "ItemDesc": item_desc,
    }
    if email:
        params["Email"] = email
    params["LoginType"] = 0
    params["NotifyURL"] = notify_url
    params["ReturnURL"] = return_url
    if client_back_url:
        params["ClientBackURL"] = client_back_url
    for name, value in (extra or {}).items():
        if name in params:
            raise NewebPayError(f"extra parameter {name!r} would replace one checkout_form sets")
        params[name] = value
    trade_info = encrypt_trade_info(params, hash_key, hash_iv)
    fields = {
        "MerchantID": merchant_id,
        "TradeInfo": trade_info,
        "TradeSha": trade_sha(trade_info, hash_key, hash_iv),
        "Version": MPG_VERSION,
    }
    return (TEST_GATEWAY_URL if testing else PRODUCTION_GATEWAY_URL), fields


def new_merchant_order_no() -> str:
    """A fresh MerchantOrderNo: ``ks_`` and 22 random letters or digits (about 131 bits), 25 chars."""
    suffix = "".join(secrets.choice(_ORDER_NO_ALPHABET) for _ in range(_ORDER_NO_RANDOM_CHARS))
    return _ORDER_NO_PREFIX + suffix
