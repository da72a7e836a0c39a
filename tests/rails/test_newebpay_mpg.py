"""NewebPay MPG wire format: the published vectors byte for byte, padding, TradeSha, notification
verification (order of checks, reason codes, fuzzing), the checkout form, and a loopback end-to-end
run through the NewebPay stand-in."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from kassa.rails.newebpay.mpg import (
    MPG_VERSION,
    PRODUCTION_GATEWAY_URL,
    TEST_GATEWAY_URL,
    NewebPayError,
    Notification,
    NotificationRejected,
    checkout_form,
    decrypt_trade_info,
    encrypt_trade_info,
    new_merchant_order_no,
    trade_sha,
    verify_notification,
)
from tests.support.newebpay_stand_in import NewebPayStandIn

# Published vectors (/work/shared/vectors/newebpay.md; node-newebpay's README and test suite).
KEY = "12345678901234567890123456789012"
IV = "1234567890123456"
VECTOR_PARAMS: dict[str, str | int] = {
    "MerchantID": 3430112,
    "RespondType": "JSON",
    "TimeStamp": 1485232229,
    "Version": "1.4",
    "MerchantOrderNo": "S_1485232229",
    "Amt": 40,
    "ItemDesc": "UnitTest",
}
VECTOR_PLAIN = (
    "MerchantID=3430112&RespondType=JSON&TimeStamp=1485232229&Version=1.4"
    "&MerchantOrderNo=S_1485232229&Amt=40&ItemDesc=UnitTest"
)
VECTOR_TRADE_INFO = (
    "ff91c8aa01379e4de621a44e5f11f72e4d25bdb1a18242db6cef9ef07d80b0165e476fd1d9acaa53170272c82d122961"
    "e1a0700a7427cfa1cf90db7f6d6593bbc93102a4d4b9b66d9974c13c31a7ab4bba1d4e0790f0cbbbd7ad64c6d3c8012a"
    "601ceaa808bff70f94a8efa5a4f984b9d41304ffd879612177c622f75f4214fa"
)
VECTOR_TRADE_SHA = "EA0A6CC37F40C1EA5692E7CBB8AE097653DF3E91365E6A9CD7E91312413C7BB8"
VECTOR_16_PLAIN = "abcdefghijklmnop"
VECTOR_16_TRADE_INFO = "b91d3ece42c203729b38ae004e96efb9b64c41eeb074cad7ebafa3973181d233"

MID = "MS3430112"
SECRETS = (KEY, IV)


# --- helpers written independently of the module under test -------------------------------------


def raw_encrypt(padded: bytes, key: str = KEY, iv: str = IV) -> str:
    """AES-256-CBC of bytes that are already padded (or deliberately mis-padded), hex."""
    encryptor = Cipher(algorithms.AES(key.encode()), modes.CBC(iv.encode())).encryptor()
    return (encryptor.update(padded) + encryptor.finalize()).hex()


def pkcs7(data: bytes, block: int = 16) -> bytes:
    pad = block - len(data) % block
    return data + bytes([pad]) * pad


def raw_decrypt(trade_info: str) -> bytes:
    decryptor = Cipher(algorithms.AES(KEY.encode()), modes.CBC(IV.encode())).decryptor()
    return decryptor.update(bytes.fromhex(trade_info)) + decryptor.finalize()


def sha(trade_info: str, key: str = KEY, iv: str = IV) -> str:
    return hashlib.sha256(f"HashKey={key}&{trade_info}&HashIV={iv}".encode()).hexdigest().upper()


def result(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "MerchantID": MID,
        "Amt": 30,
        "TradeNo": "23092714215835071",
        "MerchantOrderNo": "ks_order_1",
        "RespondType": "JSON",
        "IP": "123.51.237.115",
        "EscrowBank": "HNCB",
        "PaymentType": "CREDIT",
        "PayTime": "2023-09-27 14:21:59",
        "RespondCode": "00",
        "Auth": "115468",
        "Card6No": "400022",
        "Card4No": "1111",
    }
    fields.update(overrides)
    return {name: value for name, value in fields.items() if value is not None}


def signed_form(text: str | bytes, *, block: int = 16, merchant_id: str = MID) -> dict[str, str]:
    """A notification form as NewebPay posts it, for any decrypted text (or raw padded bytes)."""
    padded = text if isinstance(text, bytes) else pkcs7(text.encode(), block)
    trade_info = raw_encrypt(padded)
    return {
        "Status": "SUCCESS",
        "MerchantID": merchant_id,
        "Version": MPG_VERSION,
        "TradeInfo": trade_info,
        "TradeSha": sha(trade_info),
    }


def json_form(status: str = "SUCCESS", message: str = "授權成功", **overrides: Any) -> dict[str, str]:
    envelope = {"Status": status, "Message": message, "Result": result(**overrides)}
    return signed_form(json.dumps(envelope, ensure_ascii=False))


def verify(form: dict[str, str]) -> Notification:
    return verify_notification(form, merchant_id=MID, hash_key=KEY, hash_iv=IV)


def rejected(form: dict[str, str]) -> str:
    with pytest.raises(NotificationRejected) as info:
        verify(form)
    for secret in SECRETS:
        assert secret not in str(info.value)
    return info.value.reason


# --- vectors --------------------------------------------------------------------------------------


def test_vector_trade_info_byte_for_byte() -> None:
    assert encrypt_trade_info(VECTOR_PARAMS, KEY, IV) == VECTOR_TRADE_INFO
    assert encrypt_trade_info(VECTOR_PARAMS, KEY, IV, block_size=16) == VECTOR_TRADE_INFO
    assert raw_encrypt(pkcs7(VECTOR_PLAIN.encode())) == VECTOR_TRADE_INFO  # the helper agrees too


def test_vector_trade_sha() -> None:
    assert trade_sha(VECTOR_TRADE_INFO, KEY, IV) == VECTOR_TRADE_SHA


def test_vector_decrypts() -> None:
    assert decrypt_trade_info(VECTOR_TRADE_INFO, KEY, IV) == VECTOR_PLAIN
    assert decrypt_trade_info(VECTOR_TRADE_INFO.upper(), KEY, IV) == VECTOR_PLAIN


def test_vector_16_byte_plaintext() -> None:
    # A full block of padding (0x10 * 16): the same bytes with 16- and 32-byte blocks.
    assert raw_encrypt(pkcs7(VECTOR_16_PLAIN.encode(), 16)) == VECTOR_16_TRADE_INFO
    assert raw_encrypt(pkcs7(VECTOR_16_PLAIN.encode(), 32)) == VECTOR_16_TRADE_INFO
    assert decrypt_trade_info(VECTOR_16_TRADE_INFO, KEY, IV) == VECTOR_16_PLAIN


def test_encryption_pads_to_32_byte_blocks_like_newebpays_sample() -> None:
    # "A=x" is 3 bytes: 29 bytes of 0x1d with 32-byte blocks (PHP addpadding), 13 of 0x0d with 16.
    trade_info = encrypt_trade_info({"A": "x"}, KEY, IV)
    assert raw_decrypt(trade_info) == b"A=x" + bytes([29]) * 29
    short = encrypt_trade_info({"A": "x"}, KEY, IV, block_size=16)
    assert raw_decrypt(short) == b"A=x" + bytes([13]) * 13
    assert decrypt_trade_info(trade_info, KEY, IV) == decrypt_trade_info(short, KEY, IV) == "A=x"


def test_url_encoding_is_form_style_in_the_given_order() -> None:
    params: dict[str, str | int] = {"ItemDesc": "a b&c=藍新", "Email": "x+y@example.com", "Amt": 40}
    plain = decrypt_trade_info(encrypt_trade_info(params, KEY, IV), KEY, IV)
    assert plain == "ItemDesc=a+b%26c%3D%E8%97%8D%E6%96%B0&Email=x%2By%40example.com&Amt=40"


@given(
    st.dictionaries(st.text(min_size=1), st.one_of(st.text(), st.integers(0, 10**12)), max_size=8),
    st.sampled_from([16, 32]),
)
def test_round_trip(params: dict[str, str | int], block: Literal[16, 32]) -> None:
    trade_info = encrypt_trade_info(params, KEY, IV, block_size=block)
    assert re.fullmatch(r"(?:[0-9a-f]{32})+", trade_info)
    plain = decrypt_trade_info(trade_info, KEY, IV)
    assert parse_qsl(plain, keep_blank_values=True) == [(k, str(v)) for k, v in params.items()]


def test_encrypt_refuses_bad_keys_and_values() -> None:
    with pytest.raises(NewebPayError, match="HashKey") as info:
        encrypt_trade_info({"A": 1}, KEY[:-1], IV)
    assert KEY[:-1] not in str(info.value)
    with pytest.raises(NewebPayError, match="HashIV"):
        encrypt_trade_info({"A": 1}, KEY, IV + "7")
    with pytest.raises(NewebPayError, match="HashKey"):
        encrypt_trade_info({"A": 1}, "é" * 32, IV)
    with pytest.raises(NewebPayError, match="integer"):
        encrypt_trade_info({"A": True}, KEY, IV)


# --- decryption and padding -----------------------------------------------------------------------


@pytest.mark.parametrize("pad", range(1, 33))
def test_padding_of_16_and_32_byte_blocks_is_accepted(pad: int) -> None:
    text = b"x" * (64 - pad)
    assert decrypt_trade_info(raw_encrypt(text + bytes([pad]) * pad), KEY, IV) == text.decode()


@pytest.mark.parametrize(
    "padded",
    [
        b"x" * 31 + b"\x00",  # pad 0
        b"x" * 47 + b"\x21",  # pad 33, one byte
        b"x" * 15 + b"\x21" * 33,  # pad 33, well formed but longer than 32
        b"\x30" * 48,  # pad 48, every byte equal
        b"x" * 16 + b"\xff" * 16,  # pad 255
        b"x" * 14 + b"\x02\x03",  # unequal bytes
        b"x" * 27 + b"\x04\x05\x05\x05\x05",  # one byte of five differs
        b"x" * 14 + b"\x14\x14",  # pad 20 > 16 bytes of text
        b"\x11" * 16,  # pad 17 > the 16 bytes there are
        b"x" * 28 + b"\x14" * 20,  # pad 20 in 48 bytes: PKCS#7 to neither 16 nor 32 bytes
        b"x" * 56 + b"\x18" * 24,  # pad 24 in 80 bytes: 80 is no multiple of 32
    ],
)
def test_bad_padding_is_rejected(padded: bytes) -> None:
    with pytest.raises(NotificationRejected) as info:
        decrypt_trade_info(raw_encrypt(padded), KEY, IV)
    assert info.value.reason == "bad_padding"


@pytest.mark.parametrize(
    ("trade_info", "reason"),
    [
        ("", "bad_length"),
        ("abc", "bad_length"),
        ("00" * 15, "bad_length"),
        ("00" * 17, "bad_length"),
        (VECTOR_16_TRADE_INFO[:-1], "bad_length"),
        ("zz" * 16, "bad_hex"),
        ("0x" + "00" * 16, "bad_hex"),
        ("b9 1d" + VECTOR_16_TRADE_INFO[4:], "bad_hex"),  # bytes.fromhex would skip the space
        ("٠" * 32, "bad_hex"),  # non-ASCII digits
    ],
)
def test_malformed_trade_info_is_rejected(trade_info: str, reason: str) -> None:
    with pytest.raises(NotificationRejected) as info:
        decrypt_trade_info(trade_info, KEY, IV)
    assert info.value.reason == reason


def test_text_that_is_not_utf8_is_rejected() -> None:
    with pytest.raises(NotificationRejected) as info:
        decrypt_trade_info(raw_encrypt(pkcs7(b'{"Status": "\xe8\x97"}')), KEY, IV)
    assert info.value.reason == "bad_encoding"


# --- notifications --------------------------------------------------------------------------------


def test_a_json_notification_verifies() -> None:
    note = verify(json_form())
    assert note == Notification(
        status="SUCCESS",
        message="授權成功",
        merchant_id=MID,
        merchant_order_no="ks_order_1",
        amount=30,
        trade_no="23092714215835071",
        payment_type="CREDIT",
        pay_time="2023-09-27 14:21:59",
        raw=result(),
    )


def test_a_string_notification_verifies() -> None:
    flat = {"Status": "SUCCESS", "Message": "授權成功", **result(RespondType="String")}
    note = verify(signed_form(urlencode({k: str(v) for k, v in flat.items()})))
    assert (note.status, note.message, note.amount, note.merchant_order_no) == (
        "SUCCESS",
        "授權成功",
        30,
        "ks_order_1",
    )
    assert note.raw["Card4No"] == "1111" and "Status" not in note.raw


def test_32_byte_padding_verifies_too() -> None:
    text = json.dumps({"Status": "SUCCESS", "Message": "", "Result": result()})
    for block in (16, 32):
        assert verify(signed_form(text, block=block)).amount == 30


@pytest.mark.parametrize("name", ["TradeInfo", "TradeSha", "MerchantID"])
def test_missing_form_fields(name: str) -> None:
    form = json_form()
    assert rejected({k: v for k, v in form.items() if k != name}) == "missing_field"
    assert rejected({**form, name: ""}) == "missing_field"


def test_outer_status_and_version_are_not_needed() -> None:
    form = json_form()
    del form["Status"], form["Version"]
    assert verify(form).status == "SUCCESS"


def test_the_status_comes_from_the_signed_text_not_the_form() -> None:
    form = {**json_form(status="MPG03009", message="授權失敗"), "Status": "SUCCESS"}
    assert verify(form).status == "MPG03009"


def test_tradesha_one_character_changed() -> None:
    form = json_form()
    good = form["TradeSha"]
    for i in (0, 31, 63):
        changed = good[:i] + ("0" if good[i] != "0" else "1") + good[i + 1 :]
        assert rejected({**form, "TradeSha": changed}) == "bad_sha"


def test_tradesha_must_be_upper_case_as_newebpay_sends_it() -> None:
    form = json_form()
    assert re.fullmatch(r"[0-9A-F]{64}", form["TradeSha"])
    assert rejected({**form, "TradeSha": form["TradeSha"].lower()}) == "bad_sha"


def test_tradesha_with_another_key_or_trade_info_changed() -> None:
    form = json_form()
    other_key = "A" * 32
    assert rejected({**form, "TradeSha": sha(form["TradeInfo"], other_key, IV)}) == "bad_sha"
    flipped = form["TradeInfo"][:-1] + ("0" if form["TradeInfo"][-1] != "0" else "1")
    assert rejected({**form, "TradeInfo": flipped}) == "bad_sha"
    assert rejected({**form, "TradeSha": form["TradeSha"] + "\u00e9"}) == "bad_sha"


def test_tradesha_is_checked_before_decryption() -> None:
    # Garbage TradeInfo with a wrong TradeSha reports the SHA, never padding or hex (no oracle).
    for trade_info in ("zz" * 16, "00" * 15, raw_encrypt(b"x" * 31 + b"\x00")):
        assert rejected({**json_form(), "TradeInfo": trade_info}) == "bad_sha"
    # ... and with a correct TradeSha the decryption faults surface.
    assert rejected({**json_form(), "TradeInfo": "zz" * 16, "TradeSha": sha("zz" * 16)}) == "bad_hex"
    assert rejected(signed_form(b"x" * 31 + b"\x00")) == "bad_padding"


def test_merchant_mismatch() -> None:
    assert rejected({**json_form(), "MerchantID": "MS999"}) == "merchant_mismatch"  # outer not signed
    assert rejected(json_form(MerchantID="MS999")) == "merchant_mismatch"
    assert rejected(json_form(MerchantID=None)) == "merchant_mismatch"
    assert rejected(signed_form(json.dumps({"Status": "SUCCESS", "Result": result()}), merchant_id="M2")) == (
        "merchant_mismatch"
    )


@pytest.mark.parametrize("text", ["{not json", '{"Status": "SUCCESS"', "[1, 2]", "a=1&&b", "a=1&a=2", "[]"])
def test_not_json(text: str) -> None:
    assert rejected(signed_form(text)) == "not_json"


def test_json_that_is_not_an_object() -> None:
    assert rejected(signed_form('  {"Status": 1} x')) == "not_json"
    assert rejected(signed_form("{" * 100_000)) == "not_json"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{}", "missing_field"),
        ('{"Status": "SUCCESS", "Result": []}', "missing_field"),
        ("Status=SUCCESS", "merchant_mismatch"),  # an empty String result
    ],
)
def test_envelope_faults(text: str, reason: str) -> None:
    assert rejected(signed_form(text)) == reason


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"Amt": 40.0}, "bad_field"),
        ({"Amt": True}, "bad_field"),
        ({"Amt": -1}, "bad_field"),
        ({"Amt": 0}, "bad_field"),
        ({"Amt": "4e1"}, "bad_field"),
        ({"Amt": 10**10}, "bad_field"),
        ({"Amt": None}, "bad_field"),
        ({"MerchantOrderNo": 12}, "bad_field"),
        ({"MerchantOrderNo": None}, "bad_field"),
        ({"PayTime": 1695795719}, "bad_field"),
        ({"PaymentType": ["CREDIT"]}, "bad_field"),
        ({"TradeNo": None}, "missing_field"),
        ({"TradeNo": 23092714215835071}, "bad_field"),
    ],
)
def test_result_fields_are_typed(overrides: dict[str, Any], reason: str) -> None:
    assert rejected(json_form(**overrides)) == reason


def test_status_and_message_are_typed() -> None:
    assert rejected(json_form(status="")) == "missing_field"
    assert rejected(signed_form(json.dumps({"Status": 1, "Result": result()}))) == "missing_field"
    assert rejected(signed_form(json.dumps({"Status": "SUCCESS", "Message": 2, "Result": result()}))) == (
        "bad_field"
    )


def test_amount_as_digits_and_failed_trade_without_trade_no() -> None:
    assert verify(json_form(Amt="40")).amount == 40
    note = verify(json_form(status="MPG03009", message="授權失敗", TradeNo=None, PayTime=None))
    assert (note.status, note.trade_no, note.pay_time) == ("MPG03009", "", None)


def test_bad_configured_key_is_a_configuration_error() -> None:
    with pytest.raises(NewebPayError) as info:
        verify_notification(json_form(), merchant_id=MID, hash_key="short", hash_iv=IV)
    assert "short" not in str(info.value)


# --- fuzzing --------------------------------------------------------------------------------------

FORM_NAMES = st.sampled_from(["Status", "MerchantID", "Version", "TradeInfo", "TradeSha"])


def outcome(form: dict[str, str]) -> Notification | NotificationRejected:
    """The notification, or the rejection; anything else raised fails the test."""
    try:
        return verify(form)
    except NotificationRejected as exc:
        return exc


def check_never_raises_else(form: dict[str, str]) -> None:
    got = outcome(form)
    if isinstance(got, NotificationRejected):
        assert all(secret not in str(got) for secret in SECRETS)


@settings(max_examples=300)
@given(st.dictionaries(st.one_of(FORM_NAMES, st.text()), st.text()))
def test_arbitrary_forms_only_raise_notification_rejected(form: dict[str, str]) -> None:
    check_never_raises_else(form)


@settings(max_examples=300)
@given(FORM_NAMES, st.text(), st.integers(0, 200), st.booleans())
def test_tampered_real_forms(name: str, text: str, cut: int, replace: bool) -> None:
    form = json_form()
    tampered = dict(form)
    tampered[name] = text if replace else form[name][:cut] + text + form[name][cut + 1 :]
    got = outcome(tampered)
    signed_part_changed = (
        tampered["TradeInfo"] != form["TradeInfo"] or tampered["TradeSha"] != form["TradeSha"]
    )
    if signed_part_changed:
        assert isinstance(got, NotificationRejected) and got.reason in ("bad_sha", "missing_field")
    elif tampered["MerchantID"] != MID:
        assert isinstance(got, NotificationRejected) and got.reason in ("merchant_mismatch", "missing_field")
    else:
        assert isinstance(got, Notification) and got.amount == 30


def extend_json(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    )


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12)),
    extend_json,
    max_leaves=20,
)
RESULT_NAMES = st.sampled_from(["MerchantID", "Amt", "MerchantOrderNo", "TradeNo", "PaymentType", "PayTime"])


@settings(max_examples=300)
@given(
    st.dictionaries(st.sampled_from(["Status", "Message", "Result"]) | st.text(max_size=6), JSON_VALUES),
    st.dictionaries(RESULT_NAMES, JSON_VALUES),
)
def test_signed_arbitrary_json_only_raises_notification_rejected(
    envelope: dict[str, Any], fields: dict[str, Any]
) -> None:
    if fields:
        envelope["Result"] = {**result(), **fields}
    check_never_raises_else(signed_form(json.dumps(envelope)))


@settings(max_examples=200)
@given(st.one_of(st.text(), st.binary().map(lambda b: b + bytes(-len(b) % 16))))
def test_signed_arbitrary_plaintexts_only_raise_notification_rejected(text: str | bytes) -> None:
    check_never_raises_else(signed_form(text))


# --- the checkout form ----------------------------------------------------------------------------

FORM_ARGS: dict[str, Any] = dict(
    merchant_id=MID,
    hash_key=KEY,
    hash_iv=IV,
    merchant_order_no="ks_order_1",
    amount=1050,
    item_desc="Kassa order 藍新",
    email="buyer@example.com",
    notify_url="https://kassa.example/newebpay/notify",
    return_url="https://kassa.example/pay/ord_1/done",
    client_back_url="https://shop.example/cart",
    timestamp=1_700_000_000,
    testing=True,
)


def test_checkout_form_fields() -> None:
    url, fields = checkout_form(**FORM_ARGS, extra={"CREDIT": 1, "VACC": 1, "TradeLimit": 600})
    assert url == TEST_GATEWAY_URL == "https://ccore.newebpay.com/MPG/mpg_gateway"
    assert list(fields) == ["MerchantID", "TradeInfo", "TradeSha", "Version"]
    assert fields["MerchantID"] == MID and fields["Version"] == "2.0"
    assert fields["TradeSha"] == sha(fields["TradeInfo"])
    params = parse_qsl(decrypt_trade_info(fields["TradeInfo"], KEY, IV), keep_blank_values=True)
    assert params == [
        ("MerchantID", MID),
        ("RespondType", "JSON"),
        ("TimeStamp", "1700000000"),
        ("Version", "2.0"),
        ("MerchantOrderNo", "ks_order_1"),
        ("Amt", "1050"),
        ("ItemDesc", "Kassa order 藍新"),
        ("Email", "buyer@example.com"),
        ("LoginType", "0"),
        ("NotifyURL", "https://kassa.example/newebpay/notify"),
        ("ReturnURL", "https://kassa.example/pay/ord_1/done"),
        ("ClientBackURL", "https://shop.example/cart"),
        ("CREDIT", "1"),
        ("VACC", "1"),
        ("TradeLimit", "600"),
    ]


def test_checkout_form_production_and_optional_fields() -> None:
    url, fields = checkout_form(**{**FORM_ARGS, "testing": False, "email": None, "client_back_url": None})
    assert url == PRODUCTION_GATEWAY_URL == "https://core.newebpay.com/MPG/mpg_gateway"
    names = [name for name, _ in parse_qsl(decrypt_trade_info(fields["TradeInfo"], KEY, IV))]
    assert "Email" not in names and "ClientBackURL" not in names


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"merchant_order_no": "a" * 31}, "MerchantOrderNo"),
        ({"merchant_order_no": ""}, "MerchantOrderNo"),
        ({"merchant_order_no": "ks-order"}, "MerchantOrderNo"),
        ({"merchant_order_no": "ks order"}, "MerchantOrderNo"),
        ({"merchant_order_no": "ks_ördér"}, "MerchantOrderNo"),
        ({"merchant_order_no": "ks_order\n"}, "MerchantOrderNo"),
        ({"amount": 0}, "Amt"),
        ({"amount": -5}, "Amt"),
        ({"amount": True}, "Amt"),
        ({"amount": 10.5}, "Amt"),
        ({"amount": 10**10}, "Amt"),
        ({"item_desc": "x" * 51}, "ItemDesc"),
        ({"item_desc": ""}, "ItemDesc"),
        ({"timestamp": 0}, "TimeStamp"),
        ({"merchant_id": ""}, "MerchantID"),
        ({"extra": {"Amt": 1}}, "Amt"),
        ({"extra": {"NotifyURL": "https://evil.example/"}}, "NotifyURL"),
        ({"hash_key": "k" * 31}, "HashKey"),
    ],
)
def test_checkout_form_validation(change: dict[str, Any], match: str) -> None:
    with pytest.raises(NewebPayError, match=match) as info:
        checkout_form(**{**FORM_ARGS, **change})
    assert isinstance(info.value, ValueError)
    assert KEY not in str(info.value) and IV not in str(info.value)


def test_checkout_form_limits_are_inclusive() -> None:
    checkout_form(**{**FORM_ARGS, "merchant_order_no": "A_9" * 10, "item_desc": "藍" * 50, "amount": 1})


def test_new_merchant_order_no() -> None:
    numbers = {new_merchant_order_no() for _ in range(2000)}
    assert len(numbers) == 2000
    for number in numbers:
        assert re.fullmatch(r"ks_[A-Za-z0-9]{22}", number) and len(number) <= 30
    checkout_form(**{**FORM_ARGS, "merchant_order_no": numbers.pop()})


# --- end to end through the stand-in --------------------------------------------------------------


class NotifyReceiver:
    """The shop's NotifyURL on loopback: records each POST (content type and form) and answers 200."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, str]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                form = dict(parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=True))
                receiver.posts.append((self.headers.get("content-type", ""), form))
                self.send_response(200)
                self.send_header("content-length", "4")
                self.end_headers()
                self.wfile.write(b"1|OK")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/newebpay/notify"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[NotifyReceiver]:
    r = NotifyReceiver()
    yield r
    r.stop()


@pytest.fixture
def stand_in() -> Iterator[NewebPayStandIn]:
    with NewebPayStandIn(MID, KEY, IV) as s:
        yield s


def open_trade(stand_in: NewebPayStandIn, receiver: NotifyReceiver, amount: int = 1050) -> str:
    order_no = new_merchant_order_no()
    url, fields = checkout_form(
        **{**FORM_ARGS, "merchant_order_no": order_no, "amount": amount, "notify_url": receiver.url}
    )
    assert url == TEST_GATEWAY_URL
    page = httpx.post(stand_in.gateway_url, data=fields, timeout=10)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html") and order_no in page.text
    return order_no


def test_end_to_end_payment(stand_in: NewebPayStandIn, receiver: NotifyReceiver) -> None:
    order_no = open_trade(stand_in, receiver)
    assert stand_in.trades[order_no]["Amt"] == "1050"
    assert stand_in.trades[order_no]["ItemDesc"] == "Kassa order 藍新"
    answer = stand_in.pay(order_no)
    assert answer.status_code == 200 and answer.text == "1|OK"
    [(content_type, form)] = receiver.posts
    assert content_type == "application/x-www-form-urlencoded"
    assert list(form) == ["Status", "MerchantID", "Version", "TradeInfo", "TradeSha"]
    assert form == stand_in.notify_forms[0]
    note = verify(form)
    assert (note.status, note.merchant_order_no, note.amount, note.payment_type) == (
        "SUCCESS",
        order_no,
        1050,
        "CREDIT",
    )
    assert re.fullmatch(r"[0-9]{17}", note.trade_no) and note.raw["Card4No"] == "1111"


def test_end_to_end_failure_and_other_payment_types(
    stand_in: NewebPayStandIn, receiver: NotifyReceiver
) -> None:
    order_no = open_trade(stand_in, receiver)
    stand_in.fail(order_no, "授權失敗")
    stand_in.pay(order_no, payment_type="VACC", amount=1)
    failed, underpaid = (verify(form) for _, form in receiver.posts)
    assert (failed.status, failed.message) == ("MPG03009", "授權失敗")
    assert (underpaid.amount, underpaid.payment_type, underpaid.raw["PayBankCode"]) == (1, "VACC", "809")


def test_end_to_end_with_32_byte_padding_and_string_respond_type(receiver: NotifyReceiver) -> None:
    with NewebPayStandIn(MID, KEY, IV, notify_block_size=32) as stand_in:
        params: dict[str, str | int] = {
            "MerchantID": MID,
            "RespondType": "String",
            "TimeStamp": 1_700_000_000,
            "Version": "2.0",
            "MerchantOrderNo": "ks_string_1",
            "Amt": 99,
            "ItemDesc": "string respond type",
            "NotifyURL": receiver.url,
        }
        trade_info = encrypt_trade_info(params, KEY, IV)
        form = {"MerchantID": MID, "TradeInfo": trade_info, "TradeSha": trade_sha(trade_info, KEY, IV)}
        assert httpx.post(stand_in.gateway_url, data={**form, "Version": "2.0"}).status_code == 200
        stand_in.pay("ks_string_1", payment_type="CVS")
    [(_, notify)] = receiver.posts
    assert not decrypt_trade_info(notify["TradeInfo"], KEY, IV).startswith("{")
    note = verify(notify)
    assert (note.amount, note.payment_type, note.raw["CodeNo"]) == (99, "CVS", "LLL22251222")


def test_stand_in_refuses_what_newebpay_would(stand_in: NewebPayStandIn, receiver: NotifyReceiver) -> None:
    _, other_key = checkout_form(**{**FORM_ARGS, "hash_key": "B" * 32})
    _, good = checkout_form(**FORM_ARGS)
    for form, message in [
        (other_key, "TradeSha"),
        ({**good, "TradeSha": good["TradeSha"].lower()}, "TradeSha"),
        ({**good, "MerchantID": "MS0"}, "MerchantID"),
        ({k: v for k, v in good.items() if k != "TradeInfo"}, "TradeInfo"),
    ]:
        answer = httpx.post(stand_in.gateway_url, data=form, timeout=10)
        assert answer.status_code == 400 and message in answer.text
    assert httpx.post(stand_in.gateway_url, data=good, timeout=10).status_code == 200
    duplicate = httpx.post(stand_in.gateway_url, data=good, timeout=10)
    assert duplicate.status_code == 400 and "used before" in duplicate.text
    assert list(stand_in.trades) == ["ks_order_1"] and not receiver.posts
