"""Our headers against the standardwebhooks library's own verifier."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from kassa.notify.signing import new_secret, sign_headers, validate_secret

BODY = json.dumps({"type": "order.paid", "data": {"id": "ord_1", "amount": 1050}}).encode()


def test_new_secret_has_the_library_format() -> None:
    secret = new_secret()

    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    validate_secret(secret)
    Webhook(secret)  # the library accepts it
    assert len({new_secret() for _ in range(50)}) == 50


def test_headers_verify_with_the_library() -> None:
    secret = new_secret()
    headers = sign_headers([secret], "msg_1", datetime.now(UTC), BODY)

    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)


def test_during_rotation_either_secret_verifies() -> None:
    old, new = new_secret(), new_secret()
    headers = sign_headers([old, new], "msg_2", datetime.now(UTC), BODY)

    entries = headers["webhook-signature"].split(" ")
    assert len(entries) == 2
    assert all(entry.startswith("v1,") for entry in entries)
    for secret in (old, new):
        assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(new_secret()).verify(BODY, headers)


def test_a_repeated_secret_signs_once() -> None:
    secret = new_secret()
    headers = sign_headers([secret, secret], "msg_3", datetime.now(UTC), BODY)
    assert " " not in headers["webhook-signature"]


def test_tampered_body_fails() -> None:
    secret = new_secret()
    headers = sign_headers([secret], "msg_4", datetime.now(UTC), BODY)
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(secret).verify(BODY.replace(b"1050", b"1"), headers)


def test_tampered_id_fails() -> None:
    secret = new_secret()
    headers = sign_headers([secret], "msg_5", datetime.now(UTC), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, {**headers, "webhook-id": "msg_6"})


def test_wrong_secret_fails() -> None:
    headers = sign_headers([new_secret()], "msg_7", datetime.now(UTC), BODY)
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(new_secret()).verify(BODY, headers)


@pytest.mark.parametrize(
    ("shift", "message"), [(timedelta(minutes=-10), "too old"), (timedelta(minutes=10), "too new")]
)
def test_timestamp_outside_tolerance_fails(shift: timedelta, message: str) -> None:
    secret = new_secret()
    headers = sign_headers([secret], "msg_8", datetime.now(UTC) + shift, BODY)
    with pytest.raises(WebhookVerificationError, match=message):
        Webhook(secret).verify(BODY, headers)


def test_non_utc_timestamps_mean_the_same_instant() -> None:
    # The library's sign() does timestamp.replace(tzinfo=UTC); we must not inherit that shift.
    secret = new_secret()
    at = datetime.now(UTC)
    in_taipei = at.astimezone(timezone(timedelta(hours=8)))
    headers = sign_headers([secret], "msg_9", in_taipei, BODY)

    assert headers == sign_headers([secret], "msg_9", at, BODY)
    assert headers["webhook-timestamp"] == str(int(at.timestamp()))
    Webhook(secret).verify(BODY, headers)


@pytest.mark.parametrize(
    ("secrets", "msg_id", "timestamp", "body", "message"),
    [
        ([], "msg", datetime.now(UTC), BODY, "at least one"),
        (["whsec_!!!"], "msg", datetime.now(UTC), BODY, "base64"),
        (["nope"], "msg", datetime.now(UTC), BODY, "whsec_"),
        (["whsec_" + base64.b64encode(b"short").decode()], "msg", datetime.now(UTC), BODY, "24 to 64"),
        (None, "", datetime.now(UTC), BODY, "message id"),
        (None, "msg 1", datetime.now(UTC), BODY, "message id"),
        (None, "msg\n1", datetime.now(UTC), BODY, "message id"),
        (None, "msg", datetime(2025, 1, 1), BODY, "timezone-aware"),
        (None, "msg", datetime.now(UTC), b"\xff\xfe", "UTF-8"),
    ],
)
def test_bad_input_is_rejected(
    secrets: list[str] | None, msg_id: str, timestamp: datetime, body: bytes, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        sign_headers([new_secret()] if secrets is None else secrets, msg_id, timestamp, body)


@given(
    payload=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda children: st.lists(children) | st.dictionaries(st.text(), children),
        max_leaves=20,
    ),
    msg_id=st.from_regex(r"msg_[A-Za-z0-9]{1,30}", fullmatch=True),
    secret_count=st.integers(min_value=1, max_value=3),
)
def test_any_json_payload_verifies_with_every_secret(payload: object, msg_id: str, secret_count: int) -> None:
    body = json.dumps(payload, ensure_ascii=False).encode()
    secrets = [new_secret() for _ in range(secret_count)]
    headers = sign_headers(secrets, msg_id, datetime.now(UTC), body)
    for secret in secrets:
        assert Webhook(secret).verify(body, headers) == payload
