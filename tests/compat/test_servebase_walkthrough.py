"""docs/compat/servebase.md's walk-through, run as written with real curl against real Kassa servers
(the dummy gateway, and NewebPay through its loopback stand-in)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.compat.servebase_shop import ServebaseShop, dummy_shop, newebpay, newebpay_shop
from tests.support.newebpay_stand_in import NewebPayStandIn
from tests.support.walkthrough import DOCS, run_walkthrough, steps

__all__ = ["dummy_shop", "newebpay", "newebpay_shop"]  # fixtures

DOC = DOCS / "compat" / "servebase.md"


def test_walkthrough_runs_as_written(
    dummy_shop: ServebaseShop, newebpay_shop: ServebaseShop, newebpay: NewebPayStandIn, tmp_path: Path
) -> None:
    assert len([kind for kind, _ in steps(DOC) if kind == "sh"]) == 6
    known = set(newebpay.trades)
    paid: list[str] = []

    def on_marker(text: str) -> None:
        assert "NewebPay posts its notification" in text
        (order_no,) = set(newebpay.trades) - known
        answer = newebpay.pay(order_no)
        assert answer.status_code == 200, answer.text
        paid.append(order_no)

    env = {
        "KASSA": dummy_shop.server.base_url,
        "KEY": dummy_shop.key,
        "NKASSA": newebpay_shop.server.base_url,
        "NKEY": newebpay_shop.key,
    }
    signed, page, checked, nsigned, complete, forged = run_walkthrough(DOC, env, tmp_path, on_marker)
    slug = json.loads(signed)["slug"]
    assert json.loads(signed)["payload"]["amount"] == "1200"
    assert page.strip() == 'data-state="pending"'
    state = json.loads(checked)
    assert state["state"] == "complete" and state["paidtime"]
    assert dummy_shop.order(slug)["status"] == "paid"
    nslug = json.loads(nsigned)["slug"]
    assert paid and newebpay_shop.order(nslug)["payments"][0]["reference"] == paid[0]
    assert complete.strip() == '"state":"complete"'
    body, status = forged.rsplit(" ", 1)
    assert status.strip() == "490" and json.loads(body)["id"] == 400
    assert len(newebpay_shop.order(nslug)["payments"]) == 1
