"""docs/compat/taler.md's walk-through, run as written with real curl against a real Kassa server."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx

from tests.support.server import KassaServer
from tests.support.taler import PAID
from tests.support.walkthrough import DOCS, run_walkthrough, steps

DOC = DOCS / "compat" / "taler.md"


def test_walkthrough_runs_as_written(
    kassa: KassaServer, merchant: tuple[str, str], api: httpx.Client, tmp_path: Path
) -> None:
    assert len([kind for kind, _ in steps(DOC) if kind == "sh"]) == 6
    start = time.monotonic()
    created, unpaid, waited, sessions, again, errors = run_walkthrough(
        DOC, {"KASSA": kassa.base_url, "KEY": merchant[1]}, tmp_path
    )
    assert time.monotonic() - start < 15  # step 3 answered on payment, not at its 30 s timeout
    first = api.get("/api/v1/orders/article-1").json()
    second = api.get("/api/v1/orders/article-2").json()
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{103}\n", created) and created.strip() == first["h_contract"]
    assert json.loads(unpaid) == {"paid": False, "taler_pay_uri": first["checkout_url"]}
    assert json.loads(waited) == PAID
    assert [json.loads(line) for line in sessions.splitlines()] == [
        PAID,
        PAID,
        {"paid": False, "taler_pay_uri": first["checkout_url"]},
    ]
    assert json.loads(again) == {
        "paid": False,
        "taler_pay_uri": second["checkout_url"],
        "already_paid_order_id": "article-1",
    }
    answers = [line.rsplit(" ", 1) for line in errors.splitlines()]
    assert [(json.loads(body)["code"], int(status)) for body, status in answers] == [
        (2009, 403),
        (2005, 404),
        (25, 400),
    ]
    assert first["session_id"] == "browser-A" and first["status"] == "paid"
    assert second["session_id"] == "browser-A" and second["status"] == "open"  # bound by its poll
